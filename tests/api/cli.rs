//! The operator's command line, run as a real process against the test database.
use crate::helpers::*;
use bleepless::config::DatabaseUrl;
use std::process::Command;

pub fn db_arg(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
        DatabaseUrl::Postgres(u) => u.clone(),
    }
}

pub fn bleepless(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bleepless"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("BLEEPLESS_BIND")
        .env_remove("BLEEPLESS_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run bleepless");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_added_on_the_command_line_can_use_the_api_with_the_printed_token() {
    let w = Ward::new().await;
    let db = db_arg(&w.app.db_url);
    let (ok, out, err) = tokio::task::spawn_blocking({
        let db = db.clone();
        move || {
            bleepless(&[
                "--database",
                &db,
                "staff",
                "add",
                "Dr Chloe Evans",
                "--email",
                "chloe@example.nhs.uk",
                "--roles",
                "clinician",
            ])
        }
    })
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    let token = out.lines().last().unwrap().trim().to_string();
    assert!(
        token.starts_with("blp_") && !token.contains(' '),
        "last line is the token: {out}"
    );
    let (s, me) = w.app.get("/api/v1/me", &token).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["staff"]["name"], "Dr Chloe Evans");
    assert_eq!(me["staff"]["roles"], serde_json::json!(["clinician"]));

    let (ok, out, err) = tokio::task::spawn_blocking({
        let db = db.clone();
        move || {
            let a = bleepless(&["--database", &db, "role", "add", "Medicine SHO night"]);
            assert!(a.0, "{}{}", a.1, a.2);
            bleepless(&[
                "--database",
                &db,
                "role",
                "hand-over",
                "Medicine SHO night",
                "--to",
                "chloe@example.nhs.uk",
            ])
        }
    })
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Dr Chloe Evans now holds Medicine SHO night"),
        "{out}"
    );
    let (ok, out, err) = tokio::task::spawn_blocking({
        let db = db.clone();
        move || {
            bleepless(&[
                "--database",
                &db,
                "role",
                "escalate",
                "Medicine FY1 night",
                "--to",
                "Medicine SHO night",
            ])
        }
    })
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Medicine FY1 night now escalates to Medicine SHO night"),
        "{out}"
    );
    let (_, roles) = w.app.get("/api/v1/roles", &token).await;
    let sho = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Medicine SHO night")
        .unwrap()
        .clone();
    assert_eq!(sho["held_by"][0]["name"], "Dr Chloe Evans");
    let fy1 = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Medicine FY1 night")
        .unwrap()
        .clone();
    assert_eq!(fy1["escalates_to"], sho["id"]);

    // Mistakes are told plainly and change nothing.
    let (ok, _, err) = tokio::task::spawn_blocking({
        let db = db.clone();
        move || {
            bleepless(&[
                "--database",
                &db,
                "staff",
                "add",
                "Dr X",
                "--roles",
                "surgeon",
            ])
        }
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(err.contains("unknown staff role \"surgeon\""), "{err}");
    let (ok, _, err) = tokio::task::spawn_blocking(move || {
        bleepless(&[
            "--database",
            &db,
            "role",
            "hand-over",
            "No such bleep",
            "--to",
            "Dr Chloe Evans",
        ])
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(err.contains("No such bleep"), "{err}");
}

#[test]
fn a_wrong_setting_stops_the_start_with_one_line_saying_which() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bleepless.toml");
    std::fs::write(&cfg, "bind = \"127.0.0.1:8080\"\nsurprise = 1\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--bind".into(), "not-an-address".into(), "migrate".into()],
            "--bind",
        ),
        (
            vec!["--database".into(), "mysql://db/x".into(), "migrate".into()],
            "mysql",
        ),
        (
            vec![
                "--config".into(),
                cfg.display().to_string(),
                "migrate".into(),
            ],
            "surprise",
        ),
        (
            vec![
                "--config".into(),
                dir.path().join("missing.toml").display().to_string(),
                "migrate".into(),
            ],
            "cannot be read",
        ),
        (
            vec![
                "--database".into(),
                "postgres://nobody@127.0.0.1:1/none".into(),
                "migrate".into(),
            ],
            "PostgreSQL",
        ),
    ];
    for (args, says) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, _, err) = bleepless(&args);
        assert!(!ok, "{args:?} should fail");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line for {args:?}: {err}");
        assert!(lines[0].contains(says), "{args:?}: {err}");
    }
}

#[test]
fn serving_on_a_fresh_machine_creates_and_migrates_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bleepless"))
        .current_dir(dir.path())
        .args(["--bind", &format!("127.0.0.1:{port}"), "--demo"])
        .env_remove("DATABASE_URL")
        .env_remove("BLEEPLESS_CONFIG")
        .env_remove("BLEEPLESS_BIND")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            healthy = reply.starts_with("HTTP/1.0 200") && reply.contains("\"ok\"");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(healthy, "the service answered /healthz");
    assert!(dir.path().join("bleepless.db").exists());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Dr Amy Patel"),
        "demo logins printed: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn national_identifiers_set_on_the_command_line_name_staff_and_site_in_the_record() {
    let w = Ward::new().await;
    let db = db_arg(&w.app.db_url);
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            bleepless(&args)
        })
    };
    let cmd = |rest: &[&str]| {
        let mut v = vec!["--database".to_string(), db.clone()];
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };
    let (ok, out, err) = run(cmd(&[
        "staff",
        "add",
        "Dr Chloe Evans",
        "--roles",
        "clinician",
        "--gmc",
        "7654321",
    ]))
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    let chloe_token = out.lines().last().unwrap().trim().to_string();
    let chloe_id = out
        .split(" id ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    let (ok, out, err) = run(cmd(&[
        "staff",
        "identify",
        "Sister Grace Okafor",
        "--nmc",
        "12a3456b",
    ]))
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(cmd(&["ward", "add", "Ward 7", "--ods", "rj122"]))
        .await
        .unwrap();
    assert!(ok, "{out}{err}");

    let id = w
        .app
        .raised(
            &w.nurse.token,
            &chloe_id,
            serde_json::json!({ "ward": "Ward 7" }),
        )
        .await;
    let (s, b) = w
        .app
        .act(&id, "acknowledge", &chloe_token, serde_json::json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    let res = w
        .app
        .client
        .get(format!("{}/fhir/Task/{id}", w.app.base))
        .bearer_auth(&w.nurse.token)
        .send()
        .await
        .unwrap();
    let t: serde_json::Value = res.json().await.unwrap();
    let problems = crate::support::fhir_judge::problems(&t);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        t["owner"]["identifier"],
        serde_json::json!({ "system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "7654321" })
    );
    assert_eq!(t["owner"]["display"], "Dr Chloe Evans");
    assert_eq!(
        t["requester"]["identifier"],
        serde_json::json!({ "system": "https://fhir.hl7.org.uk/Id/nmc-number", "value": "12A3456B" })
    );
    assert_eq!(
        t["location"]["identifier"]["assigner"]["identifier"],
        serde_json::json!({ "system": "https://fhir.nhs.uk/Id/ods-site-code", "value": "RJ122" })
    );
    assert_eq!(t["location"]["identifier"]["value"], "Ward 7");

    // A malformed identifier is refused, naming it, and adds nobody.
    for (args, says) in [
        (
            vec![
                "staff",
                "add",
                "Dr X",
                "--roles",
                "clinician",
                "--gmc",
                "12",
            ],
            "GMC number",
        ),
        (
            vec!["staff", "identify", "Dr Chloe Evans", "--sds", "abc"],
            "SDS user id",
        ),
        (
            vec!["ward", "add", "Ward 9", "--ods", "R J"],
            "ODS site code",
        ),
    ] {
        let (ok, _, err) = run(cmd(&args)).await.unwrap();
        assert!(!ok, "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let (_, out, _) = run(cmd(&["staff", "list"])).await.unwrap();
    assert!(!out.contains("Dr X"), "{out}");
}

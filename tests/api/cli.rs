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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

pub fn bleepless(args: &[&str]) -> (bool, String, String) {
    bleepless_with_env(args, &[])
}

pub fn bleepless_with_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bleepless"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("BLEEPLESS_BIND")
        .env_remove("BLEEPLESS_CONFIG")
        .env_remove("BLEEPLESS_LOG_FORMAT")
        .env_remove("BLEEPLESS_FHIR_SYSTEM_BASE")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
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
    let port = free_port();
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

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bleepless.toml");
    std::fs::write(
        &cfg,
        r#"
database_url = "postgres://bob:s3cret-db@db.example.nhs.uk:5432/bleepless"
public_url = "https://bleepless.example-trust.nhs.uk/"

[push]
vapid_private_key = "s3cret-vapid-private"
vapid_public_key = "BPublicKeyForPhones"

[email]
host = "smtp.example-trust.nhs.uk"
username = "bleepless"
password = "s3cret-mail"
from = "Bleepless <bleepless@example-trust.nhs.uk>"

[record]
base_url = "https://epr.example-trust.nhs.uk/fhir"
authorization = "Bearer s3cret-epr"

[fhir]
system_base = "https://fhir.example-trust.nhs.uk/bleepless"
conditional_patient_reference = true
"#,
    )
    .unwrap();
    let path = cfg.display().to_string();
    let (ok, out, err) = bleepless_with_env(
        &["--config", &path, "--bind", "0.0.0.0:9000", "check-config"],
        &[
            ("BLEEPLESS_LOG_FORMAT", "json"),
            (
                "BLEEPLESS_LINK_SECRET",
                "s3cret-link-0123456789abcdefghijklmnopqrstuvwxyz",
            ),
        ],
    );
    assert!(ok, "{out}{err}");
    for line in [
        "bind = \"0.0.0.0:9000\"",
        "database_url = \"postgres://bob@db.example.nhs.uk:5432/bleepless\"",
        "public_url = \"https://bleepless.example-trust.nhs.uk\"",
        "log_format = \"json\"",
        "time_zone = \"Europe/London\"",
        "vapid_private_key = \"(hidden)\"",
        "vapid_public_key = \"BPublicKeyForPhones\"",
        "password = \"(hidden)\"",
        "authorization = \"(hidden)\"",
        "port = 587",
        "system_base = \"https://fhir.example-trust.nhs.uk/bleepless\"",
        "conditional_patient_reference = true",
        "link_secret = \"(hidden)\"",
        "trust_proxy_headers = false",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} in:\n{out}");
    }
    for secret in [
        "s3cret-db",
        "s3cret-vapid",
        "s3cret-mail",
        "s3cret-epr",
        "s3cret-link",
    ] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} shown:\n{out}{err}"
        );
    }
    // What it prints reads back as TOML.
    let parsed: Result<toml::Value, _> = toml::from_str(&out);
    assert!(parsed.is_ok(), "{parsed:?}\n{out}");

    // Defaults: the system base is the public address.
    let (ok, out, err) = bleepless(&["--bind", "127.0.0.1:8181", "check-config"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("system_base = \"http://127.0.0.1:8181\""),
        "{out}"
    );
}

#[test]
fn check_config_names_a_bad_setting_in_one_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("log_format = \"xml\"\n", vec![], "log_format"),
        (
            "[fhir]\nsystem_base = \"ftp://codes.example\"\n",
            vec![],
            "fhir.system_base",
        ),
        ("[fhir]\ncolour = \"blue\"\n", vec![], "colour"),
        (
            "[fhir]\nconditional_patient_reference = \"yes\"\n",
            vec![],
            "conditional_patient_reference",
        ),
        (
            "",
            vec![("BLEEPLESS_LOG_FORMAT", "yaml")],
            "BLEEPLESS_LOG_FORMAT",
        ),
        ("time_zone = \"Europe/Londres\"\n", vec![], "time_zone"),
        (
            "",
            vec![("BLEEPLESS_TIME_ZONE", "GMT+25")],
            "BLEEPLESS_TIME_ZONE",
        ),
        (
            "[email]\nhost = \"smtp.example\"\nfrom = \"a@b.example\"\npassword = 123456789\n",
            vec![],
            "line 4: password",
        ),
    ];
    for (i, (text, env, says)) in cases.into_iter().enumerate() {
        let cfg = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let path = cfg.display().to_string();
        let (ok, out, err) = bleepless_with_env(&["--config", &path, "check-config"], &env);
        assert!(!ok, "{text:?} {env:?} should fail: {out}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line for {text:?}: {err}");
        assert!(lines[0].contains(says), "{text:?}: {err}");
        assert!(out.is_empty(), "nothing printed as if valid: {out}");
        assert!(!err.contains("123456789"), "a secret shown: {err}");
    }
}

#[test]
fn check_config_names_a_bad_health_or_record_server_setting_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let record = "[records.epr2]\nbase_url = \"https://epr2.example/fhir\"\n";
    let cases = [
        (
            "[health]\nmax_due_age_seconds = 5\n".to_string(),
            "health.max_due_age_seconds",
        ),
        (
            "[health]\nmax_due_age_seconds = \"two minutes\"\n".into(),
            "max_due_age_seconds",
        ),
        (
            "[health]\nmax_due_age_seconds = -1\n".into(),
            "max_due_age_seconds",
        ),
        (
            "[health]\nheartbeat_url = \"ftp://monitor.example/ping\"\n".into(),
            "health.heartbeat_url",
        ),
        ("[health]\nmax_age_seconds = 60\n".into(), "max_age_seconds"),
        (
            "[records.epr2]\nbase_url = \"epr2.example/fhir\"\n".into(),
            "records.epr2.base_url",
        ),
        ("[records.epr2]\ntimeout_seconds = 10\n".into(), "base_url"),
        (
            format!("{record}timeout_seconds = \"ten\"\n"),
            "timeout_seconds",
        ),
        (format!("{record}token = \"abc\"\n"), "token"),
    ];
    for (i, (text, says)) in cases.into_iter().enumerate() {
        let cfg = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&cfg, &text).unwrap();
        let path = cfg.display().to_string();
        let (ok, out, err) = bleepless(&["--config", &path, "check-config"]);
        assert!(!ok, "{text:?} should fail: {out}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line for {text:?}: {err}");
        assert!(
            lines[0].contains(says),
            "{text:?} should name {says}: {err}"
        );
        assert!(out.is_empty(), "nothing printed as if valid: {out}");
    }
    // The same record server, well formed, is taken.
    let cfg = dir.path().join("good.toml");
    std::fs::write(&cfg, format!("{record}timeout_seconds = 10\n")).unwrap();
    let (ok, out, err) = bleepless(&["--config", &cfg.display().to_string(), "check-config"]);
    assert!(ok, "{err}");
    assert!(out.contains("https://epr2.example/fhir"), "{out}");
}

#[test]
fn logs_are_one_json_object_a_line_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bleepless"))
        .current_dir(dir.path())
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env_remove("DATABASE_URL")
        .env_remove("BLEEPLESS_CONFIG")
        .env_remove("BLEEPLESS_BIND")
        .env("BLEEPLESS_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the log as it is written, until the start line (or 20 s).
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut got: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !got.iter().any(|l| l.contains("Bleepless is listening")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => got.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let stderr = got.join("\n");
    let lines: Vec<serde_json::Value> = got
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let listening = lines
        .iter()
        .find(|l| l["message"] == "Bleepless is listening")
        .unwrap_or_else(|| panic!("no start line in {stderr}"));
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["addr"], format!("127.0.0.1:{port}"));
    assert!(listening["timestamp"].is_string());
}

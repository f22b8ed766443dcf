//! Tests written for gaps found while building the hazard log (docs/safety): mitigations that
//! were in the code but that no test showed working.
use crate::helpers::*;
use bleepless::store::DbConnection;
use diesel::prelude::*;
use serde_json::json;

async fn holders(app: &TestApp, role: &str, token: &str) -> Vec<String> {
    let (s, roles) = app.get("/api/v1/roles", token).await;
    assert_eq!(s, 200, "{roles}");
    roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == role)
        .unwrap()["held_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect()
}

/// H-12: only an admin or a current holder may hand a bleep over, and a member of staff who
/// is no longer active cannot be given one. A refused hand-over changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_bleep_is_handed_over_only_by_its_holder_or_an_admin_and_never_to_a_leaver() {
    let w = Ward::new().await;
    let app = &w.app;
    let admin = app.staff("Sam Admin", "admin").await;
    let path = format!("/api/v1/roles/{}/hand-over", w.fy1);
    // Ben does not hold the bleep: he may not take it, nor may the coordinator give it.
    for who in [&w.ben, &w.nurse, &w.manager] {
        let (s, body) = app.post(&path, &who.token, json!({ "to": w.ben.id })).await;
        assert_eq!(s, 403, "{}: {body}", who.name);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("only an admin or the current holder"),
            "{body}"
        );
    }
    assert_eq!(holders(app, &w.fy1, &w.nurse.token).await, ["Dr Amy Patel"]);

    // A leaver cannot be given the bleep, by an admin or by its holder.
    let leaver = app.staff("Dr Lee Left", "clinician").await;
    let id = leaver.id.clone();
    app.write(move |c, _| {
        use bleepless::store::schema::staff;
        Ok(diesel::update(staff::table.filter(staff::id.eq(&id)))
            .set(staff::active.eq(false))
            .execute(c)?)
    })
    .await;
    for who in [&admin, &w.amy] {
        let (s, body) = app
            .post(&path, &who.token, json!({ "to": leaver.id }))
            .await;
        assert_eq!(s, 422, "{}: {body}", who.name);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no longer active"),
            "{body}"
        );
    }
    assert_eq!(holders(app, &w.fy1, &w.nurse.token).await, ["Dr Amy Patel"]);

    // The holder and an admin may.
    let (s, body) = app
        .post(&path, &w.amy.token, json!({ "to": w.ben.id }))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        holders(app, &w.fy1, &w.nurse.token).await,
        ["Dr Ben Hughes"]
    );
    let (s, body) = app
        .post(&path, &admin.token, json!({ "to": w.amy.id }))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(holders(app, &w.fy1, &w.nurse.token).await, ["Dr Amy Patel"]);
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

/// H-04: a 2xx means the change is on disk: SQLite runs in WAL mode with synchronous=FULL on
/// the store's connections, PostgreSQL with synchronous_commit on.
#[tokio::test(flavor = "multi_thread")]
async fn the_store_commits_to_disk_before_answering() {
    let w = Ward::new().await;
    let settings = w
        .app
        .write(|c, _| {
            let read = |c: &mut DbConnection, sql: &str| -> QueryResult<String> {
                match c {
                    DbConnection::Sqlite(c) => diesel::sql_query(sql).get_result::<Setting>(c),
                    DbConnection::Pg(c) => diesel::sql_query(sql).get_result::<Setting>(c),
                }
                .map(|s| s.value)
            };
            Ok(match c {
                DbConnection::Sqlite(_) => vec![
                    read(
                        c,
                        "SELECT CAST(synchronous AS TEXT) AS value FROM pragma_synchronous",
                    )?,
                    read(c, "SELECT journal_mode AS value FROM pragma_journal_mode")?,
                ],
                DbConnection::Pg(_) => vec![read(
                    c,
                    "SELECT setting AS value FROM pg_settings WHERE name = 'synchronous_commit'",
                )?],
            })
        })
        .await;
    match w.app.db_url {
        bleepless::config::DatabaseUrl::Sqlite(_) => {
            assert_eq!(
                settings,
                ["2", "wal"],
                "synchronous=FULL (2), journal_mode=WAL"
            )
        }
        bleepless::config::DatabaseUrl::Postgres(_) => assert_eq!(settings, ["on"]),
    }
}

/// H-10: when the server's clock is stepped backwards (an NTP correction, a resumed
/// virtual machine), escalation goes on at the tick's period: the scheduler plans its next
/// run from the clock as it now reads instead of waiting for it to catch up.
#[tokio::test(flavor = "multi_thread")]
async fn escalation_goes_on_after_the_clock_steps_backwards() {
    use bleepless::clock::Clock;
    let w = Ward::new().await;
    let app = &w.app;
    app.advance(10);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.clock.set(app.clock.now() - chrono::Duration::hours(1));
    let id = app
        .raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    app.advance(125); // past the stat target, on the clock as it now reads
    app.eventually("the stat task escalates", || async {
        app.get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
            .await
            .1["escalation_level"]
            != 0
    })
    .await;
}

/// H-09: the log never carries a patient's NHS number, whatever the level: not when a task is
/// raised, read, searched for by NHS number, acknowledged, commented on and completed, nor when
/// a mistyped number is refused.
#[tokio::test(flavor = "multi_thread")]
async fn the_log_never_carries_an_nhs_number() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("bleepless.db").display());
    let bin = env!("CARGO_BIN_EXE_bleepless");
    let demo = std::process::Command::new(bin)
        .args(["--database", &db, "demo"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let demo = String::from_utf8_lossy(&demo.stdout).to_string();
    let token = |who: &str| {
        demo.lines()
            .find(|l| l.contains(who))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_else(|| panic!("no token for {who} in {demo}"))
            .to_string()
    };
    let (nurse, amy) = (token("grace.okafor@"), token("amy.patel@"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log_path = dir.path().join("service.log");
    let mut server = std::process::Command::new(bin)
        .args(["--database", &db, "--bind", &format!("127.0.0.1:{port}")])
        .env_remove("BLEEPLESS_CONFIG")
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let call = |method: reqwest::Method, path: String, token: &str, body: serde_json::Value| {
        client
            .request(method, format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let task = json!({ "nhs_number": NHS_1, "ward": "Ward 5 (Acute Medicine)", "bed": "3",
        "category": "review", "description": "Review", "priority": "stat",
        "assignee": "Medicine FY1 night" });
    let mut typo = task.clone();
    typo["nhs_number"] = json!("999 000 0019");
    let refused = call(reqwest::Method::POST, "/api/v1/tasks".into(), &nurse, typo);
    assert_eq!(refused.await.unwrap().status(), 422);
    let (s, t) = read(
        call(reqwest::Method::POST, "/api/v1/tasks".into(), &nurse, task)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let steps = [
        (
            reqwest::Method::GET,
            format!("/api/v1/tasks/{id}"),
            &amy,
            json!(null),
        ),
        (
            reqwest::Method::GET,
            format!("/fhir/Task/{id}"),
            &amy,
            json!(null),
        ),
        (
            reqwest::Method::GET,
            format!("/fhir/Task?patient={NHS_1}"),
            &nurse,
            json!(null),
        ),
        (
            reqwest::Method::GET,
            "/api/v1/tasks?limit=5".to_string(),
            &nurse,
            json!(null),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/tasks/{id}/acknowledge"),
            &amy,
            json!({}),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/tasks/{id}/comments"),
            &amy,
            json!({ "text": "On my way" }),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/tasks/{id}/complete"),
            &amy,
            json!({ "outcome": { "code": "done", "text": "Reviewed" } }),
        ),
    ];
    for (method, path, token, body) in steps {
        let body = if body.is_null() { json!({}) } else { body };
        let res = if method == reqwest::Method::GET {
            client
                .get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
        } else {
            call(method, path.clone(), token, body).await
        };
        let status = res.unwrap().status();
        assert!(status.is_success(), "{path}: {status}");
    }
    let _ = server.kill();
    let _ = server.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains(&id),
        "the log was written, about this task: {log}"
    );
    for number in [NHS_1, "999 000 0019", "9990000019", "999 000 0018"] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(number)).collect();
        assert!(
            lines.is_empty(),
            "the NHS number {number} is in the log: {lines:#?}"
        );
    }
}

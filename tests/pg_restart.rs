//! PostgreSQL restarted under load: the service answers 503 (never 500) while the database
//! is away and carries on by itself when it is back. It restarts the PostgreSQL server, so
//! it runs alone: `TEST_DATABASE_URL=postgres://... cargo test --test pg_restart -- --ignored`
//! (`.ci/run` does this after the main suites).
use diesel::{Connection, PgConnection, RunQueryDsl};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pg_restart() -> bool {
    let Some(ver) = std::fs::read_dir("/etc/postgresql").ok().and_then(|d| {
        d.filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .max()
    }) else {
        return false;
    };
    Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &ver, "main", "restart"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts the PostgreSQL server: run alone with --ignored"]
async fn the_service_rides_out_a_postgresql_restart() {
    let Ok(admin) = std::env::var("TEST_DATABASE_URL") else {
        panic!("set TEST_DATABASE_URL to a PostgreSQL server this test may restart");
    };
    let name = format!("bleepless_restart_{}", uuid::Uuid::new_v4().simple());
    let mut c = PgConnection::establish(&admin).unwrap();
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .unwrap();
    drop(c);
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let bin = env!("CARGO_BIN_EXE_bleepless");
    let demo = Command::new(bin)
        .args(["--database", &url, "demo"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let demo = String::from_utf8_lossy(&demo.stdout).to_string();
    let token = |who: &str| {
        demo.lines()
            .find(|l| l.contains(who))
            .and_then(|l| l.split_whitespace().last())
            .unwrap()
            .to_string()
    };
    let (nurse, amy) = (token("grace.okafor@"), token("amy.patel@"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(bin)
        .args(["--database", &url, "--bind", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Load: raise and acknowledge in a loop, noting every status.
    let load = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let mut seen: Vec<(Instant, u16)> = Vec::new();
            let end = Instant::now() + Duration::from_secs(14);
            while Instant::now() < end {
                let res = client
                    .post(format!("{base}/api/v1/tasks"))
                    .bearer_auth(&nurse)
                    .json(&json!({ "nhs_number": "9990000018", "ward": "Ward 5 (Acute Medicine)", "bed": "3",
                        "category": "review", "description": "Review", "priority": "urgent", "assignee": "Medicine FY1 night" }))
                    .send()
                    .await;
                let Ok(res) = res else {
                    seen.push((Instant::now(), 0));
                    continue;
                };
                let status = res.status().as_u16();
                let body: serde_json::Value = res.json().await.unwrap_or_default();
                seen.push((Instant::now(), status));
                if status == 201 {
                    let id = body["id"].as_str().unwrap().to_string();
                    let ack = client
                        .post(format!("{base}/api/v1/tasks/{id}/acknowledge"))
                        .bearer_auth(&amy)
                        .send()
                        .await;
                    if let Ok(a) = ack {
                        seen.push((Instant::now(), a.status().as_u16()));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarted_at = Instant::now();
    let restarted = tokio::task::spawn_blocking(pg_restart).await.unwrap();
    assert!(
        restarted,
        "could not restart PostgreSQL (pg_ctlcluster as root)"
    );
    let back_at = Instant::now();
    let seen = load.await.unwrap();
    let _ = server.kill();
    let _ = server.wait();
    if let Ok(mut c) = PgConnection::establish(&admin) {
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut c);
    }

    let before = seen
        .iter()
        .filter(|(t, s)| *t < restarted_at && (*s == 201 || *s == 200))
        .count();
    let after = seen
        .iter()
        .filter(|(t, s)| *t > back_at + Duration::from_secs(2) && (*s == 201 || *s == 200))
        .count();
    let errors: Vec<u16> = seen
        .iter()
        .map(|(_, s)| *s)
        .filter(|s| *s != 200 && *s != 201)
        .collect();
    eprintln!("ok before the restart: {before}; ok after: {after}; others: {errors:?}");
    assert!(before > 0, "the load ran before the restart");
    assert!(
        after > 0,
        "the service carried on after PostgreSQL came back, without being restarted"
    );
    assert!(
        errors.iter().all(|s| *s == 503),
        "while PostgreSQL was away the answers were 503s, not {errors:?}"
    );
}

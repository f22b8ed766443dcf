//! Watching the watcher: `/healthz` fails when the escalation tick stops or due work waits
//! too long, the tick calls an outbound heartbeat URL, and the escalation auditor repairs a
//! task that lost its escalation.
use crate::helpers::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A dead man's switch, as healthchecks.io is: counts the GETs it is sent.
async fn heartbeat_monitor() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ping/5f0c-secret", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            if String::from_utf8_lossy(&buf[..n]).starts_with("GET /ping/5f0c-secret ") {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK")
                .await;
        }
    });
    (url, hits)
}

async fn health(app: &TestApp) -> (u16, Value) {
    let res = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    read(res).await
}

#[tokio::test]
async fn healthz_fails_when_the_tick_stops_and_the_heartbeat_stops_with_it() {
    let (url, hits) = heartbeat_monitor().await;
    let app = TestApp::spawn_draining(|c| c.health.heartbeat_url = Some(url)).await;
    let (s, b) = health(&app).await;
    assert_eq!(s, 200, "a new instance has its chance: {b}");
    for _ in 0..3 {
        app.advance(5);
        app.drain().await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3, "one heartbeat per tick");
    let (s, b) = health(&app).await;
    assert_eq!((s, &b["status"]), (200, &json!("ok")), "{b}");
    assert!(b["last_tick"].is_string(), "{b}");

    // The tick stops: within three periods nothing is said, after them /healthz fails.
    app.advance(15);
    assert_eq!(health(&app).await.0, 200);
    app.advance(1);
    let (s, b) = health(&app).await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["status"], "failing");
    let why = b["reasons"][0].as_str().unwrap();
    assert!(
        why.contains("escalation tick has not run for 16 s"),
        "{why}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "and the heartbeat has stopped"
    );

    // It comes back.
    app.drain().await;
    assert_eq!(health(&app).await.0, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn healthz_fails_when_a_delivery_or_an_escalation_waits_too_long() {
    let w = Ward::draining().await;
    let app = &w.app;
    // A task whose push cannot go (nobody drains the outbox) and whose escalation falls due.
    let id = app
        .raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    app.advance(121);
    let (s, b) = health(app).await;
    assert_eq!(s, 503, "{b}");
    let reasons: Vec<&str> = b["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("a delivery has waited 121 s")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("escalation tick has not run")),
        "{reasons:?}"
    );
    app.drain().await;
    let (s, b) = health(app).await;
    assert_eq!(s, 200, "everything due is done: {b}");
    let (_, t) = app
        .get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
        .await;
    assert_eq!(t["escalation_level"], 1);
}

#[tokio::test]
async fn the_auditor_repairs_a_task_whose_escalation_was_removed() {
    let w = Ward::draining().await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    app.drain().await;
    // Something (a bug, a hand-edited row, a half-applied restore) removes its escalation.
    let lost = id.clone();
    app.write(move |c, _| {
        use bleepless::store::schema::tasks;
        use diesel::prelude::*;
        diesel::update(tasks::table.find(&lost))
            .set(tasks::next_escalation_at.eq(None::<chrono::NaiveDateTime>))
            .execute(c)?;
        Ok(())
    })
    .await;
    app.advance(121); // past the stat target
    let (escalated, _) = app.drain().await;
    assert_eq!(escalated, 1, "repaired, then escalated by the same tick");
    let (_, t) = app
        .get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
        .await;
    assert_eq!(t["escalation_level"], 1, "{t}");
    let kinds: Vec<&str> = t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["raised", "escalation_repaired", "escalated"]);
    let (s, b) = health(app).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["escalations_repaired"], 1, "counted");
    // Nothing more to repair.
    app.advance(5);
    app.drain().await;
    assert_eq!(health(app).await.1["escalations_repaired"], 1);
}

//! Capability secrets never reach the log, at any level. A test binary of its own, because
//! it installs the process's log subscriber (the one `main` installs), at `trace`.
//!
//! Run with `cargo test --test logs`.
#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
mod support;

use helpers::*;
use serde_json::{json, Value};
use std::time::Duration;
use support::captured_log::Captured;
use support::push_service::{Fault, PushService};

#[tokio::test(flavor = "multi_thread")]
async fn acknowledge_tokens_push_endpoints_and_vapid_signatures_never_reach_the_log() {
    let log = Captured::default();
    bleepless::telemetry::init(Some("trace,web_push=trace"), log.clone()).unwrap();
    let push = PushService::start().await;
    let w = Ward::new().await;
    let app = &w.app;
    let phone = push.new_subscription();
    let broken = push.new_subscription();
    push.fail_always(&broken.endpoint, Fault::Status(500));
    for (who, sub) in [(&w.amy, &phone), (&w.ben, &broken)] {
        let (s, b) = app
            .post(
                "/api/v1/push-subscriptions",
                &who.token,
                json!({ "endpoint": sub.endpoint, "keys": { "p256dh": sub.p256dh, "auth": sub.auth } }),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    app.raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    app.raised(&w.nurse.token, &w.ben.id, json!({})).await;
    let got = push.wait_for_received(1, Duration::from_secs(5)).await;
    let payload: Value = serde_json::from_slice(&got[0].payload).unwrap();
    let token = payload["ack_url"]
        .as_str()
        .unwrap()
        .rsplit_once("/ack/")
        .unwrap()
        .1
        .to_string();
    // A client may put an NHS number in a path of its own making.
    app.get(&format!("/fhir/Patient/{NHS_1}"), &w.amy.token)
        .await;
    app.get(&format!("/api/v1/tasks/{NHS_1}"), &w.amy.token)
        .await;
    let url = format!("{}/ack/{token}", app.base);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(app.client.post(&url).send().await.unwrap().status(), 200);
    app.eventually("the failing push is tried", || async {
        log.text().contains("delivery failed")
    })
    .await;

    let text = log.text();
    assert!(text.contains("/ack/{token}"), "the request lines are there");
    assert!(!text.contains(&token), "the acknowledge token was logged");
    for sub in [&phone, &broken] {
        let path = sub.endpoint.splitn(4, '/').nth(3).unwrap();
        assert!(!text.contains(path), "a push endpoint was logged: {path}");
        assert!(
            !text.contains(&sub.auth),
            "a subscription secret was logged"
        );
    }
    assert!(!text.contains("vapid t="), "a VAPID signature was logged");
    assert!(!text.contains(&w.amy.token), "an API token was logged");
    assert!(!text.contains(NHS_1), "an NHS number was logged");
}

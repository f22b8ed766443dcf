//! `/metrics`: the Prometheus text format, read back with a Prometheus text parser, says
//! what happened (an acknowledgement after 30 s, an escalation, the record deliveries), and
//! is off without its token.
use crate::helpers::*;
use crate::support::push_service::PushService;
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;

const TOKEN: &str = "metrics-0123456789abcdef";

async fn scrape_raw(app: &TestApp, token: Option<&str>) -> (u16, String, String) {
    let mut req = app.client.get(format!("{}/metrics", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, res.text().await.unwrap())
}

/// Scrapes with the token, checks the format, and parses it as Prometheus would.
async fn scrape(app: &TestApp) -> (String, Vec<Sample>) {
    let (status, ct, text) = scrape_raw(app, Some(TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    // Every sample belongs to a family with a TYPE (the parser is lenient about that).
    let typed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(
            typed.iter().any(|t| name == *t
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(t))),
            "no TYPE for {line}"
        );
    }
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = Scrape::parse(lines).expect("the exposition parses");
    // Each histogram series is one parsed sample; every other line is one sample.
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains("_bucket{"))
        .count()
        + text.lines().filter(|l| l.contains("le=\"+Inf\"")).count();
    assert_eq!(
        parsed.samples.len(),
        series,
        "every sample line was understood:\n{text}\n{:#?}",
        parsed
            .samples
            .iter()
            .map(|s| (&s.metric, &s.labels))
            .collect::<Vec<_>>()
    );
    (text, parsed.samples)
}

fn find<'a>(samples: &'a [Sample], metric: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

fn number(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    match find(samples, metric, labels).map(|s| &s.value) {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        other => panic!("{metric} {labels:?}: {other:?}"),
    }
}

/// (upper bound, cumulative count) of a histogram series.
fn buckets(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    match find(samples, metric, labels).map(|s| &s.value) {
        Some(Value::Histogram(b)) => b.iter().map(|c| (c.less_than, c.count)).collect(),
        other => panic!("{metric} {labels:?}: {other:?}"),
    }
}

fn count_in(b: &[(f64, f64)], le: f64) -> f64 {
    b.iter().find(|(l, _)| *l == le).unwrap().1
}

/// Outbox rows by (kind, status), read straight from the database.
async fn outbox_rows(app: &TestApp) -> Vec<(String, String, i64)> {
    use bleepless::store::schema::outbox;
    use diesel::prelude::*;
    app.write(move |c, _| {
        Ok(outbox::table
            .group_by((outbox::kind, outbox::status))
            .select((outbox::kind, outbox::status, diesel::dsl::count_star()))
            .load(c)?)
    })
    .await
}

/// Every kind and status the metrics give agrees with the table; returns the waiting rows.
async fn deliveries_agree(app: &TestApp, m: &[Sample]) -> f64 {
    let rows = outbox_rows(app).await;
    let mut waiting = 0.0;
    for kind in ["push", "email", "record"] {
        for status in [
            "pending",
            "sending",
            "sent",
            "failing",
            "failed",
            "cancelled",
        ] {
            let n = rows
                .iter()
                .find(|(k, s, _)| k == kind && s == status)
                .map_or(0, |r| r.2) as f64;
            let labels = [("kind", kind), ("status", status)];
            assert_eq!(number(m, "bleepless_deliveries", &labels), n, "{labels:?}");
            if ["pending", "sending", "failing"].contains(&status) {
                waiting += n;
            }
        }
    }
    waiting
}

#[tokio::test]
async fn metrics_say_what_happened() {
    let app = TestApp::spawn_draining(|c| c.metrics.token = Some(TOKEN.into())).await;
    let w = Ward::with(app).await;
    let app = &w.app;

    // One task acknowledged after 30 s, another left to escalate.
    let first = app
        .raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    app.advance(30);
    let (s, b) = app
        .act(&first, "acknowledge", &w.amy.token, json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    let second = app
        .raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    app.advance(10);

    let (text, m) = scrape(app).await;
    let ack = [("priority", "stat"), ("ward", WARD)];
    let b = buckets(&m, "bleepless_time_to_acknowledge_seconds", &ack);
    assert_eq!(count_in(&b, 15.0), 0.0, "{b:?}");
    assert_eq!(
        count_in(&b, 30.0),
        1.0,
        "30 s is in the le=30 bucket: {b:?}"
    );
    assert_eq!(count_in(&b, f64::INFINITY), 1.0, "{b:?}");
    assert_eq!(
        number(&m, "bleepless_time_to_acknowledge_seconds_sum", &ack),
        30.0
    );
    assert_eq!(
        number(&m, "bleepless_time_to_acknowledge_seconds_count", &ack),
        1.0
    );
    assert_eq!(number(&m, "bleepless_escalations_total", &[]), 0.0);
    let push = |status| [("kind", "push"), ("status", status)];
    assert_eq!(
        number(&m, "bleepless_deliveries", &push("cancelled")),
        1.0,
        "the acknowledged task's push is no longer needed"
    );
    assert_eq!(number(&m, "bleepless_deliveries", &push("pending")), 1.0);
    assert_eq!(deliveries_agree(app, &m).await, 1.0);
    assert_eq!(number(&m, "bleepless_outbox_depth", &[]), 1.0);
    assert_eq!(
        number(&m, "bleepless_outbox_oldest_due_age_seconds", &[]),
        10.0,
        "the second task's push has waited since it was raised"
    );
    assert!(
        find(&m, "bleepless_tick_last_run_age_seconds", &[]).is_none(),
        "no tick has run yet:\n{text}"
    );
    assert!(find(&m, "bleepless_tick_duration_seconds", &[]).is_none());

    // Past the stat target, the tick escalates the second task and the outbox empties.
    app.advance(121);
    let (escalated, _) = app.drain().await;
    assert_eq!(escalated, 1);
    app.advance(20);
    let (text, m) = scrape(app).await;
    assert_eq!(number(&m, "bleepless_escalations_total", &[]), 1.0);
    assert_eq!(number(&m, "bleepless_escalations_repaired_total", &[]), 0.0);
    assert_eq!(
        deliveries_agree(app, &m).await,
        0.0,
        "the drain sent or ended them all"
    );
    assert_eq!(number(&m, "bleepless_outbox_depth", &[]), 0.0);
    assert_eq!(
        number(&m, "bleepless_outbox_oldest_due_age_seconds", &[]),
        0.0
    );
    assert_eq!(number(&m, "bleepless_tick_period_seconds", &[]), 5.0);
    assert_eq!(number(&m, "bleepless_tick_last_run_age_seconds", &[]), 20.0);
    assert_eq!(number(&m, "bleepless_tick_lag_seconds", &[]), 15.0);
    let took = number(&m, "bleepless_tick_duration_seconds", &[]);
    assert!(took > 0.0 && took < 10.0, "{took}");

    // Request durations by route pattern, never by path.
    let http = "bleepless_http_request_duration_seconds";
    let raised = [
        ("route", "/api/v1/tasks"),
        ("method", "POST"),
        ("status", "2xx"),
    ];
    assert_eq!(number(&m, &format!("{http}_count"), &raised), 2.0, "{text}");
    let acted = [
        ("route", "/api/v1/tasks/:id/:action"),
        ("method", "POST"),
        ("status", "2xx"),
    ];
    let b = buckets(&m, http, &acted);
    assert_eq!(count_in(&b, f64::INFINITY), 1.0);
    let scraped = [("route", "/metrics"), ("method", "GET"), ("status", "2xx")];
    assert_eq!(number(&m, &format!("{http}_count"), &scraped), 1.0);
    for secret in [NHS_1, &first, &second, TOKEN, &w.nurse.token, &w.amy.token] {
        assert!(
            !text.contains(secret),
            "{secret} is in the metrics:\n{text}"
        );
    }
}

#[tokio::test]
async fn metrics_are_off_without_a_token_and_refuse_a_wrong_one() {
    let app = TestApp::spawn().await;
    let (s, ct, body) = scrape_raw(&app, Some(TOKEN)).await;
    assert_eq!(s, 404, "{body}");
    assert!(ct.starts_with("application/json"), "{ct}");
    let b: serde_json::Value = serde_json::from_str(&body).unwrap();
    let why = b["error"]["message"].as_str().unwrap();
    assert!(
        why.contains("[metrics]") && why.contains("BLEEPLESS_METRICS_TOKEN"),
        "says how to turn it on: {why}"
    );

    let app = TestApp::spawn_with(|c| c.metrics.token = Some(TOKEN.into())).await;
    let staff = app.staff("Dr Amy Patel", "admin").await;
    for token in [
        None,
        Some("metrics-0123456789abcdeX"),
        Some(staff.token.as_str()),
    ] {
        let (s, _, body) = scrape_raw(&app, token).await;
        assert_eq!(s, 401, "{token:?}: {body}");
        assert!(!body.contains(TOKEN), "{body}");
    }
    let (s, _, _) = scrape_raw(&app, Some(TOKEN)).await;
    assert_eq!(s, 200);
}

/// The tick before a task falls due foresees its escalation's push, so that the push's key
/// agreement is made ahead, while the machine is idle; the push made with it decrypts at
/// the phone, and once it is sent nothing more is foreseen.
#[tokio::test]
async fn the_tick_before_an_escalation_foresees_its_push() {
    let push = PushService::start().await;
    let app = TestApp::spawn_draining(|c| c.metrics.token = Some(TOKEN.into())).await;
    let w = Ward::with(app).await;
    let app = &w.app;
    let chloe = app.staff("Dr Chloe Evans", "clinician").await;
    let reg = app.role("Medicine registrar night", &[&chloe]).await;
    let admin = app.staff("Sam Admin", "admin").await;
    app.escalates_to(&w.fy1, &reg, &admin).await;
    let phone = push.new_subscription();
    crate::escalation::register(app, &chloe, &phone).await;
    let foreseen = |m: Vec<Sample>| number(&m, "bleepless_push_foreseen", &[]);

    let id = app
        .raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    app.drain().await;
    assert_eq!(
        foreseen(scrape(app).await.1),
        0.0,
        "not due by the next tick"
    );
    app.advance(118); // the next tick, at 120 s, is when the stat target runs out
    app.drain().await;
    assert_eq!(
        foreseen(scrape(app).await.1),
        1.0,
        "the registrar's one phone"
    );
    assert!(push.received().is_empty(), "foreseen, not sent");
    app.advance(2);
    assert_eq!(app.drain().await.0, 1, "the task escalated");
    let got = push.received();
    assert_eq!(got.len(), 1, "one push, to the registrar's phone");
    let p = crate::escalation::payload(&got[0]);
    assert_eq!(
        (p["task_id"].as_str(), p["level"].as_i64()),
        (Some(id.as_str()), Some(1))
    );
    assert_eq!(foreseen(scrape(app).await.1), 0.0, "nothing more falls due");
}

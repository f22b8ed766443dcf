//! Delivery assurance: phones report the pushes they show, and a push nobody saw is followed
//! by a text message, through a local GOV.UK Notify and a local Twilio that check each
//! request as the real APIs do. The clock moves; nothing sleeps through a wait.
use crate::escalation::{notifications, payload, register};
use crate::helpers::*;
use crate::support::push_service::PushService;
use crate::support::text_provider::{self as provider, TextProvider};
use bleepless::config::Config;
use bleepless::domain::delivery::TextAfter;
use bleepless::outbox::text::{NotifyKey, Provider, TextConfig, TwilioSender};
use serde_json::{json, Value};
use std::time::Duration;

const AMY_MOBILE: &str = "+447700900123";

fn after() -> TextAfter {
    TextAfter {
        stat: Some(60),
        asap: Some(180),
        ..TextAfter::default()
    }
}

fn with_texts(p: &TextProvider, provider: Provider) -> impl FnOnce(&mut Config) {
    let base_url = p.base_url();
    move |c: &mut Config| {
        c.text = Some(TextConfig {
            provider,
            base_url,
            timeout: Duration::from_secs(5),
            after: after(),
        });
        c.policy.text_after = after();
        c.dispatch.max_attempts = 3;
    }
}

fn notify() -> Provider {
    Provider::Notify {
        key: NotifyKey::parse(&provider::notify_api_key()).unwrap(),
        template_id: provider::TEMPLATE_ID.into(),
    }
}

fn twilio() -> Provider {
    Provider::Twilio {
        account_sid: provider::ACCOUNT_SID.into(),
        auth_token: provider::AUTH_TOKEN.into(),
        sender: TwilioSender::From(provider::FROM.into()),
    }
}

async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    let res = app
        .client
        .put(format!("{}{path}", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    read(res).await
}

async fn set_mobile(app: &TestApp, who: &Person, number: &str) {
    let (s, body) = put(
        app,
        &format!("/api/v1/staff/{}/mobile", who.id),
        &who.token,
        json!({ "mobile": number }),
    )
    .await;
    assert_eq!(s, 200, "{body}");
}

async fn post_receipt(app: &TestApp, receipt: &Value) -> (u16, Value) {
    let res = app
        .client
        .post(format!("{}/api/v1/receipts", app.base))
        .json(&json!({ "receipt": receipt }))
        .send()
        .await
        .unwrap();
    read(res).await
}

fn texts_of(rows: &[Value]) -> Vec<&Value> {
    rows.iter().filter(|r| r["channel"] == "text").collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unseen_stat_push_is_followed_by_one_text_whose_link_acknowledges() {
    let (push, notify_api) = (PushService::start().await, TextProvider::start().await);
    let w = Ward::with(TestApp::spawn_draining(with_texts(&notify_api, notify())).await).await;
    let app = &w.app;
    set_mobile(app, &w.amy, "07700 900123").await;
    register(app, &w.amy, &push.new_subscription()).await;
    let id = app
        .raised(
            &w.nurse.token,
            &w.fy1,
            json!({ "priority": "stat", "bed": "7" }),
        )
        .await;
    app.drain().await;
    assert_eq!(push.received().len(), 1, "the push went out");
    app.advance(59);
    app.drain().await;
    assert!(
        notify_api.sent().is_empty(),
        "not before the configured 60 s"
    );
    app.advance(1);
    app.drain().await;
    let sent = notify_api.sent();
    assert_eq!(sent.len(), 1, "{:?}", notify_api.refused());
    let text = &sent[0];
    assert_eq!(text.to, AMY_MOBILE);
    assert!(
        text.body
            .starts_with("Bleepless STAT: cannula, Ward 5 bed 7."),
        "{}",
        text.body
    );
    assert!(!text.body.contains(NHS_1), "no NHS number in a text");
    assert!(
        text.body.len() <= 160,
        "one SMS: {} characters",
        text.body.len()
    );
    let rows = notifications(app, &id, &w.nurse.token).await;
    let texts = texts_of(&rows);
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0]["status"], "sent");
    assert_eq!(
        text.reference.as_ref(),
        texts[0]["id"].as_str().map(String::from).as_ref()
    );

    // It escalates and Amy is bleeped again: still one text, however long it waits.
    app.advance(120);
    app.drain().await;
    app.advance(300);
    app.drain().await;
    assert_eq!(
        notify_api.sent().len(),
        1,
        "exactly one text per person per task"
    );

    // The short link leads to the acknowledge page, which acknowledges as Amy.
    let link = text.body.split_whitespace().last().unwrap().to_string();
    let path = link.strip_prefix("http://127.0.0.1").unwrap();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirects
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let ack = res.headers()["location"].to_str().unwrap().to_string();
    assert!(ack.starts_with("/ack/"), "{ack}");
    let res = app
        .client
        .post(format!("{}{ack}", app.base))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let (s, body) = read(res).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["acknowledged_by"]["name"], "Dr Amy Patel");
    let tampered = format!("{}/a/{}x", app.base, &path[3..]);
    let res = no_redirects.get(tampered).send().await.unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shown_push_sends_no_text_and_the_task_says_who_saw_it() {
    let (push, notify_api) = (PushService::start().await, TextProvider::start().await);
    let w = Ward::with(TestApp::spawn_draining(with_texts(&notify_api, notify())).await).await;
    let app = &w.app;
    set_mobile(app, &w.amy, "+44 7700 900123").await;
    let phone = push.new_subscription();
    register(app, &w.amy, &phone).await;
    let id = app
        .raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    app.drain().await;
    let shown = payload(&push.received()[0]);
    app.advance(5);
    let (s, body) = post_receipt(app, &shown["receipt"]).await;
    assert_eq!((s, &body["recorded"]), (201, &json!(true)), "{body}");
    let (s, body) = post_receipt(app, &shown["receipt"]).await;
    assert_eq!(
        (s, &body["recorded"]),
        (200, &json!(false)),
        "a repeat changes nothing"
    );

    app.advance(120);
    app.drain().await;
    assert!(notify_api.sent().is_empty(), "seen: no text");
    let rows = notifications(app, &id, &w.nurse.token).await;
    let first = rows
        .iter()
        .find(|r| r["channel"] == "push" && r["level"] == 0)
        .unwrap();
    assert_eq!(
        first["shown_on"][0]["at"], "2026-11-26T02:00:05Z",
        "{rows:?}"
    );
    let texts = texts_of(&rows);
    assert_eq!(texts[0]["status"], "cancelled");
    assert!(
        texts[0]["last_error"].as_str().unwrap().contains("seen"),
        "{}",
        texts[0]
    );

    let (_, task) = app
        .get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
        .await;
    assert_eq!(task["seen_by"][0]["name"], "Dr Amy Patel");
    assert_eq!(task["seen_by"][0]["at"], "2026-11-26T02:00:05Z");
    let seen: Vec<&Value> = task["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "seen")
        .collect();
    assert_eq!(
        seen.len(),
        1,
        "seen once in the story: {}",
        task["timeline"]
    );
    assert_eq!(seen[0]["actor"]["name"], "Dr Amy Patel");

    // The coordinator's page says it too, and so does the dashboard once it is late.
    let (session, _) = crate::pages::sign_in(app, &w.nurse).await;
    let page = |path: &str| {
        crate::pages::client()
            .get(format!("{}{path}", app.base))
            .header("cookie", &session)
            .send()
    };
    let raised = page("/tasks/raised/fragment")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raised.contains("seen by Dr Amy Patel 02:00"), "{raised}");
    let board = page("/dashboard/fragment")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(board.contains("seen by Dr Amy Patel 02:00"), "{board}");

    // A receipt is its own credential: one that was not made here is refused.
    let (s, body) = post_receipt(
        app,
        &json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("receipt"),
        "{body}"
    );
    let res = app
        .client
        .post(format!("{}/api/v1/receipts", app.base))
        .json(&json!({ "token": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_push_fails_the_text_goes_at_once() {
    let notify_api = TextProvider::start().await;
    let w = Ward::with(TestApp::spawn_draining(with_texts(&notify_api, notify())).await).await;
    let app = &w.app;
    set_mobile(app, &w.amy, "07700900123").await;
    // Amy has no phone registered for push.
    let id = app
        .raised(&w.nurse.token, &w.fy1, json!({ "priority": "asap" }))
        .await;
    app.drain().await;
    let sent = notify_api.sent();
    assert_eq!(
        sent.len(),
        1,
        "no waiting for 180 s: {:?}",
        notify_api.refused()
    );
    assert!(
        sent[0].body.starts_with("Bleepless ASAP"),
        "{}",
        sent[0].body
    );
    let rows = notifications(app, &id, &w.nurse.token).await;
    assert!(rows
        .iter()
        .any(|r| r["channel"] == "push" && r["status"] == "failed"));
    // Ben has no mobile: his text fails with the reason, shown like any failed delivery.
    let (s, _) = app
        .post(
            &format!("/api/v1/roles/{}/hand-over", w.fy1),
            &w.amy.token,
            json!({ "to": w.ben.id, "share": true }),
        )
        .await;
    assert_eq!(s, 200);
    let other = app
        .raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    app.drain().await;
    let rows = notifications(app, &other, &w.nurse.token).await;
    let failed: Vec<&Value> = texts_of(&rows)
        .into_iter()
        .filter(|r| r["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{rows:?}");
    assert!(failed[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("no mobile number"));
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_429_waits_for_retry_after_and_5xx_is_retried_as_configured() {
    let twilio_api = TextProvider::start().await;
    let w = Ward::with(TestApp::spawn_draining(with_texts(&twilio_api, twilio())).await).await;
    let app = &w.app;
    set_mobile(app, &w.amy, "07700 900123").await;
    twilio_api.fail_next(1, 429, Some(30));
    app.raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    app.drain().await;
    assert_eq!((twilio_api.requests(), twilio_api.sent().len()), (1, 0));
    app.advance(29);
    app.drain().await;
    assert_eq!(twilio_api.requests(), 1, "not before Retry-After");
    app.advance(1);
    app.drain().await;
    let sent = twilio_api.sent();
    assert_eq!(sent.len(), 1, "{:?}", twilio_api.refused());
    assert_eq!(sent[0].to, AMY_MOBILE);

    // Three 503s: the configured three attempts, then failed with the provider's word.
    twilio_api.fail_next(3, 503, None);
    let id = app
        .raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    for _ in 0..4 {
        app.drain().await;
        app.advance(30);
    }
    assert_eq!(twilio_api.sent().len(), 1);
    let rows = notifications(app, &id, &w.nurse.token).await;
    let texts = texts_of(&rows);
    assert_eq!(texts[0]["status"], "failed", "{texts:?}");
    assert!(
        texts[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("twilio said 503"),
        "{}",
        texts[0]
    );
    assert_eq!(twilio_api.requests(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_phone_that_takes_pushes_but_never_shows_them_is_flagged() {
    let push = PushService::start().await;
    let w = Ward::draining().await;
    let app = &w.app;
    register(app, &w.amy, &push.new_subscription()).await;
    app.raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    app.drain().await;
    let silent = |body: &Value| body["devices"][0]["silent"].clone();
    let (_, mine) = app.get("/api/v1/push-subscriptions", &w.amy.token).await;
    assert_eq!(silent(&mine), json!(false), "it has two minutes to show it");
    app.advance(150);
    let (_, mine) = app.get("/api/v1/push-subscriptions", &w.amy.token).await;
    assert_eq!(silent(&mine), json!(true), "{mine}");
    let (_, board) = app.get("/api/v1/dashboard", &w.manager.token).await;
    assert_eq!(
        board["silent_devices"][0]["name"], "Dr Amy Patel",
        "{board}"
    );
    // The next push is shown: the phone works again.
    app.raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    app.drain().await;
    let (s, _) = post_receipt(app, &payload(&push.received()[1])["receipt"]).await;
    assert_eq!(s, 201);
    app.advance(150);
    let (_, mine) = app.get("/api/v1/push-subscriptions", &w.amy.token).await;
    assert_eq!(silent(&mine), json!(false), "{mine}");
    let (_, board) = app.get("/api/v1/dashboard", &w.manager.token).await;
    assert_eq!(board["silent_devices"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mobile_number_must_be_one_a_text_can_reach_and_is_set_by_its_owner_or_an_admin() {
    let w = Ward::new().await;
    let app = &w.app;
    let path = format!("/api/v1/staff/{}/mobile", w.amy.id);
    let (s, body) = put(
        app,
        &path,
        &w.amy.token,
        json!({ "mobile": "020 7946 0000" }),
    )
    .await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a UK mobile"),
        "{body}"
    );
    let (s, body) = put(
        app,
        &path,
        &w.nurse.token,
        json!({ "mobile": "07700 900123" }),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = put(
        app,
        &path,
        &w.amy.token,
        json!({ "mobile": "07700 900123" }),
    )
    .await;
    assert_eq!((s, body["mobile"].as_str()), (200, Some(AMY_MOBILE)));
    let (s, body) = put(app, &path, &w.amy.token, json!({ "mobile": null })).await;
    assert_eq!((s, &body["mobile"]), (200, &Value::Null));
    let (s, _) = put(app, &path, &w.amy.token, json!({ "phone": "07700 900123" })).await;
    assert_eq!(s, 400, "an unknown field is refused");
}

#[test]
fn the_text_section_is_checked_and_printed_with_its_secrets_hidden() {
    use crate::cli::bleepless_with_env;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("notify-key");
    std::fs::write(&key, provider::notify_api_key()).unwrap();
    let bad_key = dir.path().join("bad-key");
    std::fs::write(&bad_key, "not-a-notify-key").unwrap();
    let notify = |extra: &str| {
        format!("[text]\nprovider = \"notify\"\nafter_seconds = {{ stat = 60 }}\n{extra}")
    };
    let good = notify(&format!(
        "api_key_file = \"{}\"\ntemplate_id = \"{}\"\n",
        key.display(),
        provider::TEMPLATE_ID
    ));
    let cfg = dir.path().join("good.toml");
    std::fs::write(&cfg, &good).unwrap();
    let (ok, out, err) = bleepless_with_env(
        &["--config", &cfg.display().to_string(), "check-config"],
        &[],
    );
    assert!(ok, "{out}{err}");
    assert!(out.lines().any(|l| l == "provider = \"notify\""), "{out}");
    assert!(
        out.contains(provider::SERVICE_ID),
        "the service id is not a secret: {out}"
    );
    assert!(
        !out.contains(provider::SECRET),
        "the key's secret is shown: {out}"
    );

    let cases = [
        ("[text]\nprovider = \"sms\"\n".to_string(), "text.provider"),
        (notify("template_id = \"x\"\n"), "text.api_key_file"),
        (
            notify(&format!("api_key_file = \"{}\"\n", bad_key.display())),
            "service id",
        ),
        (
            notify(&format!("api_key_file = \"{}\"\n", key.display())),
            "text.template_id",
        ),
        (
            "[text]\nprovider = \"twilio\"\naccount_sid = \"AC1\"\nauth_token_file = \"/dev/null\"\nafter_seconds = { stat = 60 }\n".into(),
            "text.auth_token_file",
        ),
        (
            format!("[text]\nprovider = \"twilio\"\naccount_sid = \"AC1\"\nauth_token_file = \"{}\"\nfrom = \"+447700900000\"\nmessaging_service_sid = \"MG1\"\nafter_seconds = {{ stat = 60 }}\n", key.display()),
            "not both",
        ),
        (
            format!("[text]\nprovider = \"notify\"\napi_key_file = \"{}\"\ntemplate_id = \"{}\"\n", key.display(), provider::TEMPLATE_ID),
            "text.after_seconds",
        ),
    ];
    for (i, (text, says)) in cases.into_iter().enumerate() {
        let cfg = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&cfg, &text).unwrap();
        let (ok, out, err) = bleepless_with_env(
            &["--config", &cfg.display().to_string(), "check-config"],
            &[],
        );
        assert!(!ok, "{text:?} should fail: {out}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line for {text:?}: {err}");
        assert!(lines[0].contains(says), "{text:?}: {err}");
        assert!(!err.contains(provider::SECRET), "a secret shown: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clinician_sets_their_mobile_on_my_bleeps() {
    use crate::pages::{client, sign_in};
    let w = Ward::new().await;
    let app = &w.app;
    let (session, csrf) = sign_in(app, &w.amy).await;
    let post = |mobile: &'static str| {
        client()
            .post(format!("{}/me/mobile", app.base))
            .header("cookie", &session)
            .form(&[("csrf", csrf.as_str()), ("mobile", mobile)])
            .send()
    };
    let res = post("020 7946 0000").await.unwrap();
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("not a UK mobile"));
    let res = post("07700 900123").await.unwrap();
    assert_eq!(res.status(), 303);
    let page = client()
        .get(format!("{}/me", app.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Text messages: +447700900123"), "{page}");
    assert_eq!(post("").await.unwrap().status(), 303);
    let res = client()
        .post(format!("{}/me/mobile", app.base))
        .header("cookie", &session)
        .form(&[("csrf", "forged"), ("mobile", "07700 900123")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "no change without the form's token");
}

/// The texts that failed pushes bring forward go out in one statement for many pushes: each
/// brings forward the text of its own person about its own task, never another's text about
/// the same task or the same person's about another task.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_push_brings_forward_only_its_own_persons_text_about_its_own_task() {
    use bleepless::store::receipts;
    use bleepless::store::schema::outbox;
    use diesel::prelude::*;
    let w = Ward::draining().await;
    let app = &w.app;
    let a = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let b = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let (amy, ben) = (w.amy.id.clone(), w.ben.id.clone());
    // A text waits an hour for each of: Amy about A, Ben about A, Amy about B.
    let waiting = [(&a, &amy), (&a, &ben), (&b, &amy)];
    let rows: Vec<(String, String, String)> = waiting
        .iter()
        .map(|(t, p)| (format!("text-{t}-{p}"), t.to_string(), p.to_string()))
        .collect();
    let written = rows.clone();
    app.write(move |c, now| {
        let later = (now + chrono::Duration::hours(1)).naive_utc();
        for (id, task, person) in &written {
            diesel::insert_into(outbox::table)
                .values((
                    outbox::id.eq(id),
                    outbox::dedupe_key.eq(id),
                    outbox::task_id.eq(task),
                    outbox::level.eq(0),
                    outbox::recipient_id.eq(person),
                    outbox::kind.eq("text"),
                    outbox::destination.eq(""),
                    outbox::task_version.eq(1i64),
                    outbox::status.eq("pending"),
                    outbox::attempts.eq(0),
                    outbox::due_at.eq(later),
                    outbox::created_at.eq(now.naive_utc()),
                ))
                .execute(c)?;
        }
        Ok(())
    })
    .await;
    // Amy's push about A failed, and Ben's about B (he has no text about B).
    let (fa, fb, fam, fben) = (a.clone(), b.clone(), amy.clone(), ben.clone());
    let now = app
        .write(move |c, now| {
            let failed = [(fa.as_str(), fam.as_str()), (fb.as_str(), fben.as_str())];
            Ok((receipts::texts_now(c, &failed, now)?, now))
        })
        .await;
    let (due, at) = now;
    assert_eq!(due, [(a.clone(), rows[0].0.clone())]);
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut when: Vec<(String, bool)> = app
        .write(move |c, _| {
            Ok(outbox::table
                .filter(outbox::id.eq_any(&ids))
                .select((outbox::id, outbox::due_at))
                .load::<(String, chrono::NaiveDateTime)>(c)?
                .into_iter()
                .map(|(id, due_at)| (id, due_at <= at.naive_utc()))
                .collect())
        })
        .await;
    when.sort();
    let mut expected: Vec<(String, bool)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.0.clone(), i == 0))
        .collect();
    expected.sort();
    assert_eq!(when, expected, "only Amy's text about A goes now");
}

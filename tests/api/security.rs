//! Security hardening (OWASP ASVS level 2), each class of fault tried through HTTP with
//! several variants of the attack.
use crate::cli::{bleepless, db_arg};
use crate::helpers::*;
use crate::pages::{client, cookie, hidden, sign_in, PASSWORD};
use bleepless::store::sessions;
use serde_json::{json, Value};

const P256DH: &str =
    "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
const AUTH: &str = "tBHItJI5svbpez7KI4CCXg";

fn device(endpoint: &str) -> Value {
    json!({ "endpoint": endpoint, "keys": { "p256dh": P256DH, "auth": AUTH } })
}

async fn subscribe(app: &TestApp, who: &Person, endpoint: &str) -> (u16, Value) {
    app.post("/api/v1/push-subscriptions", &who.token, device(endpoint))
        .await
}

async fn devices(app: &TestApp, who: &Person) -> Vec<Value> {
    let (s, body) = app.get("/api/v1/push-subscriptions", &who.token).await;
    assert_eq!(s, 200, "{body}");
    body["devices"].as_array().unwrap().clone()
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn push_endpoints_off_the_browsers_push_services_are_refused() {
    let w = Ward::new().await;
    let app = &w.app;
    for endpoint in [
        "http://fcm.googleapis.com/fcm/send/abc",
        "https://127.0.0.1/push",
        "https://[::1]/push",
        "https://[::ffff:127.0.0.1]/push",
        "https://169.254.169.254/latest/meta-data/",
        "https://0x7f000001/push",
        "https://2130706433/push",
        "https://10.0.0.7/push",
        "https://localhost/push",
        "https://pharmacy.internal.example-trust.nhs.uk/push",
        "https://fcm.googleapis.com.evil.example/push",
        "https://evil.example/fcm.googleapis.com/push",
        "https://fcm.googleapis.com@127.0.0.1/push",
        "https://user:pw@fcm.googleapis.com/fcm/send/abc",
        "https://fcm.googleapis.com:8443/fcm/send/abc",
        "https://push.apple.com/abc",
        // The tests' explicit allowance is for http://127.0.0.1 only, not look-alikes.
        "http://127.0.0.1.nip.io/push",
        "http://localhost:9/push",
        "http://127.0.0.2:9/push",
        "https://127.0.0.1/push",
        "ftp://fcm.googleapis.com/x",
        "not a url",
        "",
    ] {
        let (s, b) = subscribe(app, &w.amy, endpoint).await;
        assert_eq!(s, 422, "{endpoint:?} was accepted: {b}");
        assert!(message(&b).contains("endpoint"), "{endpoint:?}: {b}");
    }
    assert!(devices(app, &w.amy).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_push_host_that_resolves_to_an_inside_address_is_refused() {
    // An operator lists a name that (by mistake or by DNS trickery) points inside.
    let app = TestApp::spawn_with(|c| c.push.allowed_hosts = vec!["localhost".into()]).await;
    let w = Ward::with(app).await;
    let (s, b) = subscribe(&w.app, &w.amy, "https://localhost/push/abc").await;
    assert_eq!(s, 422, "{b}");
    assert!(message(&b).contains("not public"), "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_device_list_says_a_device_fails_but_not_what_answered() {
    let w = Ward::new().await;
    let app = &w.app;
    // Nothing listens on port 9: each send fails to connect.
    let (s, b) = subscribe(app, &w.amy, "http://127.0.0.1:9/push/a").await;
    assert_eq!(s, 201, "{b}");
    app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    app.eventually("the device is known to fail", || async {
        devices(app, &w.amy).await[0]["failing"] == true
    })
    .await;
    let d = devices(app, &w.amy).await;
    // Sorted: the tests' FHIR judge (fhirbolt) turns on serde_json's preserve_order.
    let mut keys: Vec<&String> = d[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "endpoint_host",
            "failing",
            "id",
            "last_shown_at",
            "last_success_at",
            "registered_at",
            "silent",
            "user_agent"
        ]
    );
    let text = d[0].to_string();
    for leak in ["connect", "refused", "error", "/push/a"] {
        assert!(!text.contains(leak), "{leak}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn push_devices_are_capped_and_never_taken_from_another_person() {
    let w = Ward::new().await;
    let app = &w.app;
    for i in 0..10 {
        let (s, b) = subscribe(app, &w.amy, &format!("http://127.0.0.1:9/push/{i}")).await;
        assert_eq!(s, 201, "{i}: {b}");
    }
    let (s, b) = subscribe(app, &w.amy, "http://127.0.0.1:9/push/10").await;
    assert_eq!(s, 409, "{b}");
    assert!(message(&b).contains("the most allowed"), "{b}");
    // Renewing one of hers is not a new device.
    let (s, b) = subscribe(app, &w.amy, "http://127.0.0.1:9/push/3").await;
    assert_eq!(s, 201, "{b}");
    // Ben cannot move Amy's phone to himself.
    let (s, b) = subscribe(app, &w.ben, "http://127.0.0.1:9/push/3").await;
    assert_eq!(s, 409, "{b}");
    assert!(message(&b).contains("another member of staff"), "{b}");
    assert_eq!(devices(app, &w.amy).await.len(), 10);
    assert!(devices(app, &w.ben).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bleeps_go_only_to_active_clinicians_by_api_page_and_command_line() {
    let w = Ward::new().await;
    let app = &w.app;
    let admin = app.staff("Sam Admin", "admin").await;
    let leaver = app.staff("Dr Lee Vernon", "clinician").await;
    let (s, b) = app
        .post(
            &format!("/api/v1/staff/{}/deactivate", leaver.id),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let path = format!("/api/v1/roles/{}/hand-over", w.fy1);
    for (to, why) in [
        (&w.nurse, "is not a clinician"),
        (&w.manager, "is not a clinician"),
        (&admin, "is not a clinician"),
        (&leaver, "is no longer active"),
    ] {
        for by in [&admin, &w.amy] {
            let (s, b) = app.post(&path, &by.token, json!({ "to": to.id })).await;
            assert_eq!(s, 422, "{} to {}: {b}", by.name, to.name);
            assert!(message(&b).contains(why), "{b}");
            assert!(
                message(&b).contains("only an active clinician may hold a bleep"),
                "{b}"
            );
        }
    }
    // The admin page.
    let (session, csrf) = sign_in(app, &admin).await;
    let res = client()
        .post(format!("{}/admin/hand-over", app.base))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("role", &w.fy1),
            ("to", &w.manager.id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("is not a clinician"));
    // The command line.
    let db = db_arg(&app.db_url);
    let (fy1, nurse) = (w.fy1.clone(), w.nurse.id.clone());
    let (ok, _, err) = tokio::task::spawn_blocking(move || {
        bleepless(&["--database", &db, "role", "hand-over", &fy1, "--to", &nurse])
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(err.contains("is not a clinician"), "{err}");
    // Still Amy's alone; Ben may have it.
    let (_, roles) = app.get("/api/v1/roles", &w.amy.token).await;
    assert_eq!(roles["roles"][0]["held_by"][0]["id"], w.amy.id.as_str());
    assert_eq!(roles["roles"][0]["held_by"].as_array().unwrap().len(), 1);
    let (s, b) = app
        .post(&path, &w.amy.token, json!({ "to": w.ben.id }))
        .await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn someone_who_may_not_hold_a_bleep_cannot_do_clinical_work_with_one() {
    let w = Ward::new().await;
    let app = &w.app;
    // A holding from before the rule (or written behind the service's back).
    let (fy1, manager) = (w.fy1.clone(), w.manager.id.clone());
    app.write(move |c, now| {
        use bleepless::store::schema::role_holdings;
        use diesel::prelude::*;
        diesel::insert_into(role_holdings::table)
            .values((
                role_holdings::id.eq(uuid::Uuid::new_v4().to_string()),
                role_holdings::role_id.eq(&fy1),
                role_holdings::staff_id.eq(&manager),
                role_holdings::held_from.eq(now.naive_utc()),
            ))
            .execute(c)?;
        Ok(())
    })
    .await;
    let id = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let (s, b) = app
        .act(&id, "acknowledge", &w.manager.token, json!({}))
        .await;
    assert_eq!(s, 403, "{b}");
    assert!(message(&b).contains("is not a clinician"), "{b}");
    assert_eq!(
        app.act(&id, "acknowledge", &w.amy.token, json!({})).await.0,
        200
    );
    for (action, body) in [
        ("start", json!({})),
        (
            "complete",
            json!({ "outcome": { "code": "done", "text": "Cannula resited" } }),
        ),
    ] {
        let (s, b) = app.act(&id, action, &w.manager.token, body).await;
        assert_eq!(s, 403, "{action}: {b}");
    }
}

async fn login_form(app: &TestApp) -> (String, String) {
    let res = client()
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let c = cookie(&res, "bleepless_login").unwrap();
    (c, hidden(&res.text().await.unwrap(), "csrf"))
}

/// Posts the sign-in form; returns the answer.
async fn try_sign_in(app: &TestApp, email: &str, password: &str, next: &str) -> reqwest::Response {
    let (login_cookie, csrf) = login_form(app).await;
    client()
        .post(format!("{}/login", app.base))
        .header("cookie", &login_cookie)
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf", &csrf),
            ("next", next),
        ])
        .send()
        .await
        .unwrap()
}

fn email_of(p: &Person) -> String {
    format!(
        "{}@example.nhs.uk",
        p.name.to_lowercase().replace([' ', '.'], "")
    )
}

async fn set_password(app: &TestApp, who: &Person) {
    let id = who.id.clone();
    app.write(move |c, _| sessions::set_password(c, &id, PASSWORD))
        .await;
}

async fn audit_actions(app: &TestApp, admin: &Person, action: &str) -> Vec<Value> {
    let (s, b) = app
        .get(&format!("/api/v1/audit?action={action}"), &admin.token)
        .await;
    assert_eq!(s, 200, "{b}");
    b["entries"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_is_locked_after_five_failed_sign_ins_whatever_the_spelling() {
    let w = Ward::new().await;
    let app = &w.app;
    let admin = app.staff("Sam Admin", "admin").await;
    set_password(app, &w.amy).await;
    let email = email_of(&w.amy);
    for _ in 0..5 {
        let res = try_sign_in(app, &email, "wrong password!", "/me").await;
        assert_eq!(res.status(), 401);
    }
    for spelling in [email.clone(), email.to_uppercase(), format!("  {email} ")] {
        // The right password, now too late.
        let res = try_sign_in(app, &spelling, PASSWORD, "/me").await;
        assert_eq!(res.status(), 429, "{spelling:?}");
        let wait: i64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&wait), "{wait}");
        assert!(cookie(&res, "bleepless_session").is_none());
        assert!(res
            .text()
            .await
            .unwrap()
            .contains("Too many failed sign-ins"));
    }
    // An email nobody has is locked the same way: a lockout says nothing about who exists.
    for _ in 0..5 {
        try_sign_in(app, "nobody@example.nhs.uk", "guess guess", "/").await;
    }
    let res = try_sign_in(app, "nobody@example.nhs.uk", "guess guess", "/").await;
    assert_eq!(res.status(), 429);

    app.advance(15 * 60);
    let res = try_sign_in(app, &email, PASSWORD, "/me").await;
    assert_eq!(res.status(), 303);
    assert!(cookie(&res, "bleepless_session").is_some());
    // Locked again by someone else's guesses, Amy is let back in by an admin's new password.
    for _ in 0..5 {
        try_sign_in(app, &email, "someone else's guess", "/").await;
    }
    assert_eq!(try_sign_in(app, &email, PASSWORD, "/").await.status(), 429);
    set_password(app, &w.amy).await;
    assert_eq!(try_sign_in(app, &email, PASSWORD, "/").await.status(), 303);

    let failed = audit_actions(app, &admin, "sign_in_failed").await;
    assert_eq!(failed.len(), 15, "{failed:?}");
    assert_eq!(failed.last().unwrap()["subject"], email.as_str());
    assert_eq!(audit_actions(app, &admin, "sign_in_locked").await.len(), 3);
    assert_eq!(audit_actions(app, &admin, "signed_in").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_trying_many_accounts_is_made_to_wait() {
    let app = TestApp::spawn_with(|c| c.security.failures_per_address = 6).await;
    let w = Ward::with(app).await;
    let app = &w.app;
    set_password(app, &w.amy).await;
    // Many people sign in from one ward computer: successes do not count against it.
    for _ in 0..8 {
        assert_eq!(
            try_sign_in(app, &email_of(&w.amy), PASSWORD, "/")
                .await
                .status(),
            303
        );
    }
    for i in 0..6 {
        let res = try_sign_in(app, &format!("guess{i}@example.nhs.uk"), "password1", "/").await;
        assert_eq!(res.status(), 401);
    }
    let res = try_sign_in(app, &email_of(&w.amy), PASSWORD, "/").await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_email_is_refused_as_slowly_as_a_wrong_password() {
    let w = Ward::new().await;
    let app = &w.app;
    set_password(app, &w.amy).await;
    async fn fastest(app: &TestApp, email: &str) -> std::time::Duration {
        let mut best = std::time::Duration::MAX;
        for _ in 0..3 {
            let (login_cookie, csrf) = login_form(app).await;
            let started = std::time::Instant::now();
            let res = client()
                .post(format!("{}/login", app.base))
                .header("cookie", &login_cookie)
                .form(&[
                    ("email", email),
                    ("password", "not it at all"),
                    ("csrf", &csrf),
                ])
                .send()
                .await
                .unwrap();
            best = best.min(started.elapsed());
            assert_eq!(res.status(), 401);
        }
        best
    }
    let known = fastest(app, &email_of(&w.amy)).await;
    let unknown = fastest(app, "nobody-here@example.nhs.uk").await;
    assert!(
        unknown * 3 >= known,
        "unknown {unknown:?} against known {known:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_after_sign_in_is_always_on_this_site() {
    let w = Ward::new().await;
    let app = &w.app;
    set_password(app, &w.amy).await;
    let email = email_of(&w.amy);
    for next in [
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\nSet-Cookie: bleepless_session=x",
        "/x\u{0}",
        " /x",
        "/caf\u{e9}",
        "/x\u{2028}",
        "",
    ] {
        let res = try_sign_in(app, &email, PASSWORD, next).await;
        assert_eq!(res.status(), 303, "{next:?}");
        assert_eq!(res.headers()["location"], "/", "{next:?}");
        assert!(cookie(&res, "bleepless_session").is_some());
        // The form shown for such a link carries no trace of it either.
        let form = client()
            .get(format!("{}/login", app.base))
            .query(&[("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 200, "{next:?}");
        assert_eq!(hidden(&form.text().await.unwrap(), "next"), "/", "{next:?}");
    }
    let res = try_sign_in(app, &email, PASSWORD, "/tasks/new?ward=Ward%205").await;
    assert_eq!(res.headers()["location"], "/tasks/new?ward=Ward%205");
}

async fn headers_of(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::header::HeaderMap {
    let mut req = client().get(format!("{}{path}", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().headers().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_the_security_headers() {
    let w = Ward::new().await;
    let app = &w.app;
    let id = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let amy = Some(w.amy.token.as_str());
    for (path, token, cached) in [
        ("/login", None, false),
        ("/me", None, false),
        ("/api/v1/tasks", None, false),
        ("/api/v1/tasks", amy, false),
        (&*format!("/api/v1/tasks/{id}"), amy, false),
        (&*format!("/fhir/Task/{id}"), amy, false),
        ("/fhir/Task?_offset=-1", amy, false),
        ("/api/v1/nothing-here", amy, false),
        ("/nothing-here", None, false),
        ("/ack/forged.token", None, false),
        ("/healthz", None, false),
        ("/static/app.css", None, true),
    ] {
        let h = headers_of(app, path, token).await;
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert!(h.contains_key("referrer-policy"), "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(!h.contains_key("strict-transport-security"), "{path}");
        if !cached {
            assert_eq!(h["cache-control"], "no-store", "{path}");
        }
    }
    // Nothing inline for the policy to refuse: pages load their styles and scripts.
    for path in ["/login", "/ack/forged.token"] {
        let html = client()
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for inline in ["<style", " style=", "<script>", " onclick="] {
            assert!(!html.contains(inline), "{path}: {inline}");
        }
    }
    let https =
        TestApp::spawn_with(|c| c.public_url = "https://bleepless.example-trust.nhs.uk".into())
            .await;
    for path in ["/login", "/api/v1/tasks", "/healthz"] {
        let h = headers_of(&https, path, None).await;
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .contains("max-age="),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn integer_parameters_out_of_range_are_a_400_that_says_so() {
    let w = Ward::new().await;
    let app = &w.app;
    let admin = app.staff("Sam Admin", "admin").await;
    for (path, token, says) in [
        (
            "/fhir/Task?_offset=9223372036854775807",
            &w.amy.token,
            "_offset",
        ),
        (
            "/fhir/Task?_offset=99999999999999999999",
            &w.amy.token,
            "_offset",
        ),
        ("/fhir/Task?_offset=1000001", &w.amy.token, "_offset"),
        (
            "/fhir/Task?_count=9223372036854775807",
            &w.amy.token,
            "_count",
        ),
        (
            "/api/v1/tasks?limit=9223372036854775808",
            &w.amy.token,
            "query string",
        ),
        ("/api/v1/tasks?limit=-1", &w.amy.token, "limit"),
        (
            "/api/v1/notifications?limit=99999999999999999999",
            &w.manager.token,
            "query string",
        ),
        ("/api/v1/audit?limit=1e99", &admin.token, "query string"),
        ("/api/v1/audit?limit=0", &admin.token, "limit"),
    ] {
        let (s, b) = app.get(path, token).await;
        assert_eq!(s, 400, "{path}: {b}");
        assert!(b.to_string().contains(says), "{path}: {b}");
    }
    // FHIR pages by a cursor now (stable under updates): an out-of-range one is a 400 too.
    let (s, b) = app
        .get("/fhir/Task?_cursor=99999999999999999999_x", &w.amy.token)
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(b.to_string().contains("_cursor"), "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_body_must_arrive_in_time_and_within_its_size() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app =
        TestApp::spawn_with(|c| c.security.body_timeout = std::time::Duration::from_secs(1)).await;
    let w = Ward::with(app).await;
    let app = &w.app;
    let addr = app.base.trim_start_matches("http://").to_string();
    for partial in [&b""[..], &b"{\"nhs_number\":"[..]] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n",
            w.nurse.token
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(partial).await.unwrap();
        let mut reply = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut reply))
            .await
            .expect("the service answers a stalled body")
            .unwrap();
        let reply = String::from_utf8_lossy(&reply[..n]).to_string();
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
        assert!(reply.contains("did not arrive within 1 s"), "{reply}");
    }
    // A body that keeps trickling in is cut off all the same: the deadline is for the whole.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/tasks/x/acknowledge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n",
        w.amy.token
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut reply = vec![0u8; 4096];
    let n = loop {
        tokio::select! {
            n = s.read(&mut reply) => break n.unwrap(),
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                assert!(started.elapsed().as_secs() < 10, "the trickle was never cut off");
                let _ = s.write_all(b" ").await;
            }
        }
    };
    let reply = String::from_utf8_lossy(&reply[..n]).to_string();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("did not arrive within 1 s"), "{reply}");
    let big = "x".repeat(70 * 1024);
    let (s, b) = app
        .raise(&w.nurse.token, &w.fy1, json!({ "description": big }))
        .await;
    assert_eq!(s, 413, "{b}");
    assert_eq!(app.task_count().await, 0);
}

/// A page as the holder of a session cookie gets it.
async fn page(app: &TestApp, session: &str, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", app.base))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
}

async fn page_html(app: &TestApp, session: &str, path: &str) -> String {
    page(app, session, path).await.text().await.unwrap()
}

async fn page_status(app: &TestApp, session: &str, path: &str) -> u16 {
    page(app, session, path).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_password_ends_the_sessions_made_with_the_old() {
    let w = Ward::new().await;
    let app = &w.app;
    let (session, _) = sign_in(app, &w.amy).await;
    assert_eq!(page_status(app, &session, "/me").await, 200);
    let db = db_arg(&app.db_url);
    let email = email_of(&w.amy);
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bleepless"))
            .args(["--database", &db, "staff", "password", &email])
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"a brand new passphrase\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("sessions have ended"), "{out}");
    assert_eq!(page_status(app, &session, "/me").await, 303);
    let res = client()
        .get(format!("{}/api/v1/me", app.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_ones_own_password_ends_ones_other_sessions_only() {
    let w = Ward::new().await;
    let app = &w.app;
    let (phone, _) = sign_in(app, &w.amy).await;
    let (desk, csrf) = {
        // A second sign-in, without setting the password again.
        let res = try_sign_in(app, &email_of(&w.amy), PASSWORD, "/me").await;
        let desk = cookie(&res, "bleepless_session").unwrap();
        let html = page_html(app, &desk, "/me").await;
        (desk, hidden(&html, "csrf"))
    };
    let change = |current: &'static str, new: &'static str| {
        let (desk, csrf) = (desk.clone(), csrf.clone());
        async move {
            let res = client()
                .post(format!("{}/api/v1/me/password", app.base))
                .header("cookie", &desk)
                .header("x-csrf-token", &csrf)
                .json(&json!({ "current_password": current, "new_password": new }))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.text().await.unwrap())
        }
    };
    let (s, b) = change("not the password", "a new long passphrase").await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = change(PASSWORD, "short").await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        page_status(app, &phone, "/me").await,
        200,
        "nothing changed yet"
    );
    let (s, b) = change(PASSWORD, "a new long passphrase").await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(
        page_status(app, &desk, "/me").await,
        200,
        "this session goes on"
    );
    assert_eq!(
        page_status(app, &phone, "/me").await,
        303,
        "the other has ended"
    );
    assert_eq!(
        try_sign_in(app, &email_of(&w.amy), PASSWORD, "/")
            .await
            .status(),
        401
    );
    assert_eq!(
        try_sign_in(app, &email_of(&w.amy), "a new long passphrase", "/")
            .await
            .status(),
        303
    );
    // Guessing the current password through this door counts as failed sign-ins.
    for _ in 0..5 {
        assert_eq!(change("a guess at it", "whatever it is now").await.0, 403);
    }
    let (s, b) = change("a new long passphrase", "yet another passphrase").await;
    assert_eq!(s, 429, "{b}");
    assert!(b.contains("too many wrong passwords"), "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_left_idle_for_half_an_hour_ends() {
    let w = Ward::new().await;
    let app = &w.app;
    let (session, _) = sign_in(app, &w.amy).await;
    for _ in 0..3 {
        app.advance(29 * 60);
        assert_eq!(page_status(app, &session, "/me").await, 200, "in use");
    }
    app.advance(30 * 60);
    assert_eq!(page_status(app, &session, "/me").await, 303);
    assert_eq!(page_status(app, &session, "/api/v1/me").await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivating_a_leaver_ends_their_sessions_token_devices_and_bleeps_at_once() {
    let w = Ward::new().await;
    let app = &w.app;
    let admin = app.staff("Sam Admin", "admin").await;
    let (session, _) = sign_in(app, &w.amy).await;
    let (s, _) = subscribe(app, &w.amy, "http://127.0.0.1:9/push/amy").await;
    assert_eq!(s, 201);
    let path = format!("/api/v1/staff/{}/deactivate", w.amy.id);
    assert_eq!(app.post(&path, &w.ben.token, json!({})).await.0, 403);
    let (s, b) = app
        .post(
            &format!("/api/v1/staff/{}/deactivate", admin.id),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        app.post("/api/v1/staff/nobody/deactivate", &admin.token, json!({}))
            .await
            .0,
        404
    );

    let (s, b) = app.post(&path, &admin.token, json!({})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["sessions_ended"], 1);
    assert_eq!(b["devices_removed"], 1);
    assert_eq!(b["bleeps_released"], json!(["Medicine FY1 night"]));
    assert_eq!(app.post(&path, &admin.token, json!({})).await.0, 409);

    assert_eq!(app.get("/api/v1/me", &w.amy.token).await.0, 401);
    assert_eq!(page_status(app, &session, "/me").await, 303);
    let (_, roles) = app.get("/api/v1/roles", &w.ben.token).await;
    assert!(roles["roles"][0]["held_by"].as_array().unwrap().is_empty());
    let amy = w.amy.id.clone();
    let left: usize = app
        .write(move |c, _| bleepless::store::notifications::devices(c, &amy).map(|d| d.len()))
        .await;
    assert_eq!(left, 0);

    // The admin page and the command line do the same.
    let (admin_session, csrf) = sign_in(app, &admin).await;
    let res = client()
        .post(format!("{}/admin/staff/deactivate", app.base))
        .header("cookie", &admin_session)
        .form(&[("csrf", csrf.as_str()), ("staff", &w.ben.id)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/admin?done=deactivated");
    assert_eq!(app.get("/api/v1/me", &w.ben.token).await.0, 401);
    let db = db_arg(&app.db_url);
    let nurse = email_of(&w.nurse);
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        bleepless(&["--database", &db, "staff", "deactivate", &nurse])
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("deactivated Sister Grace Okafor"), "{out}");
    assert_eq!(app.get("/api/v1/me", &w.nurse.token).await.0, 401);
    let gone = audit_actions(app, &admin, "staff_deactivated").await;
    assert_eq!(gone.len(), 3);
    assert_eq!(gone[0]["detail"]["via"], "command line");
    assert_eq!(gone[2]["actor"]["id"], admin.id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_given_by_the_configuration_are_not_kept_in_the_database() {
    let secret = b"a link-signing secret of more than 32 characters".to_vec();
    let vapid = bleepless::outbox::push::generate_vapid_keys();
    let given = (vapid.private_key.clone(), vapid.public_key.clone());
    let app = TestApp::spawn_with({
        let secret = secret.clone();
        move |c| {
            c.security.link_secret = Some(secret);
            c.push.vapid = Some(given);
        }
    })
    .await;
    let stored = app
        .write(|c, _| {
            use bleepless::store::settings::get;
            Ok((get(c, "link_secret")?, get(c, "vapid_keys")?))
        })
        .await;
    assert_eq!(stored, (None, None));
    let (_, key) = app.get("/api/v1/push/vapid-public-key", "-").await;
    assert_eq!(key["public_key"], vapid.public_key.as_str());
    let w = Ward::with(app).await;
    let id = w.app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let link = bleepless::outbox::links::LinkSigner::new(&secret).sign(
        &bleepless::outbox::links::AckClaim {
            n: "n-1".into(),
            task: id,
            staff: w.amy.id.clone(),
            exp: chrono::Utc::now().timestamp() + 86_400 * 365,
        },
    );
    let res = client()
        .get(format!("{}/ack/{link}", w.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "a link signed with the given secret works"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_page_says_only_its_own_fixed_messages() {
    let w = Ward::new().await;
    let app = &w.app;
    let admin = app.staff("Sam Admin", "admin").await;
    let (session, csrf) = sign_in(app, &admin).await;
    for crafted in [
        "Your%20account%20is%20suspended%3A%20call%200800%20123%20456",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "handed-over%20to%20the%20attacker",
        "HANDED-OVER",
    ] {
        let html = page_html(app, &session, &format!("/admin?done={crafted}")).await;
        assert!(!html.contains("0800"), "{crafted}");
        assert!(!html.contains("alert(1)"), "{crafted}");
        assert!(!html.contains("attacker"), "{crafted}");
        assert!(
            !html.contains("class=\"ok\""),
            "{crafted}: no message at all"
        );
    }
    let hand_over = |confirm: &'static str| {
        client()
            .post(format!("{}/admin/hand-over", app.base))
            .header("cookie", &session)
            .form(&[
                ("csrf", csrf.as_str()),
                ("role", &w.fy1),
                ("to", &w.ben.id),
                ("confirm", confirm),
            ])
            .send()
    };
    // First the question, naming who gives it up; then the change.
    let asked = hand_over("").await.unwrap();
    assert_eq!(asked.status(), 200);
    let asked = asked.text().await.unwrap();
    assert!(
        asked.contains(
            "Hand Medicine FY1 night over to Dr Ben Hughes? Dr Amy Patel will no longer hold it."
        ),
        "{asked}"
    );
    let res = hand_over("yes").await.unwrap();
    assert_eq!(res.headers()["location"], "/admin?done=handed-over");
    assert!(page_html(app, &session, "/admin?done=handed-over")
        .await
        .contains("The bleep was handed over"));
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_and_security_actions_go_to_an_append_only_log_that_admins_read() {
    let w = Ward::new().await;
    let app = &w.app;
    let admin = app.staff("Sam Admin", "admin").await;
    let reg = app.role("Medicine registrar night", &[]).await;
    let (s, _) = app
        .post(
            &format!("/api/v1/roles/{}/hand-over", w.fy1),
            &admin.token,
            json!({ "to": w.ben.id }),
        )
        .await;
    assert_eq!(s, 200);
    app.escalates_to(&w.fy1, &reg, &admin).await;
    try_sign_in(app, &email_of(&w.amy), "not her password", "/").await;

    let (s, b) = app.get("/api/v1/audit", &admin.token).await;
    assert_eq!(s, 200, "{b}");
    let actions: Vec<&str> = b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["sign_in_failed", "escalation_set", "handed_over"]);
    let handed = &b["entries"][2];
    assert_eq!(handed["actor"]["name"], "Sam Admin");
    assert_eq!(handed["subject"], w.fy1.as_str());
    assert_eq!(handed["detail"]["to"], w.ben.id.as_str());
    assert_eq!(handed["client"], "127.0.0.1");
    assert!(!b.to_string().contains("not her password"));

    for who in [&w.amy, &w.nurse, &w.manager] {
        assert_eq!(app.get("/api/v1/audit", &who.token).await.0, 403);
    }
    let (s, b) = app
        .get("/api/v1/audit?action=everything", &admin.token)
        .await;
    assert_eq!(s, 400, "{b}");
    // The database itself refuses to change or remove an entry.
    let changed = app
        .store
        .write(|c| {
            use diesel::prelude::*;
            diesel::sql_query("UPDATE audit_log SET action = 'nothing'").execute(c)?;
            Ok(())
        })
        .await;
    assert!(changed.is_err());
    let removed = app
        .store
        .write(|c| {
            use diesel::prelude::*;
            diesel::sql_query("DELETE FROM audit_log").execute(c)?;
            Ok(())
        })
        .await;
    assert!(removed.is_err());
    // And the admin page shows it.
    let (session, _) = sign_in(app, &admin).await;
    let html = page_html(app, &session, "/admin").await;
    assert!(html.contains("Audit log"));
    assert!(html.contains("escalation set"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_address_comes_from_proxy_headers_only_when_told_to() {
    for (trust, expected) in [(false, "127.0.0.1"), (true, "203.0.113.9")] {
        let app = TestApp::spawn_with(|c| c.security.trust_proxy_headers = trust).await;
        let admin = app.staff("Sam Admin", "admin").await;
        let (login_cookie, csrf) = login_form(&app).await;
        let res = client()
            .post(format!("{}/login", app.base))
            .header("cookie", &login_cookie)
            .header("x-forwarded-for", "203.0.113.9")
            .form(&[
                ("email", "someone@example.nhs.uk"),
                ("password", "a guess at it"),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        let failed = audit_actions(&app, &admin, "sign_in_failed").await;
        assert_eq!(
            failed[0]["client"], expected,
            "trust_proxy_headers = {trust}"
        );
    }
}

//! Personal API tokens: made (shown once), listed, used, expired by the clock, revoked.
use crate::helpers::*;
use serde_json::{json, Value};

async fn delete(app: &TestApp, path: &str, token: &str) -> u16 {
    app.client
        .delete(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn listed(body: &Value) -> Vec<(String, String)> {
    body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_makes_uses_lists_and_revokes_their_own_tokens() {
    let w = Ward::new().await;
    let app = &w.app;
    let (s, made) = app
        .post(
            "/api/v1/me/tokens",
            &w.amy.token,
            json!({ "name": "ward PC script", "days": 7 }),
        )
        .await;
    assert_eq!(s, 201, "{made}");
    let token = made["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("blpt_"), "{made}");
    let id = made["id"].as_str().unwrap().to_string();

    // It works, and only its hash is kept.
    let (s, me) = app.get("/api/v1/me", &token).await;
    assert_eq!(
        (s, me["staff"]["id"].as_str()),
        (200, Some(w.amy.id.as_str()))
    );
    let stored = {
        use bleepless::store::schema::api_tokens;
        use diesel::{QueryDsl, RunQueryDsl};
        app.write(|c, _| {
            Ok(api_tokens::table
                .select(api_tokens::token_hash)
                .load::<String>(c)?)
        })
        .await
    };
    assert!(!stored.contains(&token));

    // The list never shows the token itself; nobody else sees it.
    let (s, list) = app.get("/api/v1/me/tokens", &w.amy.token).await;
    assert_eq!(s, 200);
    assert_eq!(
        listed(&list),
        vec![("ward PC script".into(), "active".into())]
    );
    assert!(!list.to_string().contains(&token));
    let (_, bens) = app.get("/api/v1/me/tokens", &w.ben.token).await;
    assert_eq!(listed(&bens), vec![]);
    assert_eq!(
        delete(app, &format!("/api/v1/me/tokens/{id}"), &w.ben.token).await,
        404
    );

    // Revoked, it stops at once; the person's other credentials still work.
    assert_eq!(
        delete(app, &format!("/api/v1/me/tokens/{id}"), &w.amy.token).await,
        204
    );
    assert_eq!(app.get("/api/v1/me", &token).await.0, 401);
    assert_eq!(app.get("/api/v1/me", &w.amy.token).await.0, 200);
    let (_, list) = app.get("/api/v1/me/tokens", &w.amy.token).await;
    assert_eq!(
        listed(&list),
        vec![("ward PC script".into(), "revoked".into())]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_stops_working_when_it_expires() {
    let w = Ward::new().await;
    let app = &w.app;
    let (_, made) = app
        .post(
            "/api/v1/me/tokens",
            &w.amy.token,
            json!({ "name": "short", "days": 1 }),
        )
        .await;
    let token = made["token"].as_str().unwrap().to_string();
    let (_, default) = app
        .post(
            "/api/v1/me/tokens",
            &w.amy.token,
            json!({ "name": "default" }),
        )
        .await;
    assert_eq!(app.get("/api/v1/me", &token).await.0, 200);
    app.advance(24 * 3600 - 1);
    assert_eq!(app.get("/api/v1/me", &token).await.0, 200);
    app.advance(2);
    let (s, body) = app.get("/api/v1/me", &token).await;
    assert_eq!(s, 401, "{body}");
    assert!(body.to_string().contains("expired"), "{body}");
    // The default lifetime is the configured one (90 days unless set).
    let default_token = default["token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/me", default_token).await.0, 200);
    app.advance(90 * 24 * 3600);
    assert_eq!(app.get("/api/v1/me", default_token).await.0, 401);
    let (_, list) = app.get("/api/v1/me/tokens", &w.amy.token).await;
    assert_eq!(
        listed(&list)
            .into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>(),
        vec!["expired", "expired"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_token_requests_are_told_why() {
    let w = Ward::new().await;
    let app = &w.app;
    for (body, says) in [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x", "days": 0 }), "days"),
        (json!({ "name": "x", "days": 400 }), "days"),
        (json!({ "name": "x", "colour": "red" }), "colour"),
        (json!({ "days": 3 }), "name"),
    ] {
        let (s, answer) = app
            .post("/api/v1/me/tokens", &w.amy.token, body.clone())
            .await;
        assert!((400..500).contains(&s), "{body}: {s} {answer}");
        assert!(answer.to_string().contains(says), "{body}: {answer}");
    }
    assert_eq!(
        delete(app, "/api/v1/me/tokens/no-such-id", &w.amy.token).await,
        404
    );
    assert_eq!(app.get("/api/v1/me/tokens", "blpt_forged").await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tokens_page_makes_shows_once_and_revokes() {
    use crate::pages::{client, hidden, sign_in};
    let w = Ward::new().await;
    let app = &w.app;
    let (session, csrf) = sign_in(app, &w.amy).await;
    let c = client();
    let post = |path: &str, form: Vec<(&str, &str)>| {
        c.post(format!("{}{path}", app.base))
            .header("cookie", &session)
            .form(&form)
            .send()
    };
    let res = post(
        "/me/tokens",
        vec![("csrf", &csrf), ("name", "rota script"), ("days", "30")],
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let page = res.text().await.unwrap();
    let at = page.find("id=\"token\"").expect("the new token is shown");
    let token = page[at..]
        .split("value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(token.starts_with("blpt_"), "{token}");
    assert_eq!(app.get("/api/v1/me", &token).await.0, 200);

    // Shown once: the list has its name, not the token.
    let list = c
        .get(format!("{}/me/tokens", app.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("rota script") && !list.contains(&token),
        "{list}"
    );
    let (_, tokens) = app.get("/api/v1/me/tokens", &w.amy.token).await;
    let id = tokens["tokens"][0]["id"].as_str().unwrap().to_string();
    let res = post(&format!("/me/tokens/{id}/revoke"), vec![("csrf", &csrf)])
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(app.get("/api/v1/me", &token).await.0, 401);

    // A bad form is a clear 4xx page; a forged one changes nothing.
    let res = post(
        "/me/tokens",
        vec![("csrf", &csrf), ("name", "x"), ("days", "0")],
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    assert!(res.text().await.unwrap().contains("1 to 366"));
    let res = post("/me/tokens", vec![("csrf", "forged"), ("name", "x")])
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let _ = hidden;
}

/// A status change checks its caller before anything else, whatever token they bring: a
/// staff token is checked by the task's own read, a personal token in full. A token that is
/// no one's is refused with why (401), whether or not the task exists, never told 404; a
/// leaver's staff token stops at once, even on a task they hold.
#[tokio::test(flavor = "multi_thread")]
async fn a_status_change_checks_its_caller_first_whatever_the_token() {
    let w = Ward::new().await;
    let app = &w.app;
    let id = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    for task in [id.as_str(), "no-such-task"] {
        for token in ["not-a-real-token", "blpt_forged"] {
            let (s, body) = app.act(task, "acknowledge", token, json!({})).await;
            assert_eq!(s, 401, "{task} {token}: {body}");
            assert!(body.to_string().contains("token is not valid"), "{body}");
        }
    }
    let (s, body) = app
        .act("no-such-task", "acknowledge", &w.amy.token, json!({}))
        .await;
    assert_eq!(s, 404, "{body}");

    let (s, made) = app
        .post(
            "/api/v1/me/tokens",
            &w.amy.token,
            json!({ "name": "handover script", "days": 1 }),
        )
        .await;
    assert_eq!(s, 201, "{made}");
    let personal = made["token"].as_str().unwrap();
    let (s, t) = app.act(&id, "acknowledge", personal, json!({})).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["acknowledged_by"]["id"], w.amy.id.as_str());
    let (s, t) = app.act(&id, "start", &w.amy.token, json!({})).await;
    assert_eq!((s, t["status"].as_str()), (200, Some("in-progress")), "{t}");

    let admin = app.staff("Sam Admin", "admin").await;
    let leave = format!("/api/v1/staff/{}/deactivate", w.amy.id);
    assert_eq!(app.post(&leave, &admin.token, json!({})).await.0, 200);
    let done = json!({ "outcome": { "code": "done", "text": "Taken" } });
    let (s, body) = app.act(&id, "complete", &w.amy.token, done).await;
    assert_eq!(s, 401, "{body}");
    let (_, t) = app
        .get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
        .await;
    assert_eq!(
        t["status"], "in-progress",
        "nothing was written for the leaver"
    );

    // Inactive by any other way (a row edited by hand), the token stops as well.
    let other = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let ben = w.ben.id.clone();
    app.write(move |c, _| {
        use bleepless::store::schema::staff;
        use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
        diesel::update(staff::table.find(ben))
            .set(staff::active.eq(false))
            .execute(c)?;
        Ok(())
    })
    .await;
    let (s, body) = app
        .act(&other, "acknowledge", &w.ben.token, json!({}))
        .await;
    assert_eq!(s, 401, "{body}");
}

/// A start or a completion after one's own acknowledgement is decided on the task as this
/// instance's last change left it, without reading it again; it is saved only if the token
/// is still the caller's, they are active and their permissions are as they were. Otherwise
/// it is judged afresh and nothing is written: a replaced token is a 401, a doctor who may
/// no longer hold a bleep a 403. Changed by another instance meanwhile, the task is judged
/// as it is now.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_after_ones_own_acknowledgement_still_checks_the_caller() {
    let w = Ward::new().await;
    let app = &w.app;
    let nurse = w.nurse.token.as_str();
    let status = |id: String| async move {
        let (_, t) = app.get(&format!("/api/v1/tasks/{id}"), nurse).await;
        t["status"].as_str().unwrap().to_string()
    };
    let set = |column: &'static str, value: &'static str| {
        let amy = w.amy.id.clone();
        app.write(move |c, _| {
            use diesel::RunQueryDsl;
            diesel::sql_query(format!(
                "UPDATE staff SET {column} = '{value}' WHERE id = '{amy}'"
            ))
            .execute(c)?;
            Ok(())
        })
    };
    let done = json!({ "outcome": { "code": "done", "text": "Taken" } });

    // Her token replaced (`bleepless staff token` again): the old one no longer acts.
    let id = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let (s, t) = app.act(&id, "acknowledge", &w.amy.token, json!({})).await;
    assert_eq!(s, 200, "{t}");
    set("token_hash", "0000").await;
    let (s, body) = app.act(&id, "complete", &w.amy.token, done.clone()).await;
    assert_eq!(s, 401, "{body}");
    assert_eq!(status(id.clone()).await, "accepted", "nothing was written");

    // Her clinical permission taken away: she may no longer start the task she took.
    let amy = app.staff("Dr Amy Second", "clinician").await;
    let id = app.raised(&w.nurse.token, &amy.id, json!({})).await;
    let (s, t) = app.act(&id, "acknowledge", &amy.token, json!({})).await;
    assert_eq!(s, 200, "{t}");
    let who = amy.id.clone();
    app.write(move |c, _| {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!(
            "UPDATE staff SET permissions = 'coordinator' WHERE id = '{who}'"
        ))
        .execute(c)?;
        Ok(())
    })
    .await;
    let (s, body) = app.act(&id, "start", &amy.token, json!({})).await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(status(id.clone()).await, "accepted", "nothing was written");

    // Started by another instance meanwhile: the completion is judged on the task as it is.
    let id = app.raised(&w.nurse.token, &w.ben.id, json!({})).await;
    let (s, t) = app.act(&id, "acknowledge", &w.ben.token, json!({})).await;
    assert_eq!(s, 200, "{t}");
    let ben = w.ben.id.clone();
    let task = id.clone();
    app.write(move |c, now| {
        let who = bleepless::store::directory::find_staff(c, &ben)?;
        // Another instance's command: its own context, holding nothing of this one's.
        let ctx = bleepless::app::Ctx {
            now,
            policy: Default::default(),
            rota: Default::default(),
            recent: Default::default(),
        };
        bleepless::app::tasks::act(
            c,
            &ctx,
            &task,
            &who,
            bleepless::domain::transition::Change::Start,
        )?;
        Ok(())
    })
    .await;
    let (s, t) = app.act(&id, "start", &w.ben.token, json!({})).await;
    assert_eq!(s, 409, "already started: {t}");
    let (s, t) = app.act(&id, "complete", &w.ben.token, done).await;
    assert_eq!((s, t["status"].as_str()), (200, Some("completed")), "{t}");
    assert_eq!(
        kinds(&t),
        ["raised", "acknowledged", "started", "completed"],
        "{t}"
    );
}

/// A raise checks its caller the same way: a staff token with the raise's own lookup, a
/// personal token in full; a token that is no one's is a 401 even when the raise names an
/// unknown ward or assignee, and a doctor's token may not raise (403).
#[tokio::test(flavor = "multi_thread")]
async fn a_raise_checks_its_caller_first_whatever_the_token() {
    let w = Ward::new().await;
    let app = &w.app;
    for token in ["not-a-real-token", "blpt_forged"] {
        for over in [
            json!({}),
            json!({ "ward": "No Such Ward" }),
            json!({ "bed": "" }),
        ] {
            let (s, body) = app.raise(token, &w.fy1, over.clone()).await;
            assert_eq!(s, 401, "{token} {over}: {body}");
            assert!(body.to_string().contains("token is not valid"), "{body}");
        }
    }
    let (s, body) = app.raise(&w.amy.token, &w.fy1, json!({})).await;
    assert_eq!(s, 403, "{body}");
    let (s, made) = app
        .post(
            "/api/v1/me/tokens",
            &w.nurse.token,
            json!({ "name": "ward script", "days": 1 }),
        )
        .await;
    assert_eq!(s, 201, "{made}");
    let (s, t) = app
        .raise(made["token"].as_str().unwrap(), &w.fy1, json!({}))
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["raised_by"]["id"], w.nurse.id.as_str());
    let (s, t) = app.raise(&w.nurse.token, &w.fy1, json!({})).await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["raised_by"]["name"], "Sister Grace Okafor");
    assert_eq!(t["timeline"][0]["actor"]["id"], w.nurse.id.as_str());
}

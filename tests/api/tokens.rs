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

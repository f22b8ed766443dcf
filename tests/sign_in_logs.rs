//! Sign-in secrets never reach the log, at any level: the provider's code and the `state`,
//! the client secret, and personal API tokens. A test binary of its own, because it installs
//! the process's log subscriber, at `trace`.
#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
mod support;

use base64::Engine;
use helpers::*;
use serde_json::json;
use support::captured_log::Captured;
use support::oidc_provider::*;

fn query(url: &str, name: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("{name} in {url}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_codes_states_secrets_and_tokens_never_reach_the_log() {
    let log = Captured::default();
    // cookie_store is the tests' browser's cookie jar (not in the service), which logs the
    // cookies it keeps.
    bleepless::telemetry::init(Some("trace,cookie_store=off"), log.clone()).unwrap();
    let idp = OidcProvider::start().await;
    let oidc = app_config(&idp.issuer);
    let app = TestApp::spawn_with(move |c| c.oidc = Some(oidc)).await;
    let amy = app.staff("Dr Amy Patel", "clinician").await;
    idp.account("amy", json!({ "email": "dramypatel@example.nhs.uk" }))
        .await;

    let b = browser();
    let signed = through_provider(&b, &app.base, "amy").await;
    assert_eq!(callback(&b, &signed).await.0, 303);
    let b = browser();
    let refused = through_provider(&b, &app.base, "amy").await;
    idp.tamper_next_token(json!({ "aud": "another-service" }))
        .await;
    assert_eq!(callback(&b, &refused).await.0, 401);
    let (_, made) = app
        .post("/api/v1/me/tokens", &amy.token, json!({ "name": "script" }))
        .await;
    let token = made["token"].as_str().unwrap().to_string();
    assert_eq!(app.get("/api/v1/me", &token).await.0, 200);

    let text = log.text();
    assert!(
        text.contains("signed in through the identity provider")
            && text.contains("ID token refused"),
        "the sign-ins were logged"
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    for (what, secret) in [
        ("code", query(&signed, "code")),
        ("state", query(&signed, "state")),
        ("refused code", query(&refused, "code")),
        ("refused state", query(&refused, "state")),
        ("client secret", CLIENT_SECRET.to_string()),
        ("client credentials", basic),
        ("personal token", token),
        ("staff token", amy.token.clone()),
    ] {
        let line = text.lines().find(|l| l.contains(&secret));
        assert!(line.is_none(), "the {what} reached the log: {line:?}");
    }
}

//! Signing in with the trust's identity provider (OpenID Connect), against a real provider
//! (`oidc-provider`, tests/support/oidc_provider): the whole flow through HTTP, and each way
//! it must refuse.
use crate::cli::{bleepless, db_arg};
use crate::helpers::*;
use crate::support::oidc_provider::{
    app_config, browser, callback, through_provider, OidcProvider,
};
use bleepless::config::{MatchOn, OidcConfig};
use bleepless::domain::Permission;
use serde_json::{json, Value};

/// The app signing in with a freshly started provider, `adjust` changing its settings.
async fn with_provider(adjust: impl FnOnce(&mut OidcConfig)) -> (TestApp, OidcProvider) {
    let idp = OidcProvider::start().await;
    let mut oidc = app_config(&idp.issuer);
    adjust(&mut oidc);
    let app = TestApp::spawn_with(move |c| c.oidc = Some(oidc)).await;
    (app, idp)
}

/// A browser signed in through the provider as `login`.
async fn signed_in(app: &TestApp, login: &str) -> reqwest::Client {
    let b = browser();
    let back = through_provider(&b, &app.base, login).await;
    let (s, _, body) = callback(&b, &back).await;
    assert_eq!(s, 303, "{body}");
    b
}

/// Who the browser's session is, through the API.
async fn me(b: &reqwest::Client, app: &TestApp) -> (u16, Value) {
    read(
        b.get(format!("{}/api/v1/me", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn amy_claims() -> Value {
    json!({ "email": "DrAmyPatel@example.nhs.uk", "name": "Dr Amy Patel", "email_verified": true })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_through_the_provider_and_stays_bound() {
    let (app, idp) = with_provider(|_| {}).await;
    let amy = app.staff("Dr Amy Patel", "clinician").await;
    idp.account("amy-sub-1", amy_claims()).await;
    let b = browser();
    let back = through_provider(&b, &app.base, "amy-sub-1").await;
    let (status, to, body) = callback(&b, &back).await;
    assert_eq!((status, to.as_deref()), (303, Some("/api/v1/me")), "{body}");
    let (s, me_body) = me(&b, &app).await;
    assert_eq!(s, 200, "{me_body}");
    assert_eq!(me_body["staff"]["id"], amy.id.as_str(), "{me_body}");

    // A later sign-in matches by the binding, even after the email changed at the provider.
    idp.account(
        "amy-sub-1",
        json!({ "email": "amy.patel@elsewhere.nhs.uk" }),
    )
    .await;
    let b2 = signed_in(&app, "amy-sub-1").await;
    assert_eq!(me(&b2, &app).await.1["staff"]["id"], amy.id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_callback_or_a_wrong_state_signs_nobody_in() {
    let (app, idp) = with_provider(|_| {}).await;
    app.staff("Dr Amy Patel", "clinician").await;
    idp.account("amy", amy_claims()).await;
    let b = browser();
    let back = through_provider(&b, &app.base, "amy").await;

    // The state changed on the way back.
    let (s, _, body) = callback(&b, &back.replace("state=", "state=x")).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("not started in this browser"), "{body}");
    // Another browser (no state cookie) with the real address.
    let (s, _, body) = callback(&browser(), &back).await;
    assert_eq!(s, 400, "{body}");
    // The real one works, once; the same answer again is refused.
    assert_eq!(callback(&b, &back).await.0, 303);
    // (The browser's state cookie went with the first use; the attempt is used up as well.)
    let (s, _, body) = callback(&b, &back).await;
    assert!(s == 400 && body.contains("Start again"), "{s} {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_with_a_wrong_nonce_audience_or_expiry_signs_nobody_in() {
    let (app, idp) = with_provider(|_| {}).await;
    app.staff("Dr Amy Patel", "clinician").await;
    idp.account("amy", amy_claims()).await;
    let past = chrono::Utc::now().timestamp() - 3600;
    for (changes, says) in [
        (
            json!({ "nonce": "a-nonce-from-another-sign-in" }),
            "does not belong",
        ),
        (
            json!({ "aud": "another-service" }),
            "meant for another service",
        ),
        (json!({ "exp": past, "iat": past - 600 }), "expired"),
        (
            json!({ "iss": "https://impostor.example" }),
            "another identity service",
        ),
    ] {
        let b = browser();
        let back = through_provider(&b, &app.base, "amy").await;
        idp.tamper_next_token(changes.clone()).await;
        let (s, to, body) = callback(&b, &back).await;
        assert_eq!((s, to), (401, None), "{changes}: {body}");
        assert!(body.contains(says), "{changes}: {body}");
        assert_eq!(me(&b, &app).await.0, 401, "{changes}: not signed in");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_works_after_the_provider_rotates_its_signing_key() {
    let (app, idp) = with_provider(|_| {}).await;
    let amy = app.staff("Dr Amy Patel", "clinician").await;
    idp.account("amy", amy_claims()).await;
    signed_in(&app, "amy").await;

    idp.rotate_key().await;
    let b = browser();
    let back = through_provider(&b, &app.base, "amy").await;
    let (s, _, body) = callback(&b, &back).await;
    assert_eq!(s, 303, "the new key is fetched: {body}");
    assert_eq!(me(&b, &app).await.1["staff"]["id"], amy.id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_provider_down_is_a_clear_page_not_an_error() {
    let (app, mut idp) = with_provider(|_| {}).await;
    app.staff("Dr Amy Patel", "clinician").await;
    idp.account("amy", amy_claims()).await;
    // Down in the middle of a sign-in: the code cannot be redeemed.
    let b = browser();
    let back = through_provider(&b, &app.base, "amy").await;
    idp.stop();
    let (s, _, body) = callback(&b, &back).await;
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("sign-in service is not answering"), "{body}");

    // Down from the start: the app has never reached it.
    let (app, _) = with_provider(|o| o.issuer = "http://127.0.0.1:1".into()).await;
    let res = browser()
        .get(format!("{}/login/oidc", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert!(res.text().await.unwrap().contains("not answering"));
    // Passwords still work meanwhile, and the sign-in page offers both.
    let page = browser()
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(
        page.contains("Sign in with Test Trust") && page.contains("password"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_with_no_staff_record_is_refused_or_made_with_no_permissions() {
    let (app, idp) = with_provider(|_| {}).await;
    idp.account(
        "stranger",
        json!({ "email": "new.doctor@example.nhs.uk", "name": "Dr New" }),
    )
    .await;
    let b = browser();
    let back = through_provider(&b, &app.base, "stranger").await;
    let (s, _, body) = callback(&b, &back).await;
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("Ask an admin"), "{body}");
    assert_eq!(me(&b, &app).await.0, 401);

    let (app, idp) = with_provider(|o| o.create_unknown = true).await;
    idp.account(
        "stranger",
        json!({ "email": "new.doctor@example.nhs.uk", "name": "Dr New" }),
    )
    .await;
    let b = signed_in(&app, "stranger").await;
    let (s, who) = me(&b, &app).await;
    assert_eq!(s, 200, "{who}");
    assert_eq!(who["staff"]["name"], "Dr New");
    assert_eq!(
        who["staff"]["roles"],
        json!([]),
        "no permissions until an admin grants them: {who}"
    );
    // An admin grants one at the command line.
    let (ok, out, err) = bleepless(&[
        "--database",
        &db_arg(&app.db_url),
        "staff",
        "grant",
        "new.doctor@example.nhs.uk",
        "clinician",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Dr New may now: clinician"), "{out}");
    assert_eq!(me(&b, &app).await.1["staff"]["roles"], json!(["clinician"]));
    let (ok, _, err) = bleepless(&[
        "--database",
        &db_arg(&app.db_url),
        "staff",
        "grant",
        "new.doctor@example.nhs.uk",
        "surgeon",
    ]);
    assert!(!ok && err.contains("surgeon"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_decides_permissions_when_configured() {
    let (app, idp) = with_provider(|o| {
        o.create_unknown = true;
        o.permissions_claim = Some("roles".into());
        o.permission_map = vec![
            ("Bleepless.Clinician".into(), Permission::Clinician),
            ("Bleepless.Admin".into(), Permission::Admin),
        ];
    })
    .await;
    idp.account(
        "kim",
        json!({ "email": "kim@example.nhs.uk", "name": "Dr Kim", "roles": ["Bleepless.Clinician", "Other"] }),
    )
    .await;
    let b = signed_in(&app, "kim").await;
    assert_eq!(me(&b, &app).await.1["staff"]["roles"], json!(["clinician"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_passwords_off_only_the_provider_signs_people_in() {
    let (app, _idp) = with_provider(|_| {}).await;
    let (app2, _idp2) = {
        let idp = OidcProvider::start().await;
        let oidc = app_config(&idp.issuer);
        let app = TestApp::spawn_with(move |c| {
            c.oidc = Some(oidc);
            c.auth.passwords = false;
        })
        .await;
        (app, idp)
    };
    drop(app);
    let page = browser()
        .get(format!("{}/login", app2.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Sign in with Test Trust"), "{page}");
    assert!(!page.contains("type=\"password\""), "{page}");
    let res = browser()
        .post(format!("{}/login", app2.base))
        .form(&[
            ("email", "x@example.nhs.uk"),
            ("password", "0123456789ab"),
            ("csrf", "c"),
        ])
        .header("cookie", "bleepless_login=c")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Passwords are turned off"));
}

#[tokio::test(flavor = "multi_thread")]
async fn claims_missing_from_the_id_token_come_from_userinfo_as_cis2_gives_them() {
    let (app, idp) = with_provider(|o| {
        o.claim = "uid".into();
        o.match_on = MatchOn::SdsUserId;
        o.scopes.push("nhsperson".into());
    })
    .await;
    let amy = app.staff("Dr Amy Patel", "clinician").await;
    let id = amy.id.clone();
    app.write(move |c, _| {
        use bleepless::store::schema::staff;
        use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
        diesel::update(staff::table.find(&id))
            .set(staff::sds_user_id.eq(Some("555021935107")))
            .execute(c)?;
        Ok(())
    })
    .await;
    idp.claims_from_userinfo().await;
    idp.account(
        "cis2-amy",
        json!({ "uid": "555021935107", "name": "Dr Amy Patel" }),
    )
    .await;
    let b = signed_in(&app, "cis2-amy").await;
    assert_eq!(me(&b, &app).await.1["staff"]["id"], amy.id.as_str());
}

//! Sign-in with the trust's identity provider (OpenID Connect): `GET /login/oidc` sends the
//! browser to the provider with PKCE, `state` and `nonce`; `GET /login/oidc/callback` takes
//! it back, redeems the code, checks the ID token and starts a session. Every failure is a
//! page that says what happened; none signs anyone in.
pub mod provider;

use super::auth::{client_address, SESSION_COOKIE};
use super::pages::{html, safe_next, secure, PageError};
use super::AppState;
use crate::app::sign_in::{self, Outcome, Vouched};
use crate::config::{MatchOn, OidcConfig, CALLBACK_PATH};
use crate::domain::Permission;
use crate::store::{identities, sessions};
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use provider::Failure;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Holds the `state` of the sign-in under way, so that only the browser that started it can
/// finish it.
const STATE_COOKIE: &str = "bleepless_oidc_state";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login/oidc", web::get().to(start))
        .route(CALLBACK_PATH, web::get().to(callback));
}

fn shown(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    PageError::Shown {
        status,
        title: title.into(),
        message: message.into(),
    }
    .error_response()
}

fn failed(f: Failure) -> HttpResponse {
    match f {
        Failure::Unavailable(_) => shown(
            StatusCode::SERVICE_UNAVAILABLE,
            "The sign-in service is not answering",
            "The sign-in service is not answering. Try again in a few minutes; if it goes on, sign in with your Bleepless password if you have one, or call the IT service desk.",
        ),
        Failure::Refused(why) => shown(
            StatusCode::UNAUTHORIZED,
            "You are not signed in",
            &format!("You are not signed in: {why}. Start again from the sign-in page."),
        ),
    }
}

#[derive(Deserialize)]
struct NextParam {
    next: Option<String>,
}

async fn start(state: web::Data<AppState>, q: web::Query<NextParam>) -> HttpResponse {
    let Some(p) = state.oidc.clone() else {
        return shown(
            StatusCode::NOT_FOUND,
            "Not found",
            "Signing in with an identity provider is not set up here: use your email and password.",
        );
    };
    let r = match p.authorise().await {
        Ok(r) => r,
        Err(f) => return failed(f),
    };
    let attempt = identities::Attempt {
        nonce: r.nonce,
        pkce_verifier: r.pkce_verifier,
        next_path: safe_next(q.next.as_deref()),
    };
    let (key, now) = (r.state.clone(), state.clock.now());
    if let Err(e) = state
        .store
        .write(move |c| identities::start_attempt(c, &key, &attempt, now))
        .await
    {
        return PageError::from(e).error_response();
    }
    let cookie = Cookie::build(STATE_COOKIE, r.state)
        .path("/login/oidc")
        .http_only(true)
        // Lax: the cookie must come back on the provider's redirect, a top-level GET.
        .same_site(SameSite::Lax)
        .secure(secure(&state))
        .max_age(CookieDuration::minutes(identities::ATTEMPT_MINUTES))
        .finish();
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, r.url))
        .finish();
    let _ = res.add_cookie(&cookie);
    res
}

#[derive(Deserialize)]
struct CallbackParams {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<CallbackParams>,
) -> HttpResponse {
    let Some(p) = state.oidc.clone() else {
        return shown(
            StatusCode::NOT_FOUND,
            "Not found",
            "Signing in with an identity provider is not set up here.",
        );
    };
    let q = q.into_inner();
    if let Some(error) = q.error {
        tracing::warn!(error = %error.chars().take(64).collect::<String>(), "the sign-in service sent back an error");
        return shown(
            StatusCode::BAD_REQUEST,
            "You are not signed in",
            "The sign-in service did not sign you in (it was cancelled or refused). Start again from the sign-in page.",
        );
    }
    let (Some(sent_state), Some(code)) = (q.state, q.code) else {
        return shown(
            StatusCode::BAD_REQUEST,
            "You are not signed in",
            "This address needs the state and code the sign-in service adds to it. Start again from the sign-in page.",
        );
    };
    let ours = req.cookie(STATE_COOKIE).map(|c| c.value().to_string());
    if ours.as_deref() != Some(sent_state.as_str()) {
        tracing::warn!("sign-in refused: the state does not match this browser's");
        return shown(
            StatusCode::BAD_REQUEST,
            "You are not signed in",
            "This sign-in was not started in this browser (or it has expired). Start again from the sign-in page.",
        );
    }
    let now = state.clock.now();
    let taken = state
        .store
        .write(move |c| identities::take_attempt(c, &sent_state, now))
        .await;
    let attempt = match taken {
        Ok(Some(a)) => a,
        Ok(None) => {
            tracing::warn!("sign-in refused: the state was used already or has expired");
            return shown(
                StatusCode::BAD_REQUEST,
                "You are not signed in",
                "This sign-in has been used already or has expired. Start again from the sign-in page.",
            );
        }
        Err(e) => return PageError::from(e).error_response(),
    };
    let identity = match p
        .redeem(&code, &attempt.pkce_verifier, &attempt.nonce)
        .await
    {
        Ok(i) => i,
        Err(f) => return failed(f),
    };
    let mut res = finish(&state, &req, p.config(), identity, &attempt.next_path).await;
    let mut gone = Cookie::build(STATE_COOKIE, "").path("/login/oidc").finish();
    gone.make_removal();
    let _ = res.add_cookie(&gone);
    res
}

/// A claim's value as text (a string, or a number).
fn text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The permissions the configured claim maps to, when a claim decides them.
fn permissions(o: &OidcConfig, claims: &Map<String, Value>) -> Option<Vec<Permission>> {
    let claim = o.permissions_claim.as_ref()?;
    let values: Vec<String> = match claims.get(claim) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str())
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    Some(
        o.permission_map
            .iter()
            .filter(|(v, _)| values.contains(v))
            .map(|(_, p)| *p)
            .collect(),
    )
}

/// Finds the staff record for a checked identity and starts the session.
async fn finish(
    state: &AppState,
    req: &HttpRequest,
    o: &OidcConfig,
    identity: provider::Identity,
    next: &str,
) -> HttpResponse {
    let claims = &identity.claims;
    let key = text(claims, &o.claim);
    let email = text(claims, "email").or_else(|| {
        key.clone()
            .filter(|k| o.match_on == MatchOn::Email && k.contains('@'))
    });
    let name = text(claims, &o.name_claim);
    let permissions = permissions(o, claims);
    let client = client_address(req, state);
    let create_unknown = o.create_unknown;
    let by_sds = o.match_on == MatchOn::SdsUserId;
    let (issuer, subject) = (identity.issuer.clone(), identity.subject.clone());
    let (key2, now) = (key.clone(), state.clock.now());
    let outcome = state
        .store
        .write(move |c| {
            let who = Vouched {
                issuer: &issuer,
                subject: &subject,
                key: key2.as_deref(),
                by_sds_user_id: by_sds,
                name: name.as_deref(),
                email: email.as_deref(),
                permissions,
                client: &client,
            };
            sign_in::sign_in(c, &who, create_unknown, now)
        })
        .await;
    match outcome {
        Ok(Outcome::Started { staff, token }) => {
            tracing::info!(staff_id = %staff.id, "signed in through the identity provider");
            let cookie = Cookie::build(SESSION_COOKIE, token)
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(secure(state))
                .max_age(CookieDuration::hours(sessions::SESSION_HOURS))
                .finish();
            let mut res = HttpResponse::SeeOther()
                .insert_header((header::LOCATION, next.to_string()))
                .finish();
            let _ = res.add_cookie(&cookie);
            res
        }
        Ok(Outcome::NoRecord) => {
            tracing::warn!("sign-in refused: no staff record for this person");
            shown(
                StatusCode::FORBIDDEN,
                "No Bleepless account",
                &format!(
                    "{} signed you in{}, but Bleepless has no staff record for you. Ask an admin to add you, then sign in again.",
                    o.name,
                    key.map(|k| format!(" as {k}")).unwrap_or_default()
                ),
            )
        }
        Ok(Outcome::Inactive) => shown(
            StatusCode::FORBIDDEN,
            "Account not active",
            "Your Bleepless account is no longer active. Ask an admin if this is wrong.",
        ),
        Err(e) => PageError::from(e).error_response(),
    }
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOut<'a> {
    nav: Option<super::pages::Nav>,
    provider: &'a str,
    url: &'a str,
}

/// The answer to signing out when the provider can sign the person out too.
pub fn signed_out(provider: &str, url: &str) -> HttpResponse {
    html(
        StatusCode::OK,
        &SignedOut {
            nav: None,
            provider,
            url,
        },
    )
}

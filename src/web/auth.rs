//! Who is calling: `Authorization: Bearer <token>` for systems, or the session cookie of a
//! signed-in browser (with its CSRF token on anything that changes state).
use super::AppState;
use crate::error::AppError;
use crate::store::directory::{self, Staff};
use crate::store::sessions;
use actix_web::http::{header, Method};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use std::future::Future;
use std::pin::Pin;

pub const SESSION_COOKIE: &str = "bleepless_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated member of staff making the request.
pub struct Caller(pub Staff);

/// A signed-in browser: who, and the CSRF token its forms and scripts must send back.
pub struct Session {
    pub staff: Staff,
    pub csrf: String,
}

enum Credential {
    Bearer(String),
    Cookie,
}

fn credential(req: &HttpRequest) -> Result<Option<Credential>, AppError> {
    if let Some(h) = req.headers().get(header::AUTHORIZATION) {
        let h = h.to_str().map_err(|_| {
            AppError::Unauthorized("the Authorization header is not readable text".into())
        })?;
        return match h.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
                Ok(Some(Credential::Bearer(t.trim().to_string())))
            }
            _ => Err(AppError::Unauthorized(
                "the Authorization header must be: Bearer <token>".into(),
            )),
        };
    }
    Ok(req.cookie(SESSION_COOKIE).map(|_| Credential::Cookie))
}

/// Looks up a session cookie's owner.
pub async fn session_of(state: &AppState, req: &HttpRequest) -> Result<Option<Session>, AppError> {
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let token = cookie.value().to_string();
    let now = state.clock.now();
    Ok(state
        .store
        .read(move |c| sessions::find(c, &token, now))
        .await?
        .map(|(staff, csrf)| Session { staff, csrf }))
}

impl FromRequest for Caller {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| AppError::Internal("no app state".into()))?;
            match credential(&req)? {
                None => Err(AppError::Unauthorized(
                    "sign in: send Authorization: Bearer <token>".into(),
                )),
                Some(Credential::Bearer(token)) => state
                    .store
                    .read(move |c| directory::staff_by_token(c, &token))
                    .await?
                    .map(Caller)
                    .ok_or_else(|| {
                        AppError::Unauthorized(
                            "the token is not valid (mistyped, replaced or the account is inactive)".into(),
                        )
                    }),
                Some(Credential::Cookie) => {
                    let session = session_of(&state, &req).await?.ok_or_else(|| {
                        AppError::Unauthorized("your session has ended: sign in again".into())
                    })?;
                    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
                    let sent = req
                        .headers()
                        .get(CSRF_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if !safe && sent != session.csrf {
                        return Err(AppError::Forbidden(
                            "missing or wrong X-CSRF-Token header: reload the page".into(),
                        ));
                    }
                    Ok(Caller(session.staff))
                }
            }
        })
    }
}

//! Who is calling: `Authorization: Bearer <token>` for systems, or the session cookie of a
//! signed-in browser (with its CSRF token on anything that changes state).
use super::AppState;
use crate::error::{AppError, AppResult};
use crate::store::directory::{self, Staff};
use crate::store::DbConnection;
use crate::store::{api_tokens, sessions};
use actix_web::http::{header, Method};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use chrono::{DateTime, Utc};
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

/// The caller's credentials as the request carries them, not yet checked against the
/// database. The busiest handlers (raise, act, list, dashboard) check them inside their own
/// database call with [`Credentials::staff`]: a separate lookup first cost each request
/// another trip to a database thread and a read on a connection whose page cache every
/// commit empties. A request with no credentials at all is refused at once.
pub struct Credentials(Credential);

enum Credential {
    Bearer(String),
    /// A session cookie; `csrf` is the X-CSRF-Token header a state-changing request sent.
    Session {
        token: String,
        csrf: Option<String>,
        safe: bool,
        /// The idle timeout in force.
        idle: std::time::Duration,
    },
}

/// How long a session may go unused, from the configuration.
fn session_idle(req: &HttpRequest) -> std::time::Duration {
    req.app_data::<web::Data<AppState>>()
        .map(|s| s.config.security.session_idle)
        .unwrap_or_else(|| crate::config::SecurityConfig::default().session_idle)
}

impl Credentials {
    fn of(req: &HttpRequest) -> Result<Credentials, AppError> {
        if let Some(h) = req.headers().get(header::AUTHORIZATION) {
            let h = h.to_str().map_err(|_| {
                AppError::Unauthorized("the Authorization header is not readable text".into())
            })?;
            return match h.split_once(' ') {
                Some((scheme, t))
                    if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() =>
                {
                    Ok(Credentials(Credential::Bearer(t.trim().to_string())))
                }
                _ => Err(AppError::Unauthorized(
                    "the Authorization header must be: Bearer <token>".into(),
                )),
            };
        }
        let Some(cookie) = req.cookie(SESSION_COOKIE) else {
            return Err(AppError::Unauthorized(
                "sign in: send Authorization: Bearer <token>".into(),
            ));
        };
        let csrf = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Credentials(Credential::Session {
            token: cookie.value().to_string(),
            csrf,
            safe: matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS),
            idle: session_idle(req),
        }))
    }

    /// The bearer token, when it is a staff token (`bleepless staff token`), not a personal
    /// API token: a command may check it with its own first read (see `app::tasks::Actor`).
    pub fn staff_token(&self) -> Option<&str> {
        match &self.0 {
            Credential::Bearer(t) if !t.starts_with(api_tokens::PREFIX) => Some(t),
            _ => None,
        }
    }

    /// The active member of staff these credentials belong to, or why not.
    pub fn staff(&self, conn: &mut DbConnection, now: DateTime<Utc>) -> AppResult<Staff> {
        match &self.0 {
            Credential::Bearer(token) => match directory::staff_by_token(conn, token)? {
                Some(staff) => Ok(staff),
                None => api_tokens::staff_by_token(conn, token, now)?.ok_or_else(|| {
                    AppError::Unauthorized(
                        "the token is not valid (mistyped, replaced, expired, revoked or the account is inactive)"
                            .into(),
                    )
                }),
            },
            Credential::Session {
                token,
                csrf,
                safe,
                idle,
            } => {
                let (staff, expected) =
                    sessions::find(conn, token, now, *idle)?.ok_or_else(|| {
                        AppError::Unauthorized("your session has ended: sign in again".into())
                    })?;
                if !safe && csrf.as_deref() != Some(expected.as_str()) {
                    return Err(AppError::Forbidden(
                        "missing or wrong X-CSRF-Token header: reload the page".into(),
                    ));
                }
                Ok(staff)
            }
        }
    }
}

impl FromRequest for Credentials {
    type Error = AppError;
    type Future = std::future::Ready<Result<Credentials, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Credentials::of(req))
    }
}

/// Looks up a session cookie's owner.
pub async fn session_of(state: &AppState, req: &HttpRequest) -> Result<Option<Session>, AppError> {
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let token = cookie.value().to_string();
    let now = state.clock.now();
    let idle = state.config.security.session_idle;
    Ok(state
        .store
        .read(move |c| sessions::find(c, &token, now, idle))
        .await?
        .map(|(staff, csrf)| Session { staff, csrf }))
}

impl FromRequest for Caller {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let credentials = Credentials::of(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let credentials = credentials?;
            let state = state.ok_or_else(|| AppError::Internal("no app state".into()))?;
            let now = state.clock.now();
            let staff = state.store.read(move |c| credentials.staff(c, now)).await?;
            Ok(Caller(staff))
        })
    }
}

/// The client's address, for throttling and the audit log: the connection's peer, or (only
/// when the configuration says a proxy in front sets it) the forwarded client address.
pub fn client_address(req: &HttpRequest, state: &AppState) -> String {
    let forwarded = if state.config.security.trust_proxy_headers {
        req.connection_info()
            .realip_remote_addr()
            .map(str::to_string)
    } else {
        None
    };
    forwarded
        .or_else(|| req.peer_addr().map(|a| a.ip().to_string()))
        .map(|a| a.chars().take(64).collect())
        .unwrap_or_else(|| "unknown".into())
}

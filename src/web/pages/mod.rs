//! Server-rendered pages for people: sign-in, the coordinator's task form, the clinician's
//! phone page, the bed manager's dashboard and the admin page.
pub mod assets;
pub mod board;
pub mod card;
pub mod events;
pub mod rota;
pub mod task;
pub mod tasks;
pub mod time;
pub mod tokens;
pub mod watch;

use super::auth::{client_address, session_of, Session, SESSION_COOKIE};
use super::AppState;
use crate::domain::Permission;
use crate::error::AppError;
use crate::store::audit::{self, Action as AuditAction, Actor, Entry};
use crate::store::throttle::{self, Bucket};
use crate::store::{directory, sessions};
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/offline", web::get().to(offline))
        .configure(assets::routes)
        .configure(events::routes)
        .configure(tasks::routes)
        .configure(task::routes)
        .configure(rota::routes)
        .configure(tokens::routes)
        .configure(watch::routes);
}

/// What the navigation bar shows for the signed-in person.
pub struct Nav {
    pub name: String,
    pub csrf: String,
    pub coordinator: bool,
    pub clinician: bool,
    pub watcher: bool,
    pub admin: bool,
}

impl Nav {
    pub fn of(s: &Session) -> Nav {
        let can = |p| s.staff.can(p);
        Nav {
            name: s.staff.name.clone(),
            csrf: s.csrf.clone(),
            coordinator: can(Permission::Coordinator),
            clinician: can(Permission::Clinician),
            watcher: can(Permission::BedManager)
                || can(Permission::Coordinator)
                || can(Permission::Admin),
            admin: can(Permission::Admin),
        }
    }
}

/// An error on a page: shown as a page, or a trip to the sign-in page.
#[derive(Debug)]
pub enum PageError {
    SignIn {
        next: String,
    },
    Shown {
        status: StatusCode,
        title: String,
        message: String,
    },
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::SignIn { .. } => f.write_str("sign in"),
            PageError::Shown { message, .. } => f.write_str(message),
        }
    }
}

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        if matches!(e, AppError::Internal(_) | AppError::Unavailable(_)) {
            // Logged by the AppError renderer's twin below.
            tracing::error!(cause = %e, "page error");
        }
        PageError::Shown {
            status: e.status_code(),
            title: match e.status_code().as_u16() {
                403 => "Not allowed".into(),
                404 => "Not found".into(),
                409 => "Already changed".into(),
                400..=499 => "That did not work".into(),
                _ => "Something went wrong".into(),
            },
            message: e.public_message(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: Option<Nav>,
    title: &'a str,
    message: &'a str,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::SignIn { .. } => StatusCode::SEE_OTHER,
            PageError::Shown { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            PageError::SignIn { next } => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("/login?next={}", urlencode(next))))
                .finish(),
            PageError::Shown {
                status,
                title,
                message,
            } => html(
                *status,
                &ErrorPage {
                    nav: None,
                    title,
                    message,
                },
            ),
        }
    }
}

pub type PageResult = Result<HttpResponse, PageError>;

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Renders a template as a page that is never cached (it shows patients' tasks).
pub fn html(status: StatusCode, t: &impl Template) -> HttpResponse {
    match t.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header(("X-Frame-Options", "DENY"))
            .insert_header(("Referrer-Policy", "same-origin"))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain")
                .body("the page could not be drawn; it has been logged")
        }
    }
}

pub fn ok(t: &impl Template) -> PageResult {
    Ok(html(StatusCode::OK, t))
}

pub fn see_other(to: &str) -> PageResult {
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish())
}

/// A signed-in person on a page; anyone else is sent to sign in first.
pub struct PageUser(pub Session);

impl PageUser {
    pub fn require(&self, allowed: &[Permission], what: &str) -> Result<(), PageError> {
        if allowed.iter().any(|p| self.0.staff.can(*p)) {
            Ok(())
        } else {
            Err(PageError::Shown {
                status: StatusCode::FORBIDDEN,
                title: "Not allowed".into(),
                message: format!(
                    "{what} is for {}.",
                    allowed
                        .iter()
                        .map(|p| p.code().replace('_', " "))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            })
        }
    }

    /// Checks a form's CSRF token.
    pub fn check_csrf(&self, sent: &str) -> Result<(), PageError> {
        if sent == self.0.csrf {
            Ok(())
        } else {
            Err(PageError::Shown {
                status: StatusCode::FORBIDDEN,
                title: "Form expired".into(),
                message: "This form is out of date (or came from elsewhere). Go back, reload the page and try again.".into(),
            })
        }
    }

    pub fn nav(&self) -> Option<Nav> {
        Some(Nav::of(&self.0))
    }
}

impl FromRequest for PageUser {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<PageUser, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| PageError::from(AppError::Internal("no app state".into())))?;
            let next = match req.query_string() {
                "" => req.path().to_string(),
                q => format!("{}?{q}", req.path()),
            };
            match session_of(&state, &req).await? {
                Some(s) => Ok(PageUser(s)),
                None => Err(PageError::SignIn { next }),
            }
        })
    }
}

async fn home(user: PageUser) -> PageResult {
    let s = &user.0.staff;
    // A site manager is a bed manager who may also hold the site bleep: the dashboard is
    // their first page, their bleeps a link away.
    let to = if s.can(Permission::Coordinator) {
        "/tasks/new"
    } else if s.can(Permission::BedManager) {
        "/dashboard"
    } else if s.can(Permission::Clinician) {
        "/me"
    } else {
        "/admin"
    };
    see_other(to)
}

#[derive(Template)]
#[template(path = "offline.html")]
struct OfflinePage {
    nav: Option<Nav>,
}

/// What the phone shows when a page cannot be reached: the service worker keeps a copy
/// from when it was installed. The same for everyone, with no data in it.
async fn offline() -> HttpResponse {
    html(StatusCode::OK, &OfflinePage { nav: None })
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Option<Nav>,
    error: Option<String>,
    csrf: String,
    next: String,
    email: String,
    /// "Sign in with <name>", when an identity provider is configured.
    provider: Option<String>,
    passwords: bool,
    /// `next`, for the provider's link.
    next_q: String,
}

const LOGIN_CSRF_COOKIE: &str = "bleepless_login";

#[derive(Deserialize)]
struct NextParam {
    next: Option<String>,
}

/// Only paths on this site: never a redirect elsewhere. A single leading `/` followed by
/// anything but another `/` or `\`, no backslash, whitespace or control character
/// anywhere (browsers drop tabs and newlines, so `/\t/evil.example` is `//evil.example`),
/// and short enough for a header. Anything else goes home.
pub fn safe_next(next: Option<&str>) -> String {
    let Some(n) = next else {
        return "/".into();
    };
    let bytes = n.as_bytes();
    let ok = n.len() <= 1000
        && bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/') | Some(b'\\'))
        && !n.contains('\\')
        && n.chars().all(|c| c.is_ascii_graphic());
    if ok {
        n.to_string()
    } else {
        "/".into()
    }
}

pub fn secure(state: &AppState) -> bool {
    state.config.public_url.starts_with("https://")
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    error: Option<String>,
    next: String,
    email: String,
) -> HttpResponse {
    // Double-submit token: a form posted from another site cannot know it.
    let csrf = sessions::random_token();
    let mut res = html(
        status,
        &LoginPage {
            nav: None,
            error,
            csrf: csrf.clone(),
            next_q: urlencode(&next),
            next,
            email,
            provider: state.config.oidc.as_ref().map(|o| o.name.clone()),
            passwords: state.config.auth.passwords,
        },
    );
    let cookie = Cookie::build(LOGIN_CSRF_COOKIE, csrf)
        .path("/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure(state))
        .finish();
    let _ = res.add_cookie(&cookie);
    res
}

async fn login_form(state: web::Data<AppState>, q: web::Query<NextParam>) -> HttpResponse {
    login_page(
        &state,
        StatusCode::OK,
        None,
        safe_next(q.next.as_deref()),
        String::new(),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// What a sign-in attempt came to.
enum SignIn {
    Started {
        token: String,
    },
    Refused,
    /// Too many failures for this account or from this address: wait this long.
    Locked(chrono::Duration),
}

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let f = form.into_inner();
    let next = safe_next(f.next.as_deref());
    if !state.config.auth.passwords {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            Some("Passwords are turned off here: sign in with your organisation's account.".into()),
            next,
            String::new(),
        );
    }
    let expected = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_string());
    if expected.as_deref() != Some(f.csrf.as_str()) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            Some("The sign-in form had expired. Please try again.".into()),
            next,
            f.email,
        );
    }
    match sign_in(&state, &req, &f.email, f.password).await {
        Ok(SignIn::Started { token }) => {
            let cookie = Cookie::build(SESSION_COOKIE, token)
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(secure(&state))
                .max_age(CookieDuration::hours(sessions::SESSION_HOURS))
                .finish();
            // `next` is plain visible ASCII (safe_next), so this header is always valid.
            let mut res = HttpResponse::SeeOther()
                .insert_header((header::LOCATION, next))
                .finish();
            if res.status() == StatusCode::SEE_OTHER {
                let _ = res.add_cookie(&cookie);
            }
            res
        }
        Ok(SignIn::Refused) => login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("That email and password do not match a member of staff.".into()),
            next,
            f.email,
        ),
        Ok(SignIn::Locked(wait)) => {
            let minutes = (wait.num_seconds() + 59) / 60;
            let mut res = login_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                Some(format!(
                    "Too many failed sign-ins for this account or from this computer. Try again in {minutes} minute{}, or ask an admin to reset your password.",
                    if minutes == 1 { "" } else { "s" }
                )),
                next,
                f.email,
            );
            res.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(wait.num_seconds().max(1)),
            );
            res
        }
        Err(e) => PageError::from(e).error_response(),
    }
}

/// Checks an email and password under the throttle: the attempt is counted first, the
/// password checked off the database writer (argon2 is slow on purpose, and as slow for an
/// unknown email), and the outcome recorded in the audit log.
async fn sign_in(
    state: &AppState,
    req: &HttpRequest,
    email: &str,
    password: String,
) -> Result<SignIn, AppError> {
    let limits = &state.config.security;
    let window =
        chrono::Duration::from_std(limits.lockout).unwrap_or(chrono::Duration::minutes(15));
    let account = Bucket::account(email, limits.failures_per_account);
    let address = Bucket::address(&client_address(req, state), limits.failures_per_address);
    let email = email.trim().to_string();
    let now = state.clock.now();
    let counted = {
        let (email, buckets) = (email.clone(), [account.clone(), address.clone()]);
        state
            .store
            .write(move |c| {
                if let Some(wait) = throttle::locked_for(c, &buckets, now)? {
                    return Ok(Err(wait));
                }
                let filled = throttle::attempt(c, &buckets, window, now)?;
                Ok(Ok((sessions::password_of(c, &email)?, filled)))
            })
            .await?
    };
    let (found, filled) = match counted {
        Err(wait) => {
            tracing::warn!(bucket = %address.key, "sign-in refused: throttled");
            return Ok(SignIn::Locked(wait));
        }
        Ok(x) => x,
    };
    let (id, hash) = match found {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    let matches = web::block(move || sessions::verify_password(hash.as_deref(), &password))
        .await
        .map_err(|e| AppError::Internal(format!("password check: {e}")))?;
    let client = address.key.trim_start_matches("address:").to_string();
    state
        .store
        .write(move |c| {
            let staff = match (&id, matches) {
                (Some(id), true) => directory::staff_by_id(c, id)?.filter(|s| s.active),
                _ => None,
            };
            let Some(staff) = staff else {
                let entry = |action| Entry {
                    actor: Actor::Anonymous,
                    action,
                    subject: Some(&email),
                    detail: serde_json::json!({}),
                    client: Some(&client),
                };
                audit::record(c, entry(AuditAction::SignInFailed), now)?;
                for bucket in &filled {
                    let mut locked = entry(AuditAction::SignInLocked);
                    locked.detail = serde_json::json!({ "bucket": bucket });
                    audit::record(c, locked, now)?;
                }
                return Ok(SignIn::Refused);
            };
            throttle::succeeded(c, &account, &address)?;
            let (token, _csrf) = sessions::start(c, &staff.id, now)?;
            audit::record(
                c,
                Entry {
                    actor: Actor::Staff(&staff.id),
                    action: AuditAction::SignedIn,
                    subject: Some(&staff.id),
                    detail: serde_json::json!({}),
                    client: Some(&client),
                },
                now,
            )?;
            Ok(SignIn::Started { token })
        })
        .await
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    state: web::Data<AppState>,
    user: PageUser,
    req: HttpRequest,
    form: web::Form<CsrfForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        let token = c.value().to_string();
        state.store.write(move |c| sessions::end(c, &token)).await?;
    }
    let mut res = match &state.oidc {
        // A page with a link, not a redirect: the provider is another site, and pages may
        // only post forms (and follow their redirects) to this one.
        Some(p) => match p.end_session_url().await {
            Some(url) => super::oidc::signed_out(&p.config().name, &url),
            None => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/login"))
                .finish(),
        },
        None => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/login"))
            .finish(),
    };
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    gone.make_removal();
    let _ = res.add_cookie(&gone);
    Ok(res)
}

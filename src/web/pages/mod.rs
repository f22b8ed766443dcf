//! Server-rendered pages for people: sign-in, the coordinator's task form, the clinician's
//! phone page, the bed manager's dashboard and the admin page.
pub mod assets;
pub mod events;
pub mod tasks;
pub mod watch;

use super::auth::{session_of, Session, SESSION_COOKIE};
use super::AppState;
use crate::domain::Permission;
use crate::error::AppError;
use crate::store::sessions;
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
        .configure(assets::routes)
        .configure(events::routes)
        .configure(tasks::routes)
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
    let to = if s.can(Permission::Coordinator) {
        "/tasks/new"
    } else if s.can(Permission::Clinician) {
        "/me"
    } else if s.can(Permission::BedManager) {
        "/dashboard"
    } else {
        "/admin"
    };
    see_other(to)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Option<Nav>,
    error: Option<String>,
    csrf: String,
    next: String,
    email: String,
}

const LOGIN_CSRF_COOKIE: &str = "bleepless_login";

#[derive(Deserialize)]
struct NextParam {
    next: Option<String>,
}

/// Only paths on this site: never a redirect elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

fn secure(state: &AppState) -> bool {
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
            next,
            email,
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

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let f = form.into_inner();
    let next = safe_next(f.next.as_deref());
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
    let now = state.clock.now();
    let (email, password) = (f.email.clone(), f.password);
    let result = state
        .store
        .write(
            move |c| match sessions::check_password(c, &email, &password)? {
                Some(staff) => Ok(Some(sessions::start(c, &staff.id, now)?)),
                None => Ok(None),
            },
        )
        .await;
    match result {
        Ok(Some((token, _csrf))) => {
            let cookie = Cookie::build(SESSION_COOKIE, token)
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(secure(&state))
                .max_age(CookieDuration::hours(sessions::SESSION_HOURS))
                .finish();
            let mut res = HttpResponse::SeeOther()
                .insert_header((header::LOCATION, next))
                .finish();
            let _ = res.add_cookie(&cookie);
            res
        }
        Ok(None) => login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("That email and password do not match a member of staff.".into()),
            next,
            f.email,
        ),
        Err(e) => PageError::from(e).error_response(),
    }
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
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .finish();
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    gone.make_removal();
    let _ = res.add_cookie(&gone);
    Ok(res)
}

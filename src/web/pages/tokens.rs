//! `/me/tokens`: a person's own personal API tokens — make one (shown once), see them,
//! revoke one.
use super::{html, see_other, Nav, PageError, PageResult, PageUser};
use crate::store::api_tokens::{self, ApiToken};
use crate::web::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, ResponseError};
use askama::Template;
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/me/tokens", web::get().to(tokens_page))
        .route("/me/tokens", web::post().to(create))
        .route("/me/tokens/{id}/revoke", web::post().to(revoke));
}

#[derive(Template)]
#[template(path = "me_tokens.html")]
struct TokensPage {
    nav: Option<Nav>,
    csrf: String,
    tokens: Vec<ApiToken>,
    /// A token just made: shown this once.
    made: Option<String>,
    error: Option<String>,
    default_days: u32,
}

async fn render(
    state: &AppState,
    user: &PageUser,
    status: StatusCode,
    made: Option<String>,
    error: Option<String>,
) -> PageResult {
    let (id, now) = (user.0.staff.id.clone(), state.clock.now());
    let tokens = state
        .store
        .read(move |c| api_tokens::list(c, &id, now))
        .await?;
    Ok(html(
        status,
        &TokensPage {
            nav: user.nav(),
            csrf: user.0.csrf.clone(),
            tokens,
            made,
            error,
            default_days: state.config.auth.token_days,
        },
    ))
}

async fn tokens_page(state: web::Data<AppState>, user: PageUser) -> PageResult {
    render(&state, &user, StatusCode::OK, None, None).await
}

#[derive(Deserialize)]
struct NewToken {
    csrf: String,
    name: String,
    days: Option<String>,
}

async fn create(
    state: web::Data<AppState>,
    user: PageUser,
    form: web::Form<NewToken>,
) -> PageResult {
    let f = form.into_inner();
    user.check_csrf(&f.csrf)?;
    let days = match f.days.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        None => Ok(state.config.auth.token_days),
        Some(d) => d
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=366).contains(d))
            .ok_or("Days must be a whole number from 1 to 366."),
    };
    let days = match days {
        Ok(d) => d,
        Err(why) => {
            return render(
                &state,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(why.into()),
            )
            .await
        }
    };
    let (id, now) = (user.0.staff.id.clone(), state.clock.now());
    let made = state
        .store
        .write(move |c| api_tokens::create(c, &id, &f.name, days, now))
        .await;
    match made {
        Ok((_, token)) => render(&state, &user, StatusCode::OK, Some(token), None).await,
        Err(e) if e.status_code().is_client_error() => {
            render(
                &state,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(e.public_message()),
            )
            .await
        }
        Err(e) => Err(PageError::from(e)),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn revoke(
    state: web::Data<AppState>,
    user: PageUser,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let (staff, id, now) = (user.0.staff.id.clone(), id.into_inner(), state.clock.now());
    state
        .store
        .write(move |c| api_tokens::revoke(c, &staff, &id, now))
        .await?;
    see_other("/me/tokens")
}

//! The caller's own personal API tokens: make one (shown once), list them, revoke one.
use crate::error::{AppError, AppResult};
use crate::store::api_tokens::{self, ApiToken};
use crate::web::auth::Caller;
use crate::web::errors::ErrorBody;
use crate::web::AppState;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    /// What the token is for, e.g. "ward PC script".
    name: String,
    /// Days until it expires: 1 to 366; the configured default when absent.
    days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct CreatedToken {
    #[serde(flatten)]
    about: ApiToken,
    /// The token itself: shown this once, never again.
    token: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Tokens {
    tokens: Vec<ApiToken>,
}

/// Makes a personal API token for the caller; the answer is the only time it is shown.
#[utoipa::path(post, path = "/api/v1/me/tokens", tag = "people",
    request_body = NewToken,
    responses(
        (status = 201, description = "Made; the token is shown this once", body = CreatedToken),
    ))]
pub(super) async fn create_token(
    state: web::Data<AppState>,
    Caller(staff): Caller,
    body: web::Json<NewToken>,
) -> AppResult<HttpResponse> {
    let NewToken { name, days } = body.into_inner();
    let days = days.unwrap_or(state.config.auth.token_days);
    if !(1..=366).contains(&days) {
        return Err(AppError::Unprocessable(format!(
            "days: {days} is out of range (1 to 366)"
        )));
    }
    let now = state.clock.now();
    let (about, token) = state
        .store
        .write(move |c| api_tokens::create(c, &staff.id, &name, days, now))
        .await?;
    tracing::info!(token_id = %about.id, "personal API token made");
    Ok(HttpResponse::Created().json(CreatedToken { about, token }))
}

/// The caller's personal API tokens (never the tokens themselves), newest first.
#[utoipa::path(get, path = "/api/v1/me/tokens", tag = "people",
    responses((status = 200, description = "The caller's tokens", body = Tokens)))]
pub(super) async fn list_tokens(
    state: web::Data<AppState>,
    Caller(staff): Caller,
) -> AppResult<HttpResponse> {
    let now = state.clock.now();
    let tokens = state
        .store
        .read(move |c| api_tokens::list(c, &staff.id, now))
        .await?;
    Ok(HttpResponse::Ok().json(Tokens { tokens }))
}

/// Revokes one of the caller's tokens: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/me/tokens/{id}", tag = "people",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "The caller has no such token", body = ErrorBody),
    ))]
pub(super) async fn revoke_token(
    state: web::Data<AppState>,
    Caller(staff): Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let now = state.clock.now();
    state
        .store
        .write(move |c| api_tokens::revoke(c, &staff.id, &id, now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

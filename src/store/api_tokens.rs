//! Personal API tokens: each with a name and an expiry, listed and revoked by its owner.
//! Only a token's hash is kept; the token itself is shown once, when it is made.
use super::directory::{self, hash_token, Staff};
use super::schema::api_tokens;
use super::{from_db, new_id, to_db, DbConnection};
use crate::domain::task::required_text;
use crate::error::{AppError, AppResult};
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use rand::RngCore;
use serde::Serialize;

/// Personal tokens start with this, so that a leaked one is recognisable.
pub const PREFIX: &str = "blpt_";

/// A token as its owner sees it in the list: never the token itself.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
}

type Row = (
    String,
    String,
    NaiveDateTime,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
);

fn of_row(r: Row, now: DateTime<Utc>) -> ApiToken {
    let (id, name, created, expires, used, revoked) = r;
    let expires_at = from_db(expires);
    let status = if revoked.is_some() {
        "revoked"
    } else if expires_at <= now {
        "expired"
    } else {
        "active"
    };
    ApiToken {
        id,
        name,
        created_at: from_db(created),
        expires_at,
        last_used_at: used.map(from_db),
        status: status.into(),
    }
}

/// Makes a token for its owner; returns it with the token itself (shown once).
pub fn create(
    conn: &mut DbConnection,
    staff_id: &str,
    name: &str,
    days: u32,
    now: DateTime<Utc>,
) -> AppResult<(ApiToken, String)> {
    let name = required_text("name", name, 100).map_err(AppError::Unprocessable)?;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let id = new_id();
    let expires = now + Duration::days(i64::from(days));
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::id.eq(&id),
            api_tokens::staff_id.eq(staff_id),
            api_tokens::name.eq(&name),
            api_tokens::token_hash.eq(hash_token(&token)),
            api_tokens::created_at.eq(to_db(now)),
            api_tokens::expires_at.eq(to_db(expires)),
        ))
        .execute(conn)?;
    let row = (id, name, to_db(now), to_db(expires), None, None);
    Ok((of_row(row, now), token))
}

/// A person's tokens, newest first.
pub fn list(
    conn: &mut DbConnection,
    staff_id: &str,
    now: DateTime<Utc>,
) -> AppResult<Vec<ApiToken>> {
    Ok(api_tokens::table
        .filter(api_tokens::staff_id.eq(staff_id))
        .order((api_tokens::created_at.desc(), api_tokens::id.desc()))
        .select((
            api_tokens::id,
            api_tokens::name,
            api_tokens::created_at,
            api_tokens::expires_at,
            api_tokens::last_used_at,
            api_tokens::revoked_at,
        ))
        .load::<Row>(conn)?
        .into_iter()
        .map(|r| of_row(r, now))
        .collect())
}

/// Revokes one of a person's own tokens. Another person's token is "not found", as if it
/// did not exist.
pub fn revoke(
    conn: &mut DbConnection,
    staff_id: &str,
    id: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let n = diesel::update(
        api_tokens::table
            .filter(api_tokens::id.eq(id))
            .filter(api_tokens::staff_id.eq(staff_id)),
    )
    .set(api_tokens::revoked_at.eq(Some(to_db(now))))
    .execute(conn)?;
    if n == 0 {
        return Err(AppError::NotFound(format!("you have no API token {id}")));
    }
    Ok(())
}

/// How often a token's last use is written down.
const TOUCH_EVERY_MINUTES: i64 = 5;

/// The active owner of a live personal token: not revoked, not expired.
pub fn staff_by_token(
    conn: &mut DbConnection,
    token: &str,
    now: DateTime<Utc>,
) -> AppResult<Option<Staff>> {
    if !token.starts_with(PREFIX) {
        return Ok(None);
    }
    let row: Option<(String, String, Option<NaiveDateTime>)> = api_tokens::table
        .filter(api_tokens::token_hash.eq(hash_token(token)))
        .filter(api_tokens::revoked_at.is_null())
        .filter(api_tokens::expires_at.gt(to_db(now)))
        .select((
            api_tokens::id,
            api_tokens::staff_id,
            api_tokens::last_used_at,
        ))
        .get_result(conn)
        .optional()?;
    let Some((id, staff_id, used)) = row else {
        return Ok(None);
    };
    if used.is_none_or(|u| u < to_db(now - Duration::minutes(TOUCH_EVERY_MINUTES))) {
        diesel::update(api_tokens::table.find(&id))
            .set(api_tokens::last_used_at.eq(Some(to_db(now))))
            .execute(conn)?;
    }
    Ok(directory::staff_by_id(conn, &staff_id)?.filter(|s| s.active))
}

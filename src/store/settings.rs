//! Values the service makes for itself once and keeps (VAPID keys, the link-signing secret).
use super::schema::settings;
use super::{to_db, DbConnection};
use crate::error::AppResult;
use chrono::{DateTime, Utc};
use diesel::prelude::*;

pub fn get(conn: &mut DbConnection, name: &str) -> AppResult<Option<String>> {
    Ok(settings::table
        .find(name)
        .select(settings::value)
        .get_result(conn)
        .optional()?)
}

/// Returns the stored value, or stores `make()`'s. Call inside a write transaction: on
/// PostgreSQL two instances starting together are ordered by the primary key, and the one
/// that loses retries at its next start, so call it again after an error.
pub fn get_or_create(
    conn: &mut DbConnection,
    name: &str,
    now: DateTime<Utc>,
    make: impl FnOnce() -> String,
) -> AppResult<String> {
    if let Some(v) = get(conn, name)? {
        return Ok(v);
    }
    let value = make();
    diesel::insert_into(settings::table)
        .values((
            settings::name.eq(name),
            settings::value.eq(&value),
            settings::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(value)
}

/// Removes a stored value (a secret now given by the configuration instead).
pub fn forget(conn: &mut DbConnection, name: &str) -> AppResult<()> {
    diesel::delete(settings::table.find(name)).execute(conn)?;
    Ok(())
}

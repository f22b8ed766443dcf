//! Browser sessions and staff passwords (argon2).
use super::directory::{self, hash_token, Staff};
use super::schema::{sessions, staff};
use super::{to_db, DbConnection};
use crate::error::{AppError, AppResult};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use rand::RngCore;

/// A phone keeps its session for a long shift.
pub const SESSION_HOURS: i64 = 14;

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn set_password(conn: &mut DbConnection, staff_id: &str, password: &str) -> AppResult<()> {
    if password.chars().count() < 10 {
        return Err(AppError::Unprocessable(
            "a password needs at least 10 characters".into(),
        ));
    }
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AppError::Internal(format!("argon2: {e}")))?
        .to_string();
    let n = diesel::update(staff::table.find(staff_id))
        .set(staff::password_hash.eq(Some(hash)))
        .execute(conn)?;
    if n == 0 {
        return Err(AppError::NotFound(format!("no member of staff {staff_id}")));
    }
    Ok(())
}

/// Checks an email and password; the same answer for an unknown email and a wrong password.
pub fn check_password(
    conn: &mut DbConnection,
    email: &str,
    password: &str,
) -> AppResult<Option<Staff>> {
    let row: Option<(String, Option<String>)> = staff::table
        .filter(staff::email.eq(email.trim()))
        .filter(staff::active.eq(true))
        .select((staff::id, staff::password_hash))
        .get_result(conn)
        .optional()?;
    let Some((id, Some(hash))) = row else {
        return Ok(None);
    };
    let Ok(parsed) = PasswordHash::new(&hash) else {
        return Ok(None);
    };
    if Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Ok(None);
    }
    directory::staff_by_id(conn, &id)
}

/// Starts a session; returns the cookie token and the CSRF token.
pub fn start(
    conn: &mut DbConnection,
    staff_id: &str,
    now: DateTime<Utc>,
) -> AppResult<(String, String)> {
    let token = random_token();
    let csrf = random_token();
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(hash_token(&token)),
            sessions::staff_id.eq(staff_id),
            sessions::csrf.eq(&csrf),
            sessions::created_at.eq(to_db(now)),
            sessions::expires_at.eq(to_db(now + Duration::hours(SESSION_HOURS))),
        ))
        .execute(conn)?;
    Ok((token, csrf))
}

/// The signed-in member of staff and the session's CSRF token, if the session is live.
pub fn find(
    conn: &mut DbConnection,
    token: &str,
    now: DateTime<Utc>,
) -> AppResult<Option<(Staff, String)>> {
    let row: Option<(String, String)> = sessions::table
        .find(hash_token(token))
        .filter(sessions::expires_at.gt(to_db(now)))
        .select((sessions::staff_id, sessions::csrf))
        .get_result(conn)
        .optional()?;
    let Some((staff_id, csrf)) = row else {
        return Ok(None);
    };
    Ok(directory::staff_by_id(conn, &staff_id)?
        .filter(|s| s.active)
        .map(|s| (s, csrf)))
}

pub fn end(conn: &mut DbConnection, token: &str) -> AppResult<()> {
    diesel::delete(sessions::table.find(hash_token(token))).execute(conn)?;
    Ok(())
}

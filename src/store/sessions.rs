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

/// Sets a password and ends every session of its owner (whoever knew the old password may be
/// signed in with it).
pub fn set_password(conn: &mut DbConnection, staff_id: &str, password: &str) -> AppResult<()> {
    let hash = hash_password(password)?;
    store_password(conn, staff_id, &hash, None)
}

/// Why a new password will not do, if it will not.
pub fn check_new_password(password: &str) -> AppResult<()> {
    if password.chars().count() < 10 {
        return Err(AppError::Unprocessable(
            "a password needs at least 10 characters".into(),
        ));
    }
    Ok(())
}

/// The argon2 hash of a new password, or why it will not do. Slow on purpose: call it off
/// the async runtime and outside a transaction when you can.
pub fn hash_password(password: &str) -> AppResult<String> {
    check_new_password(password)?;
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AppError::Internal(format!("argon2: {e}")))?
        .to_string())
}

/// Stores a password hash, ends every session of its owner but `keep` (the session that
/// changed it, if any), and lifts any sign-in lockout of their account.
pub fn store_password(
    conn: &mut DbConnection,
    staff_id: &str,
    hash: &str,
    keep: Option<&str>,
) -> AppResult<()> {
    let n = diesel::update(staff::table.find(staff_id))
        .set(staff::password_hash.eq(Some(hash)))
        .execute(conn)?;
    if n == 0 {
        return Err(AppError::NotFound(format!("no member of staff {staff_id}")));
    }
    end_sessions(conn, staff_id, keep)?;
    // A new password lifts a lockout: the way back for someone locked out by another's guesses.
    let email: Option<String> = staff::table
        .find(staff_id)
        .select(staff::email)
        .get_result(conn)?;
    if let Some(e) = email {
        super::throttle::clear(conn, &super::throttle::Bucket::account(&e, 0))?;
    }
    Ok(())
}

/// The member of staff an email signs in as and their password hash: None for an unknown
/// or inactive email, or one with no password set.
pub fn password_of(conn: &mut DbConnection, email: &str) -> AppResult<Option<(String, String)>> {
    let row: Option<(String, Option<String>)> = staff::table
        .filter(staff::email.eq(email.trim()))
        .filter(staff::active.eq(true))
        .select((staff::id, staff::password_hash))
        .get_result(conn)
        .optional()?;
    Ok(row.and_then(|(id, hash)| hash.map(|h| (id, h))))
}

/// A hash no password matches, checked when an email has no password, so that an unknown
/// email takes as long to refuse as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(random_token().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Whether the password matches the hash; with no hash, the same work against a dummy one
/// and false. Slow on purpose (argon2): call it off the async runtime and the database.
pub fn verify_password(hash: Option<&str>, password: &str) -> bool {
    let (hash, real) = match hash {
        Some(h) => (h, true),
        None => (dummy_hash(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    real && matches
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
            sessions::last_seen_at.eq(Some(to_db(now))),
        ))
        .execute(conn)?;
    Ok((token, csrf))
}

/// How often a live session's last use is written down: the idle timeout is counted in
/// minutes, and a write on every request would cost every request.
const TOUCH_EVERY_SECONDS: i64 = 60;

/// The signed-in member of staff and the session's CSRF token, if the session is live: not
/// past its end, not idle for `idle` or longer, and its owner still active.
pub fn find(
    conn: &mut DbConnection,
    token: &str,
    now: DateTime<Utc>,
    idle: std::time::Duration,
) -> AppResult<Option<(Staff, String)>> {
    let idle = Duration::from_std(idle).unwrap_or(Duration::hours(SESSION_HOURS));
    let key = hash_token(token);
    let row: Option<(String, String, Option<chrono::NaiveDateTime>)> = sessions::table
        .find(&key)
        .filter(sessions::expires_at.gt(to_db(now)))
        .filter(sessions::last_seen_at.gt(to_db(now - idle)))
        .select((sessions::staff_id, sessions::csrf, sessions::last_seen_at))
        .get_result(conn)
        .optional()?;
    let Some((staff_id, csrf, seen)) = row else {
        return Ok(None);
    };
    if seen.is_none_or(|s| s < to_db(now - Duration::seconds(TOUCH_EVERY_SECONDS))) {
        diesel::update(sessions::table.find(&key))
            .set(sessions::last_seen_at.eq(Some(to_db(now))))
            .execute(conn)?;
    }
    Ok(directory::staff_by_id(conn, &staff_id)?
        .filter(|s| s.active)
        .map(|s| (s, csrf)))
}

pub fn end(conn: &mut DbConnection, token: &str) -> AppResult<()> {
    diesel::delete(sessions::table.find(hash_token(token))).execute(conn)?;
    Ok(())
}

/// Ends every session of a member of staff, but the one whose token is `keep`.
pub fn end_sessions(
    conn: &mut DbConnection,
    staff_id: &str,
    keep: Option<&str>,
) -> AppResult<usize> {
    let keep = keep.map(hash_token).unwrap_or_default();
    Ok(diesel::delete(
        sessions::table
            .filter(sessions::staff_id.eq(staff_id))
            .filter(sessions::token_hash.ne(keep)),
    )
    .execute(conn)?)
}

//! Sign-in through the trust's identity provider: a person's provider account (issuer +
//! subject) bound to their staff record, and the sign-ins on their way through the provider.
use super::directory::{self, hash_token, Staff};
use super::schema::{identity_bindings, sign_in_attempts, staff};
use super::sessions::random_token;
use super::{new_id, to_db, DbConnection};
use crate::error::AppResult;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

/// How long a person has to get through the provider's pages.
pub const ATTEMPT_MINUTES: i64 = 10;

/// What the callback needs of a sign-in it started.
pub struct Attempt {
    pub nonce: String,
    pub pkce_verifier: String,
    pub next_path: String,
}

/// Remembers a sign-in sent to the provider, under its `state`.
pub fn start_attempt(
    conn: &mut DbConnection,
    state: &str,
    attempt: &Attempt,
    now: DateTime<Utc>,
) -> AppResult<()> {
    diesel::delete(sign_in_attempts::table.filter(sign_in_attempts::expires_at.le(to_db(now))))
        .execute(conn)?;
    diesel::insert_into(sign_in_attempts::table)
        .values((
            sign_in_attempts::state_hash.eq(hash_token(state)),
            sign_in_attempts::nonce.eq(&attempt.nonce),
            sign_in_attempts::pkce_verifier.eq(&attempt.pkce_verifier),
            sign_in_attempts::next_path.eq(&attempt.next_path),
            sign_in_attempts::created_at.eq(to_db(now)),
            sign_in_attempts::expires_at.eq(to_db(now + Duration::minutes(ATTEMPT_MINUTES))),
        ))
        .execute(conn)?;
    Ok(())
}

/// The sign-in started under `state`, used up: a second callback with it finds nothing.
pub fn take_attempt(
    conn: &mut DbConnection,
    state: &str,
    now: DateTime<Utc>,
) -> AppResult<Option<Attempt>> {
    let key = hash_token(state);
    let row: Option<(String, String, String)> = sign_in_attempts::table
        .find(&key)
        .filter(sign_in_attempts::expires_at.gt(to_db(now)))
        .select((
            sign_in_attempts::nonce,
            sign_in_attempts::pkce_verifier,
            sign_in_attempts::next_path,
        ))
        .get_result(conn)
        .optional()?;
    let gone = diesel::delete(sign_in_attempts::table.find(&key)).execute(conn)?;
    Ok(row
        .filter(|_| gone == 1)
        .map(|(nonce, pkce_verifier, next_path)| Attempt {
            nonce,
            pkce_verifier,
            next_path,
        }))
}

/// The member of staff a provider account is bound to.
pub fn staff_by_identity(
    conn: &mut DbConnection,
    issuer: &str,
    subject: &str,
) -> AppResult<Option<Staff>> {
    let id: Option<String> = identity_bindings::table
        .find((issuer, subject))
        .select(identity_bindings::staff_id)
        .get_result(conn)
        .optional()?;
    match id {
        Some(id) => directory::staff_by_id(conn, &id),
        None => Ok(None),
    }
}

/// The staff record a claim names: by email (ignoring case) or by SDS user id. None when no
/// record, or more than one, matches.
pub fn staff_by_claim(
    conn: &mut DbConnection,
    by_sds_user_id: bool,
    value: &str,
) -> AppResult<Option<Staff>> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let ids: Vec<String> = if by_sds_user_id {
        staff::table
            .filter(staff::sds_user_id.eq(value))
            .select(staff::id)
            .load(conn)?
    } else {
        let lower = value.to_lowercase();
        staff::table
            .filter(staff::email.is_not_null())
            .select((staff::id, staff::email))
            .load::<(String, Option<String>)>(conn)?
            .into_iter()
            .filter(|(_, e)| e.as_deref().is_some_and(|e| e.to_lowercase() == lower))
            .map(|(id, _)| id)
            .collect()
    };
    match ids.as_slice() {
        [id] => directory::staff_by_id(conn, id),
        _ => Ok(None),
    }
}

/// Binds a provider account to a staff record (first sign-in).
pub fn bind(
    conn: &mut DbConnection,
    issuer: &str,
    subject: &str,
    staff_id: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    diesel::insert_into(identity_bindings::table)
        .values((
            identity_bindings::issuer.eq(issuer),
            identity_bindings::subject.eq(subject),
            identity_bindings::staff_id.eq(staff_id),
            identity_bindings::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// A staff record for someone the provider vouches for, with no permissions until an admin
/// grants them. Its API token is random and never shown.
pub fn add_unprivileged(
    conn: &mut DbConnection,
    name: &str,
    email: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<Staff> {
    let id = new_id();
    let name: String = name.trim().chars().take(200).collect();
    let name = if name.is_empty() {
        "New member of staff".to_string()
    } else {
        name
    };
    let email = email.map(str::trim).filter(|e| e.contains('@'));
    diesel::insert_into(staff::table)
        .values((
            staff::id.eq(&id),
            staff::name.eq(&name),
            staff::email.eq(email),
            staff::permissions.eq(""),
            staff::token_hash.eq(hash_token(&random_token())),
            staff::active.eq(true),
            staff::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(Staff {
        id,
        name,
        email: email.map(str::to_string),
        roles: Vec::new(),
        active: true,
    })
}

/// Replaces a member of staff's permissions (an admin's grant, or the provider's claim).
pub fn set_permissions(
    conn: &mut DbConnection,
    staff_id: &str,
    permissions: &[crate::domain::Permission],
) -> AppResult<()> {
    let mut list = permissions.to_vec();
    list.sort();
    list.dedup();
    diesel::update(staff::table.find(staff_id))
        .set(staff::permissions.eq(crate::domain::staff::format_permissions(&list)))
        .execute(conn)?;
    Ok(())
}

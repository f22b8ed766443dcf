//! Sign-in throttling. Every attempt is counted before its password is checked, per account
//! and per client address, so that parallel guesses cannot slip past the limit; a success
//! takes its own count back. A bucket that reaches its limit within the window is locked
//! until the window ends. Kept in the database, so that every instance counts together
//! and a restart forgets nothing.
use super::schema::sign_in_throttle;
use super::{from_db, to_db, DbConnection};
use crate::error::AppResult;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;

/// A counter: its key (`account:<email>` or `address:<ip>`) and how many attempts it allows.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub key: String,
    pub limit: i32,
}

impl Bucket {
    /// Keyed by the email as typed (trimmed, lower case), whether or not anyone has it, so
    /// that a lockout says nothing about which emails exist.
    pub fn account(email: &str, limit: i32) -> Bucket {
        Bucket {
            key: format!("account:{}", email.trim().to_lowercase()),
            limit,
        }
    }

    pub fn address(address: &str, limit: i32) -> Bucket {
        Bucket {
            key: format!("address:{address}"),
            limit,
        }
    }
}

type Row = (i32, NaiveDateTime, Option<NaiveDateTime>);

fn load(conn: &mut DbConnection, key: &str) -> AppResult<Option<Row>> {
    Ok(sign_in_throttle::table
        .find(key)
        .select((
            sign_in_throttle::failures,
            sign_in_throttle::window_start,
            sign_in_throttle::locked_until,
        ))
        .get_result(conn)
        .optional()?)
}

/// How long until every locked bucket among these opens again, if any is locked now.
pub fn locked_for(
    conn: &mut DbConnection,
    buckets: &[Bucket],
    now: DateTime<Utc>,
) -> AppResult<Option<Duration>> {
    let mut longest: Option<Duration> = None;
    for b in buckets {
        if let Some((_, _, Some(until))) = load(conn, &b.key)? {
            let left = from_db(until) - now;
            if left > Duration::zero() && longest.is_none_or(|l| left > l) {
                longest = Some(left);
            }
        }
    }
    Ok(longest)
}

/// Counts one attempt in each bucket (a window older than `window` starts afresh). Returns
/// the buckets this attempt filled to their limit: they are locked from now on.
pub fn attempt(
    conn: &mut DbConnection,
    buckets: &[Bucket],
    window: Duration,
    now: DateTime<Utc>,
) -> AppResult<Vec<String>> {
    let mut filled = Vec::new();
    for b in buckets {
        let (failures, start) = match load(conn, &b.key)? {
            Some((n, start, _)) if from_db(start) + window > now => (n + 1, from_db(start)),
            _ => (1, now),
        };
        let locked_until = (failures >= b.limit).then(|| to_db(start + window));
        if failures == b.limit {
            filled.push(b.key.clone());
        }
        let values = (
            sign_in_throttle::failures.eq(failures),
            sign_in_throttle::window_start.eq(to_db(start)),
            sign_in_throttle::locked_until.eq(locked_until),
        );
        let n = diesel::update(sign_in_throttle::table.find(&b.key))
            .set(values)
            .execute(conn)?;
        if n == 0 {
            // A savepoint, so that losing an insert race to another instance leaves this
            // transaction usable (PostgreSQL aborts a transaction on any failed statement).
            let inserted = conn.transaction(|c| {
                diesel::insert_into(sign_in_throttle::table)
                    .values((sign_in_throttle::bucket.eq(&b.key), values))
                    .execute(c)
            });
            if inserted.is_err() {
                diesel::update(sign_in_throttle::table.find(&b.key))
                    .set(sign_in_throttle::failures.eq(sign_in_throttle::failures + 1))
                    .execute(conn)?;
            }
        }
    }
    Ok(filled)
}

/// A successful sign-in: the account starts afresh, and the address's count of this attempt
/// is taken back (many people sign in from one ward computer).
pub fn succeeded(conn: &mut DbConnection, account: &Bucket, address: &Bucket) -> AppResult<()> {
    clear(conn, account)?;
    diesel::update(
        sign_in_throttle::table
            .find(&address.key)
            .filter(sign_in_throttle::failures.gt(0)),
    )
    .set(sign_in_throttle::failures.eq(sign_in_throttle::failures - 1))
    .execute(conn)?;
    Ok(())
}

/// Starts a bucket afresh: its owner proved who they are.
pub fn clear(conn: &mut DbConnection, bucket: &Bucket) -> AppResult<()> {
    diesel::delete(sign_in_throttle::table.find(&bucket.key)).execute(conn)?;
    Ok(())
}

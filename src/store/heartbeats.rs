//! What the service's own loops last did: one row per name, overwritten by whichever
//! instance did it last, with a running count.
use super::schema::{heartbeats, outbox, tasks};
use super::sql::{on_backend, Sql};
use super::{from_db, to_db, DbConnection};
use crate::domain::delivery::Delivery;
use crate::domain::Status;
use crate::error::AppResult;
use crate::store::stamp::Stamp;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

/// The escalation tick ran.
pub const TICK: &str = "escalation-tick";
/// The escalation auditor repaired tasks (the count is of tasks repaired, ever).
pub const REPAIRS: &str = "escalation-repairs";

/// Records that `name` happened at `at`, adding `add` to its count.
pub fn beat(
    conn: &mut DbConnection,
    name: &str,
    at: DateTime<Utc>,
    instance: &str,
    add: i64,
) -> AppResult<()> {
    // Portable upsert: both SQLite (3.24+) and PostgreSQL take ON CONFLICT … DO UPDATE.
    const BEAT: &str = "INSERT INTO heartbeats (name, at, instance, count) VALUES (?, ?, ?, ?) \
         ON CONFLICT (name) DO UPDATE SET at = excluded.at, instance = excluded.instance, \
         count = heartbeats.count + excluded.count";
    on_backend!(conn, |c| Sql::new(BEAT)
        .bind::<Text, _>(name)
        .bind::<Stamp, _>(to_db(at))
        .bind::<Text, _>(instance)
        .bind::<BigInt, _>(add)
        .execute(c)?);
    Ok(())
}

/// When `name` last happened, and its count.
pub fn last(conn: &mut DbConnection, name: &str) -> AppResult<Option<(DateTime<Utc>, i64)>> {
    let row: Option<(NaiveDateTime, i64)> = heartbeats::table
        .find(name)
        .select((heartbeats::at, heartbeats::count))
        .get_result(conn)
        .optional()?;
    Ok(row.map(|(at, n)| (from_db(at), n)))
}

/// The due time of the longest-waiting delivery not yet sent (waiting to be sent, or
/// claimed by an instance: a claim whose instance died is still waiting).
pub fn oldest_waiting_delivery(conn: &mut DbConnection) -> AppResult<Option<DateTime<Utc>>> {
    let at: Option<NaiveDateTime> = outbox::table
        .filter(outbox::status.eq_any([Delivery::Pending.code(), Delivery::Sending.code()]))
        .select(diesel::dsl::min(outbox::due_at))
        .get_result(conn)?;
    Ok(at.map(from_db))
}

/// When the task longest due to escalate fell due (only open, unacknowledged tasks have a
/// next escalation time). The first in `tasks_by_escalation` (status, then that time).
pub fn oldest_due_escalation(conn: &mut DbConnection) -> AppResult<Option<DateTime<Utc>>> {
    let at: Option<NaiveDateTime> = tasks::table
        .filter(tasks::status.eq(Status::Requested.code()))
        .filter(tasks::next_escalation_at.is_not_null())
        .order(tasks::next_escalation_at.asc())
        .select(tasks::next_escalation_at.assume_not_null())
        .first(conn)
        .optional()?;
    Ok(at.map(from_db))
}

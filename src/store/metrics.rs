//! What `/metrics` reads from the database at scrape time: every figure is worked out from
//! the rows themselves, so each instance behind a load balancer reports the same.
use super::heartbeats::{self, REPAIRS, TICK};
use super::schema::{outbox, task_events, tasks};
use super::{from_db, to_db, DbConnection};
use crate::domain::delivery::Delivery;
use crate::error::AppResult;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;

/// The database's side of a scrape.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    /// (priority, ward, seconds from raised to acknowledged) for every task acknowledged
    /// in the last 24 hours.
    pub acknowledgements: Vec<(String, String, i64)>,
    /// `escalated` events ever written.
    pub escalations: i64,
    /// Tasks the escalation auditor repaired, ever.
    pub repairs: i64,
    /// Outbox rows by (kind, status).
    pub deliveries: Vec<(String, String, i64)>,
    /// The due time of the longest-waiting row not yet sent.
    pub oldest_due: Option<DateTime<Utc>>,
    /// When the escalation tick last ran (on any instance).
    pub last_tick: Option<DateTime<Utc>>,
}

/// Rows that wait to be sent: due, being retried, or claimed by an instance.
pub const WAITING: [Delivery; 3] = [Delivery::Pending, Delivery::Failing, Delivery::Sending];

pub fn read(conn: &mut DbConnection, now: DateTime<Utc>) -> AppResult<Readings> {
    let since = to_db(now - Duration::hours(24));
    let acks: Vec<(String, String, NaiveDateTime, NaiveDateTime)> = tasks::table
        .filter(tasks::acknowledged_at.ge(since))
        .select((
            tasks::priority,
            tasks::ward,
            tasks::raised_at,
            tasks::acknowledged_at.assume_not_null(),
        ))
        .load(conn)?;
    let escalations: i64 = task_events::table
        .filter(super::events::escalated())
        .count()
        .get_result(conn)?;
    let deliveries: Vec<(String, String, i64)> = outbox::table
        .group_by((outbox::kind, outbox::status))
        .select((outbox::kind, outbox::status, diesel::dsl::count_star()))
        .load(conn)?;
    let oldest_due: Option<NaiveDateTime> = outbox::table
        .filter(outbox::status.eq_any(WAITING.map(Delivery::code)))
        .select(diesel::dsl::min(outbox::due_at))
        .get_result(conn)?;
    Ok(Readings {
        acknowledgements: acks
            .into_iter()
            .map(|(p, w, raised, acked)| (p, w, (acked - raised).num_seconds().max(0)))
            .collect(),
        escalations,
        repairs: heartbeats::last(conn, REPAIRS)?.map_or(0, |(_, n)| n),
        deliveries,
        oldest_due: oldest_due.map(from_db),
        last_tick: heartbeats::last(conn, TICK)?.map(|(at, _)| at),
    })
}

//! The record outbox's rows: one per version of a task the patient record should hold,
//! written in the transaction of the change that makes it so.
use super::outbox::Outbox;
use super::schema::record_deliveries as rd;
use super::{from_db, new_id, to_db, DbConnection};
use crate::domain::coded_enum;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

coded_enum!(
    /// Where a delivery to the record is in its life.
    RecordStatus, "record delivery status" {
        Pending => "pending",
        Sending => "sending",
        Delivered => "delivered",
        Failed => "failed",
    }
);

/// Queues a version of a task for the record, in the transaction that made that version.
pub fn enqueue(
    conn: &mut DbConnection,
    task_id: &str,
    task_version: i64,
    now: DateTime<Utc>,
) -> AppResult<()> {
    diesel::insert_into(rd::table)
        .values((
            rd::id.eq(new_id()),
            rd::task_id.eq(task_id),
            rd::task_version.eq(task_version),
            rd::status.eq(RecordStatus::Pending.code()),
            rd::attempts.eq(0),
            rd::due_at.eq(to_db(now)),
            rd::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = rd)]
pub struct DeliveryRow {
    pub id: String,
    pub task_id: String,
    pub task_version: i64,
    pub status: String,
    pub attempts: i32,
    pub due_at: NaiveDateTime,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

/// The record outbox. A row marked `failed` is still waiting: it is retried at the longest
/// back-off until it is delivered.
pub const OUTBOX: Outbox = Outbox {
    table: "record_deliveries",
    waiting: "'pending', 'failed'",
    columns: "id, task_id, task_version, status, attempts, due_at, lease_owner, lease_until, \
              last_error, created_at, delivered_at",
};

/// Claims up to `limit` rows ready to send for `owner`, the longest due first: of several
/// instances, each row goes to one.
pub fn claim_due(
    conn: &mut DbConnection,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> AppResult<Vec<DeliveryRow>> {
    let mut rows: Vec<DeliveryRow> = OUTBOX.claim(conn, owner, now, lease_until, limit)?;
    rows.sort_by_key(|r| r.due_at);
    Ok(rows)
}

/// What happened to one attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered,
    /// Not delivered; try again at `at`. `failed` marks a row that needs someone's attention.
    Retry {
        at: DateTime<Utc>,
        error: String,
        failed: bool,
    },
}

/// Records an attempt's outcome, if this instance still holds the lease.
pub fn record(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let target = rd::table
        .filter(rd::id.eq(id))
        .filter(rd::status.eq(RecordStatus::Sending.code()))
        .filter(rd::lease_owner.eq(owner));
    let n = match outcome {
        Outcome::Delivered => diesel::update(target)
            .set((
                rd::status.eq(RecordStatus::Delivered.code()),
                rd::delivered_at.eq(Some(to_db(now))),
                rd::lease_until.eq(None::<NaiveDateTime>),
                rd::last_error.eq(None::<String>),
            ))
            .execute(conn)?,
        Outcome::Retry { at, error, failed } => {
            let status = if *failed {
                RecordStatus::Failed
            } else {
                RecordStatus::Pending
            };
            diesel::update(target)
                .set((
                    rd::status.eq(status.code()),
                    rd::due_at.eq(to_db(*at)),
                    rd::lease_until.eq(None::<NaiveDateTime>),
                    rd::last_error.eq(Some(error)),
                ))
                .execute(conn)?
        }
    };
    Ok(n == 1)
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    pub id: String,
    pub task_id: String,
    pub task_version: i64,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Deliveries in the given states (all states when empty), oldest first.
pub fn list(
    conn: &mut DbConnection,
    statuses: &[RecordStatus],
    limit: i64,
) -> AppResult<Vec<DeliveryView>> {
    let mut q = rd::table.select(DeliveryRow::as_select()).into_boxed();
    if !statuses.is_empty() {
        q = q.filter(rd::status.eq_any(statuses.iter().map(|s| s.code())));
    }
    let rows: Vec<DeliveryRow> = q
        .order((rd::created_at.asc(), rd::id.asc()))
        .limit(limit)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| DeliveryView {
            next_attempt_at: (r.status != RecordStatus::Delivered.code())
                .then(|| from_db(r.due_at)),
            id: r.id,
            task_id: r.task_id,
            task_version: r.task_version,
            status: r.status,
            attempts: r.attempts,
            last_error: r.last_error,
            created_at: from_db(r.created_at),
            delivered_at: r.delivered_at.map(from_db),
        })
        .collect())
}

/// Is this a status a caller may filter by?
pub fn parse_statuses(text: &str) -> Result<Vec<RecordStatus>, AppError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| RecordStatus::parse(s).map_err(|e| AppError::BadRequest(format!("status: {e}"))))
        .collect()
}

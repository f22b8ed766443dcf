//! What the outbox shows people: a task's notifications, failed deliveries, and the
//! deliveries to the patient record.
use super::outbox::Row;
use super::schema::outbox;
use super::{directory, from_db, DbConnection};
use crate::domain::coded_enum;
use crate::domain::delivery::{Delivery, Kind};
use crate::domain::timeline::Person;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: String,
    pub task_id: String,
    pub level: i32,
    pub recipient: Person,
    pub channel: String,
    pub status: String,
    pub attempts: i32,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// For a push: the devices that said they showed it, and when.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shown_on: Vec<super::receipts::ShownOn>,
}

/// Notifications (the deliveries that chase a person) of one task, or (task None) across
/// tasks filtered by status; newest first.
pub fn notifications(
    conn: &mut DbConnection,
    task_id: Option<&str>,
    status: Option<Delivery>,
    limit: i64,
) -> AppResult<Vec<NotificationView>> {
    let chasing: Vec<&str> = Kind::ALL
        .iter()
        .filter(|k| k.chases_a_person())
        .map(|k| k.code())
        .collect();
    let mut q = outbox::table
        .select(Row::as_select())
        .filter(outbox::kind.eq_any(chasing))
        .into_boxed();
    if let Some(t) = task_id {
        q = q.filter(outbox::task_id.eq(t.to_string()));
    }
    if let Some(s) = status {
        q = q.filter(outbox::status.eq(s.code()));
    }
    let rows: Vec<Row> = q
        .order((outbox::created_at.desc(), outbox::id.desc()))
        .limit(limit)
        .load(conn)?;
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.recipient_id.as_deref())
        .collect();
    let names = directory::staff_names(conn, &ids)?;
    let pushes: Vec<&str> = rows
        .iter()
        .filter(|r| r.kind == Kind::Push.code() && r.status == Delivery::Sent.code())
        .map(|r| r.id.as_str())
        .collect();
    let mut shown = super::receipts::shown_on(conn, &pushes)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let id = r.recipient_id.unwrap_or_default();
            NotificationView {
                shown_on: shown.remove(&r.id).unwrap_or_default(),
                recipient: Person {
                    name: names.get(&id).cloned().unwrap_or_default(),
                    id,
                },
                id: r.id,
                task_id: r.task_id,
                level: r.level,
                channel: r.kind,
                status: r.status,
                attempts: r.attempts,
                due_at: from_db(r.due_at),
                created_at: from_db(r.created_at),
                sent_at: r.sent_at.map(from_db),
                last_error: r.last_error,
            }
        })
        .collect())
}

coded_enum!(
    /// Where a delivery to the record is, in the words of `/api/v1/record-deliveries`.
    RecordStatus, "record delivery status" {
        Pending => "pending",
        Sending => "sending",
        Delivered => "delivered",
        Failed => "failed",
    }
);

impl RecordStatus {
    /// The outbox status it names: a record delivery that keeps failing is `failing` (it
    /// is still retried), and shown as failed.
    fn stored(self) -> Delivery {
        match self {
            RecordStatus::Pending => Delivery::Pending,
            RecordStatus::Sending => Delivery::Sending,
            RecordStatus::Delivered => Delivery::Sent,
            RecordStatus::Failed => Delivery::Failing,
        }
    }

    fn shown(stored: &str) -> &str {
        RecordStatus::ALL
            .iter()
            .find(|s| s.stored().code() == stored)
            .map_or(stored, |s| s.code())
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub task_id: String,
    pub task_version: i64,
    pub destination: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Deliveries to the record in the given states (all states when empty), oldest first.
pub fn records(
    conn: &mut DbConnection,
    statuses: &[RecordStatus],
    limit: i64,
) -> AppResult<Vec<DeliveryView>> {
    let mut q = outbox::table
        .select(Row::as_select())
        .filter(outbox::kind.eq(Kind::Record.code()))
        .into_boxed();
    if !statuses.is_empty() {
        q = q.filter(outbox::status.eq_any(statuses.iter().map(|s| s.stored().code())));
    }
    let rows: Vec<Row> = q
        .order((outbox::created_at.asc(), outbox::id.asc()))
        .limit(limit)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| DeliveryView {
            next_attempt_at: (r.status != Delivery::Sent.code()).then(|| from_db(r.due_at)),
            status: RecordStatus::shown(&r.status).to_string(),
            id: r.id,
            task_id: r.task_id,
            task_version: r.task_version,
            destination: r.destination,
            attempts: r.attempts,
            last_error: r.last_error,
            created_at: from_db(r.created_at),
            delivered_at: r.sent_at.map(from_db),
        })
        .collect())
}

/// The statuses a caller asks to see, e.g. `pending,failed`.
pub fn parse_statuses(text: &str) -> Result<Vec<RecordStatus>, AppError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| RecordStatus::parse(s).map_err(|e| AppError::BadRequest(format!("status: {e}"))))
        .collect()
}

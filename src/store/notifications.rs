//! The outbox: the one place notifications are enqueued, claimed, and their outcome recorded.
use super::directory::{self, Role};
use super::outbox::{Outbox, BY_ID};
use super::schema::{notifications, push_subscriptions, staff};
use super::sql::{insert_rows, load_by_ids, on_backend, IdRow, Sql};
use super::tasks::{Assignee, Task};
use super::{from_db, new_id, to_db, DbConnection};
use crate::domain::notification::{Channel, Delivery};
use crate::error::{AppError, AppResult};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

/// The roles a task escalates through after its assignee, in order. For a task assigned to a
/// role that is the role's chain; for one assigned to a person, the fallback role and its chain.
pub fn escalation_roles(
    conn: &mut DbConnection,
    task: &Task,
    fallback_role: Option<&str>,
) -> AppResult<Vec<Role>> {
    let (start, skip_first) = match &task.assignee {
        Assignee::Role(r) => (Some(directory::role_by_id(conn, r)?), true),
        Assignee::Staff(_) => match fallback_role {
            Some(name) => (directory::find_role(conn, name)?, false),
            None => (None, false),
        },
    };
    let mut chain = Vec::new();
    let mut next = start;
    while let Some(role) = next {
        if chain.iter().any(|r: &Role| r.id == role.id) || chain.len() >= 16 {
            break;
        }
        next = match &role.escalates_to {
            Some(id) => Some(directory::role_by_id(conn, id)?),
            None => None,
        };
        chain.push(role);
    }
    if skip_first && !chain.is_empty() {
        chain.remove(0);
    }
    Ok(chain)
}

/// Whoever the task is for right now: its assignee, or every current holder of its role.
pub fn first_recipients(conn: &mut DbConnection, task: &Task) -> AppResult<Vec<String>> {
    match &task.assignee {
        Assignee::Staff(s) => Ok(vec![s.clone()]),
        Assignee::Role(r) => directory::current_holders(conn, r),
    }
}

/// Everyone reached at `level`: the first recipients and the holders of every role of the
/// chain reached so far.
pub fn recipients(
    conn: &mut DbConnection,
    task: &Task,
    level: i32,
    chain: &[Role],
) -> AppResult<Vec<String>> {
    let mut out = first_recipients(conn, task)?;
    for role in chain.iter().take(level.max(0) as usize) {
        for h in directory::current_holders(conn, &role.id)? {
            if !out.contains(&h) {
                out.push(h);
            }
        }
    }
    Ok(out)
}

/// A recipient who can be reached: active, with their email address if they have one.
#[derive(Debug, Clone)]
pub struct Addressee {
    pub id: String,
    pub email: Option<String>,
}

/// The active members of staff among `ids`, in the order given.
pub fn addresses(conn: &mut DbConnection, ids: &[String]) -> AppResult<Vec<Addressee>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(QueryableByName)]
    #[diesel(table_name = staff)]
    struct Row {
        id: String,
        email: Option<String>,
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let rows: Vec<Row> = load_by_ids(
        conn,
        "SELECT id, email FROM staff WHERE active AND id IN IDS",
        &refs,
    )?;
    let found: std::collections::HashMap<String, Option<String>> =
        rows.into_iter().map(|r| (r.id, r.email)).collect();
    Ok(ids
        .iter()
        .filter_map(|id| {
            found.get(id).map(|email| Addressee {
                id: id.clone(),
                email: email.clone(),
            })
        })
        .collect())
}

/// One outbox row to write.
#[derive(Insertable)]
#[diesel(table_name = notifications, treat_none_as_default_value = false)]
pub struct NewNotification {
    id: String,
    dedupe_key: String,
    task_id: String,
    level: i32,
    recipient_id: String,
    channel: &'static str,
    status: &'static str,
    attempts: i32,
    due_at: NaiveDateTime,
    created_at: NaiveDateTime,
}

/// The outbox rows for a task's current version and level: one per recipient and channel
/// (email only for those with an address). The key includes the task's version, which
/// exactly one transaction produced, so each (task, level, recipient, channel) is enqueued
/// once even with several instances running; the key is unique in the table besides.
pub fn outbox_rows(
    task: &Task,
    to: &[Addressee],
    email: bool,
    now: DateTime<Utc>,
    into: &mut Vec<NewNotification>,
) {
    for a in to {
        let mut channels = vec![Channel::Push];
        if email && a.email.is_some() {
            channels.push(Channel::Email);
        }
        for ch in channels {
            into.push(NewNotification {
                id: new_id(),
                dedupe_key: format!(
                    "{}:{}:{}:{}:{}",
                    task.id, task.version, task.escalation_level, a.id, ch
                ),
                task_id: task.id.clone(),
                level: task.escalation_level,
                recipient_id: a.id.clone(),
                channel: ch.code(),
                status: Delivery::Pending.code(),
                attempts: 0,
                due_at: to_db(now),
                created_at: to_db(now),
            });
        }
    }
}

/// Writes outbox rows, many to a statement.
pub fn insert_outbox(conn: &mut DbConnection, rows: &[NewNotification]) -> AppResult<usize> {
    Ok(insert_rows!(conn, notifications::table, rows))
}

/// Enqueues a task's notifications to these recipients, in the caller's transaction.
pub fn enqueue(
    conn: &mut DbConnection,
    task: &Task,
    recipient_ids: &[String],
    email: bool,
    now: DateTime<Utc>,
) -> AppResult<usize> {
    let to = addresses(conn, recipient_ids)?;
    let mut rows = Vec::new();
    outbox_rows(task, &to, email, now, &mut rows);
    insert_outbox(conn, &rows)
}

/// Why a notification was not sent after all.
const NO_LONGER_NEEDED: &str = "the task no longer needs this notification";

/// Stops what has not gone out yet: the task no longer needs anyone's attention.
pub fn cancel_pending(conn: &mut DbConnection, task_id: &str) -> AppResult<usize> {
    use diesel::sql_types::Text;
    // By hand so that it is prepared once per connection (see `store::sql`).
    const CANCEL: &str = "UPDATE notifications SET status = ?, last_error = ? \
                          WHERE task_id = ? AND status = ?";
    let (cancelled, pending) = (Delivery::Cancelled.code(), Delivery::Pending.code());
    Ok(on_backend!(conn, |c| Sql::new(CANCEL)
        .bind::<Text, _>(cancelled)
        .bind::<Text, _>(NO_LONGER_NEEDED)
        .bind::<Text, _>(task_id)
        .bind::<Text, _>(pending)
        .execute(c)?))
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = notifications)]
pub struct NotificationRow {
    pub id: String,
    pub task_id: String,
    pub level: i32,
    pub recipient_id: String,
    pub channel: String,
    pub status: String,
    pub attempts: i32,
    pub due_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
}

/// The notifications outbox.
pub const OUTBOX: Outbox = Outbox {
    table: "notifications",
    waiting: "'pending'",
    columns: "id, task_id, level, recipient_id, channel, status, attempts, due_at, \
              last_error, created_at, sent_at",
};

/// Claims up to `limit` due rows for `owner` with one conditional update: of several
/// instances, each row goes to one. Returns the rows this call claimed, the longest due
/// first.
pub fn claim_due(
    conn: &mut DbConnection,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> AppResult<Vec<NotificationRow>> {
    let mut rows: Vec<NotificationRow> = OUTBOX.claim(conn, owner, now, lease_until, limit)?;
    rows.sort_by_key(|r| r.due_at);
    Ok(rows)
}

/// What happened to one delivery attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent,
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    Failed {
        error: String,
    },
    /// The task no longer needs it (acknowledged or closed before it went out).
    Cancelled,
}

/// Records that these notifications were sent, in one statement, and returns those whose
/// lease this instance still held (only they are recorded).
pub fn record_sent(
    conn: &mut DbConnection,
    ids: &[&str],
    owner: &str,
    now: DateTime<Utc>,
) -> AppResult<std::collections::HashSet<String>> {
    use diesel::sql_types::{Text, Timestamp};
    // The rows are found by id (`outbox::BY_ID`).
    let record_sent = format!(
        "UPDATE notifications SET status = 'sent', sent_at = ?, \
         lease_until = NULL, last_error = NULL \
         WHERE id IN IDS AND {BY_ID} = 'sending' AND lease_owner = ? RETURNING id"
    );
    let mut held = std::collections::HashSet::new();
    for chunk in ids.chunks(1000) {
        let rows: Vec<IdRow> = on_backend!(conn, |c| Sql::with_ids(&record_sent)
            .bind::<Timestamp, _>(to_db(now))
            .bind_ids(chunk)
            .bind::<Text, _>(owner)
            .load(c)?);
        held.extend(rows.into_iter().map(|r| r.id));
    }
    Ok(held)
}

/// Records an attempt's outcome, if this instance still holds the lease.
pub fn record(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    use diesel::sql_types::{Nullable, Text, Timestamp};
    // One statement for every outcome, by hand so that it is prepared once per connection
    // (see `store::sql`). Only the lease holder may record.
    const RECORD: &str = "UPDATE notifications SET status = ?, due_at = coalesce(?, due_at), \
         sent_at = coalesce(?, sent_at), lease_until = NULL, last_error = ? \
         WHERE id = ? AND status = 'sending' AND lease_owner = ?";
    let (status, due_at, sent_at, error): (Delivery, _, _, Option<&str>) = match outcome {
        Outcome::Sent => (Delivery::Sent, None, Some(to_db(now)), None),
        Outcome::Retry { at, error } => (
            Delivery::Pending,
            Some(to_db(*at)),
            None,
            Some(error.as_str()),
        ),
        Outcome::Cancelled => (Delivery::Cancelled, None, None, Some(NO_LONGER_NEEDED)),
        Outcome::Failed { error } => (Delivery::Failed, None, None, Some(error.as_str())),
    };
    let n = on_backend!(conn, |c| Sql::new(RECORD)
        .bind::<Text, _>(status.code())
        .bind::<Nullable<Timestamp>, _>(due_at)
        .bind::<Nullable<Timestamp>, _>(sent_at)
        .bind::<Nullable<Text>, _>(error)
        .bind::<Text, _>(id)
        .bind::<Text, _>(owner)
        .execute(c)?);
    Ok(n == 1)
}

#[derive(Debug, Clone, Serialize)]
pub struct NotificationView {
    pub id: String,
    pub task_id: String,
    pub level: i32,
    pub recipient: super::tasks::Person,
    pub channel: String,
    pub status: String,
    pub attempts: i32,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Notifications of one task, or (task None) across tasks filtered by status; newest first.
pub fn list(
    conn: &mut DbConnection,
    task_id: Option<&str>,
    status: Option<Delivery>,
    limit: i64,
) -> AppResult<Vec<NotificationView>> {
    let mut q = notifications::table
        .select(NotificationRow::as_select())
        .into_boxed();
    if let Some(t) = task_id {
        q = q.filter(notifications::task_id.eq(t.to_string()));
    }
    if let Some(s) = status {
        q = q.filter(notifications::status.eq(s.code()));
    }
    let rows: Vec<NotificationRow> = q
        .order((notifications::created_at.desc(), notifications::id.desc()))
        .limit(limit)
        .load(conn)?;
    let ids: Vec<&str> = rows.iter().map(|r| r.recipient_id.as_str()).collect();
    let names = directory::staff_names(conn, &ids)?;
    Ok(rows
        .into_iter()
        .map(|r| NotificationView {
            recipient: super::tasks::Person {
                name: names.get(&r.recipient_id).cloned().unwrap_or_default(),
                id: r.recipient_id,
            },
            id: r.id,
            task_id: r.task_id,
            level: r.level,
            channel: r.channel,
            status: r.status,
            attempts: r.attempts,
            due_at: from_db(r.due_at),
            created_at: from_db(r.created_at),
            sent_at: r.sent_at.map(from_db),
            last_error: r.last_error,
        })
        .collect())
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = push_subscriptions)]
pub struct Device {
    pub id: String,
    pub staff_id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub user_agent: Option<String>,
    #[serde(skip)]
    pub created_at: NaiveDateTime,
    #[serde(skip)]
    pub last_success_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
}

/// Refuses a new device to someone who already has `max_devices` (renewing one they have is
/// not a new device). Call in the transaction that then calls [`subscribe`].
pub fn room_for_device(
    conn: &mut DbConnection,
    staff_id: &str,
    endpoint: &str,
    max_devices: i64,
) -> AppResult<()> {
    let mine = push_subscriptions::table.filter(push_subscriptions::staff_id.eq(staff_id));
    let renewal: i64 = mine
        .filter(push_subscriptions::endpoint.eq(endpoint))
        .count()
        .get_result(conn)?;
    let registered: i64 = mine.count().get_result(conn)?;
    if renewal == 0 && registered >= max_devices {
        return Err(AppError::conflict(
            format!(
                "you already have {registered} devices registered, the most allowed: remove one \
                 you no longer use (DELETE /api/v1/push-subscriptions/{{id}})"
            ),
            serde_json::Value::Null,
        ));
    }
    Ok(())
}

/// Registers a device, or (the same endpoint again, from the same person) renews its keys.
/// An endpoint registered by someone else is refused, not moved: it may be their phone.
pub fn subscribe(
    conn: &mut DbConnection,
    staff_id: &str,
    endpoint: &str,
    p256dh: &str,
    auth: &str,
    user_agent: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<String> {
    let existing: Option<(String, String)> = push_subscriptions::table
        .filter(push_subscriptions::endpoint.eq(endpoint))
        .select((push_subscriptions::id, push_subscriptions::staff_id))
        .get_result(conn)
        .optional()?;
    if let Some((id, owner)) = existing {
        if owner != staff_id {
            return Err(AppError::conflict(
                "this push endpoint is registered to another member of staff: they (or an admin \
                 deactivating them) must remove it first",
                serde_json::Value::Null,
            ));
        }
        diesel::update(push_subscriptions::table.find(&id))
            .set((
                push_subscriptions::p256dh.eq(p256dh),
                push_subscriptions::auth.eq(auth),
                push_subscriptions::user_agent.eq(user_agent),
                push_subscriptions::last_error.eq(None::<String>),
            ))
            .execute(conn)?;
        return Ok(id);
    }
    let id = new_id();
    diesel::insert_into(push_subscriptions::table)
        .values((
            push_subscriptions::id.eq(&id),
            push_subscriptions::staff_id.eq(staff_id),
            push_subscriptions::endpoint.eq(endpoint),
            push_subscriptions::p256dh.eq(p256dh),
            push_subscriptions::auth.eq(auth),
            push_subscriptions::user_agent.eq(user_agent),
            push_subscriptions::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(id)
}

pub fn devices(conn: &mut DbConnection, staff_id: &str) -> AppResult<Vec<Device>> {
    Ok(push_subscriptions::table
        .filter(push_subscriptions::staff_id.eq(staff_id))
        .order(push_subscriptions::created_at.asc())
        .select(Device::as_select())
        .load(conn)?)
}

/// The registered devices of several members of staff, by staff id.
pub fn devices_of(
    conn: &mut DbConnection,
    staff_ids: &[&str],
) -> AppResult<std::collections::HashMap<String, Vec<Device>>> {
    let mut out: std::collections::HashMap<String, Vec<Device>> = Default::default();
    if staff_ids.is_empty() {
        return Ok(out);
    }
    let rows: Vec<Device> = push_subscriptions::table
        .filter(push_subscriptions::staff_id.eq_any(staff_ids))
        .order(push_subscriptions::created_at.asc())
        .select(Device::as_select())
        .load(conn)?;
    for d in rows {
        out.entry(d.staff_id.clone()).or_default().push(d);
    }
    Ok(out)
}

pub fn unsubscribe(conn: &mut DbConnection, staff_id: &str, id: &str) -> AppResult<()> {
    let n = diesel::delete(
        push_subscriptions::table
            .filter(push_subscriptions::id.eq(id))
            .filter(push_subscriptions::staff_id.eq(staff_id)),
    )
    .execute(conn)?;
    if n == 0 {
        return Err(AppError::NotFound(format!("you have no device {id}")));
    }
    Ok(())
}

/// Forgets every device whose endpoint `refused` says no to; returns how many.
pub fn forget_devices_where(
    conn: &mut DbConnection,
    refused: impl Fn(&str) -> bool,
) -> AppResult<usize> {
    let all: Vec<(String, String)> = push_subscriptions::table
        .select((push_subscriptions::id, push_subscriptions::endpoint))
        .load(conn)?;
    let ids: Vec<&str> = all
        .iter()
        .filter(|(_, endpoint)| refused(endpoint))
        .map(|(id, _)| id.as_str())
        .collect();
    for chunk in ids.chunks(500) {
        diesel::delete(push_subscriptions::table.filter(push_subscriptions::id.eq_any(chunk)))
            .execute(conn)?;
    }
    Ok(ids.len())
}

/// A push service said the subscription is gone (404/410): forget the device.
pub fn forget_device(conn: &mut DbConnection, id: &str) -> AppResult<()> {
    diesel::delete(push_subscriptions::table.find(id)).execute(conn)?;
    Ok(())
}

pub fn device_result(
    conn: &mut DbConnection,
    id: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    use diesel::sql_types::{Text, Timestamp};
    // By hand, so that each is prepared once per connection (see `store::sql`).
    const DELIVERED: &str =
        "UPDATE push_subscriptions SET last_success_at = ?, last_error = NULL WHERE id = ?";
    const FAILED: &str = "UPDATE push_subscriptions SET last_error = ? WHERE id = ?";
    match error {
        None => on_backend!(conn, |c| Sql::new(DELIVERED)
            .bind::<Timestamp, _>(to_db(now))
            .bind::<Text, _>(id)
            .execute(c)?),
        Some(e) => on_backend!(conn, |c| Sql::new(FAILED)
            .bind::<Text, _>(e)
            .bind::<Text, _>(id)
            .execute(c)?),
    };
    Ok(())
}

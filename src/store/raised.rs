//! What a raise writes: the task, its `raised` event and its first notifications.
use super::events::{self, NewEvent};
use super::outbox::{self, NewDelivery};
use super::sql::Sql;
use super::{tasks, to_db, DbConnection};
use crate::domain::Task;
use crate::error::AppResult;
use diesel::sql_types::{Nullable, Text, Timestamp};
use diesel::RunQueryDsl;
use std::sync::LazyLock;

/// Writes a newly raised task, its `raised` event (the task's first: number 1) and its
/// notifications.
///
/// On PostgreSQL outside a transaction (see `Store::whole_then_read`) this is one
/// statement, with no `BEGIN` and `COMMIT`: the task's insert, the event's and the
/// notifications' (`outbox::INSERT_UNNEST`) as parts of one `WITH`, all written or none.
/// The event and the notifications name the task, which the statement itself inserts: the
/// foreign keys are checked at its end. Inside a transaction, and on SQLite, it is the
/// three inserts one by one.
pub fn write(
    conn: &mut DbConnection,
    task: &Task,
    event: NewEvent,
    notifications: &[NewDelivery],
) -> AppResult<()> {
    static ONE_STATEMENT: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH task AS ({}), raised AS (INSERT INTO task_events \
             (task_id, seq, at, actor_id, kind, from_status, to_status, detail) \
             VALUES (?, 1, ?, ?, ?, ?, ?, ?)) {}",
            tasks::INSERT,
            outbox::INSERT_UNNEST
        )
    });
    let alone = !super::in_transaction(conn);
    let c = match conn {
        DbConnection::Pg(c) if alone => c,
        conn => {
            tasks::insert(conn, task)?;
            events::append_event(conn, &task.id, task.raised_at, event)?;
            outbox::insert(conn, notifications)?;
            return Ok(());
        }
    };
    let detail = event.detail.map(|d| d.to_string());
    let sql = tasks::bind_new(Sql::new(ONE_STATEMENT.as_str()), task)
        .bind::<Text, _>(task.id.as_str())
        .bind::<Timestamp, _>(to_db(task.raised_at))
        .bind::<Nullable<Text>, _>(event.actor)
        .bind::<Text, _>(event.kind)
        .bind::<Nullable<Text>, _>(event.from.map(|s| s.code()))
        .bind::<Nullable<Text>, _>(event.to.map(|s| s.code()))
        .bind::<Nullable<Text>, _>(detail.as_deref());
    outbox::bind_rows(sql, notifications).execute(c)?;
    Ok(())
}

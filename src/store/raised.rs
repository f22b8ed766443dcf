//! What a raise writes: the task, its `raised` event and its first notifications.
use super::events::{self, NewEvent, EVENT_VALUES, INSERT_EVENT};
use super::outbox::{self, NewDelivery};
use super::sql::Sql;
use super::{tasks, DbConnection};
use crate::domain::Task;
use crate::error::AppResult;
use diesel::sql_types::Text;
use diesel::RunQueryDsl;
use std::sync::LazyLock;

/// Writes a newly raised task, its `raised` event (the task's first: number 1, see
/// [`NewEvent::raised`]) and its notifications.
///
/// On PostgreSQL outside a transaction (see `Store::whole_then_read`) this is one
/// statement, with no `BEGIN` and `COMMIT`: the task's insert, the event's and the
/// notifications' (`outbox::INSERT_UNNEST`) as parts of one `WITH`, all written or none.
/// The event and the notifications name the task, which the statement itself inserts: the
/// foreign keys are checked at its end. Inside a transaction, and on SQLite, it is the
/// three inserts one by one.
pub fn write(conn: &mut DbConnection, task: &Task, notifications: &[NewDelivery]) -> AppResult<()> {
    static ONE_STATEMENT: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH task AS ({}), raised AS ({INSERT_EVENT} VALUES (?, 1, {EVENT_VALUES})) {}",
            tasks::INSERT,
            outbox::INSERT_UNNEST
        )
    });
    let alone = !super::in_transaction(conn);
    let c = match conn {
        DbConnection::Pg(c) if alone => c,
        conn => {
            tasks::insert(conn, task)?;
            events::insert_event(conn, &task.id, 1, task.raised_at, NewEvent::raised(task))?;
            outbox::insert(conn, notifications)?;
            return Ok(());
        }
    };
    let notifications = outbox::queue(notifications);
    let sql =
        tasks::bind_new(Sql::new(ONE_STATEMENT.as_str()), task).bind::<Text, _>(task.id.as_str());
    let sql = events::bind_event(sql, task.raised_at, &NewEvent::raised(task));
    outbox::bind_rows(sql, &notifications).execute(c)?;
    Ok(())
}

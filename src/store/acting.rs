//! What a status change reads before it decides, as one statement (one snapshot, one round
//! trip): the task, its timeline with each actor's name and the assignee's, whether the
//! caller holds the bleep the task is assigned to, and, when the caller came with a staff
//! token, who that is. The change's answer is then that timeline and the change's own event
//! (see `app::tasks::act_told`), with no read after the write; on PostgreSQL each of those
//! reads was a round trip of its own.
use super::directory::{staff_of, Staff};
use super::events::{EventColumns, Story};
use super::sql::{on_backend, Sql};
use super::tasks::{TaskRow, COLUMNS};
use super::DbConnection;
use crate::domain::Task;
use crate::error::{AppError, AppResult};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};
use std::sync::LazyLock;

/// Who is acting, as the read finds them.
pub enum Who<'a> {
    /// A member of staff already known, by id.
    Id(&'a str),
    /// Whoever holds the staff token (`bleepless staff token`) with this hash
    /// (`directory::hash_token`) and is active: the read checks it, and finds nothing at
    /// all when it is not one.
    Token(&'a str),
}

/// A task about to be changed, as one statement read it.
pub struct Acting {
    pub task: Task,
    pub story: Story,
    /// Does the caller hold, now, the on-call role the task is assigned to? (False for a
    /// task assigned to a person.)
    pub holds_its_bleep: bool,
    /// The caller, as the statement read them.
    pub caller: Option<Staff>,
}

/// The statement, with how it finds the caller (`c`) as the first parameter.
fn read_as(caller: &str) -> String {
    let task: Vec<String> = COLUMNS
        .split(',')
        .map(|c| format!("t.{}", c.trim()))
        .collect();
    format!(
        "SELECT {}, e.seq, e.at, e.actor_id, s.name AS actor_name, e.kind, \
         e.from_status, e.to_status, e.detail, \
         coalesce((SELECT name FROM oncall_roles WHERE id = t.assignee_role_id), \
                  (SELECT name FROM staff WHERE id = t.assignee_staff_id)) AS assignee_name, \
         EXISTS (SELECT 1 FROM role_holdings h WHERE h.role_id = t.assignee_role_id \
                 AND h.staff_id = c.id AND h.held_until IS NULL) AS holds_its_bleep, \
         c.id AS caller_id, c.name AS caller_name, c.email AS caller_email, \
         c.permissions AS caller_permissions, c.active AS caller_active \
         FROM tasks t {caller} LEFT JOIN task_events e ON e.task_id = t.id \
         LEFT JOIN staff s ON s.id = e.actor_id WHERE t.id = ? ORDER BY e.seq",
        task.join(", ")
    )
}

/// Reads the task `id` for a status change by `who`. Not found when there is no such task,
/// or when `who` is a token that is no active member of staff's.
pub fn load(conn: &mut DbConnection, id: &str, who: Who) -> AppResult<Acting> {
    static BY_ID: LazyLock<String> = LazyLock::new(|| read_as("LEFT JOIN staff c ON c.id = ?"));
    static BY_TOKEN: LazyLock<String> =
        LazyLock::new(|| read_as("JOIN staff c ON c.token_hash = ? AND c.active"));
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(embed)]
        task: TaskRow,
        #[diesel(embed)]
        event: EventColumns,
        #[diesel(sql_type = Nullable<Text>)]
        assignee_name: Option<String>,
        #[diesel(sql_type = Bool)]
        holds_its_bleep: bool,
        #[diesel(sql_type = Nullable<Text>)]
        caller_id: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        caller_name: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        caller_email: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        caller_permissions: Option<String>,
        #[diesel(sql_type = Nullable<Bool>)]
        caller_active: Option<bool>,
    }
    let (sql, key) = match who {
        Who::Id(staff) => (BY_ID.as_str(), staff.to_string()),
        Who::Token(hash) => (BY_TOKEN.as_str(), hash.to_string()),
    };
    let rows: Vec<Row> = on_backend!(conn, |c| Sql::new(sql)
        .bind::<Text, _>(key.as_str())
        .bind::<Text, _>(id)
        .load(c)?);
    let mut rows = rows.into_iter();
    let Some(first) = rows.next() else {
        return Err(AppError::NotFound(format!("no task with id {id}")));
    };
    let caller = match (first.caller_id, first.caller_name) {
        (Some(id), Some(name)) => Some(staff_of(
            id,
            name,
            first.caller_email,
            first.caller_permissions.as_deref().unwrap_or_default(),
            first.caller_active.unwrap_or(false),
        )),
        _ => None,
    };
    let (assignee_name, holds_its_bleep) = (first.assignee_name, first.holds_its_bleep);
    let task: Task = first.task.try_into()?;
    let events = std::iter::once(first.event)
        .chain(rows.map(|r| r.event))
        .filter_map(EventColumns::event)
        .collect();
    Ok(Acting {
        task,
        story: Story {
            events,
            assignee_name,
        },
        holds_its_bleep,
        caller,
    })
}

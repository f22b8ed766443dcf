//! What a status change reads before it decides, as one statement (one snapshot, one round
//! trip): the task, its timeline with each actor's name and the assignee's, and whether the
//! caller holds the bleep the task is assigned to. The change's answer is then that
//! timeline and the change's own event (see `app::tasks::act_told`), with no read after the
//! write; on PostgreSQL each of those reads was a round trip of its own.
use super::events::{EventColumns, Story};
use super::sql::{on_backend, Sql};
use super::tasks::{TaskRow, COLUMNS};
use super::DbConnection;
use crate::domain::Task;
use crate::error::{AppError, AppResult};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};
use std::sync::LazyLock;

/// A task about to be changed, as one statement read it.
pub struct Acting {
    pub task: Task,
    pub story: Story,
    /// Does the caller hold, now, the on-call role the task is assigned to? (False for a
    /// task assigned to a person.)
    pub holds_its_bleep: bool,
}

/// Reads the task `id` for a status change by `who` (a staff id).
pub fn load(conn: &mut DbConnection, id: &str, who: &str) -> AppResult<Acting> {
    static READ: LazyLock<String> = LazyLock::new(|| {
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
                     AND h.staff_id = ? AND h.held_until IS NULL) AS holds_its_bleep \
             FROM tasks t LEFT JOIN task_events e ON e.task_id = t.id \
             LEFT JOIN staff s ON s.id = e.actor_id WHERE t.id = ? ORDER BY e.seq",
            task.join(", ")
        )
    });
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
    }
    let rows: Vec<Row> = on_backend!(conn, |c| Sql::new(READ.as_str())
        .bind::<Text, _>(who)
        .bind::<Text, _>(id)
        .load(c)?);
    let mut rows = rows.into_iter();
    let Some(first) = rows.next() else {
        return Err(AppError::NotFound(format!("no task with id {id}")));
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
    })
}

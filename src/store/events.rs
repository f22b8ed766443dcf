//! The timeline: an append-only record of everything that happened to each task.
use super::schema::task_events;
use super::sql::{insert_rows, load_by_ids, on_backend, Sql};
use super::{from_db, to_db, DbConnection};
pub use crate::domain::timeline::{Event, Person};
use crate::domain::Status;
use crate::error::AppResult;
use crate::store::stamp::Stamp;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::serialize::ToSql;
use diesel::sql_types::{Integer, Nullable, Text};
use serde_json::Value;
use std::sync::LazyLock;

/// One entry for a task's timeline.
pub struct NewEvent<'a> {
    pub actor: Option<&'a str>,
    pub kind: &'a str,
    pub from: Option<Status>,
    pub to: Option<Status>,
    pub detail: Option<Value>,
}

impl<'a> NewEvent<'a> {
    /// A task's first event: raised by its raiser, for its assignee, at its priority.
    pub fn raised(task: &'a crate::domain::Task) -> NewEvent<'a> {
        use crate::domain::transition::assignee_json;
        let detail = serde_json::json!({
            "assignee": assignee_json(&task.assignee),
            "priority": task.priority,
        });
        NewEvent {
            actor: Some(&task.raised_by),
            kind: "raised",
            from: None,
            to: Some(Status::Requested),
            detail: Some(detail),
        }
    }
}

impl NewEvent<'_> {
    /// The event as the timeline tells it once written as number `seq` at `at`, by `actor`
    /// (who must be the event's actor, with their name).
    pub fn told(&self, seq: i32, at: DateTime<Utc>, actor: Option<Person>) -> Event {
        Event {
            seq,
            at,
            actor,
            kind: self.kind.to_string(),
            from_status: self.from.map(|s| s.code().to_string()),
            to_status: self.to.map(|s| s.code().to_string()),
            detail: self.detail.clone(),
        }
    }
}

/// Appends one event to a task's timeline. The task row must already have been updated in
/// this transaction: its row lock orders concurrent writers, so the sequence number is free.
///
/// On PostgreSQL one statement, which works out the number as it inserts (a separate
/// `max(seq)` read would be a round trip more). On SQLite, whose one writer runs every
/// command in-process, the number is read first and the event inserted with it: the one
/// statement needs two temporary tables there (its `SELECT` reads the table it inserts into,
/// and `RETURNING`), which made the insert most of a status change's work (BENCHMARKS.md,
/// twenty-second round).
pub fn append_event(
    conn: &mut DbConnection,
    task_id: &str,
    at: DateTime<Utc>,
    e: NewEvent,
) -> AppResult<i32> {
    static APPEND: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{INSERT_EVENT} SELECT ?, coalesce(max(seq), 0) + 1, {EVENT_VALUES} \
             FROM task_events WHERE task_id = ? RETURNING seq"
        )
    });
    match conn {
        DbConnection::Pg(c) => {
            let row: Appended =
                bind_event(Sql::new(APPEND.as_str()).bind::<Text, _>(task_id), at, &e)
                    .bind::<Text, _>(task_id)
                    .get_result(c)?;
            Ok(row.seq)
        }
        DbConnection::Sqlite(c) => {
            let last: Option<i32> = task_events::table
                .filter(task_events::task_id.eq(task_id))
                .select(diesel::dsl::max(task_events::seq))
                .get_result(c)?;
            let seq = last.unwrap_or(0) + 1;
            insert_event(conn, task_id, seq, at, e)?;
            Ok(seq)
        }
    }
}

/// Inserts one event whose number is known: the first of a task just raised, or one
/// [`append_event`] has numbered.
pub fn insert_event(
    conn: &mut DbConnection,
    task_id: &str,
    seq: i32,
    at: DateTime<Utc>,
    e: NewEvent,
) -> AppResult<()> {
    static INSERT: LazyLock<String> =
        LazyLock::new(|| format!("{INSERT_EVENT} VALUES (?, ?, {EVENT_VALUES})"));
    on_backend!(conn, |c| bind_event(
        Sql::new(INSERT.as_str())
            .bind::<Text, _>(task_id)
            .bind::<Integer, _>(seq),
        at,
        &e
    )
    .execute(c)?);
    Ok(())
}

/// Escalation events only, by the partial index `task_events_escalated`: the kind is
/// written into the statement, since a bound value would hide from either backend's planner
/// that the index serves it.
pub(super) fn escalated() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql("task_events.kind = 'escalated'")
}

/// How every statement that appends one event begins: the columns, the task's id and the
/// event's number first, then the six of [`bind_event`] (as [`EVENT_VALUES`]).
pub(super) const INSERT_EVENT: &str = "INSERT INTO task_events \
     (task_id, seq, at, actor_id, kind, from_status, to_status, detail)";

/// The places of the six values [`bind_event`] binds.
pub(super) const EVENT_VALUES: &str = "?, ?, ?, ?, ?, ?";

/// Binds an event's own six values (its time, actor, kind, from, to and detail), in the
/// order of [`INSERT_EVENT`]'s columns after the task's id and the event's number.
pub(super) fn bind_event<'s, DB>(
    sql: Sql<'s, DB>,
    at: DateTime<Utc>,
    e: &NewEvent<'s>,
) -> Sql<'s, DB>
where
    DB: diesel::backend::Backend + diesel::sql_types::HasSqlType<Stamp>,
    NaiveDateTime: ToSql<Stamp, DB>,
    str: ToSql<Text, DB>,
    String: ToSql<Text, DB>,
{
    sql.bind::<Stamp, _>(to_db(at))
        .bind::<Nullable<Text>, _>(e.actor)
        .bind::<Text, _>(e.kind)
        .bind::<Nullable<Text>, _>(e.from.map(|s| s.code()))
        .bind::<Nullable<Text>, _>(e.to.map(|s| s.code()))
        .bind::<Nullable<Text>, _>(e.detail.as_ref().map(|d| d.to_string()))
}

/// The row of [`append_event`].
#[derive(QueryableByName)]
struct Appended {
    #[diesel(sql_type = Integer)]
    seq: i32,
}

/// One timeline entry to write with others in one statement.
#[derive(Insertable)]
#[diesel(table_name = task_events, treat_none_as_default_value = false)]
pub struct NewEventRow {
    pub task_id: String,
    pub seq: i32,
    pub at: NaiveDateTime,
    pub actor_id: Option<String>,
    pub kind: &'static str,
    pub from_status: Option<&'static str>,
    pub to_status: Option<&'static str>,
    pub detail: Option<String>,
}

/// The last event number of each of these tasks (0 for none). As with [`append_event`],
/// the tasks' rows must already have been updated in this transaction.
///
/// Written as one `max(seq)` subquery per task, which is always a probe of the primary key.
/// The obvious `WHERE task_id IN (…) GROUP BY task_id` was planned by PostgreSQL, once it
/// reused a generic plan, as a parallel scan of the whole events table: 270 ms per 500
/// tasks with a million tasks stored, half of an escalation tick.
pub fn last_seqs(
    conn: &mut DbConnection,
    ids: &[&str],
) -> AppResult<std::collections::HashMap<String, i32>> {
    const LAST_SEQS: &str = "SELECT x.id, \
         (SELECT max(e.seq) FROM task_events e WHERE e.task_id = x.id) AS seq FROM IDS AS x";
    let mut out = std::collections::HashMap::new();
    for chunk in ids.chunks(1000) {
        let rows: Vec<LastSeq> = load_by_ids(conn, LAST_SEQS, chunk)?;
        out.extend(rows.into_iter().map(|r| (r.id, r.seq.unwrap_or(0))));
    }
    Ok(out)
}

/// A row of [`last_seqs`].
#[derive(QueryableByName)]
struct LastSeq {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    seq: Option<i32>,
}

/// Writes many timeline entries, many to a statement: on PostgreSQL all in one, an
/// array a column, prepared once per connection (see `outbox::insert_many`).
pub fn insert_events(conn: &mut DbConnection, rows: &[NewEventRow]) -> AppResult<()> {
    const UNNEST: &str = "INSERT INTO task_events \
         (task_id, seq, at, actor_id, kind, from_status, to_status, detail) \
         SELECT * FROM unnest(?::text[], ?::int4[], ?::timestamp[], ?::text[], ?::text[], \
         ?::text[], ?::text[], ?::text[])";
    use diesel::sql_types::Array;
    match conn {
        DbConnection::Pg(c) if rows.len() > 1 => {
            Sql::new(UNNEST)
                .bind::<Array<Text>, _>(rows.iter().map(|r| r.task_id.as_str()).collect::<Vec<_>>())
                .bind::<Array<Integer>, _>(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
                .bind::<Array<Stamp>, _>(rows.iter().map(|r| r.at).collect::<Vec<_>>())
                .bind::<Array<Nullable<Text>>, _>(
                    rows.iter()
                        .map(|r| r.actor_id.as_deref())
                        .collect::<Vec<_>>(),
                )
                .bind::<Array<Text>, _>(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
                .bind::<Array<Nullable<Text>>, _>(
                    rows.iter().map(|r| r.from_status).collect::<Vec<_>>(),
                )
                .bind::<Array<Nullable<Text>>, _>(
                    rows.iter().map(|r| r.to_status).collect::<Vec<_>>(),
                )
                .bind::<Array<Nullable<Text>>, _>(
                    rows.iter().map(|r| r.detail.as_deref()).collect::<Vec<_>>(),
                )
                .execute(c)?;
        }
        _ => {
            insert_rows!(conn, task_events::table, rows);
        }
    }
    Ok(())
}

/// The task's whole story, oldest first, each event with its actor's name.
pub fn timeline(conn: &mut DbConnection, id: &str) -> AppResult<Vec<Event>> {
    Ok(story(conn, id, None)?.events)
}

/// An event's columns as a statement reads them, its actor's name joined in (`actor_name`);
/// all of them empty for a task read with its events when it has none.
#[derive(QueryableByName)]
pub(super) struct EventColumns {
    #[diesel(sql_type = Nullable<Integer>)]
    seq: Option<i32>,
    #[diesel(sql_type = Nullable<Stamp>)]
    at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    actor_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    actor_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    kind: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    from_status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    to_status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    detail: Option<String>,
}

impl EventColumns {
    /// The event, or none when the row has none.
    pub(super) fn event(self) -> Option<Event> {
        Some(Event {
            seq: self.seq?,
            at: from_db(self.at?),
            actor: self.actor_id.map(|id| Person {
                name: self.actor_name.unwrap_or_default(),
                id,
            }),
            kind: self.kind?,
            from_status: self.from_status,
            to_status: self.to_status,
            detail: self.detail.and_then(|d| serde_json::from_str(&d).ok()),
        })
    }
}

/// A task's timeline with the name of whoever it is assigned to: what the answer to a
/// command and a task's page need besides the task, in one statement.
#[derive(Clone)]
pub struct Story {
    pub events: Vec<Event>,
    /// The assignee's name (a role's or a person's), when asked for and found.
    pub assignee_name: Option<String>,
}

/// The task's timeline, each actor's name joined in, and (when `assignee` is given) the
/// assignee's name beside every row, read once: one statement where the answer to each
/// status change was four (the names, the timeline, its actors' names), each a round trip
/// on PostgreSQL after the command's commit.
pub fn story(
    conn: &mut DbConnection,
    id: &str,
    assignee: Option<&crate::domain::Assignee>,
) -> AppResult<Story> {
    use crate::domain::Assignee;
    const STORY: &str = "SELECT e.seq, e.at, e.actor_id, s.name AS actor_name, e.kind, \
         e.from_status, e.to_status, e.detail, \
         coalesce((SELECT name FROM oncall_roles WHERE id = ?), \
                  (SELECT name FROM staff WHERE id = ?)) AS assignee_name \
         FROM task_events e LEFT JOIN staff s ON s.id = e.actor_id \
         WHERE e.task_id = ? ORDER BY e.seq";
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(embed)]
        event: EventColumns,
        #[diesel(sql_type = Nullable<Text>)]
        assignee_name: Option<String>,
    }
    let (role, staff) = match assignee {
        Some(Assignee::Role(r)) => (Some(r.as_str()), None),
        Some(Assignee::Staff(s)) => (None, Some(s.as_str())),
        None => (None, None),
    };
    let rows: Vec<Row> = on_backend!(conn, |c| Sql::new(STORY)
        .bind::<Nullable<Text>, _>(role)
        .bind::<Nullable<Text>, _>(staff)
        .bind::<Text, _>(id)
        .load(c)?);
    let assignee_name = rows.first().and_then(|r| r.assignee_name.clone());
    let events = rows.into_iter().filter_map(|r| r.event.event()).collect();
    Ok(Story {
        events,
        assignee_name,
    })
}

//! The task table: rows in and out. Every change is written only if the task is still at
//! the version it was read at; what a change means is decided in `domain`, and the command
//! that makes it is in `app`.
use super::events::NewEvent;
use super::schema::tasks;
use super::sql::{on_backend, IdRow, Sql};
use super::{from_db, to_db, DbConnection};
use crate::domain::{Assignee, Category, OutcomeCode, Priority, Status, Task};
use crate::error::{AppError, AppResult};
use crate::store::stamp::Stamp;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use std::sync::LazyLock;

mod caller;
pub use caller::Caller;
use caller::CALLER_STILL;

/// A task's row. Its columns, in this order, are [`COLUMNS`].
#[derive(Queryable, Selectable, QueryableByName)]
#[diesel(table_name = tasks)]
pub(super) struct TaskRow {
    id: String,
    nhs_number: String,
    ward: String,
    bed: String,
    category: String,
    description: String,
    priority: String,
    news2: Option<i32>,
    status: String,
    assignee_role_id: Option<String>,
    assignee_staff_id: Option<String>,
    raised_by: String,
    #[diesel(sql_type = Stamp)]
    raised_at: NaiveDateTime,
    #[diesel(sql_type = Stamp)]
    ack_deadline: NaiveDateTime,
    acknowledged_by: Option<String>,
    #[diesel(sql_type = Nullable<Stamp>)]
    acknowledged_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Stamp>)]
    started_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Stamp>)]
    ended_at: Option<NaiveDateTime>,
    outcome_code: Option<String>,
    outcome_text: Option<String>,
    status_reason: Option<String>,
    escalation_level: i32,
    #[diesel(sql_type = Nullable<Stamp>)]
    next_escalation_at: Option<NaiveDateTime>,
    version: i64,
    #[diesel(sql_type = Stamp)]
    updated_at: NaiveDateTime,
}

fn corrupt(id: &str, what: String) -> AppError {
    AppError::Internal(format!("task {id} holds an unreadable value: {what}"))
}

/// Every column of a task, for statements written by hand that read [`TaskRow`]s.
pub(super) const COLUMNS: &str = "id, nhs_number, ward, bed, category, description, \
     priority, news2, status, assignee_role_id, assignee_staff_id, raised_by, raised_at, \
     ack_deadline, acknowledged_by, acknowledged_at, started_at, ended_at, outcome_code, \
     outcome_text, status_reason, escalation_level, next_escalation_at, version, updated_at";

impl TryFrom<TaskRow> for Task {
    type Error = AppError;

    fn try_from(r: TaskRow) -> AppResult<Task> {
        let id = r.id;
        let assignee = match (r.assignee_role_id, r.assignee_staff_id) {
            (Some(role), _) => Assignee::Role(role),
            (None, Some(s)) => Assignee::Staff(s),
            (None, None) => return Err(corrupt(&id, "no assignee".into())),
        };
        let outcome = match (r.outcome_code, r.outcome_text) {
            (Some(c), t) => Some((
                OutcomeCode::parse(&c).map_err(|e| corrupt(&id, e))?,
                t.unwrap_or_default(),
            )),
            _ => None,
        };
        Ok(Task {
            category: Category::parse(&r.category).map_err(|e| corrupt(&id, e))?,
            priority: Priority::parse(&r.priority).map_err(|e| corrupt(&id, e))?,
            status: Status::parse(&r.status).map_err(|e| corrupt(&id, e))?,
            id,
            nhs_number: r.nhs_number,
            ward: r.ward,
            bed: r.bed,
            description: r.description,
            news2: r.news2,
            assignee,
            raised_by: r.raised_by,
            raised_at: from_db(r.raised_at),
            ack_deadline: from_db(r.ack_deadline),
            acknowledged_by: r.acknowledged_by,
            acknowledged_at: r.acknowledged_at.map(from_db),
            started_at: r.started_at.map(from_db),
            ended_at: r.ended_at.map(from_db),
            outcome,
            status_reason: r.status_reason,
            escalation_level: r.escalation_level,
            next_escalation_at: r.next_escalation_at.map(from_db),
            version: r.version,
            updated_at: from_db(r.updated_at),
        })
    }
}

pub fn load(conn: &mut DbConnection, id: &str) -> AppResult<Task> {
    tasks::table
        .find(id)
        .select(TaskRow::as_select())
        .get_result(conn)
        .optional()?
        .ok_or_else(|| AppError::NotFound(format!("no task with id {id}")))?
        .try_into()
}

pub fn get(conn: &mut DbConnection, id: &str) -> AppResult<Task> {
    load(conn, id)
}

/// Open tasks whose current level has run out, oldest first.
pub fn due_for_escalation(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> AppResult<Vec<Task>> {
    tasks::table
        .filter(tasks::status.eq(Status::Requested.code()))
        .filter(tasks::next_escalation_at.le(to_db(now)))
        .order(tasks::next_escalation_at.asc())
        .limit(limit)
        .select(TaskRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Task::try_from)
        .collect()
}

/// The statuses of a task still open: waiting, acknowledged or in progress.
const OPEN: [&str; 3] = [
    Status::Requested.code(),
    Status::Accepted.code(),
    Status::InProgress.code(),
];

/// The open tasks assigned to a role (waiting, acknowledged or in progress), oldest first.
pub fn open_for_role(conn: &mut DbConnection, role_id: &str) -> AppResult<Vec<Task>> {
    tasks::table
        .filter(tasks::assignee_role_id.eq(role_id))
        .filter(tasks::status.eq_any(OPEN))
        .order(tasks::raised_at.asc())
        .limit(500)
        .select(TaskRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Task::try_from)
        .collect()
}

/// The open tasks assigned to any of these roles, oldest first, in one query.
pub fn open_for_roles(conn: &mut DbConnection, roles: &[String]) -> AppResult<Vec<Task>> {
    let mut out = Vec::new();
    for chunk in roles.chunks(1000) {
        out.extend(
            tasks::table
                .filter(tasks::assignee_role_id.eq_any(chunk))
                .filter(tasks::status.eq_any(OPEN))
                .order(tasks::raised_at.asc())
                .select(TaskRow::as_select())
                .load(conn)?
                .into_iter()
                .map(Task::try_from)
                .collect::<AppResult<Vec<Task>>>()?,
        );
    }
    Ok(out)
}

/// Unacknowledged tasks with no next escalation time: never to be chased again unless
/// repaired (see `domain::escalation::is_lost`).
pub fn lost_escalations(conn: &mut DbConnection, limit: i64) -> AppResult<Vec<Task>> {
    tasks::table
        .filter(tasks::status.eq(Status::Requested.code()))
        .filter(tasks::next_escalation_at.is_null())
        .order(tasks::raised_at.asc())
        .limit(limit)
        .select(TaskRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Task::try_from)
        .collect()
}

/// Several tasks by id, in one query; ids not found are left out.
pub fn get_many(
    conn: &mut DbConnection,
    ids: &[&str],
) -> AppResult<std::collections::HashMap<String, Task>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    tasks::table
        .filter(tasks::id.eq_any(ids))
        .select(TaskRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|r| Task::try_from(r).map(|t| (t.id.clone(), t)))
        .collect()
}

/// Applies escalations, each only if the task is still at the version it was read at.
/// Returns the ids changed. PostgreSQL does them all in one statement, SQLite one per
/// (level, next deadline).
pub fn save_escalations(
    conn: &mut DbConnection,
    next: &[&Task],
    now: DateTime<Utc>,
) -> AppResult<std::collections::HashSet<String>> {
    match conn {
        DbConnection::Pg(pg) => {
            use crate::store::stamp::Stamp;
            use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
            let mut out = std::collections::HashSet::new();
            for chunk in next.chunks(1000) {
                let ids: Vec<&str> = chunk.iter().map(|t| t.id.as_str()).collect();
                let versions: Vec<i64> = chunk.iter().map(|t| t.version - 1).collect();
                let levels: Vec<i32> = chunk.iter().map(|t| t.escalation_level).collect();
                let next_at: Vec<Option<NaiveDateTime>> = chunk
                    .iter()
                    .map(|t| t.next_escalation_at.map(to_db))
                    .collect();
                let rows: Vec<IdRow> = diesel::sql_query(
                    "UPDATE tasks SET escalation_level = x.level, next_escalation_at = x.next_at, \
                     version = tasks.version + 1, updated_at = $5 \
                     FROM unnest($1::text[], $2::bigint[], $3::int[], $4::timestamp[]) \
                       AS x(id, version, level, next_at) \
                     WHERE tasks.id = x.id AND tasks.version = x.version RETURNING tasks.id",
                )
                .bind::<Array<Text>, _>(ids)
                .bind::<Array<BigInt>, _>(versions)
                .bind::<Array<Integer>, _>(levels)
                .bind::<Array<Nullable<Stamp>>, _>(next_at)
                .bind::<Stamp, _>(to_db(now))
                .load(pg)?;
                out.extend(rows.into_iter().map(|r| r.id));
            }
            Ok(out)
        }
        DbConnection::Sqlite(lite) => {
            use crate::store::stamp::Stamp;
            use diesel::sql_types::{Integer, Nullable, Text};
            // One statement per (level, next deadline), the tasks and the versions they
            // were read at passed as one JSON array: a statement per task cost 100 µs.
            let mut by_target: std::collections::BTreeMap<_, Vec<(&str, i64)>> = Default::default();
            for t in next {
                by_target
                    .entry((t.escalation_level, t.next_escalation_at))
                    .or_default()
                    .push((t.id.as_str(), t.version - 1));
            }
            let mut out = std::collections::HashSet::new();
            for ((level, next_at), tasks) in by_target {
                for chunk in tasks.chunks(1000) {
                    let rows: Vec<IdRow> = diesel::sql_query(
                        "UPDATE tasks SET escalation_level = ?, next_escalation_at = ?, \
                         version = tasks.version + 1, updated_at = ? \
                         FROM json_each(?) AS x \
                         WHERE tasks.id = json_extract(x.value, '$[0]') \
                           AND tasks.version = json_extract(x.value, '$[1]') \
                         RETURNING tasks.id",
                    )
                    .bind::<Integer, _>(level)
                    .bind::<Nullable<Stamp>, _>(next_at.map(to_db))
                    .bind::<Stamp, _>(to_db(now))
                    .bind::<Text, _>(serde_json::to_string(chunk).unwrap_or_default())
                    .load(lite)?;
                    out.extend(rows.into_iter().map(|r| r.id));
                }
            }
            Ok(out)
        }
    }
}

/// `INSERT INTO tasks (…) VALUES (…)`: a newly raised task's columns, bound by
/// [`bind_new`]; [`insert`] on its own, or part of a statement that writes more beside it.
pub(super) const INSERT: &str = "INSERT INTO tasks (id, nhs_number, ward, bed, category, \
     description, priority, news2, status, assignee_role_id, assignee_staff_id, raised_by, \
     raised_at, ack_deadline, escalation_level, next_escalation_at, version, updated_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Writes a newly raised task.
pub fn insert(conn: &mut DbConnection, t: &Task) -> AppResult<()> {
    on_backend!(conn, |c| bind_new(Sql::new(INSERT), t).execute(c)?);
    Ok(())
}

/// Binds a newly raised task's columns, as [`INSERT`] names them.
pub(super) fn bind_new<'a, DB>(sql: Sql<'a, DB>, t: &'a Task) -> Sql<'a, DB>
where
    DB: diesel::backend::Backend + diesel::sql_types::HasSqlType<Stamp>,
    str: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    i64: ToSql<BigInt, DB>,
    NaiveDateTime: ToSql<Stamp, DB>,
{
    let (role_id, staff_id) = match &t.assignee {
        Assignee::Role(r) => (Some(r.as_str()), None),
        Assignee::Staff(s) => (None, Some(s.as_str())),
    };
    sql.bind::<Text, _>(t.id.as_str())
        .bind::<Text, _>(t.nhs_number.as_str())
        .bind::<Text, _>(t.ward.as_str())
        .bind::<Text, _>(t.bed.as_str())
        .bind::<Text, _>(t.category.code())
        .bind::<Text, _>(t.description.as_str())
        .bind::<Text, _>(t.priority.code())
        .bind::<Nullable<Integer>, _>(t.news2)
        .bind::<Text, _>(t.status.code())
        .bind::<Nullable<Text>, _>(role_id)
        .bind::<Nullable<Text>, _>(staff_id)
        .bind::<Text, _>(t.raised_by.as_str())
        .bind::<Stamp, _>(to_db(t.raised_at))
        .bind::<Stamp, _>(to_db(t.ack_deadline))
        .bind::<Integer, _>(t.escalation_level)
        .bind::<Nullable<Stamp>, _>(t.next_escalation_at.map(to_db))
        .bind::<BigInt, _>(t.version)
        .bind::<Stamp, _>(to_db(t.updated_at))
}

/// Marks a task changed without changing what it says (a comment was added): a new version,
/// so that open pages and the record see it. Returns the new version, or None when there is
/// no such task.
pub fn touch(conn: &mut DbConnection, id: &str, now: DateTime<Utc>) -> AppResult<Option<i64>> {
    let v: Option<i64> = diesel::update(tasks::table.find(id))
        .set((
            tasks::version.eq(tasks::version + 1),
            tasks::updated_at.eq(to_db(now)),
        ))
        .returning(tasks::version)
        .get_result(conn)
        .optional()?;
    Ok(v)
}

/// A column's new value, for an `UPDATE` that sets only the columns that change.
#[derive(PartialEq)]
enum ColumnValue<'a> {
    Text(Option<&'a str>),
    Time(Option<NaiveDateTime>),
    Int(i32),
    BigInt(i64),
}

/// The task's stored columns that status changes may alter, with their values.
fn changeable_columns(t: &Task) -> [(&'static str, ColumnValue<'_>); 15] {
    use ColumnValue::*;
    let (role_id, staff_id) = match &t.assignee {
        Assignee::Role(r) => (Some(r.as_str()), None),
        Assignee::Staff(s) => (None, Some(s.as_str())),
    };
    [
        ("status", Text(Some(t.status.code()))),
        ("assignee_role_id", Text(role_id)),
        ("assignee_staff_id", Text(staff_id)),
        ("ack_deadline", Time(Some(to_db(t.ack_deadline)))),
        ("acknowledged_by", Text(t.acknowledged_by.as_deref())),
        ("acknowledged_at", Time(t.acknowledged_at.map(to_db))),
        ("started_at", Time(t.started_at.map(to_db))),
        ("ended_at", Time(t.ended_at.map(to_db))),
        (
            "outcome_code",
            Text(t.outcome.as_ref().map(|(c, _)| c.code())),
        ),
        (
            "outcome_text",
            Text(t.outcome.as_ref().map(|(_, x)| x.as_str())),
        ),
        ("status_reason", Text(t.status_reason.as_deref())),
        ("escalation_level", Int(t.escalation_level)),
        ("next_escalation_at", Time(t.next_escalation_at.map(to_db))),
        ("version", BigInt(t.version)),
        ("updated_at", Time(Some(to_db(t.updated_at)))),
    ]
}

/// `UPDATE tasks SET <what differs> WHERE id = ? AND version = ?`, between `around`'s
/// two texts (whose own parameters are bound after it).
fn task_update<'a, DB>(
    changed: Vec<(&'static str, ColumnValue<'a>)>,
    id: &'a str,
    expected_version: i64,
    around: (&str, &str),
) -> Sql<'a, DB>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<Stamp>
        + diesel::sql_types::HasSqlType<Integer>
        + diesel::sql_types::HasSqlType<BigInt>,
    &'a str: diesel::serialize::ToSql<Text, DB>,
    NaiveDateTime: diesel::serialize::ToSql<Stamp, DB>,
    i32: diesel::serialize::ToSql<Integer, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
{
    let set: Vec<String> = changed.iter().map(|(c, _)| format!("{c} = ?")).collect();
    let mut sql = Sql::new(format!(
        "{}UPDATE tasks SET {} WHERE id = ? AND version = ?{}",
        around.0,
        set.join(", "),
        around.1
    ));
    for (_, value) in changed {
        sql = match value {
            ColumnValue::Text(v) => sql.bind::<Nullable<Text>, _>(v),
            ColumnValue::Time(v) => sql.bind::<Nullable<Stamp>, _>(v),
            ColumnValue::Int(v) => sql.bind::<Integer, _>(v),
            ColumnValue::BigInt(v) => sql.bind::<BigInt, _>(v),
        };
    }
    sql.bind::<Text, _>(id).bind::<BigInt, _>(expected_version)
}

/// The columns of `next` that differ from `before`.
fn changed_columns<'a>(next: &'a Task, before: &Task) -> Vec<(&'static str, ColumnValue<'a>)> {
    let old = changeable_columns(before);
    changeable_columns(next)
        .into_iter()
        .zip(old)
        .filter(|(new, old)| new.1 != old.1)
        .map(|(new, _)| new)
        .collect()
}

/// Writes `next` over the stored task if nobody changed it since it was `before`. Only the
/// columns that differ are set: SQLite rewrites the entries of every index on a column
/// the statement sets, changed or not, and the task table has ten.
pub fn save_if_unchanged(conn: &mut DbConnection, next: &Task, before: &Task) -> AppResult<bool> {
    let changed = changed_columns(next, before);
    let n = on_backend!(conn, |c| task_update(
        changed,
        &next.id,
        before.version,
        ("", "")
    )
    .execute(c)?);
    Ok(n == 1)
}

/// What [`save_change`] wrote: how many deliveries it stopped, and its event's number.
pub struct Saved {
    pub stopped: usize,
    pub seq: i32,
}

/// Everything a status change writes on its own: the task saved if nobody changed it since
/// `before` ([`save_if_unchanged`]), whoever was being chased no longer chased
/// ([`super::outbox::cancel_chasing`]), and the change's event. `None` when the task had
/// changed: read it again and decide again; otherwise what it wrote.
///
/// On PostgreSQL, outside a transaction (see `Store::whole_then_read`), this is one
/// statement with no `BEGIN` and `COMMIT`: the event is inserted from the task's update, so
/// it is written only if the task was. Its number is `max(seq) + 1` under the statement's
/// snapshot. A writer that changed the task's version while this statement waited for the
/// row's lock leaves it nothing to save; one that only touched the row (a phone's `seen`, a
/// comment) and appended an event meanwhile makes the number taken: the whole statement
/// then fails on the timeline's key, nothing of it stays, and it is `None` too. Inside a
/// transaction, where such a failure would end the transaction, it is the statements one by
/// one, as on SQLite.
///
/// With a `caller`, the change is saved only if their token is still theirs, they are
/// active, and their permissions are as the change was decided with (see `app::recent`);
/// on PostgreSQL that is part of the same statement.
pub fn save_change(
    conn: &mut DbConnection,
    next: &Task,
    before: &Task,
    at: DateTime<Utc>,
    event: NewEvent,
    caller: Option<&Caller>,
) -> AppResult<Option<Saved>> {
    use super::events::{bind_event, EVENT_VALUES, INSERT_EVENT};
    use super::outbox::{stop_chasing_sql, NO_LONGER_NEEDED};
    use crate::domain::delivery::Delivery;
    use diesel::result::{DatabaseErrorKind, Error};
    static AFTER: LazyLock<String> = LazyLock::new(|| {
        format!(
            " RETURNING id), stopped AS ({} RETURNING 1), \
             appended AS ({INSERT_EVENT} SELECT id, coalesce((SELECT max(e.seq) \
             FROM task_events e WHERE e.task_id = saved.id), 0) + 1, {EVENT_VALUES} \
             FROM saved RETURNING seq) \
             SELECT (SELECT count(*) FROM saved) AS saved, \
             (SELECT count(*) FROM stopped) AS stopped, \
             (SELECT max(seq) FROM appended) AS appended",
            stop_chasing_sql("IN (SELECT id FROM saved)")
        )
    });
    #[derive(QueryableByName)]
    struct Counts {
        #[diesel(sql_type = BigInt)]
        saved: i64,
        #[diesel(sql_type = BigInt)]
        stopped: i64,
        #[diesel(sql_type = Nullable<Integer>)]
        appended: Option<i32>,
    }
    static GUARDED: LazyLock<String> =
        LazyLock::new(|| format!(" AND EXISTS ({CALLER_STILL}){}", AFTER.as_str()));
    let alone = !super::in_transaction(conn);
    let c = match conn {
        DbConnection::Pg(c) if alone => c,
        conn => {
            if let Some(caller) = caller {
                if !caller.still(conn)? {
                    return Ok(None);
                }
            }
            if !save_if_unchanged(conn, next, before)? {
                return Ok(None);
            }
            let stopped = super::outbox::cancel_chasing(conn, &next.id)?;
            let seq = super::events::append_event(conn, &next.id, at, event)?;
            return Ok(Some(Saved { stopped, seq }));
        }
    };
    let after = match caller {
        Some(_) => GUARDED.as_str(),
        None => AFTER.as_str(),
    };
    let mut sql = task_update(
        changed_columns(next, before),
        &next.id,
        before.version,
        ("WITH saved AS (", after),
    );
    if let Some(caller) = caller {
        sql = caller.bind(sql);
    }
    let sql = sql
        .bind::<Text, _>(Delivery::Cancelled.code())
        .bind::<Text, _>(NO_LONGER_NEEDED)
        .bind::<Text, _>(Delivery::Pending.code());
    let counts = bind_event(sql, at, &event).get_result::<Counts>(c);
    match counts {
        Ok(Counts {
            saved: 1,
            stopped,
            appended: Some(seq),
        }) => Ok(Some(Saved {
            stopped: stopped as usize,
            seq,
        })),
        Ok(_) => Ok(None),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
            if info.table_name() == Some("task_events") =>
        {
            tracing::debug!(task_id = %next.id, "an event was appended meanwhile; the change is judged again");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Filters for listing tasks.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub statuses: Vec<Status>,
    pub ward: Option<String>,
    pub priorities: Vec<Priority>,
    /// Role ids and staff ids, any of which may be the assignee.
    pub assignees: Option<Vec<String>>,
    pub overdue: Option<bool>,
    /// Only tasks raised by this member of staff.
    pub raised_by: Option<String>,
    /// Only tasks that have escalated at least once.
    pub escalated: bool,
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// Keyset position: newest first, by time raised and then id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub raised_at: DateTime<Utc>,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.raised_at.timestamp_micros(), self.id)
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let (micros, id) = s.split_once('_')?;
        let raised_at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        if id.is_empty() || id.len() > 64 {
            return None;
        }
        Some(Cursor {
            raised_at,
            id: id.to_string(),
        })
    }
}

/// Lists tasks, newest first, with the cursor of the next page if there is one.
pub fn list(
    conn: &mut DbConnection,
    f: &Filter,
    now: DateTime<Utc>,
) -> AppResult<(Vec<Task>, Option<Cursor>)> {
    let mut q = tasks::table.select(TaskRow::as_select()).into_boxed();
    if !f.statuses.is_empty() {
        q = q.filter(tasks::status.eq_any(f.statuses.iter().map(|s| s.code())));
    }
    if !f.priorities.is_empty() {
        q = q.filter(tasks::priority.eq_any(f.priorities.iter().map(|p| p.code())));
    }
    if let Some(w) = &f.ward {
        q = q.filter(tasks::ward.eq(w.clone()));
    }
    if let Some(r) = &f.raised_by {
        q = q.filter(tasks::raised_by.eq(r.clone()));
    }
    if f.escalated {
        q = q.filter(tasks::escalation_level.gt(0));
    }
    if let Some(ids) = &f.assignees {
        q = q.filter(
            tasks::assignee_role_id
                .eq_any(ids.clone())
                .or(tasks::assignee_staff_id.eq_any(ids.clone())),
        );
    }
    match f.overdue {
        Some(true) => {
            q = q
                .filter(tasks::status.eq(Status::Requested.code()))
                .filter(tasks::ack_deadline.lt(to_db(now)))
        }
        Some(false) => {
            q = q.filter(
                tasks::status
                    .ne(Status::Requested.code())
                    .or(tasks::ack_deadline.ge(to_db(now))),
            )
        }
        None => {}
    }
    if let Some(c) = &f.after {
        let at = to_db(c.raised_at);
        q = q.filter(
            tasks::raised_at
                .lt(at)
                .or(tasks::raised_at.eq(at).and(tasks::id.lt(c.id.clone()))),
        );
    }
    let rows: Vec<TaskRow> = q
        .order((tasks::raised_at.desc(), tasks::id.desc()))
        .limit(f.limit + 1)
        .load(conn)?;
    let mut out = rows
        .into_iter()
        .map(Task::try_from)
        .collect::<AppResult<Vec<_>>>()?;
    let next = if out.len() as i64 > f.limit {
        out.truncate(f.limit as usize);
        out.last().map(|t| Cursor {
            raised_at: t.raised_at,
            id: t.id.clone(),
        })
    } else {
        None
    };
    Ok((out, next))
}

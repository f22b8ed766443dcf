//! Clinical tasks: raising, every status change and comment, each one transaction that
//! changes the task and appends its events together.
use super::directory::{self, Staff};
use super::notifications;
use super::schema::{task_events, tasks};
use super::sql::{insert_rows, load_by_ids, on_backend, IdRow, Sql};
use super::{from_db, new_id, to_db, DbConnection};
use crate::domain::task::{required_text, Policy, MAX_TEXT};
use crate::domain::{Action, Category, NhsNumber, OutcomeCode, Permission, Priority, Status};
use crate::error::{AppError, AppResult};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Assignee {
    Role(String),
    Staff(String),
}

/// A task as stored, with its codes parsed.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub nhs_number: String,
    pub ward: String,
    pub bed: String,
    pub category: Category,
    pub description: String,
    pub priority: Priority,
    pub news2: Option<i32>,
    pub status: Status,
    pub assignee: Assignee,
    pub raised_by: String,
    pub raised_at: DateTime<Utc>,
    pub ack_deadline: DateTime<Utc>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: Option<(OutcomeCode, String)>,
    pub status_reason: Option<String>,
    pub escalation_level: i32,
    pub next_escalation_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = tasks)]
struct TaskRow {
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
    raised_at: NaiveDateTime,
    ack_deadline: NaiveDateTime,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<NaiveDateTime>,
    started_at: Option<NaiveDateTime>,
    ended_at: Option<NaiveDateTime>,
    outcome_code: Option<String>,
    outcome_text: Option<String>,
    status_reason: Option<String>,
    escalation_level: i32,
    next_escalation_at: Option<NaiveDateTime>,
    version: i64,
    updated_at: NaiveDateTime,
}

fn corrupt(id: &str, what: String) -> AppError {
    AppError::Internal(format!("task {id} holds an unreadable value: {what}"))
}

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

impl Task {
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.status == Status::Requested && self.ack_deadline < now
    }
}

/// A validated request to raise a task.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub nhs_number: NhsNumber,
    pub ward: String,
    pub bed: String,
    pub category: Category,
    pub description: String,
    pub priority: Priority,
    pub news2: Option<i32>,
    /// A staff id, or an on-call role's id or name.
    pub assignee: String,
}

/// A status change asked for by a person.
#[derive(Debug, Clone)]
pub enum Command {
    Acknowledge,
    Start,
    Complete {
        code: OutcomeCode,
        text: String,
    },
    Cancel {
        reason: String,
    },
    Decline {
        reason: String,
    },
    Reassign {
        assignee: String,
        reason: Option<String>,
    },
}

impl Command {
    pub fn action(&self) -> Action {
        match self {
            Command::Acknowledge => Action::Acknowledge,
            Command::Start => Action::Start,
            Command::Complete { .. } => Action::Complete,
            Command::Cancel { .. } => Action::Cancel,
            Command::Decline { .. } => Action::Decline,
            Command::Reassign { .. } => Action::Reassign,
        }
    }
}

fn resolve_assignee(conn: &mut DbConnection, key: &str) -> AppResult<Assignee> {
    let key = key.trim();
    if key.is_empty() {
        return Err(AppError::Unprocessable(
            "assignee is required: an on-call role (id or name) or a staff id".into(),
        ));
    }
    if let Some(s) = directory::staff_by_id(conn, key)? {
        if !s.active {
            return Err(AppError::Unprocessable(format!(
                "assignee {} is no longer active",
                s.name
            )));
        }
        if !s.can(Permission::Clinician) {
            return Err(AppError::Unprocessable(format!(
                "assignee {} is not a clinician; assign the task to a clinician or an on-call role",
                s.name
            )));
        }
        return Ok(Assignee::Staff(s.id));
    }
    if let Some(r) = directory::find_role(conn, key)? {
        return Ok(Assignee::Role(r.id));
    }
    Err(AppError::Unprocessable(format!(
        "assignee {key:?} is neither a member of staff nor an on-call role"
    )))
}

fn load(conn: &mut DbConnection, id: &str) -> AppResult<Task> {
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

/// One entry for a task's timeline.
pub struct NewEvent<'a> {
    pub actor: Option<&'a str>,
    pub kind: &'a str,
    pub from: Option<Status>,
    pub to: Option<Status>,
    pub detail: Option<Value>,
}

/// Appends one event to a task's timeline. The task row must already have been updated in
/// this transaction: its row lock orders concurrent writers, so the sequence number is free.
///
/// One statement, which works out the number as it inserts: an event is written by every
/// command, on SQLite's one writer, and a separate `max(seq)` read was a statement more for
/// each (see BENCHMARKS.md §1).
pub fn append_event(
    conn: &mut DbConnection,
    task_id: &str,
    at: DateTime<Utc>,
    e: NewEvent,
) -> AppResult<i32> {
    const APPEND: &str = "INSERT INTO task_events \
         (task_id, seq, at, actor_id, kind, from_status, to_status, detail) \
         SELECT ?, coalesce(max(seq), 0) + 1, ?, ?, ?, ?, ?, ? \
         FROM task_events WHERE task_id = ? RETURNING seq";
    let detail = e.detail.map(|d| d.to_string());
    let row: Appended = on_backend!(conn, |c| Sql::new(APPEND)
        .bind::<Text, _>(task_id)
        .bind::<Timestamp, _>(to_db(at))
        .bind::<Nullable<Text>, _>(e.actor)
        .bind::<Text, _>(e.kind)
        .bind::<Nullable<Text>, _>(e.from.map(|s| s.code()))
        .bind::<Nullable<Text>, _>(e.to.map(|s| s.code()))
        .bind::<Nullable<Text>, _>(detail.as_deref())
        .bind::<Text, _>(task_id)
        .get_result(c)?);
    Ok(row.seq)
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

/// Writes many timeline entries, many to a statement.
pub fn insert_events(conn: &mut DbConnection, rows: &[NewEventRow]) -> AppResult<()> {
    insert_rows!(conn, task_events::table, rows);
    Ok(())
}

/// Applies escalations, each only if the task is still at the version it was read at.
/// Returns the ids changed. PostgreSQL does them all in one statement, SQLite one per
/// (level, next deadline).
pub(crate) fn save_escalations(
    conn: &mut DbConnection,
    next: &[&Task],
    now: DateTime<Utc>,
) -> AppResult<std::collections::HashSet<String>> {
    match conn {
        DbConnection::Pg(pg) => {
            use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamp};
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
                .bind::<Array<Nullable<Timestamp>>, _>(next_at)
                .bind::<Timestamp, _>(to_db(now))
                .load(pg)?;
                out.extend(rows.into_iter().map(|r| r.id));
            }
            Ok(out)
        }
        DbConnection::Sqlite(lite) => {
            use diesel::sql_types::{Integer, Nullable, Text, Timestamp};
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
                    .bind::<Nullable<Timestamp>, _>(next_at.map(to_db))
                    .bind::<Timestamp, _>(to_db(now))
                    .bind::<Text, _>(serde_json::to_string(chunk).unwrap_or_default())
                    .load(lite)?;
                    out.extend(rows.into_iter().map(|r| r.id));
                }
            }
            Ok(out)
        }
    }
}

fn assignee_json(a: &Assignee) -> Value {
    match a {
        Assignee::Role(id) => json!({ "role": id }),
        Assignee::Staff(id) => json!({ "staff": id }),
    }
}

/// Raises a task: one transaction writes the task and its `raised` event.
pub fn raise(
    conn: &mut DbConnection,
    by: &Staff,
    new: NewTask,
    now: DateTime<Utc>,
    policy: &Policy,
) -> AppResult<Task> {
    if !by.can(Permission::Coordinator) {
        return Err(AppError::Forbidden(
            "only coordinators may raise tasks".into(),
        ));
    }
    if !directory::ward_exists(conn, &new.ward)? {
        let known = directory::list_wards(conn)?;
        return Err(AppError::Unprocessable(format!(
            "ward {:?} is not a ward of this hospital; known wards: {}",
            new.ward,
            if known.is_empty() {
                "none yet".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let assignee = resolve_assignee(conn, &new.assignee)?;
    let id = new_id();
    let deadline = policy.ack_seconds.deadline(new.priority, now);
    let (role_id, staff_id) = match &assignee {
        Assignee::Role(r) => (Some(r.as_str()), None),
        Assignee::Staff(s) => (None, Some(s.as_str())),
    };
    diesel::insert_into(tasks::table)
        .values((
            tasks::id.eq(&id),
            tasks::nhs_number.eq(new.nhs_number.as_str()),
            tasks::ward.eq(&new.ward),
            tasks::bed.eq(&new.bed),
            tasks::category.eq(new.category.code()),
            tasks::description.eq(&new.description),
            tasks::priority.eq(new.priority.code()),
            tasks::news2.eq(new.news2),
            tasks::status.eq(Status::Requested.code()),
            tasks::assignee_role_id.eq(role_id),
            tasks::assignee_staff_id.eq(staff_id),
            tasks::raised_by.eq(&by.id),
            tasks::raised_at.eq(to_db(now)),
            tasks::ack_deadline.eq(to_db(deadline)),
            tasks::escalation_level.eq(0),
            tasks::next_escalation_at.eq(Some(to_db(deadline))),
            tasks::version.eq(1i64),
            tasks::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    append_event(
        conn,
        &id,
        now,
        NewEvent {
            actor: Some(&by.id),
            kind: "raised",
            from: None,
            to: Some(Status::Requested),
            detail: Some(json!({ "assignee": assignee_json(&assignee), "priority": new.priority })),
        },
    )?;
    let task = Task {
        id: id.clone(),
        nhs_number: new.nhs_number.as_str().to_string(),
        ward: new.ward,
        bed: new.bed,
        category: new.category,
        description: new.description,
        priority: new.priority,
        news2: new.news2,
        status: Status::Requested,
        assignee,
        raised_by: by.id.clone(),
        raised_at: now,
        ack_deadline: deadline,
        acknowledged_by: None,
        acknowledged_at: None,
        started_at: None,
        ended_at: None,
        outcome: None,
        status_reason: None,
        escalation_level: 0,
        next_escalation_at: Some(deadline),
        version: 1,
        updated_at: now,
    };
    let recipients = notifications::first_recipients(conn, &task)?;
    let queued = notifications::enqueue(conn, &task, &recipients, policy.email, now)?;
    if recipients.is_empty() {
        tracing::warn!(task_id = %id, "no one holds the bleep this task is for");
    }
    tracing::info!(task_id = %id, priority = %new.priority, notifications = queued, "task raised");
    Ok(task)
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

/// `UPDATE tasks SET <what differs> WHERE id = ? AND version = ?`.
fn task_update<'a, DB>(
    changed: Vec<(&'static str, ColumnValue<'a>)>,
    id: &'a str,
    expected_version: i64,
) -> Sql<'a, DB>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<Timestamp>
        + diesel::sql_types::HasSqlType<Integer>
        + diesel::sql_types::HasSqlType<BigInt>,
    &'a str: diesel::serialize::ToSql<Text, DB>,
    NaiveDateTime: diesel::serialize::ToSql<Timestamp, DB>,
    i32: diesel::serialize::ToSql<Integer, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
{
    let set: Vec<String> = changed.iter().map(|(c, _)| format!("{c} = ?")).collect();
    let mut sql = Sql::new(format!(
        "UPDATE tasks SET {} WHERE id = ? AND version = ?",
        set.join(", ")
    ));
    for (_, value) in changed {
        sql = match value {
            ColumnValue::Text(v) => sql.bind::<Nullable<Text>, _>(v),
            ColumnValue::Time(v) => sql.bind::<Nullable<Timestamp>, _>(v),
            ColumnValue::Int(v) => sql.bind::<Integer, _>(v),
            ColumnValue::BigInt(v) => sql.bind::<BigInt, _>(v),
        };
    }
    sql.bind::<Text, _>(id).bind::<BigInt, _>(expected_version)
}

/// Writes `next` over the stored task if nobody changed it since it was `before`. Only the
/// columns that differ are set: SQLite rewrites the entries of every index on a column
/// the statement sets, changed or not, and the task table has ten.
pub(crate) fn save_if_unchanged(
    conn: &mut DbConnection,
    next: &Task,
    before: &Task,
) -> AppResult<bool> {
    let old = changeable_columns(before);
    let changed: Vec<_> = changeable_columns(next)
        .into_iter()
        .zip(old)
        .filter(|(new, old)| new.1 != old.1)
        .map(|(new, _)| new)
        .collect();
    let n = on_backend!(conn, |c| task_update(changed, &next.id, before.version)
        .execute(c)?);
    Ok(n == 1)
}

/// Is this person the task's assignee, or do they hold the role it is assigned to?
fn is_assignee(conn: &mut DbConnection, task: &Task, who: &Staff) -> AppResult<bool> {
    Ok(match &task.assignee {
        Assignee::Staff(s) => s == &who.id,
        Assignee::Role(r) => {
            who.active
                && directory::current_holders(conn, r)?
                    .iter()
                    .any(|h| h == &who.id)
        }
    })
}

/// Has the task escalated to a role this person holds? Then they may acknowledge it too.
fn is_escalation_holder(
    conn: &mut DbConnection,
    task: &Task,
    who: &Staff,
    policy: &Policy,
) -> AppResult<bool> {
    if task.escalation_level == 0 || !who.active {
        return Ok(false);
    }
    let chain = notifications::escalation_roles(conn, task, policy.fallback_role.as_deref())?;
    let held = directory::roles_held_by(conn, &who.id)?;
    Ok(chain
        .iter()
        .take(task.escalation_level as usize)
        .any(|r| held.contains(&r.id)))
}

fn assignee_label(conn: &mut DbConnection, a: &Assignee) -> AppResult<String> {
    Ok(match a {
        Assignee::Role(r) => format!("a holder of {}", directory::role_by_id(conn, r)?.name),
        Assignee::Staff(s) => directory::staff_by_id(conn, s)?
            .map(|s| s.name)
            .unwrap_or_else(|| s.clone()),
    })
}

fn authorise(
    conn: &mut DbConnection,
    task: &Task,
    who: &Staff,
    action: Action,
    policy: &Policy,
) -> AppResult<()> {
    // Clinical work is for those who may hold a bleep, whatever bleep they were given.
    if matches!(
        action,
        Action::Acknowledge | Action::Start | Action::Complete
    ) {
        who.may_hold_bleep().map_err(AppError::Forbidden)?;
    }
    let allowed = match action {
        Action::Acknowledge => {
            is_assignee(conn, task, who)? || is_escalation_holder(conn, task, who, policy)?
        }
        Action::Start | Action::Complete | Action::Decline => {
            task.acknowledged_by.as_deref() == Some(who.id.as_str())
                || is_assignee(conn, task, who)?
        }
        Action::Cancel | Action::Reassign => {
            who.can(Permission::Coordinator) || who.can(Permission::Admin)
        }
    };
    if allowed {
        return Ok(());
    }
    let who_may = match action {
        Action::Cancel | Action::Reassign => "a coordinator or an admin".to_string(),
        _ => assignee_label(conn, &task.assignee)?,
    };
    Err(AppError::Forbidden(format!(
        "only {who_may} may {action} this task"
    )))
}

fn not_allowed(conn: &mut DbConnection, task: &Task, action: Action) -> AppResult<AppError> {
    if action == Action::Acknowledge && task.status != Status::Requested {
        if let (Some(by), Some(at)) = (&task.acknowledged_by, task.acknowledged_at) {
            let name = directory::staff_by_id(conn, by)?
                .map(|s| s.name)
                .unwrap_or_else(|| by.clone());
            return Ok(AppError::conflict(
                format!(
                    "task already acknowledged by {name} at {}; it is now {}",
                    at.format("%H:%M:%S UTC"),
                    task.status
                ),
                json!({
                    "current_status": task.status,
                    "acknowledged_by": { "id": by, "name": name },
                    "acknowledged_at": at,
                }),
            ));
        }
    }
    Ok(AppError::conflict(
        format!("cannot {action} a task that is {}", task.status),
        json!({ "current_status": task.status }),
    ))
}

/// Applies one status change. Competing writers are settled by the version column: the
/// loser re-reads and is judged again against what the winner did.
pub fn act(
    conn: &mut DbConnection,
    id: &str,
    who: &Staff,
    command: Command,
    now: DateTime<Utc>,
    policy: &Policy,
) -> AppResult<Task> {
    let action = command.action();
    for _attempt in 0..5 {
        let task = load(conn, id)?;
        authorise(conn, &task, who, action, policy)?;
        let Some(to) = action.next_status(task.status) else {
            return Err(not_allowed(conn, &task, action)?);
        };
        let mut next = task.clone();
        next.status = to;
        next.version = task.version + 1;
        next.updated_at = now;
        let mut detail = None;
        match &command {
            Command::Acknowledge => {
                next.acknowledged_by = Some(who.id.clone());
                next.acknowledged_at = Some(now);
                next.next_escalation_at = None;
            }
            Command::Start => next.started_at = Some(now),
            Command::Complete { code, text } => {
                next.outcome = Some((*code, text.clone()));
                next.ended_at = Some(now);
                next.next_escalation_at = None;
                detail = Some(json!({ "outcome": { "code": code, "text": text } }));
            }
            Command::Cancel { reason } | Command::Decline { reason } => {
                next.status_reason = Some(reason.clone());
                next.ended_at = Some(now);
                next.next_escalation_at = None;
                detail = Some(json!({ "reason": reason }));
            }
            Command::Reassign { assignee, reason } => {
                next.assignee = resolve_assignee(conn, assignee)?;
                next.acknowledged_by = None;
                next.acknowledged_at = None;
                next.started_at = None;
                next.ended_at = None;
                next.status_reason = reason.clone();
                next.escalation_level = 0;
                next.ack_deadline = policy.ack_seconds.deadline(task.priority, now);
                next.next_escalation_at = Some(next.ack_deadline);
                detail = Some(json!({
                    "from": assignee_json(&task.assignee),
                    "to": assignee_json(&next.assignee),
                    "reason": reason,
                }));
            }
        }
        if !save_if_unchanged(conn, &next, &task)? {
            continue;
        }
        append_event(
            conn,
            id,
            now,
            NewEvent {
                actor: Some(&who.id),
                kind: action.past_tense(),
                from: Some(task.status),
                to: Some(to),
                detail,
            },
        )?;
        // Whoever was being chased no longer needs to be; a reassigned task starts afresh.
        let cancelled = notifications::cancel_pending(conn, id)?;
        if matches!(to, Status::Completed | Status::Cancelled) && policy.record {
            crate::fhir::sink::enqueue(conn, &next, now)?;
        }
        if action == Action::Reassign {
            let recipients = notifications::first_recipients(conn, &next)?;
            notifications::enqueue(conn, &next, &recipients, policy.email, now)?;
        }
        tracing::info!(task_id = %id, from = %task.status, to = %to, staff_id = %who.id, cancelled, "task {}", action.past_tense());
        return Ok(next);
    }
    Err(AppError::conflict(
        "the task is changing too quickly; try again",
        json!({}),
    ))
}

/// Adds a comment to the task's thread.
pub fn comment(
    conn: &mut DbConnection,
    id: &str,
    who: &Staff,
    text: &str,
    now: DateTime<Utc>,
) -> AppResult<Event> {
    if !(who.can(Permission::Coordinator)
        || who.can(Permission::Clinician)
        || who.can(Permission::Admin))
    {
        return Err(AppError::Forbidden(
            "bed managers can read tasks but not comment on them".into(),
        ));
    }
    let text = required_text("text", text, MAX_TEXT).map_err(AppError::Unprocessable)?;
    let n = diesel::update(tasks::table.find(id))
        .set((
            tasks::version.eq(tasks::version + 1),
            tasks::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(AppError::NotFound(format!("no task with id {id}")));
    }
    let seq = append_event(
        conn,
        id,
        now,
        NewEvent {
            actor: Some(&who.id),
            kind: "commented",
            from: None,
            to: None,
            detail: Some(json!({ "text": text })),
        },
    )?;
    tracing::info!(task_id = %id, staff_id = %who.id, "comment added");
    Ok(Event {
        seq,
        at: now,
        actor: Some(Person {
            id: who.id.clone(),
            name: who.name.clone(),
        }),
        kind: "commented".into(),
        from_status: None,
        to_status: None,
        detail: Some(json!({ "text": text })),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Person {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub seq: i32,
    pub at: DateTime<Utc>,
    pub actor: Option<Person>,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub detail: Option<Value>,
}

/// The task's whole story, oldest first.
pub fn timeline(conn: &mut DbConnection, id: &str) -> AppResult<Vec<Event>> {
    timeline_knowing(conn, id, &std::collections::HashMap::new())
}

/// The same, given names of staff already looked up (`id → name`): only the other actors'
/// names are read.
pub fn timeline_knowing(
    conn: &mut DbConnection,
    id: &str,
    known: &std::collections::HashMap<String, String>,
) -> AppResult<Vec<Event>> {
    type Row = (
        i32,
        NaiveDateTime,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = task_events::table
        .filter(task_events::task_id.eq(id))
        .order(task_events::seq.asc())
        .select((
            task_events::seq,
            task_events::at,
            task_events::actor_id,
            task_events::kind,
            task_events::from_status,
            task_events::to_status,
            task_events::detail,
        ))
        .load(conn)?;
    let mut ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.2.as_deref())
        .filter(|id| !known.contains_key(*id))
        .collect();
    ids.dedup();
    let mut names = directory::staff_names(conn, &ids)?;
    names.extend(known.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(rows
        .into_iter()
        .map(
            |(seq, at, actor, kind, from_status, to_status, detail)| Event {
                seq,
                at: from_db(at),
                actor: actor.map(|id| Person {
                    name: names.get(&id).cloned().unwrap_or_default(),
                    id,
                }),
                kind,
                from_status,
                to_status,
                detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
            },
        )
        .collect())
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

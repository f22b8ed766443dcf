//! The one outbox: every outgoing delivery (a push, an email, a version of a task for a
//! record server) is a row, written in the transaction of the change that causes it, then
//! claimed with a lease, so that of several instances sharing one database each row goes
//! to one, and its outcome recorded.
use super::schema::outbox;
use super::sql::{insert_rows, load_by_ids, on_backend, IdRow, Sql};
use super::{new_id, to_db, DbConnection};
use crate::domain::delivery::{Delivery, Kind, Outcome, WAITING_SQL};
use crate::domain::task::Policy;
use crate::domain::Task;
use crate::error::AppResult;
use crate::store::stamp::Stamp;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

mod queued;
pub(super) use queued::queue;
pub use queued::{queued_by, Doorbell, Lease, Leased, Queued};

/// The status column, written so that a statement that also says `id IN IDS` finds its rows
/// by id. Named plainly, SQLite chose a status index instead and read every row of that
/// status: every due row for each claim of a batch, every row in flight for each recorded
/// batch (`EXPLAIN QUERY PLAN`). An expression cannot be looked up in an index; the column
/// is never NULL, so the value is the same on both backends.
pub const BY_ID: &str = "coalesce(status, '')";

/// One row to write.
#[derive(Insertable, Clone)]
#[diesel(table_name = outbox, treat_none_as_default_value = false)]
pub struct NewDelivery {
    id: String,
    kind: &'static str,
    destination: String,
    dedupe_key: String,
    task_id: String,
    task_version: i64,
    level: i32,
    recipient_id: Option<String>,
    status: &'static str,
    attempts: i32,
    due_at: NaiveDateTime,
    created_at: NaiveDateTime,
    /// Set when the row is written already leased to its instance (see [`Lease`]).
    lease_owner: Option<String>,
    lease_until: Option<NaiveDateTime>,
    /// For a notification, the task as the command wrote it: handed with the row to this
    /// instance's dispatcher when the row is written leased to it ([`Leased`]), which then
    /// need not read the task again. Not a column.
    #[diesel(skip_insertion)]
    about: Option<Arc<Task>>,
}

impl NewDelivery {
    fn new(kind: Kind, task: &Task, key: String, now: DateTime<Utc>) -> NewDelivery {
        NewDelivery {
            id: new_id(),
            kind: kind.code(),
            destination: String::new(),
            dedupe_key: key,
            task_id: task.id.clone(),
            task_version: task.version,
            level: task.escalation_level,
            recipient_id: None,
            status: Delivery::Pending.code(),
            attempts: 0,
            due_at: to_db(now),
            created_at: to_db(now),
            lease_owner: None,
            lease_until: None,
            about: None,
        }
    }
}

/// A recipient who can be reached: active, with their email address if they have one.
#[derive(Debug, Clone)]
pub struct Addressee {
    pub id: String,
    pub email: Option<String>,
}

/// The notifications for a task's current version and level: a push to each recipient,
/// an email to those with an address when email is configured, and a text message that
/// follows if the push is not seen in time (when texts are configured for the priority).
/// The key includes the task's version, which exactly one transaction produced, so each
/// (task, level, recipient, kind) is queued once even with several instances running; the
/// key is unique besides. A text's key is the task and the person alone: one text per
/// person per task, however often the task escalates.
pub fn notifications(
    task: &Task,
    to: &[Addressee],
    policy: &Policy,
    now: DateTime<Utc>,
    into: &mut Vec<NewDelivery>,
) {
    let text_after = policy.text_after.seconds(task.priority);
    let about = (!to.is_empty()).then(|| Arc::new(task.clone()));
    for a in to {
        let mut kinds = vec![Kind::Push];
        if policy.email && a.email.is_some() {
            kinds.push(Kind::Email);
        }
        for kind in kinds {
            let key = format!(
                "{}:{}:{}:{}:{}",
                task.id, task.version, task.escalation_level, a.id, kind
            );
            into.push(NewDelivery {
                recipient_id: Some(a.id.clone()),
                about: about.clone(),
                ..NewDelivery::new(kind, task, key, now)
            });
        }
        if let Some(after) = text_after {
            let key = format!("{}:text:{}", task.id, a.id);
            into.push(NewDelivery {
                recipient_id: Some(a.id.clone()),
                due_at: to_db(now + chrono::Duration::seconds(i64::from(after))),
                ..NewDelivery::new(Kind::Text, task, key, now)
            });
        }
    }
}

/// The notifications of a task handed over with its bleep (the `handed_over` event
/// `seq`): as [`notifications`], keyed by the hand-over as well, so a bleep that comes
/// back to someone who was sent the task before (handed A to B and back to A) sends it
/// to them again rather than colliding with the first sending. A text stays one per
/// person per task.
pub fn handed_over(
    task: &Task,
    to: &[Addressee],
    policy: &Policy,
    now: DateTime<Utc>,
    seq: i32,
    into: &mut Vec<NewDelivery>,
) {
    let from = into.len();
    notifications(task, to, policy, now, into);
    let text = Kind::Text.code();
    for row in into[from..].iter_mut().filter(|r| r.kind != text) {
        row.dedupe_key.push_str(&format!(":handed-over:{seq}"));
    }
}

/// A notice to one person's phones, about no one task: its title and body travel in
/// `destination` (as JSON), and the row's task is empty. Tapped, it opens My bleeps.
pub fn notice(to: &str, title: &str, body: &str, now: DateTime<Utc>, into: &mut Vec<NewDelivery>) {
    notice_opening(to, title, body, "/me", now, into);
}

/// A notice that opens `path` (a page of this service, e.g. a task's) when tapped.
pub fn notice_opening(
    to: &str,
    title: &str,
    body: &str,
    path: &str,
    now: DateTime<Utc>,
    into: &mut Vec<NewDelivery>,
) {
    let id = new_id();
    into.push(NewDelivery {
        kind: Kind::Notice.code(),
        destination: serde_json::json!({ "title": title, "body": body, "path": path }).to_string(),
        dedupe_key: format!("notice:{id}"),
        task_id: String::new(),
        task_version: 0,
        level: 0,
        recipient_id: Some(to.to_string()),
        status: Delivery::Pending.code(),
        attempts: 0,
        due_at: to_db(now),
        created_at: to_db(now),
        lease_owner: None,
        lease_until: None,
        about: None,
        id,
    });
}

/// This version of the task for each record server.
pub fn for_the_record(
    task: &Task,
    destinations: &[String],
    now: DateTime<Utc>,
    into: &mut Vec<NewDelivery>,
) {
    for d in destinations {
        let key = format!("{}:{}:record:{d}", task.id, task.version);
        into.push(NewDelivery {
            destination: d.clone(),
            ..NewDelivery::new(Kind::Record, task, key, now)
        });
    }
}

/// Writes rows, many to a statement. A text already queued for that person and task is
/// left as it is (an escalation reaches the same person again).
pub fn insert(conn: &mut DbConnection, rows: &[NewDelivery]) -> AppResult<usize> {
    let rows = queue(rows);
    let text = Kind::Text.code();
    if rows.iter().all(|r| r.kind != text) {
        return insert_many(conn, &rows);
    }
    let (texts, others): (Vec<NewDelivery>, Vec<NewDelivery>) =
        rows.iter().cloned().partition(|r| r.kind == text);
    let mut n = insert_many(conn, &others)?;
    for row in texts {
        n += on_backend!(conn, |c| diesel::insert_into(outbox::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c)?);
    }
    Ok(n)
}

/// Writes rows that may not already be there. On PostgreSQL, many rows go in as one
/// statement of one array a column (`INSERT … SELECT * FROM unnest(…)`), prepared once
/// per connection however many rows; a multi-row `VALUES` list is planned anew for each
/// number of rows, with sixteen parameters a row (a hand-over's 2,000 rows took four such
/// statements and a third of its time).
fn insert_many(conn: &mut DbConnection, rows: &[NewDelivery]) -> AppResult<usize> {
    let DbConnection::Pg(c) = conn else {
        return Ok(insert_rows!(conn, outbox::table, rows));
    };
    if rows.len() < 2 {
        return Ok(insert_rows!(conn, outbox::table, rows));
    }
    Ok(bind_rows(Sql::new(INSERT_UNNEST), rows).execute(c)?)
}

/// `INSERT INTO outbox … SELECT * FROM unnest(…)`, one array a column, bound by
/// [`bind_rows`].
pub(super) const INSERT_UNNEST: &str = "INSERT INTO outbox (id, kind, destination, dedupe_key, \
     task_id, task_version, level, recipient_id, status, attempts, due_at, created_at, \
     lease_owner, lease_until) \
     SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], \
     ?::int8[], ?::int4[], ?::text[], ?::text[], ?::int4[], ?::timestamp[], ?::timestamp[], \
     ?::text[], ?::timestamp[])";

/// Binds the rows as [`INSERT_UNNEST`]'s arrays.
pub(super) fn bind_rows<'a>(sql: Sql<'a, Pg>, rows: &'a [NewDelivery]) -> Sql<'a, Pg> {
    use diesel::sql_types::{Array, BigInt, Integer};
    let text = |f: fn(&NewDelivery) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    sql.bind::<Array<Text>, _>(text(|r| &r.id))
        .bind::<Array<Text>, _>(text(|r| r.kind))
        .bind::<Array<Text>, _>(text(|r| &r.destination))
        .bind::<Array<Text>, _>(text(|r| &r.dedupe_key))
        .bind::<Array<Text>, _>(text(|r| &r.task_id))
        .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.task_version).collect::<Vec<_>>())
        .bind::<Array<Integer>, _>(rows.iter().map(|r| r.level).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(
            rows.iter()
                .map(|r| r.recipient_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(text(|r| r.status))
        .bind::<Array<Integer>, _>(rows.iter().map(|r| r.attempts).collect::<Vec<_>>())
        .bind::<Array<Stamp>, _>(rows.iter().map(|r| r.due_at).collect::<Vec<_>>())
        .bind::<Array<Stamp>, _>(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(
            rows.iter()
                .map(|r| r.lease_owner.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Stamp>>, _>(rows.iter().map(|r| r.lease_until).collect::<Vec<_>>())
}

/// Why a notification was not sent after all.
pub(super) const NO_LONGER_NEEDED: &str = "the task no longer needs this notification";

/// The statement that stops chasing: `UPDATE outbox SET status = ?, last_error = ? WHERE
/// task_id <task> AND status = ? AND kind IN (…)`, its parameters the cancelled status,
/// [`NO_LONGER_NEEDED`] and the pending status.
pub(super) fn stop_chasing_sql(task: &str) -> String {
    format!(
        "UPDATE outbox SET status = ?, last_error = ? \
         WHERE task_id {task} AND status = ? AND kind IN ({})",
        Kind::chasing_sql()
    )
}

/// Stops what chases a person and has not gone out yet: the task no longer needs anyone's
/// attention. Deliveries to the record go on.
pub fn cancel_chasing(conn: &mut DbConnection, task_id: &str) -> AppResult<usize> {
    // By hand so that it is prepared once per connection (see `store::sql`); its text is
    // made once, not on every status change.
    static CANCEL: LazyLock<String> = LazyLock::new(|| stop_chasing_sql("= ?"));
    let (cancelled, pending) = (Delivery::Cancelled.code(), Delivery::Pending.code());
    Ok(on_backend!(conn, |c| Sql::new(CANCEL.as_str())
        .bind::<Text, _>(cancelled)
        .bind::<Text, _>(NO_LONGER_NEEDED)
        .bind::<Text, _>(task_id)
        .bind::<Text, _>(pending)
        .execute(c)?))
}

/// A claimed row.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = outbox)]
pub struct Row {
    pub id: String,
    pub kind: String,
    pub destination: String,
    pub task_id: String,
    pub task_version: i64,
    pub level: i32,
    pub recipient_id: Option<String>,
    pub status: String,
    pub attempts: i32,
    #[diesel(sql_type = Stamp)]
    pub due_at: NaiveDateTime,
    pub last_error: Option<String>,
    #[diesel(sql_type = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(sql_type = Nullable<Stamp>)]
    pub sent_at: Option<NaiveDateTime>,
    /// Until when the instance sending it holds it.
    #[diesel(sql_type = Nullable<Stamp>)]
    pub lease_until: Option<NaiveDateTime>,
}

const COLUMNS: &str = "id, kind, destination, task_id, task_version, level, recipient_id, \
                       status, attempts, due_at, last_error, created_at, sent_at, lease_until";

/// Rows ready to send: waiting and due, or claimed by an instance whose lease ran out.
/// Both parameters are the time now. `status` is how to name the status column (see
/// [`BY_ID`]).
fn ready(status: &str) -> String {
    format!(
        "(({status} IN ({WAITING_SQL}) AND due_at <= ?) OR ({status} = 'sending' AND lease_until < ?))"
    )
}

/// What a claim sets: the owner and the lease's end are its two parameters.
const CLAIMED: &str =
    "status = 'sending', lease_owner = ?, lease_until = ?, attempts = attempts + 1";

/// Ids of up to `limit` rows ready to send, the longest due first.
fn due_ids(conn: &mut DbConnection, now: DateTime<Utc>, limit: i64) -> AppResult<Vec<String>> {
    // The limit is written into the text: SQLite prepares a statement whose LIMIT is a
    // bound parameter anew each time it is bound (see `store`). There are at most as many
    // texts as the largest batch.
    let sql = format!(
        "SELECT id FROM outbox WHERE {} ORDER BY due_at LIMIT {limit}",
        ready("status")
    );
    let now = to_db(now);
    let ids: Vec<IdRow> = on_backend!(conn, |c| Sql::new(sql.as_str())
        .bind::<Stamp, _>(now)
        .bind::<Stamp, _>(now)
        .load(c)?);
    Ok(ids.into_iter().map(|i| i.id).collect())
}

/// Claims up to `limit` rows ready to send for `owner`, with one conditional update, and
/// returns the rows this call claimed, the longest due first.
pub fn claim(
    conn: &mut DbConnection,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> AppResult<Vec<Row>> {
    if let DbConnection::Pg(c) = conn {
        return claim_pg(c, owner, now, lease_until, limit);
    }
    let ids = due_ids(conn, now, limit)?;
    claim_ids(conn, owner, now, lease_until, &ids)
}

/// Claims for `owner` those of these rows that are ready to send (see [`Doorbell`]), the
/// longest due first. On PostgreSQL a row another instance's claim or a command holds is
/// passed over (`SKIP LOCKED`): the command stops it or the scan finds it.
pub fn claim_ids(
    conn: &mut DbConnection,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    ids: &[String],
) -> AppResult<Vec<Row>> {
    static SQLITE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE outbox SET {CLAIMED} WHERE {} AND id IN {} RETURNING {COLUMNS}",
            ready(BY_ID),
            <diesel::sqlite::Sqlite as super::sql::IdList>::IDS
        )
    });
    // `= ANY` of an array, not `IN IDS`: PostgreSQL kept a plan for the latter, made while
    // the table was small, that read the whole outbox (157 pages a claim under the load).
    static PG: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE outbox SET {CLAIMED} WHERE id IN (SELECT id FROM outbox WHERE {} \
             AND id = ANY(?) FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}",
            ready(BY_ID)
        )
    });
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (now, lease_until) = (to_db(now), to_db(lease_until));
    // The same four parameters first on either backend, then the ids.
    macro_rules! claimed {
        ($sql:expr) => {
            Sql::new($sql.as_str())
                .bind::<Text, _>(owner)
                .bind::<Stamp, _>(lease_until)
                .bind::<Stamp, _>(now)
                .bind::<Stamp, _>(now)
        };
    }
    let mut rows: Vec<Row> = match conn {
        DbConnection::Pg(c) => claimed!(PG)
            .bind::<diesel::sql_types::Array<Text>, _>(&ids)
            .load(c)?,
        DbConnection::Sqlite(c) => claimed!(SQLITE).bind_ids(&ids).load(c)?,
    };
    rows.sort_by_key(|r| r.due_at);
    Ok(rows)
}

/// The claim on PostgreSQL: one statement, which commits by itself (no `BEGIN` and
/// `COMMIT` round trips). `FOR UPDATE SKIP LOCKED` passes over the rows another
/// instance's claim or a command holds, so instances claim different rows and never wait
/// on each other. Reading the ids unlocked and then updating them (as on SQLite, where
/// there is one writer) let two instances' claims lock overlapping rows in different
/// orders: PostgreSQL broke the deadlock by failing one, sometimes a doctor's
/// acknowledgement waiting behind them (the ninth round in `BENCHMARKS.md`).
fn claim_pg(
    c: &mut diesel::PgConnection,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> AppResult<Vec<Row>> {
    let sql = format!(
        "UPDATE outbox SET {CLAIMED} WHERE id IN (SELECT id FROM outbox WHERE {} \
         ORDER BY due_at LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}",
        ready("status"),
    );
    let (now, lease_until) = (to_db(now), to_db(lease_until));
    let mut rows: Vec<Row> = Sql::new(sql)
        .bind::<Text, _>(owner)
        .bind::<Stamp, _>(lease_until)
        .bind::<Stamp, _>(now)
        .bind::<Stamp, _>(now)
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .load(c)?;
    rows.sort_by_key(|r| r.due_at);
    Ok(rows)
}

/// Records that these rows were sent, if this instance still holds their leases: one
/// statement however many. Returns the ids recorded.
pub fn record_sent(
    conn: &mut DbConnection,
    ids: &[&str],
    owner: &str,
    now: DateTime<Utc>,
) -> AppResult<HashSet<String>> {
    let sent: Vec<(&str, &Outcome)> = ids.iter().map(|&id| (id, &Outcome::Sent)).collect();
    record(conn, &sent, owner, now)
}

/// Records attempts' outcomes, if this instance still holds their leases. Rows with the
/// same outcome (sent; failed for the same reason; cancelled) are one statement however
/// many; a retry carries its own time, so it is one of its own. Returns the ids recorded.
pub fn record(
    conn: &mut DbConnection,
    outcomes: &[(&str, &Outcome)],
    owner: &str,
    now: DateTime<Utc>,
) -> AppResult<HashSet<String>> {
    // By hand so that it is prepared once per connection (see `store::sql`); the rows are
    // found by id (`BY_ID`). Only the lease holder may record.
    let record = format!(
        "UPDATE outbox SET status = ?, due_at = coalesce(?, due_at), \
         sent_at = coalesce(?, sent_at), lease_until = NULL, last_error = ? \
         WHERE id IN IDS AND {BY_ID} = 'sending' AND lease_owner = ? RETURNING id"
    );
    type Written<'a> = (
        Delivery,
        Option<NaiveDateTime>,
        Option<NaiveDateTime>,
        Option<&'a str>,
    );
    let mut groups: Vec<(Written, Vec<&str>)> = Vec::new();
    for &(id, outcome) in outcomes {
        let written: Written = match outcome {
            Outcome::Sent => (Delivery::Sent, None, Some(to_db(now)), None),
            Outcome::Retry { at, error } => {
                (Delivery::Pending, Some(to_db(*at)), None, Some(error))
            }
            Outcome::Failing { at, error } => {
                (Delivery::Failing, Some(to_db(*at)), None, Some(error))
            }
            Outcome::Cancelled => (Delivery::Cancelled, None, None, Some(NO_LONGER_NEEDED)),
            Outcome::Failed { error } => (Delivery::Failed, None, None, Some(error)),
        };
        match groups.iter_mut().find(|(w, _)| *w == written) {
            Some((_, ids)) => ids.push(id),
            None => groups.push((written, vec![id])),
        }
    }
    let mut held = HashSet::new();
    for ((status, due_at, sent_at, error), ids) in &groups {
        for chunk in ids.chunks(1000) {
            let rows: Vec<IdRow> = on_backend!(conn, |c| Sql::with_ids(&record)
                .bind::<Text, _>(status.code())
                .bind::<Nullable<Stamp>, _>(*due_at)
                .bind::<Nullable<Stamp>, _>(*sent_at)
                .bind::<Nullable<Text>, _>(*error)
                .bind_ids(chunk)
                .bind::<Text, _>(owner)
                .load(c)?);
            held.extend(rows.into_iter().map(|r| r.id));
        }
    }
    Ok(held)
}

/// Whoever a task assigned to `assignee` is for right now, with their addresses, in one
/// statement: the assignee if active and not busy, or every active holder of the role who
/// is not busy. The same as `app::recipients::first_recipients` and then [`addresses`], a
/// round trip fewer for each raise.
pub fn first_addressees(
    conn: &mut DbConnection,
    assignee: &crate::domain::Assignee,
    now: DateTime<Utc>,
) -> AppResult<Vec<Addressee>> {
    use crate::domain::Assignee;
    const HOLDERS: &str = "SELECT s.id, s.email FROM role_holdings h \
         JOIN staff s ON s.id = h.staff_id \
         WHERE h.role_id = ? AND h.held_until IS NULL AND s.active \
         AND (s.busy_until IS NULL OR s.busy_until <= ?)";
    const PERSON: &str = "SELECT s.id, s.email FROM staff s \
         WHERE s.id = ? AND s.active AND (s.busy_until IS NULL OR s.busy_until <= ?)";
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        email: Option<String>,
    }
    let (text, id) = match assignee {
        Assignee::Role(r) => (HOLDERS, r),
        Assignee::Staff(s) => (PERSON, s),
    };
    let rows: Vec<Found> = on_backend!(conn, |c| Sql::new(text)
        .bind::<Text, _>(id.as_str())
        .bind::<Stamp, _>(to_db(now))
        .load(c)?);
    Ok(rows
        .into_iter()
        .map(|f| Addressee {
            id: f.id,
            email: f.email,
        })
        .collect())
}

/// The active members of staff among `ids`, in the order given, with their addresses.
pub fn addresses(conn: &mut DbConnection, ids: &[String]) -> AppResult<Vec<Addressee>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(QueryableByName)]
    #[diesel(table_name = super::schema::staff)]
    struct StaffRow {
        id: String,
        email: Option<String>,
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let rows: Vec<StaffRow> = load_by_ids(
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

/// One row, by id.
pub fn get(conn: &mut DbConnection, id: &str) -> AppResult<Option<Row>> {
    Ok(outbox::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

//! The rota as stored: shifts and overrides as instants, recurring patterns, who may hold
//! which role, who is busy, and how far the rota has been applied to who holds each bleep.
use super::directory::Role;
use super::schema::{
    oncall_roles, role_eligibility, role_holdings, rota_patterns, rota_shifts, settings, staff,
};
use super::sql::{insert_rows, load_by_ids, on_backend, IdRow, Sql};
use super::{from_db, new_id, to_db, DbConnection};
use crate::domain::rota::{Slot, MAX_SHIFT};
use crate::domain::Task;
use crate::error::AppResult;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

mod boundaries;
pub use boundaries::*;

/// One shift or override to write.
#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = rota_shifts, treat_none_as_default_value = false)]
pub struct NewShift {
    pub id: String,
    pub role_id: String,
    pub staff_id: Option<String>,
    pub replaces: Option<String>,
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    pub pattern_id: Option<String>,
    pub note: Option<String>,
    pub created_at: NaiveDateTime,
}

impl NewShift {
    pub fn new(
        role_id: &str,
        staff_id: Option<&str>,
        span: (DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
    ) -> NewShift {
        NewShift {
            id: new_id(),
            role_id: role_id.to_string(),
            staff_id: staff_id.map(str::to_string),
            replaces: None,
            starts_at: to_db(span.0),
            ends_at: to_db(span.1),
            pattern_id: None,
            note: None,
            created_at: to_db(now),
        }
    }
}

/// Counts this process's changes to the rota's shifts: a command that learned when the
/// next boundary is (see `app::rota::RotaQuiet`) forgets it when this has moved since.
static SHIFTS_CHANGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many times this process has changed the rota's shifts (added or removed any).
pub fn shifts_changed() -> u64 {
    SHIFTS_CHANGED.load(std::sync::atomic::Ordering::SeqCst)
}

fn count_shift_change() {
    SHIFTS_CHANGED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

pub fn add_shifts(conn: &mut DbConnection, rows: &[NewShift]) -> AppResult<usize> {
    count_shift_change();
    Ok(insert_rows!(conn, rota_shifts::table, rows))
}

/// A recurring pattern, as written.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PatternRow {
    pub id: String,
    pub role_id: String,
    pub staff_id: String,
    pub weekdays: String,
    pub starts: String,
    pub ends: String,
    pub first_day: String,
    pub last_day: String,
}

pub fn add_pattern(conn: &mut DbConnection, p: &PatternRow, now: DateTime<Utc>) -> AppResult<()> {
    diesel::insert_into(rota_patterns::table)
        .values((
            rota_patterns::id.eq(&p.id),
            rota_patterns::role_id.eq(&p.role_id),
            rota_patterns::staff_id.eq(&p.staff_id),
            rota_patterns::weekdays.eq(&p.weekdays),
            rota_patterns::starts.eq(&p.starts),
            rota_patterns::ends.eq(&p.ends),
            rota_patterns::first_day.eq(&p.first_day),
            rota_patterns::last_day.eq(&p.last_day),
            rota_patterns::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// A shift as the API and the pages show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Shift {
    pub id: String,
    pub role_id: String,
    /// Who holds the role in this shift; none for an override that takes someone off.
    pub staff_id: Option<String>,
    /// For an override: whom it replaces for its window.
    pub replaces: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub pattern_id: Option<String>,
    pub note: Option<String>,
}

type ShiftTuple = (
    String,
    String,
    Option<String>,
    Option<String>,
    NaiveDateTime,
    NaiveDateTime,
    Option<String>,
    Option<String>,
);

fn shift_of(t: ShiftTuple) -> Shift {
    Shift {
        id: t.0,
        role_id: t.1,
        staff_id: t.2,
        replaces: t.3,
        starts_at: from_db(t.4),
        ends_at: from_db(t.5),
        pattern_id: t.6,
        note: t.7,
    }
}

impl Shift {
    pub fn slot(&self) -> Slot {
        Slot {
            staff: self.staff_id.clone(),
            replaces: self.replaces.clone(),
            starts: self.starts_at,
            ends: self.ends_at,
        }
    }
}

macro_rules! shift_columns {
    () => {
        (
            rota_shifts::id,
            rota_shifts::role_id,
            rota_shifts::staff_id,
            rota_shifts::replaces,
            rota_shifts::starts_at,
            rota_shifts::ends_at,
            rota_shifts::pattern_id,
            rota_shifts::note,
        )
    };
}

/// The shifts of some roles (all roles when `roles` is None) that overlap `[from, to)`,
/// by start.
pub fn shifts(
    conn: &mut DbConnection,
    roles: Option<&[String]>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<Shift>> {
    // No shift is longer than MAX_SHIFT, so its start bounds the range to read.
    let mut q = rota_shifts::table
        .filter(rota_shifts::starts_at.gt(to_db(from - MAX_SHIFT)))
        .filter(rota_shifts::ends_at.gt(to_db(from)))
        .filter(rota_shifts::starts_at.lt(to_db(to)))
        .select(shift_columns!())
        .order((rota_shifts::starts_at, rota_shifts::id))
        .into_boxed();
    if let Some(r) = roles {
        q = q.filter(rota_shifts::role_id.eq_any(r.to_vec()));
    }
    Ok(q.load::<ShiftTuple>(conn)?
        .into_iter()
        .map(shift_of)
        .collect())
}

/// One person's shifts (and the overrides that name them) overlapping `[from, to)`.
pub fn shifts_of_staff(
    conn: &mut DbConnection,
    staff_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<Shift>> {
    Ok(rota_shifts::table
        .filter(rota_shifts::staff_id.eq(staff_id))
        .filter(rota_shifts::starts_at.gt(to_db(from - MAX_SHIFT)))
        .filter(rota_shifts::ends_at.gt(to_db(from)))
        .filter(rota_shifts::starts_at.lt(to_db(to)))
        .select(shift_columns!())
        .order(rota_shifts::starts_at)
        .load::<ShiftTuple>(conn)?
        .into_iter()
        .map(shift_of)
        .collect())
}

/// The slots of each of these roles that overlap `[from, to)`.
pub fn slots(
    conn: &mut DbConnection,
    roles: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<HashMap<String, Vec<Slot>>> {
    let mut out: HashMap<String, Vec<Slot>> = HashMap::new();
    for s in shifts(conn, Some(roles), from, to)? {
        out.entry(s.role_id.clone()).or_default().push(s.slot());
    }
    Ok(out)
}

/// The slots that put these people on a role or take them off it, overlapping
/// `[from, to)`, by role: their own shifts, and the overrides that replace them. That is
/// all [`crate::domain::rota::held_until`] needs to say when each one's time on a role
/// ends, without reading everyone else's shifts.
pub fn slots_naming(
    conn: &mut DbConnection,
    staff: &[&str],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<HashMap<String, Vec<Slot>>> {
    // Two index reads (by staff and by the person replaced), each bounded by MAX_SHIFT as
    // in `shifts`; UNION drops the override that names two of these people twice.
    const NAMING: &str = "SELECT id, role_id, staff_id, replaces, starts_at, ends_at \
         FROM rota_shifts WHERE staff_id IN IDS AND starts_at > ? AND ends_at > ? AND starts_at < ? \
         UNION SELECT id, role_id, staff_id, replaces, starts_at, ends_at \
         FROM rota_shifts WHERE replaces IN IDS AND starts_at > ? AND ends_at > ? AND starts_at < ?";
    #[derive(QueryableByName)]
    #[diesel(table_name = rota_shifts)]
    struct Naming {
        #[allow(dead_code)]
        id: String,
        role_id: String,
        staff_id: Option<String>,
        replaces: Option<String>,
        starts_at: NaiveDateTime,
        ends_at: NaiveDateTime,
    }
    let mut out: HashMap<String, Vec<Slot>> = HashMap::new();
    let (earliest, from, to) = (to_db(from - MAX_SHIFT), to_db(from), to_db(to));
    for chunk in staff.chunks(1000) {
        let rows: Vec<Naming> = on_backend!(conn, |c| {
            let mut q = Sql::with_ids(NAMING);
            for _ in 0..2 {
                q = q.bind_ids(chunk);
                for t in [earliest, from, to] {
                    q = q.bind::<crate::store::stamp::Stamp, _>(t);
                }
            }
            q.load(c)?
        });
        for r in rows {
            out.entry(r.role_id).or_default().push(Slot {
                staff: r.staff_id,
                replaces: r.replaces,
                starts: from_db(r.starts_at),
                ends: from_db(r.ends_at),
            });
        }
    }
    Ok(out)
}

/// Removes one shift; whether it was there.
pub fn remove_shift(conn: &mut DbConnection, id: &str) -> AppResult<Option<Shift>> {
    let found = rota_shifts::table
        .find(id)
        .select(shift_columns!())
        .get_result::<ShiftTuple>(conn)
        .optional()?
        .map(shift_of);
    if found.is_some() {
        count_shift_change();
        diesel::delete(rota_shifts::table.find(id)).execute(conn)?;
    }
    Ok(found)
}

const DIRECTORY: &str = "directory_changed_at";

/// Marks that who holds what (or who is busy) changed, so open pages refresh.
pub fn touch_directory(conn: &mut DbConnection, now: DateTime<Utc>) -> AppResult<()> {
    diesel::update(settings::table.find(DIRECTORY))
        .set(settings::value.eq(now.to_rfc3339()))
        .execute(conn)?;
    Ok(())
}

/// When who holds what last changed (for open pages).
pub fn directory_changed(conn: &mut DbConnection) -> AppResult<Option<String>> {
    Ok(settings::table
        .find(DIRECTORY)
        .select(settings::value)
        .get_result(conn)
        .optional()?)
}

/// Lets a person hold a role (idempotent).
pub fn allow(
    conn: &mut DbConnection,
    role_id: &str,
    staff_id: &str,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let already: i64 = role_eligibility::table
        .find((role_id, staff_id))
        .count()
        .get_result(conn)?;
    if already > 0 {
        return Ok(false);
    }
    diesel::insert_into(role_eligibility::table)
        .values((
            role_eligibility::role_id.eq(role_id),
            role_eligibility::staff_id.eq(staff_id),
            role_eligibility::granted_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(true)
}

pub fn disallow(conn: &mut DbConnection, role_id: &str, staff_id: &str) -> AppResult<bool> {
    Ok(diesel::delete(role_eligibility::table.find((role_id, staff_id))).execute(conn)? > 0)
}

/// Who may hold the role (empty: the role has no list yet).
pub fn allowed(conn: &mut DbConnection, role_id: &str) -> AppResult<Vec<String>> {
    Ok(role_eligibility::table
        .filter(role_eligibility::role_id.eq(role_id))
        .select(role_eligibility::staff_id)
        .load(conn)?)
}

/// The roles a person is listed for.
pub fn allowed_roles(conn: &mut DbConnection, staff_id: &str) -> AppResult<Vec<String>> {
    Ok(role_eligibility::table
        .filter(role_eligibility::staff_id.eq(staff_id))
        .select(role_eligibility::role_id)
        .load(conn)?)
}

/// Marks a person busy until `until` (None: no longer busy).
pub fn set_busy(
    conn: &mut DbConnection,
    staff_id: &str,
    until: Option<DateTime<Utc>>,
    reason: Option<&str>,
) -> AppResult<()> {
    diesel::update(staff::table.find(staff_id))
        .set((
            staff::busy_until.eq(until.map(to_db)),
            staff::busy_reason.eq(reason),
        ))
        .execute(conn)?;
    Ok(())
}

/// Someone busy now: who, until when, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Busy {
    pub staff_id: String,
    pub name: String,
    pub until: DateTime<Utc>,
    pub reason: Option<String>,
}

/// Everyone busy at `now`.
pub fn busy(conn: &mut DbConnection, now: DateTime<Utc>) -> AppResult<Vec<Busy>> {
    Ok(staff::table
        .filter(staff::busy_until.gt(to_db(now)))
        .select((
            staff::id,
            staff::name,
            staff::busy_until,
            staff::busy_reason,
        ))
        .order(staff::busy_until)
        .load::<(String, String, Option<NaiveDateTime>, Option<String>)>(conn)?
        .into_iter()
        .filter_map(|(staff_id, name, until, reason)| {
            Some(Busy {
                staff_id,
                name,
                until: from_db(until?),
                reason,
            })
        })
        .collect())
}

/// Which of these people are busy at `now`.
pub fn busy_among(
    conn: &mut DbConnection,
    ids: &[String],
    now: DateTime<Utc>,
) -> AppResult<HashSet<String>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(staff::table
        .filter(staff::id.eq_any(ids))
        .filter(staff::busy_until.gt(to_db(now)))
        .select(staff::id)
        .load::<String>(conn)?
        .into_iter()
        .collect())
}

/// Who holds the role now and is not busy, in one statement (the holdings not ended, and
/// each holder's busy time).
pub fn available_holders(
    conn: &mut DbConnection,
    role_id: &str,
    now: DateTime<Utc>,
) -> AppResult<Vec<String>> {
    const AVAILABLE: &str = "SELECT h.staff_id AS id FROM role_holdings h \
         JOIN staff s ON s.id = h.staff_id \
         WHERE h.role_id = ? AND h.held_until IS NULL \
         AND (s.busy_until IS NULL OR s.busy_until <= ?)";
    let rows: Vec<IdRow> = on_backend!(conn, |c| Sql::new(AVAILABLE)
        .bind::<diesel::sql_types::Text, _>(role_id)
        .bind::<crate::store::stamp::Stamp, _>(to_db(now))
        .load(c)?);
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// A holding its holder has not yet confirmed: the hand-over list of `/me`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewHolding {
    pub id: String,
    pub role_id: String,
    pub held_from: DateTime<Utc>,
    pub source: Option<String>,
}

pub fn unconfirmed(conn: &mut DbConnection, staff_id: &str) -> AppResult<Vec<NewHolding>> {
    Ok(role_holdings::table
        .filter(role_holdings::staff_id.eq(staff_id))
        .filter(role_holdings::held_until.is_null())
        .filter(role_holdings::confirmed_at.is_null())
        .select((
            role_holdings::id,
            role_holdings::role_id,
            role_holdings::held_from,
            role_holdings::source,
        ))
        .order(role_holdings::held_from)
        .load::<(String, String, NaiveDateTime, Option<String>)>(conn)?
        .into_iter()
        .map(|(id, role_id, from, source)| NewHolding {
            id,
            role_id,
            held_from: from_db(from),
            source,
        })
        .collect())
}

/// Confirms the current holdings of `role_id` (or all) by this person; how many.
pub fn confirm(
    conn: &mut DbConnection,
    staff_id: &str,
    role_id: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<usize> {
    let mut q = diesel::update(role_holdings::table)
        .filter(role_holdings::staff_id.eq(staff_id))
        .filter(role_holdings::held_until.is_null())
        .filter(role_holdings::confirmed_at.is_null())
        .into_boxed();
    if let Some(r) = role_id {
        q = q.filter(role_holdings::role_id.eq(r));
    }
    Ok(q.set(role_holdings::confirmed_at.eq(Some(to_db(now))))
        .execute(conn)?)
}

/// The current holdings of these roles, read at once: (holding id, role id, staff id).
pub fn holdings_now(
    conn: &mut DbConnection,
    roles: &[String],
) -> AppResult<Vec<(String, String, String)>> {
    #[derive(QueryableByName)]
    #[diesel(table_name = role_holdings)]
    struct Now {
        id: String,
        role_id: String,
        staff_id: String,
    }
    let mut out = Vec::new();
    for chunk in roles.chunks(1000) {
        let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let rows: Vec<Now> = load_by_ids(
            conn,
            "SELECT id, role_id, staff_id FROM role_holdings \
             WHERE held_until IS NULL AND role_id IN IDS",
            &ids,
        )?;
        out.extend(rows.into_iter().map(|r| (r.id, r.role_id, r.staff_id)));
    }
    Ok(out)
}

/// Ends these holdings (by id) at `now`.
pub fn end_holdings(
    conn: &mut DbConnection,
    ids: &[String],
    now: DateTime<Utc>,
) -> AppResult<usize> {
    const END: &str =
        "UPDATE role_holdings SET held_until = ? WHERE held_until IS NULL AND id IN IDS";
    let mut n = 0;
    for chunk in ids.chunks(1000) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        n += on_backend!(conn, |c| Sql::with_ids(END)
            .bind::<crate::store::stamp::Stamp, _>(to_db(now))
            .bind_ids(&chunk)
            .execute(c)?);
    }
    Ok(n)
}

/// A holding to start: who holds which role from when, how it came, and who handed it.
#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = role_holdings, treat_none_as_default_value = false)]
pub struct StartHolding {
    pub id: String,
    pub role_id: String,
    pub staff_id: String,
    pub handed_over_by: Option<String>,
    pub held_from: NaiveDateTime,
    pub source: Option<String>,
}

impl StartHolding {
    pub fn new(
        role_id: &str,
        staff_id: &str,
        source: &str,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> StartHolding {
        StartHolding {
            id: new_id(),
            role_id: role_id.to_string(),
            staff_id: staff_id.to_string(),
            handed_over_by: by.map(str::to_string),
            held_from: to_db(now),
            source: Some(source.to_string()),
        }
    }
}

/// Starts these holdings, 500 rows a statement.
pub fn start_holdings(conn: &mut DbConnection, rows: &[StartHolding]) -> AppResult<usize> {
    Ok(insert_rows!(conn, role_holdings::table, rows))
}

/// These roles, by id, read at once.
pub fn roles_by_ids(conn: &mut DbConnection, ids: &[String]) -> AppResult<HashMap<String, Role>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(1000) {
        let rows = oncall_roles::table
            .filter(oncall_roles::id.eq_any(chunk))
            .select((
                oncall_roles::id,
                oncall_roles::name,
                oncall_roles::escalates_to,
            ))
            .load::<(String, String, Option<String>)>(conn)?;
        out.extend(rows.into_iter().map(|(id, name, escalates_to)| {
            let role = Role {
                id: id.clone(),
                name,
                escalates_to,
            };
            (id, role)
        }));
    }
    Ok(out)
}

/// The open tasks of each of these roles, oldest first, at most 500 a role: what
/// `tasks::open_for_role` answers for each, in one query for them all.
pub fn open_for_roles(
    conn: &mut DbConnection,
    roles: &[String],
) -> AppResult<HashMap<String, Vec<Task>>> {
    let mut out: HashMap<String, Vec<Task>> = HashMap::new();
    for task in super::tasks::open_for_roles(conn, roles)? {
        let crate::domain::task::Assignee::Role(role) = &task.assignee else {
            continue;
        };
        let of_role = out.entry(role.clone()).or_default();
        if of_role.len() < 500 {
            of_role.push(task);
        }
    }
    Ok(out)
}

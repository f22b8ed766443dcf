//! Look-ups that find several things in one statement: what a task's command names (its
//! ward, its assignee), and names by id.
use super::super::outbox::Addressee;
use super::super::sql::{load_by_ids, on_backend, Sql};
use super::super::{to_db, DbConnection};
use super::{hash_token, staff_of, Role, Staff};
use crate::error::AppResult;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use std::collections::HashMap;

/// What a task's command looks up before it writes, found in one statement: whether a
/// raise's ward is known, what an assignee key names (a member of staff by id, an on-call
/// role by id or name), who the task would reach now, and the caller by their staff token.
pub struct AssigneeLookup {
    pub ward_known: bool,
    pub staff: Option<Staff>,
    pub role: Option<Role>,
    /// Whoever the task would reach now: the member of staff if active and not busy, or
    /// every active holder of the role who is not busy (as `outbox::first_addressees`).
    pub reached: Vec<Addressee>,
    /// The active member of staff whose staff token was given, if any.
    pub caller: Option<Staff>,
}

/// What to look up: `ward` is None when there is no ward to check (a reassignment; it is
/// then not known); `caller_token` a staff token to check with it.
pub struct Lookup<'a> {
    pub ward: Option<&'a str>,
    pub key: &'a str,
    pub caller_token: Option<&'a str>,
    pub now: DateTime<Utc>,
}

pub fn assignee_lookup(conn: &mut DbConnection, l: Lookup) -> AppResult<AssigneeLookup> {
    const LOOKUP: &str = "SELECT 'ward' AS what, name AS id, name, NULL AS email, \
         NULL AS permissions, NULL AS active, NULL AS escalates_to FROM wards WHERE name = ? \
         UNION ALL SELECT 'staff', id, name, email, permissions, active, \
         CASE WHEN active AND (busy_until IS NULL OR busy_until <= ?) THEN 'free' END \
         FROM staff WHERE id = ? \
         UNION ALL SELECT 'role', id, name, NULL, NULL, NULL, escalates_to \
         FROM oncall_roles WHERE id = ? OR name = ? \
         UNION ALL SELECT 'holder', s.id, s.name, s.email, NULL, NULL, r.id \
         FROM oncall_roles r JOIN role_holdings h ON h.role_id = r.id AND h.held_until IS NULL \
         JOIN staff s ON s.id = h.staff_id WHERE (r.id = ? OR r.name = ?) AND s.active \
         AND (s.busy_until IS NULL OR s.busy_until <= ?) \
         UNION ALL SELECT 'caller', id, name, email, permissions, active, NULL \
         FROM staff WHERE token_hash = ? AND active";
    use crate::store::stamp::Stamp;
    use diesel::sql_types::{Bool, Nullable, Text};
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = Text)]
        what: String,
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Nullable<Text>)]
        email: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        permissions: Option<String>,
        #[diesel(sql_type = Nullable<Bool>)]
        active: Option<bool>,
        #[diesel(sql_type = Nullable<Text>)]
        escalates_to: Option<String>,
    }
    let (key, now) = (l.key, to_db(l.now));
    let token = l.caller_token.map(hash_token);
    let rows: Vec<Found> = on_backend!(conn, |c| Sql::new(LOOKUP)
        .bind::<Nullable<Text>, _>(l.ward)
        .bind::<Stamp, _>(now)
        .bind::<Text, _>(key)
        .bind::<Text, _>(key)
        .bind::<Text, _>(key)
        .bind::<Text, _>(key)
        .bind::<Text, _>(key)
        .bind::<Stamp, _>(now)
        .bind::<Nullable<Text>, _>(token.as_deref())
        .load(c)?);
    let mut out = AssigneeLookup {
        ward_known: false,
        staff: None,
        role: None,
        reached: Vec::new(),
        caller: None,
    };
    let (mut holders, mut staff_free) = (Vec::new(), false);
    let person = |r: Found| {
        staff_of(
            r.id,
            r.name,
            r.email,
            &r.permissions.unwrap_or_default(),
            r.active.unwrap_or(false),
        )
    };
    for r in rows {
        match r.what.as_str() {
            "ward" => out.ward_known = true,
            "staff" => {
                staff_free = r.escalates_to.is_some();
                out.staff = Some(person(r));
            }
            "caller" => out.caller = Some(person(r)),
            "holder" => holders.push(r),
            // A key that is one role's id and another's name: the id wins, as in `find_role`
            // (an id is the primary key; a name is unique).
            _ if out.role.as_ref().is_some_and(|found| found.id == key) => {}
            _ => {
                out.role = Some(Role {
                    id: r.id,
                    name: r.name,
                    escalates_to: r.escalates_to,
                })
            }
        }
    }
    // The assignee is the member of staff if the key is one, else the role (`app::tasks`).
    out.reached = match (&out.staff, &out.role) {
        (Some(s), _) if staff_free => vec![Addressee {
            id: s.id.clone(),
            email: s.email.clone(),
        }],
        (Some(_), _) | (None, None) => Vec::new(),
        (None, Some(role)) => holders
            .into_iter()
            .filter(|h| h.escalates_to.as_deref() == Some(role.id.as_str()))
            .map(|h| Addressee {
                id: h.id,
                email: h.email,
            })
            .collect(),
    };
    Ok(out)
}

/// The names of these staff and of these roles, in one statement: `(staff, roles)`, each
/// `id → name`.
pub fn names(
    conn: &mut DbConnection,
    staff_ids: &[&str],
    role_ids: &[&str],
) -> AppResult<(HashMap<String, String>, HashMap<String, String>)> {
    const NAMES: &str = "SELECT id, name, 1 AS role FROM oncall_roles WHERE id IN IDS \
         UNION ALL SELECT id, name, 0 AS role FROM staff WHERE id IN IDS";
    #[derive(QueryableByName)]
    struct Named {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        role: i32,
    }
    let (mut staff, mut roles) = (HashMap::new(), HashMap::new());
    if staff_ids.is_empty() && role_ids.is_empty() {
        return Ok((staff, roles));
    }
    let rows: Vec<Named> = on_backend!(conn, |c| Sql::with_ids(NAMES)
        .bind_ids(role_ids)
        .bind_ids(staff_ids)
        .load(c)?);
    for r in rows {
        match r.role {
            0 => staff.insert(r.id, r.name),
            _ => roles.insert(r.id, r.name),
        };
    }
    Ok((staff, roles))
}

#[derive(QueryableByName)]
struct IdName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// `id → name` for the given ids of a table with those two columns.
pub(super) fn names_by_id(
    conn: &mut DbConnection,
    table: &'static str,
    ids: &[&str],
) -> AppResult<HashMap<String, String>> {
    let sql = format!("SELECT id, name FROM {table} WHERE id IN IDS");
    let rows: Vec<IdName> = load_by_ids(conn, &sql, ids)?;
    Ok(rows.into_iter().map(|r| (r.id, r.name)).collect())
}

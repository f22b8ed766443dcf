//! Shift boundaries: when the next one is, which roles' shifts start or end in a span,
//! and how far the rota has been applied (the mark every command checks).
use super::super::schema::{rota_shifts, settings};
use super::super::sql::{on_backend, IdRow, Sql};
use super::super::{from_db, to_db, DbConnection};
use crate::domain::rota::MAX_SHIFT;
use crate::error::AppResult;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

/// The first time after `now` at which any shift starts or ends (None: none does).
pub fn next_boundary(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
) -> AppResult<Option<DateTime<Utc>>> {
    const NEXT: &str = "SELECT min(at) AS at FROM ( \
         SELECT min(starts_at) AS at FROM rota_shifts WHERE starts_at > ? \
         UNION ALL SELECT min(ends_at) FROM rota_shifts WHERE ends_at > ?) AS b";
    #[derive(QueryableByName)]
    struct Next {
        #[diesel(sql_type = diesel::sql_types::Nullable<crate::store::stamp::Stamp>)]
        at: Option<NaiveDateTime>,
    }
    let row: Next = on_backend!(conn, |c| Sql::new(NEXT)
        .bind::<crate::store::stamp::Stamp, _>(to_db(now))
        .bind::<crate::store::stamp::Stamp, _>(to_db(now))
        .get_result(c)?);
    Ok(row.at.map(from_db))
}

/// The roles whose rota starts or ends a shift in `(after, upto]`: one statement (two
/// index ranges), which every command runs to see whether a boundary has passed.
pub fn roles_changing(
    conn: &mut DbConnection,
    after: DateTime<Utc>,
    upto: DateTime<Utc>,
) -> AppResult<Vec<String>> {
    const CHANGING: &str =
        "SELECT role_id AS id FROM rota_shifts WHERE starts_at > ? AND starts_at <= ? \
         UNION SELECT role_id AS id FROM rota_shifts WHERE ends_at > ? AND ends_at <= ?";
    let (a, u) = (to_db(after), to_db(upto));
    let rows: Vec<IdRow> = on_backend!(conn, |c| {
        let mut q = Sql::new(CHANGING);
        for t in [a, u, a, u] {
            q = q.bind::<crate::store::stamp::Stamp, _>(t);
        }
        q.load(c)?
    });
    let mut roles: Vec<String> = rows.into_iter().map(|r| r.id).collect();
    roles.sort();
    Ok(roles)
}

/// The roles that have a rota at all around `[from, to)`.
pub fn roles_on_rota(
    conn: &mut DbConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<String>> {
    Ok(rota_shifts::table
        .filter(rota_shifts::starts_at.gt(to_db(from - MAX_SHIFT)))
        .filter(rota_shifts::ends_at.gt(to_db(from)))
        .filter(rota_shifts::starts_at.lt(to_db(to)))
        .select(rota_shifts::role_id)
        .distinct()
        .load(conn)?)
}

const APPLIED: &str = "rota_applied_until";

/// How far the rota has been applied to who holds each bleep (None: not yet).
pub fn applied_until(conn: &mut DbConnection) -> AppResult<Option<DateTime<Utc>>> {
    let v: Option<String> = settings::table
        .find(APPLIED)
        .select(settings::value)
        .get_result(conn)
        .optional()?;
    Ok(v.as_deref().and_then(parse_mark))
}

/// How far the rota has been applied (None: not yet), and the roles whose rota starts or
/// ends a shift after that and up to `now`: what every command asks first, to see whether
/// a boundary has passed since. On PostgreSQL one statement, a round trip fewer for every
/// command; on SQLite, where a statement is no round trip, the mark and then the roles.
pub fn due_roles(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
) -> AppResult<(Option<DateTime<Utc>>, Vec<String>)> {
    // The mark is text (RFC 3339, UTC); `AT TIME ZONE 'UTC'` makes it a timestamp in UTC
    // like the shifts', whatever the session's time zone.
    const DUE: &str = "WITH m AS (SELECT value, \
         CAST(NULLIF(value, '') AS timestamptz) AT TIME ZONE 'UTC' AS at \
         FROM settings WHERE name = ?) \
         SELECT value AS mark, NULL::text AS id FROM m \
         UNION ALL SELECT NULL, r.role_id FROM m, rota_shifts r \
         WHERE r.starts_at > m.at AND r.starts_at <= ? \
         UNION ALL SELECT NULL, r.role_id FROM m, rota_shifts r \
         WHERE r.ends_at > m.at AND r.ends_at <= ?";
    #[derive(QueryableByName)]
    struct Due {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        mark: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        id: Option<String>,
    }
    let DbConnection::Pg(c) = conn else {
        let last = applied_until(conn)?;
        let roles = match last {
            Some(a) if a < now => roles_changing(conn, a, now)?,
            _ => Vec::new(),
        };
        return Ok((last, roles));
    };
    let rows: Vec<Due> = Sql::new(DUE)
        .bind::<diesel::sql_types::Text, _>(APPLIED)
        .bind::<crate::store::stamp::Stamp, _>(to_db(now))
        .bind::<crate::store::stamp::Stamp, _>(to_db(now))
        .load(c)?;
    let mut last = None;
    let mut roles = std::collections::BTreeSet::new();
    for r in rows {
        if let Some(m) = r.mark {
            last = parse_mark(&m);
        }
        roles.extend(r.id);
    }
    Ok((last, roles.into_iter().collect()))
}

fn parse_mark(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Moves the applied mark from `from` (as read) to `to`: false when another transaction
/// moved it first (it then did this work). On PostgreSQL the second writer waits for the
/// first and then finds the mark moved.
pub fn advance_applied(
    conn: &mut DbConnection,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> AppResult<bool> {
    let old = from.map(|t| t.to_rfc3339()).unwrap_or_default();
    let n = diesel::update(
        settings::table
            .filter(settings::name.eq(APPLIED))
            .filter(settings::value.eq(old)),
    )
    .set(settings::value.eq(to.to_rfc3339()))
    .execute(conn)?;
    Ok(n == 1)
}

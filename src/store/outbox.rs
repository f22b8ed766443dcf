//! Claiming rows of an outbox table (notifications, record deliveries) with a lease, so
//! that of several instances sharing one database each row goes to one.
use super::sql::{on_backend, IdRow, Sql};
use super::{to_db, DbConnection};
use crate::error::AppResult;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp};

/// The status column, written so that a statement that also says `id IN IDS` finds its rows
/// by id. Named plainly, SQLite chose a status index instead and read every row of that
/// status: every due notification for each claim of a batch, every row in flight for each
/// recorded batch (`EXPLAIN QUERY PLAN`). An expression cannot be looked up in an index; the
/// column is never NULL, so the value is the same on both backends.
pub const BY_ID: &str = "coalesce(status, '')";

/// An outbox table: its name, the statuses of rows waiting to be sent (as an SQL list of
/// literals), and the columns a claim returns. Every outbox has `id`, `status`, `due_at`,
/// `attempts`, `lease_owner` and `lease_until`; a claimed row is `'sending'`.
pub struct Outbox {
    pub table: &'static str,
    pub waiting: &'static str,
    pub columns: &'static str,
}

impl Outbox {
    /// Rows ready to send: waiting and due, or claimed by an instance whose lease ran out.
    /// Both parameters are the time now. `status` is how to name the status column (see
    /// [`BY_ID`]).
    fn ready(&self, status: &str) -> String {
        format!(
            "(({status} IN ({}) AND due_at <= ?) OR ({status} = 'sending' AND lease_until < ?))",
            self.waiting
        )
    }

    /// Ids of up to `limit` rows ready to send, the longest due first.
    pub fn due_ids(
        &self,
        conn: &mut DbConnection,
        now: DateTime<Utc>,
        limit: i64,
    ) -> AppResult<Vec<String>> {
        // The limit is written into the text: SQLite prepares a statement whose LIMIT is a
        // bound parameter anew each time it is bound (see `store`). There are at most as
        // many texts as the largest batch.
        let sql = format!(
            "SELECT id FROM {} WHERE {} ORDER BY due_at LIMIT {limit}",
            self.table,
            self.ready("status")
        );
        let now = to_db(now);
        let ids: Vec<IdRow> = on_backend!(conn, |c| Sql::new(sql.as_str())
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(now)
            .load(c)?);
        Ok(ids.into_iter().map(|i| i.id).collect())
    }

    /// Claims up to `limit` rows ready to send for `owner`, with one conditional update,
    /// and returns the rows this call claimed (in no particular order).
    pub fn claim<T>(
        &self,
        conn: &mut DbConnection,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> AppResult<Vec<T>>
    where
        T: QueryableByName<diesel::sqlite::Sqlite> + QueryableByName<diesel::pg::Pg> + 'static,
    {
        let ids = self.due_ids(conn, now, limit)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let sql = format!(
            "UPDATE {} SET status = 'sending', lease_owner = ?, lease_until = ?, \
             attempts = attempts + 1 WHERE {} AND id IN IDS RETURNING {}",
            self.table,
            self.ready(BY_ID),
            self.columns
        );
        let (now, lease_until) = (to_db(now), to_db(lease_until));
        Ok(on_backend!(conn, |c| Sql::with_ids(&sql)
            .bind::<Text, _>(owner)
            .bind::<Timestamp, _>(lease_until)
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(now)
            .bind_ids(&ids)
            .load(c)?))
    }
}

//! A caller known from an earlier change (see `app::recent`), checked by the write itself.
use crate::error::AppResult;
use crate::store::sql::{on_backend, Sql};
use crate::store::DbConnection;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use std::sync::LazyLock;

/// Whether a staff token is still its holder's, and they as a change was decided for them:
/// active, with the same permissions.
pub(super) const CALLER_STILL: &str = "SELECT 1 FROM staff c WHERE c.token_hash = ? AND c.active \
     AND c.id = ? AND c.permissions = ?";

/// A caller known from an earlier change, whose next change is decided without reading
/// them again (see `app::recent`): saved only if they are still as they were.
pub struct Caller {
    pub token_hash: String,
    pub staff_id: String,
    /// Their permissions as stored (`domain::staff::format_permissions`).
    pub permissions: String,
}

impl Caller {
    pub(super) fn bind<'a, DB>(&'a self, sql: Sql<'a, DB>) -> Sql<'a, DB>
    where
        DB: diesel::backend::Backend + diesel::sql_types::HasSqlType<Text>,
        &'a str: diesel::serialize::ToSql<Text, DB>,
    {
        sql.bind::<Text, _>(self.token_hash.as_str())
            .bind::<Text, _>(self.staff_id.as_str())
            .bind::<Text, _>(self.permissions.as_str())
    }

    /// Whether they are still as they were, on their own (where the change is not one
    /// statement).
    pub(super) fn still(&self, conn: &mut DbConnection) -> AppResult<bool> {
        #[derive(QueryableByName)]
        struct Found {
            #[diesel(sql_type = Integer)]
            #[allow(dead_code)]
            one: i32,
        }
        static SQL: LazyLock<String> =
            LazyLock::new(|| CALLER_STILL.replace("SELECT 1", "SELECT 1 AS one"));
        let found: Vec<Found> = on_backend!(conn, |c| self.bind(Sql::new(SQL.as_str())).load(c)?);
        Ok(!found.is_empty())
    }
}

//! A caller known from an earlier change (see `app::recent`), checked by the write itself.
use crate::error::AppResult;
use crate::store::sql::{on_backend, IdRow, Sql};
use crate::store::DbConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

/// Whether a staff token is still its holder's, and they as a change was decided for them:
/// active, with the same permissions.
pub(super) const CALLER_STILL: &str =
    "SELECT c.id FROM staff c WHERE c.token_hash = ? AND c.active \
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
        let found: Vec<IdRow> = on_backend!(conn, |c| self.bind(Sql::new(CALLER_STILL)).load(c)?);
        Ok(!found.is_empty())
    }
}

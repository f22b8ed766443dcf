//! Statements written out by hand that the connection prepares once and keeps.
//!
//! diesel keeps a prepared statement per connection for most queries built with its DSL,
//! but prepares every `UPDATE`, every `sql_query` and every `IN (…)` list anew on each call
//! (they mark themselves unsafe to cache). On SQLite preparing is parsing and planning:
//! for the writer thread, which every command waits for, it was a large share of each
//! command. [`Sql`] is a statement whose text is fixed by the caller and whose parameters
//! are bound by position; diesel's statement cache keeps it under its text, so each
//! distinct text is prepared once per connection.
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::{QueryResult, RunQueryDsl};
use std::borrow::Cow;
use std::marker::PhantomData;

/// A statement's text, with `?` for each parameter (written `$1`, `$2`, … for PostgreSQL
/// when the statement is built), and the parameters in order. The text must not hold a
/// `?` anywhere else, such as in a string literal.
pub struct Sql<'a, DB: Backend> {
    text: Cow<'a, str>,
    binds: Vec<Box<dyn QueryFragment<DB> + Send + 'a>>,
    kept: bool,
}

impl<'a, DB: Backend> Sql<'a, DB> {
    pub fn new(text: impl Into<Cow<'a, str>>) -> Sql<'a, DB> {
        Sql {
            text: text.into(),
            binds: Vec::new(),
            kept: true,
        }
    }

    /// Not kept: prepared, and so planned, on every call. For a rare read whose best plan
    /// depends on how big its tables have grown: PostgreSQL plans a kept statement once,
    /// with what it knew of the tables then (on a new database, that they were empty), and
    /// plans it again only after the next `ANALYZE`, which autovacuum may not run for
    /// minutes.
    pub fn planned_each_time(mut self) -> Sql<'a, DB> {
        self.kept = false;
        self
    }

    /// Binds the next parameter, as SQL type `ST`.
    pub fn bind<ST, V>(mut self, value: V) -> Sql<'a, DB>
    where
        DB: HasSqlType<ST>,
        V: ToSql<ST, DB> + Send + 'a,
        ST: Send + 'a,
    {
        self.binds.push(Box::new(Param::<ST, V> {
            value,
            sql_type: PhantomData,
        }));
        self
    }
}

struct Param<ST, V> {
    value: V,
    sql_type: PhantomData<ST>,
}

impl<ST, V, DB> QueryFragment<DB> for Param<ST, V>
where
    DB: Backend + HasSqlType<ST>,
    V: ToSql<ST, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_bind_param::<ST, V>(&self.value)
    }
}

impl<DB: Backend> QueryFragment<DB> for Sql<'_, DB> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if !self.kept {
            out.unsafe_to_cache_prepared();
        }
        let mut pieces = self.text.split('?');
        out.push_sql(pieces.next().unwrap_or_default());
        let mut binds = self.binds.iter();
        for piece in pieces {
            let bind = binds.next().ok_or_else(|| {
                diesel::result::Error::QueryBuilderError(
                    format!("a statement has more ? than parameters: {}", self.text).into(),
                )
            })?;
            bind.walk_ast(out.reborrow())?;
            out.push_sql(piece);
        }
        if binds.next().is_some() {
            return Err(diesel::result::Error::QueryBuilderError(
                format!("a statement has more parameters than ?: {}", self.text).into(),
            ));
        }
        Ok(())
    }
}

/// Not a static id: diesel then keys its statement cache by the statement's text.
impl<DB: Backend> QueryId for Sql<'_, DB> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB: Backend> Query for Sql<'_, DB> {
    type SqlType = Untyped;
}

impl<DB: Backend, Conn> RunQueryDsl<Conn> for Sql<'_, DB> {}

/// Evaluates the same expression on whichever backend `conn` is, with `$c` bound to that
/// backend's own connection: an [`Sql`] is built for one backend, so that the parameters
/// are written and bound the way that backend wants them.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::DbConnection::Sqlite($c) => $body,
            $crate::store::DbConnection::Pg($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// A list of ids bound as one parameter, written `IDS` in a statement's text: a one-column
/// subquery whose column is `id`, so it serves both `WHERE id IN IDS` and `FROM IDS AS x`
/// (then `x.id`). The ids go in as a JSON array for SQLite, an array for
/// PostgreSQL. The statement's text is then the same whatever the number of ids, so it is
/// prepared once per connection; an `IN (?, ?, …)` list is prepared anew on every call.
///
/// On PostgreSQL, `IN IDS` is written `= ANY(?)`: for `IN (SELECT unnest(?))` the server
/// kept a plan made while the table looked small (a scan of every row in flight, each
/// matched against every id: 570 ms to record 244 pushes sent in a burst), where `= ANY`
/// looks each id up in the index.
pub trait IdList: Backend + Sized {
    /// What `IDS` stands for.
    const IDS: &'static str;
    /// What ` IN IDS` stands for.
    const IN_IDS: &'static str;
    fn bind_ids<'a>(sql: Sql<'a, Self>, ids: &'a [&'a str]) -> Sql<'a, Self>;
}

impl IdList for diesel::sqlite::Sqlite {
    const IDS: &'static str = "(SELECT value AS id FROM json_each(?))";
    const IN_IDS: &'static str = " IN (SELECT value AS id FROM json_each(?))";
    fn bind_ids<'a>(sql: Sql<'a, Self>, ids: &'a [&'a str]) -> Sql<'a, Self> {
        // A list of strings always serializes.
        sql.bind::<diesel::sql_types::Text, _>(serde_json::to_string(ids).unwrap_or_default())
    }
}

impl IdList for diesel::pg::Pg {
    const IDS: &'static str = "(SELECT unnest(?) AS id)";
    const IN_IDS: &'static str = " = ANY(?)";
    fn bind_ids<'a>(sql: Sql<'a, Self>, ids: &'a [&'a str]) -> Sql<'a, Self> {
        sql.bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(ids)
    }
}

impl<'a, DB: IdList> Sql<'a, DB> {
    /// A statement whose text says `IDS` where [`Sql::bind_ids`] binds a list of ids.
    pub fn with_ids(text: &str) -> Sql<'a, DB> {
        Sql::new(text.replace(" IN IDS", DB::IN_IDS).replace("IDS", DB::IDS))
    }

    /// Binds the next parameter, `IDS`, to a list of ids.
    pub fn bind_ids(self, ids: &'a [&'a str]) -> Sql<'a, DB> {
        DB::bind_ids(self, ids)
    }
}

/// A row of one column, `id`: what a `SELECT id` or an `UPDATE … RETURNING id` gives back.
#[derive(diesel::QueryableByName)]
pub struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub id: String,
}

/// Loads the rows of a statement whose one parameter is a list of ids, `IDS` (see
/// [`IdList`]).
pub fn load_by_ids<T>(
    conn: &mut crate::store::DbConnection,
    sql: &str,
    ids: &[&str],
) -> QueryResult<Vec<T>>
where
    T: diesel::QueryableByName<diesel::sqlite::Sqlite>
        + diesel::QueryableByName<diesel::pg::Pg>
        + 'static,
{
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    on_backend!(conn, |c| Sql::with_ids(sql).bind_ids(ids).load(c))
}

/// Inserts `rows` into `table`, up to 500 to a statement (well under either database's
/// limit on bound values), and evaluates to how many. One
/// row goes in as a one-row `INSERT`, which diesel prepares once per connection; a
/// multi-row `INSERT` is prepared anew each time (its text depends on the number of rows),
/// and the multi backend has none, so each backend runs its own.
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr) => {{
        let mut n = 0;
        for chunk in $rows.chunks(500) {
            n += match chunk {
                [one] => diesel::insert_into($table).values(one).execute($conn)?,
                _ => $crate::store::sql::on_backend!($conn, |c| diesel::insert_into($table)
                    .values(chunk)
                    .execute(c)?),
            };
        }
        n
    }};
}
pub(crate) use insert_rows;

#[cfg(test)]
mod tests {
    use super::Sql;
    use diesel::pg::Pg;
    use diesel::sql_types::{Integer, Text};
    use diesel::sqlite::Sqlite;
    use diesel::{debug_query, Connection, RunQueryDsl, SqliteConnection};

    #[test]
    fn parameters_are_written_the_way_each_backend_wants() {
        let pg = Sql::<Pg>::new("UPDATE t SET a = ? WHERE id = ?")
            .bind::<Integer, _>(1)
            .bind::<Text, _>("x");
        assert!(debug_query(&pg)
            .to_string()
            .starts_with("UPDATE t SET a = $1 WHERE id = $2"));
        let lite = Sql::<Sqlite>::new("UPDATE t SET a = ? WHERE id = ?")
            .bind::<Integer, _>(1)
            .bind::<Text, _>("x");
        assert!(debug_query(&lite)
            .to_string()
            .starts_with("UPDATE t SET a = ? WHERE id = ?"));
    }

    #[test]
    fn a_list_of_ids_is_an_array_looked_up_by_any_on_postgres() {
        let ids = ["a", "b"];
        let pg = Sql::<Pg>::with_ids("UPDATE t SET a = 1 WHERE id IN IDS AND b = ?")
            .bind_ids(&ids)
            .bind::<Integer, _>(1);
        assert!(debug_query(&pg)
            .to_string()
            .starts_with("UPDATE t SET a = 1 WHERE id = ANY($1) AND b = $2"));
        let from = Sql::<Pg>::with_ids("SELECT x.id FROM IDS AS x").bind_ids(&ids);
        assert!(debug_query(&from)
            .to_string()
            .starts_with("SELECT x.id FROM (SELECT unnest($1) AS id) AS x"));
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = Text)]
            id: String,
        }
        let lite: Vec<Id> = Sql::<Sqlite>::with_ids(
            "SELECT id FROM (SELECT 'b' AS id UNION SELECT 'c') WHERE id IN IDS",
        )
        .bind_ids(&ids)
        .load(&mut c)
        .unwrap();
        assert_eq!(lite.into_iter().map(|r| r.id).collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn a_miscounted_statement_is_an_error_not_a_panic() {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        let short = Sql::<Sqlite>::new("SELECT ? + ?").bind::<Integer, _>(1);
        assert!(short.execute(&mut c).is_err());
        let long = Sql::<Sqlite>::new("SELECT ?")
            .bind::<Integer, _>(1)
            .bind::<Integer, _>(2);
        assert!(long.execute(&mut c).is_err());
        let right = Sql::<Sqlite>::new("SELECT ? + ?")
            .bind::<Integer, _>(1)
            .bind::<Integer, _>(2);
        assert_eq!(right.execute(&mut c).unwrap(), 0);
    }
}

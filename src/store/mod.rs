//! Storage through diesel: one schema and one query layer for SQLite and PostgreSQL.
//! Every command is one transaction (DESIGN.md decisions 2–4).
pub mod dashboard;
pub mod directory;
pub mod notifications;
pub mod schema;
pub mod sessions;
pub mod settings;
pub mod tasks;

use crate::config::DatabaseUrl;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

/// Opens the backend the URL names, so that a failed connection reports that backend's own error.
pub struct Manager {
    url: DatabaseUrl,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("{0}")]
    Query(#[from] diesel::result::Error),
}

/// A write that changes nothing, to take the write lock at the start of a transaction.
const SQLITE_TAKE_WRITE_LOCK: &str =
    "UPDATE settings SET value = value WHERE name = 'bleepless.write-lock'";

const SQLITE_PRAGMAS: &str =
    "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;";

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConnection, ConnectError> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut c = SqliteConnection::establish(&path.to_string_lossy())?;
                c.batch_execute(SQLITE_PRAGMAS)?;
                Ok(DbConnection::Sqlite(c))
            }
            DatabaseUrl::Postgres(url) => Ok(DbConnection::Pg(PgConnection::establish(url)?)),
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        conn.batch_execute("SELECT 1")?;
        Ok(())
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

#[derive(Clone)]
pub struct Store {
    pool: Pool<Manager>,
    /// SQLite allows one writer: taking turns in-process avoids SQLITE_BUSY on lock upgrade.
    sqlite_writer: Option<Arc<Mutex<()>>>,
}

pub type Conn = PooledConnection<Manager>;

impl Store {
    /// Connects, creates the SQLite file if needed, and brings the schema up to date.
    pub fn open(url: &DatabaseUrl, pool_size: u32) -> Result<Store, String> {
        let manager = Manager { url: url.clone() };
        let mut first = manager.connect().map_err(|e| match url {
            DatabaseUrl::Sqlite(p) => format!("cannot open SQLite database {}: {e}", p.display()),
            DatabaseUrl::Postgres(_) => format!("cannot connect to PostgreSQL: {e}"),
        })?;
        migrate(&mut first).map_err(|e| format!("cannot migrate the database: {e}"))?;
        drop(first);
        let pool = Pool::builder()
            .max_size(pool_size)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| format!("cannot build the connection pool: {e}"))?;
        let sqlite_writer = matches!(url, DatabaseUrl::Sqlite(_)).then(|| Arc::new(Mutex::new(())));
        Ok(Store {
            pool,
            sqlite_writer,
        })
    }

    pub fn conn(&self) -> AppResult<Conn> {
        Ok(self.pool.get()?)
    }

    /// Runs one read on a blocking thread, off the async workers.
    pub async fn read<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> AppResult<T> + Send + 'static,
    {
        let store = self.clone();
        run_blocking(move || {
            let mut conn = store.conn()?;
            f(&mut conn)
        })
        .await
    }

    /// Runs one command as one transaction on a blocking thread.
    pub async fn write<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> AppResult<T> + Send + 'static,
    {
        let store = self.clone();
        run_blocking(move || store.write_now(f)).await
    }

    /// Runs several transactions on one blocking thread.
    pub async fn run<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> AppResult<T> + Send + 'static,
    {
        let store = self.clone();
        run_blocking(move || f(&store)).await
    }

    /// The same as [`Store::write`], for callers already off the async runtime (the CLI).
    pub fn write_now<T, F>(&self, f: F) -> AppResult<T>
    where
        F: FnOnce(&mut DbConnection) -> AppResult<T>,
    {
        let mut conn = self.conn()?;
        let _turn = self
            .sqlite_writer
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
        let conn: &mut DbConnection = &mut conn;
        let sqlite = self.is_sqlite();
        conn.transaction(|c| {
            if sqlite {
                // Take SQLite's write lock first (BEGIN IMMEDIATE, in effect): a transaction
                // that read first and then tried to write could fail at once with
                // SQLITE_BUSY when another process wrote in between.
                c.batch_execute(SQLITE_TAKE_WRITE_LOCK)?;
            }
            f(c)
        })
    }

    pub fn is_sqlite(&self) -> bool {
        self.sqlite_writer.is_some()
    }
}

async fn run_blocking<T, F>(f: F) -> AppResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> AppResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(format!("database worker failed: {e}")))?
}

/// Applies pending migrations. On PostgreSQL an advisory lock keeps several instances
/// starting together from migrating at once.
pub fn migrate(conn: &mut DbConnection) -> Result<(), String> {
    const LOCK: &str = "SELECT pg_advisory_lock(7231942)";
    const UNLOCK: &str = "SELECT pg_advisory_unlock(7231942)";
    match conn {
        DbConnection::Sqlite(c) => {
            c.batch_execute("PRAGMA journal_mode = WAL;")
                .map_err(|e| e.to_string())?;
        }
        DbConnection::Pg(c) => c.batch_execute(LOCK).map_err(|e| e.to_string())?,
    }
    let result = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|_| ())
        .map_err(|e| e.to_string());
    if let DbConnection::Pg(c) = conn {
        c.batch_execute(UNLOCK).map_err(|e| e.to_string())?;
    }
    result
}

pub fn to_db(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

pub fn from_db(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

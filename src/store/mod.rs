//! Storage through diesel: one schema and one query layer for SQLite and PostgreSQL.
//! Every command is one transaction (DESIGN.md decisions 2–4).
//!
//! Lookups by key use `get_result`, not `first`: `first` binds its `LIMIT 1` as a
//! parameter, and SQLite's planner marks a statement whose LIMIT is bound as expired
//! whenever the parameter is bound again, so diesel's cached statement was compiled anew
//! on every call (a fifth of the service's CPU under load, measured with perf).
pub mod acting;
pub mod api_tokens;
pub mod audit;
pub mod dashboard;
mod database_url;
pub mod deliveries;
pub mod directory;
pub mod events;
pub mod heartbeats;
pub mod identities;
pub mod metrics;
pub mod notifications;
pub mod outbox;
#[cfg(test)]
mod plans;
pub mod raised;
pub mod receipts;
pub mod rota;
pub mod schema;
pub mod sessions;
pub mod settings;
pub mod sql;
pub mod stamp;
pub mod tasks;
pub mod throttle;

use crate::error::{AppError, AppResult};
use chrono::{DateTime, NaiveDateTime, Utc};
pub use database_url::DatabaseUrl;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::sync::{mpsc, Arc, Mutex};
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

/// `temp_store = MEMORY` keeps each command's savepoint journal (see the group writer) in
/// memory rather than in a temporary file written page by page.
///
/// A reader's page cache is emptied whenever another connection has committed since its
/// last read, which under load is before nearly every read: 1 MiB holds what one read
/// needs, where SQLite's default of 2 MiB per connection only held memory.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
     PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -1024;";

static SQLITE_WITHOUT_MEMORY_STATISTICS: std::sync::Once = std::sync::Once::new();

/// SQLite keeps statistics of its memory use unless told not to, taking a mutex of its own
/// for each allocation and each free to count them. The writer allocates for every page a
/// command changes (its savepoint's copy of the page), and the statistics' mutex was 6% of
/// its time. Nothing here reads them. It can only be set before SQLite is first used in
/// the process; if it already was (a test that opened a database another way), it stays
/// on, which changes nothing but speed.
fn sqlite_without_memory_statistics() {
    // SAFETY: `sqlite3_config` with `SQLITE_CONFIG_MEMSTATUS` takes one `int`. SQLite
    // refuses it (SQLITE_MISUSE) if it has already been initialized, and then does nothing.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_config(
            libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
            0 as std::ffi::c_int,
        )
    };
    if rc != libsqlite3_sys::SQLITE_OK {
        tracing::debug!(
            rc,
            "SQLite was in use already: it keeps its memory statistics"
        );
    }
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConnection, ConnectError> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                SQLITE_WITHOUT_MEMORY_STATISTICS.call_once(sqlite_without_memory_statistics);
                let mut c = SqliteConnection::establish(&path.to_string_lossy())?;
                c.batch_execute(SQLITE_PRAGMAS)?;
                Ok(DbConnection::Sqlite(c))
            }
            DatabaseUrl::Postgres(url) => Ok(DbConnection::Pg(PgConnection::establish(url)?)),
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        // A PostgreSQL connection can die with its server; a SQLite file connection cannot.
        if let DbConnection::Pg(c) = conn {
            c.batch_execute("SELECT 1")?;
        }
        Ok(())
    }

    /// Asked as a connection goes back to the pool: dropped when [`checked`] found it dead.
    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        DEAD.replace(false)
    }
}

thread_local! {
    /// Set by [`checked`] when the connection it was given is dead, for the pool, which
    /// then drops it as it is returned on the same thread.
    static DEAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The outcome of work done on a pooled connection. Connections are not tested at each
/// checkout (on PostgreSQL a `SELECT 1` round trip before every piece of work: 12 of the
/// 78 statements of one task's lifecycle); instead, when the work failed, the connection
/// is tested then. A dead one (PostgreSQL restarted, or the network dropped) turns the
/// error into a 503 and is dropped, not returned to the pool. After a restart, each
/// connection in the pool costs one request a 503 before being replaced.
fn checked<T>(conn: &mut DbConnection, out: AppResult<T>) -> AppResult<T> {
    // Only a database error can mean a dead connection: a refusal (404, 409) cannot.
    let Err(e @ (AppError::Internal(_) | AppError::Unavailable(_))) = out else {
        return out;
    };
    let dead = match conn {
        DbConnection::Pg(c) => c.batch_execute("SELECT 1").is_err(),
        DbConnection::Sqlite(_) => false,
    };
    if !dead {
        return Err(e);
    }
    DEAD.set(true);
    Err(match e {
        AppError::Internal(cause) => AppError::Unavailable(cause),
        other => other,
    })
}

#[derive(Clone)]
pub struct Store {
    pool: Pool<Manager>,
    /// SQLite allows one writer: taking turns in-process avoids SQLITE_BUSY on lock upgrade.
    sqlite_writer: Option<Arc<Mutex<()>>>,
    /// On SQLite, commands go to one writer thread that commits them in groups.
    group: Option<mpsc::Sender<Box<dyn GroupCommand>>>,
    /// The dashboard's 24-hour figures, shared by every dashboard this instance serves.
    pub figures: Arc<dashboard::Figures24h>,
}

/// Answers a command's caller once the group's commit is known to have failed (Some) or not.
type Answer = Box<dyn FnOnce(Option<&AppError>) + Send>;

/// One command waiting for the group writer: run in its own savepoint, answered after the
/// group's commit.
trait GroupCommand: Send {
    /// Runs the command; returns how to answer its caller once the commit's outcome is known.
    fn run(self: Box<Self>, conn: &mut DbConnection) -> Answer;
    /// Answers the caller without running: the group could not start.
    fn fail(self: Box<Self>, e: &AppError);
}

struct Pending<T, F> {
    f: F,
    reply: tokio::sync::oneshot::Sender<AppResult<T>>,
}

impl<T, F> GroupCommand for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> AppResult<T> + Send,
{
    fn run(self: Box<Self>, conn: &mut DbConnection) -> Answer {
        let Pending { f, reply } = *self;
        // A nested transaction is a savepoint: a command that fails undoes only its own
        // changes, and the rest of the group still commits.
        let result = conn.transaction(f);
        Box::new(move |commit_error| {
            let _ = reply.send(match (result, commit_error) {
                (Ok(_), Some(e)) => Err(e.clone()),
                (r, _) => r,
            });
        })
    }

    fn fail(self: Box<Self>, e: &AppError) {
        let _ = self.reply.send(Err(e.clone()));
    }
}

/// The writer's page cache: every status change touches a page of each of the task
/// table's indexes, and with a million tasks stored the default 2 MiB kept few of them.
const SQLITE_WRITER_CACHE: &str = "PRAGMA cache_size = -32768;";

/// The most commands one group commit carries.
const GROUP_MAX: usize = 256;

/// The SQLite writer: takes whatever commands are waiting, runs each in a savepoint of one
/// transaction, commits them with one fsync, then answers every caller (DESIGN.md
/// decision 8: a 2xx still means it is on disk). Runs until every `Store` is dropped.
fn group_writer(
    manager: Manager,
    turn: Arc<Mutex<()>>,
    commands: mpsc::Receiver<Box<dyn GroupCommand>>,
) {
    let mut conn: Option<DbConnection> = None;
    while let Ok(first) = commands.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match commands.try_recv() {
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match manager.connect().and_then(|mut c| {
                c.batch_execute(SQLITE_WRITER_CACHE)?;
                Ok(c)
            }) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    let e = AppError::Unavailable(e.to_string());
                    group.into_iter().for_each(|c| c.fail(&e));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            },
        };
        let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
        let started = std::time::Instant::now();
        let size = group.len();
        let mut answers = Vec::with_capacity(group.len());
        let mut waiting = group.into_iter();
        let mut ran = started;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.transaction::<_, AppError, _>(|c| {
                c.batch_execute(SQLITE_TAKE_WRITE_LOCK)?;
                for command in waiting.by_ref() {
                    answers.push(command.run(c));
                }
                ran = std::time::Instant::now();
                Ok(())
            })
        }));
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(AppError::Internal(
                "a command panicked inside the database writer".into(),
            )),
        };
        if error.is_some() {
            // Start the next group on a fresh connection, whatever state this one is in.
            conn = None;
        }
        tracing::debug!(
            commands = size,
            micros = started.elapsed().as_micros() as u64,
            commit_micros = ran.elapsed().as_micros() as u64,
            "group committed"
        );
        answers.into_iter().for_each(|a| a(error.as_ref()));
        if let Some(e) = &error {
            waiting.for_each(|c| c.fail(e));
        }
    }
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
            // Tested when work on them fails instead (see `checked`).
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| format!("cannot build the connection pool: {e}"))?;
        let sqlite_writer = matches!(url, DatabaseUrl::Sqlite(_)).then(|| Arc::new(Mutex::new(())));
        let group = match &sqlite_writer {
            Some(turn) => {
                let (tx, rx) = mpsc::channel();
                let (manager, turn) = (Manager { url: url.clone() }, turn.clone());
                std::thread::Builder::new()
                    .name("sqlite-writer".into())
                    .spawn(move || group_writer(manager, turn, rx))
                    .map_err(|e| format!("cannot start the database writer: {e}"))?;
                Some(tx)
            }
            None => None,
        };
        Ok(Store {
            pool,
            sqlite_writer,
            group,
            figures: Default::default(),
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
        run_blocking(move || store.read_now(f)).await
    }

    /// One read on a pooled connection, on the caller's thread.
    fn read_now<T>(&self, f: impl FnOnce(&mut DbConnection) -> AppResult<T>) -> AppResult<T> {
        let mut conn = self.conn()?;
        let out = f(&mut conn);
        checked(&mut conn, out)
    }

    /// Runs one command as one transaction: on PostgreSQL on a blocking thread of its own,
    /// on SQLite in a savepoint of the writer's next group commit. Either way the answer
    /// comes after the commit.
    pub async fn write<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> AppResult<T> + Send + 'static,
    {
        let Some(group) = &self.group else {
            let store = self.clone();
            return run_blocking(move || store.write_now(f)).await;
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        group
            .send(Box::new(Pending { f, reply }))
            .map_err(|_| AppError::Unavailable("the database writer has stopped".into()))?;
        answer.await.map_err(|_| {
            AppError::Internal("the database writer dropped a command it was given".into())
        })?
    }

    /// A write that is one statement, or statements each of which stands alone (none needs
    /// another to have been written with it): on PostgreSQL on a pooled connection with no
    /// `BEGIN` and `COMMIT` round trips (each statement commits by itself, all or nothing),
    /// on SQLite as [`Store::write`]. The answer still comes after the commit.
    pub async fn write_one<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> AppResult<T> + Send + 'static,
    {
        if self.is_sqlite() {
            self.write(f).await
        } else {
            self.read(f).await
        }
    }

    /// Runs a command that keeps itself whole, then reads what to answer with. Such a
    /// command writes one statement, or opens its own transaction where it writes more
    /// ([`atomically`]), and otherwise only reads. On PostgreSQL it runs outside a
    /// transaction: its reads and its one statement need no `BEGIN` and `COMMIT` round
    /// trips, and a read inside a transaction at READ COMMITTED would see no more than one
    /// before it. On SQLite it runs in a savepoint of the writer's group commit, which
    /// `atomically` joins, and so does its read.
    pub async fn whole_then_read<T, V, F, G>(&self, f: F, view: G) -> AppResult<V>
    where
        T: Send + 'static,
        V: Send + 'static,
        F: FnOnce(&mut DbConnection) -> AppResult<T> + Send + 'static,
        G: FnOnce(&mut DbConnection, T) -> AppResult<V> + Send + 'static,
    {
        if self.is_sqlite() {
            // Read inside the command, where the writer's page cache is warm (a reader's is
            // emptied by every commit since its last read).
            return self
                .write(move |c| {
                    let t = f(c)?;
                    view(c, t)
                })
                .await;
        }
        // One trip to a blocking thread and one connection for both. Each hop between
        // threads is a context switch, which under load was most of the service's CPU
        // (perf: the kernel's task switching, 38% of its samples).
        let store = self.clone();
        run_blocking(move || store.read_now(|c| f(c).and_then(|t| view(c, t)))).await
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
        let out = conn.transaction(|c| {
            if sqlite {
                // Take SQLite's write lock first (BEGIN IMMEDIATE, in effect): a transaction
                // that read first and then tried to write could fail at once with
                // SQLITE_BUSY when another process wrote in between.
                c.batch_execute(SQLITE_TAKE_WRITE_LOCK)?;
            }
            f(c)
        });
        checked(conn, out)
    }

    pub fn is_sqlite(&self) -> bool {
        self.sqlite_writer.is_some()
    }
}

/// Whether work on this connection is inside a transaction already (a command on SQLite's
/// writer always is: its group commit's savepoint).
pub fn in_transaction(conn: &mut DbConnection) -> bool {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let depth = match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()
        }
        DbConnection::Pg(c) => {
            AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()
        }
    };
    // A connection whose transaction state is broken is in no transaction it could use.
    matches!(depth, Ok(Some(_)))
}

/// Runs `f` as one transaction, or inside the one this connection is already in: for a
/// command that writes more than one statement, given a connection outside a transaction
/// (see [`Store::whole_then_read`]).
pub fn atomically<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> AppResult<T>,
) -> AppResult<T> {
    if in_transaction(conn) {
        f(conn)
    } else {
        conn.transaction(f)
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

/// A task's timeline is its record (and the FHIR Provenance sent to the patient record):
/// the database refuses to change or remove an event once written, whoever asks. Kept here
/// rather than in `migrations/`, which both backends share, because each writes a trigger
/// its own way; every statement is idempotent and runs at each start.
const SQLITE_APPEND_ONLY: &str = "\
CREATE TRIGGER IF NOT EXISTS task_events_no_update BEFORE UPDATE ON task_events \
BEGIN SELECT RAISE(ABORT, 'task_events is append-only: an event cannot be changed'); END; \
CREATE TRIGGER IF NOT EXISTS task_events_no_delete BEFORE DELETE ON task_events \
BEGIN SELECT RAISE(ABORT, 'task_events is append-only: an event cannot be removed'); END; \
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log \
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: an entry cannot be changed'); END; \
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log \
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: an entry cannot be removed'); END;";
const PG_APPEND_ONLY: &str = "\
CREATE OR REPLACE FUNCTION task_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
BEGIN RAISE EXCEPTION 'task_events is append-only: an event cannot be changed or removed (%)', TG_OP; END $$; \
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
BEGIN RAISE EXCEPTION 'audit_log is append-only: an entry cannot be changed or removed (%)', TG_OP; END $$; \
DO $$ BEGIN \
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'audit_log_no_change') THEN \
    CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log \
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only(); \
  END IF; \
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'task_events_no_change') THEN \
    CREATE TRIGGER task_events_no_change BEFORE UPDATE OR DELETE ON task_events \
    FOR EACH ROW EXECUTE FUNCTION task_events_append_only(); \
  END IF; \
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'task_events_no_truncate') THEN \
    CREATE TRIGGER task_events_no_truncate BEFORE TRUNCATE ON task_events \
    FOR EACH STATEMENT EXECUTE FUNCTION task_events_append_only(); \
  END IF; \
END $$;";
// (Created only when missing, so an instance starting beside running ones takes no lock
// on the table.)

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
        .map_err(|e| e.to_string())
        .and_then(|()| {
            let guard = match conn {
                DbConnection::Sqlite(_) => SQLITE_APPEND_ONLY,
                DbConnection::Pg(_) => PG_APPEND_ONLY,
            };
            conn.batch_execute(guard)
                .map_err(|e| format!("cannot guard the timeline: {e}"))
        });
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

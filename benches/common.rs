//! Shared by the benchmarks: databases to run on, preloading history, latency summaries.
#![allow(dead_code)]
use bleepless::config::DatabaseUrl;
use bleepless::store::schema::{task_events, tasks};
use bleepless::store::{to_db, Store};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::{Connection, PgConnection};

/// A fresh database: a SQLite file in a temp dir, or a new PostgreSQL database on the server
/// named by BENCH_POSTGRES_URL (default: the local one).
pub struct BenchDb {
    pub url: DatabaseUrl,
    pub url_text: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl BenchDb {
    pub fn new(backend: &str) -> BenchDb {
        if backend == "postgres" {
            let admin = std::env::var("BENCH_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let name = format!("bleepless_bench_{}", uuid::Uuid::new_v4().simple());
            let mut c = PgConnection::establish(&admin).expect("connect to PostgreSQL");
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .unwrap();
            // BENCH_POSTGRES_LOG_MS=20 makes the server log each statement of this database
            // that takes 20 ms or more, with its duration and its plan (auto_explain), in
            // the server's log: to see where a run's time goes.
            if let Ok(ms) = std::env::var("BENCH_POSTGRES_LOG_MS") {
                let ms: u32 = ms.parse().expect("BENCH_POSTGRES_LOG_MS is milliseconds");
                for setting in [
                    &format!("log_min_duration_statement = {ms}"),
                    "session_preload_libraries = 'auto_explain'",
                    &format!("auto_explain.log_min_duration = {ms}"),
                    "auto_explain.log_analyze = on",
                ] {
                    diesel::sql_query(format!("ALTER DATABASE {name} SET {setting}"))
                        .execute(&mut c)
                        .unwrap();
                }
            }
            let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
            BenchDb {
                url: DatabaseUrl::Postgres(url.clone()),
                url_text: url,
                _dir: None,
                pg: Some((admin, name)),
            }
        } else {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("bench.db");
            BenchDb {
                url_text: format!("sqlite://{}", path.display()),
                url: DatabaseUrl::Sqlite(path),
                _dir: Some(dir),
                pg: None,
            }
        }
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        // BENCH_KEEP_DATABASE=1 leaves a PostgreSQL run's database behind, named on stderr,
        // to look into its statements by hand afterwards.
        if let (Some((_, name)), Ok(_)) = (&self.pg, std::env::var("BENCH_KEEP_DATABASE")) {
            eprintln!("kept the database {name}");
            return;
        }
        if let Some((admin, name)) = &self.pg {
            if let Ok(mut c) = PgConnection::establish(admin) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c);
            }
        }
    }
}

/// The same statement on whichever backend the connection is: diesel writes many rows to
/// an `INSERT` only for a backend known at compile time.
macro_rules! each_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            bleepless::store::DbConnection::Sqlite($c) => $body,
            bleepless::store::DbConnection::Pg($c) => $body,
        }
    };
}

/// Stores `total` tasks raised over the past weeks (each with its `raised` event), of which
/// the last `open` are still waiting; `due` of those fall due at `due_at`, the rest later.
/// Written in large transactions straight through diesel: this is history, not traffic.
#[allow(clippy::too_many_arguments)]
pub fn preload(
    store: &Store,
    total: usize,
    open: usize,
    due: usize,
    due_at: DateTime<Utc>,
    ward: &str,
    role_id: &str,
    raised_by: &str,
) {
    let start = std::time::Instant::now();
    let batch = 5_000;
    let mut done = 0;
    while done < total {
        let n = batch.min(total - done);
        // Many rows to a statement: a statement a row took six minutes for a million on
        // PostgreSQL.
        let rows: Vec<_> = (done..done + n)
            .map(|i| {
                let id = format!("00000000-bench-{i:012}");
                let is_open = i >= total - open;
                let is_due = is_open && i >= total - due;
                let raised =
                    due_at - Duration::seconds(((total - i) as i64) % (30 * 24 * 3600) + 600);
                let next = if is_due {
                    Some(to_db(due_at))
                } else if is_open {
                    Some(to_db(due_at + Duration::hours(2)))
                } else {
                    None
                };
                (id, i % 30 + 1, is_open, is_due, raised, next)
            })
            .collect();
        store
            .write_now(|c| {
                for chunk in rows.chunks(1000) {
                    let tasks: Vec<_> = chunk
                        .iter()
                        .map(|(id, bed, is_open, is_due, raised, next)| {
                            (
                                tasks::id.eq(id.as_str()),
                                tasks::nhs_number.eq("9990000018"),
                                tasks::ward.eq(ward),
                                tasks::bed.eq(bed.to_string()),
                                tasks::category.eq("bloods"),
                                tasks::description.eq("Routine bloods: FBC, U&E, CRP"),
                                tasks::priority.eq(if *is_due { "stat" } else { "routine" }),
                                tasks::status.eq(if *is_open { "requested" } else { "completed" }),
                                tasks::assignee_role_id.eq(Some(role_id)),
                                tasks::raised_by.eq(raised_by),
                                tasks::raised_at.eq(to_db(*raised)),
                                tasks::ack_deadline.eq(next.unwrap_or(to_db(*raised))),
                                tasks::escalation_level.eq(0),
                                tasks::next_escalation_at.eq(*next),
                                tasks::version.eq(1i64),
                                tasks::updated_at.eq(to_db(*raised)),
                            )
                        })
                        .collect();
                    let q = diesel::insert_into(tasks::table).values(tasks);
                    each_backend!(c, |c| q.execute(c)?);
                    let events: Vec<_> = chunk
                        .iter()
                        .map(|(id, _, _, _, raised, _)| {
                            (
                                task_events::task_id.eq(id.as_str()),
                                task_events::seq.eq(1),
                                task_events::at.eq(to_db(*raised)),
                                task_events::actor_id.eq(Some(raised_by)),
                                task_events::kind.eq("raised"),
                                task_events::to_status.eq(Some("requested")),
                            )
                        })
                        .collect();
                    let q = diesel::insert_into(task_events::table).values(events);
                    each_backend!(c, |c| q.execute(c)?);
                }
                Ok(())
            })
            .expect("preload");
        done += n;
    }
    eprintln!(
        "preloaded {total} tasks ({open} open, {due} due) in {:.1?}",
        start.elapsed()
    );
}

/// p50, p99 and max of a set of durations, in milliseconds.
pub fn summary(mut v: Vec<std::time::Duration>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_unstable();
    let at = |p: f64| {
        v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99), v[v.len() - 1].as_secs_f64() * 1000.0)
}

/// Peak resident memory of a process, in MiB (VmHWM).
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU time (user + system) a process has used so far, in seconds: `/proc/<pid>/stat`
/// fields 14 and 15, in clock ticks of 1/100 s (Linux's USER_HZ).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; count fields after its closing paren.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The whole number after the flag at `argv[i]`, which must lie in `range`. A value that is
/// missing, not a whole number or out of range stops the bench, saying which: running with
/// a default instead would report figures for something not asked for.
pub fn flag_number(argv: &[String], i: usize, range: std::ops::RangeInclusive<usize>) -> usize {
    match argv.get(i + 1).map(|v| v.parse::<usize>()) {
        Some(Ok(n)) if range.contains(&n) => n,
        _ if *range.end() == usize::MAX => stop(&format!(
            "{} needs a whole number of at least {} after it",
            argv[i],
            range.start()
        )),
        _ => stop(&format!(
            "{} needs a whole number from {} to {} after it",
            argv[i],
            range.start(),
            range.end()
        )),
    }
}

/// Stops the bench over its arguments, saying why.
pub fn stop(why: &str) -> ! {
    eprintln!("{why}");
    std::process::exit(2);
}

/// The whole machine's CPU time so far, busy and in all, in clock ticks (`/proc/stat`'s
/// first line: idle and iowait are not busy).
pub fn machine_cpu() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total - idle, total))
}

/// Transactions the PostgreSQL server has counted in this database so far (committed and
/// rolled back; each statement outside a transaction counts as one).
pub fn pg_transactions(url: &str) -> Option<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut c = PgConnection::establish(url).ok()?;
    let row: N = diesel::sql_query(
        "SELECT (xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database \
         WHERE datname = current_database()",
    )
    .get_result(&mut c)
    .ok()?;
    Some(row.n)
}

/// CPU seconds used so far by each PostgreSQL server process on this machine (the
/// postmaster, its helpers and every backend), by pid.
pub fn postgres_cpu() -> std::collections::HashMap<u32, f64> {
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end() == "postgres" {
            if let Some(s) = cpu_seconds(pid) {
                out.insert(pid, s);
            }
        }
    }
    out
}

/// The PostgreSQL server's CPU between two [`postgres_cpu`] readings: processes seen at
/// both counted by their difference, those started since in whole. Backends that ended in
/// between (a killed instance's) are not counted, so with a kill this is a lower bound.
pub fn postgres_cpu_between(
    before: &std::collections::HashMap<u32, f64>,
    after: &std::collections::HashMap<u32, f64>,
) -> f64 {
    after
        .iter()
        .map(|(pid, s)| (s - before.get(pid).copied().unwrap_or(0.0)).max(0.0))
        .sum()
}

/// The share of the machine's CPU that was busy since a [`machine_cpu`] reading, in percent.
pub fn machine_busy_since(before: Option<(u64, u64)>) -> Option<f64> {
    let (b, e) = (before?, machine_cpu()?);
    Some(100.0 * (e.0 - b.0) as f64 / (e.1 - b.1).max(1) as f64)
}

//! Load benchmark: starts the real service (release build) on a fresh database and drives a
//! mixed workload over loopback with a bounded number of keep-alive clients: raise →
//! acknowledge → (start, every other one) → complete lifecycles, with list and dashboard
//! reads mixed in. Reports throughput, p50/p99/max latency per request kind, and the
//! service's CPU and peak memory. Then, in the same run, its raw-limit companion
//! (`load/raw.rs`): the lifecycle's write transactions straight through diesel on as many
//! connections as there are workers, on a fresh database of the same kind, and the ratio.
//!
//! With `--instances N` (PostgreSQL only) it starts N service processes on one database
//! behind a round-robin TCP proxy in this process (`load/instances.rs`); `--kill-after S`
//! kills one of them (SIGKILL) S seconds into the run. With several instances, or a kill,
//! a stream of stat tasks nobody acknowledges escalates throughout the run, on a tick every
//! second, and the database is checked afterwards for escalations lost or doubled
//! (`load/escalations.rs`); the bench exits 1 if the check fails.
//!
//!   cargo bench --bench load -- [sqlite|postgres|both] [--seconds N] [--workers N] [--preload N]
//!       [--instances N] [--kill-after S] [--unacked N] [--stat-ack S] [--pool N] [--proxy]
//!       [--no-raw | --raw-only] [--floor]
//!
//! Before the run (service and raw loop alike) the database holds `--preload` completed tasks
//! of history (10,000 by default), each with its sent push, and on PostgreSQL fresh
//! statistics: see [`history`].
//!
//! With `--floor` the instances are not Bleepless but the HTTP floor (`load/floor.rs`): the
//! least any HTTP service must do for the workload, one statement a request and no reads, so
//! that what an HTTP service can reach on this machine is measured beside the raw limit.
mod common;
#[path = "load/escalations.rs"]
mod escalations;
#[path = "load/floor.rs"]
mod floor;
#[path = "load/http.rs"]
mod http;
#[path = "load/instances.rs"]
mod instances;
#[path = "load/raw.rs"]
mod raw;
#[path = "load/report.rs"]
mod report;

use common::{stop, BenchDb};
use http::{Http1, Lat};
use instances::{Instance, Proxy};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Args {
    backends: Vec<String>,
    seconds: u64,
    workers: usize,
    preload: usize,
    /// Service processes on the one database (PostgreSQL only).
    instances: usize,
    /// Seconds into the run at which one instance is killed.
    kill_after: Option<u64>,
    /// Tasks a second that nobody acknowledges (the escalation check); 0 for none.
    unacked: u32,
    /// Their time to acknowledge at each level, in seconds.
    stat_ack: u32,
    /// The instances' connection pool size (the service's default when not given).
    pool: Option<usize>,
    /// Through the proxy even with one instance (to compare like with like).
    proxy: bool,
    service: bool,
    raw: bool,
    /// The HTTP floor in place of the service.
    floor: bool,
}

fn args() -> Args {
    let mut a = Args {
        backends: vec!["sqlite".into(), "postgres".into()],
        seconds: 15,
        workers: 32,
        preload: 10_000,
        instances: 1,
        kill_after: None,
        unacked: u32::MAX,
        stat_ack: 5,
        pool: None,
        proxy: false,
        service: true,
        raw: true,
        floor: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        match argv[i].as_str() {
            "sqlite" | "postgres" => a.backends = vec![argv[i].clone()],
            "both" => {}
            "--no-raw" => a.raw = false,
            "--raw-only" => a.service = false,
            "--proxy" => a.proxy = true,
            "--floor" => a.floor = true,
            // `cargo bench` passes this to every bench binary.
            "--bench" => {}
            flag @ ("--seconds" | "--workers" | "--preload" | "--instances" | "--kill-after"
            | "--unacked" | "--stat-ack" | "--pool") => {
                let at_least = usize::from(!matches!(flag, "--preload" | "--unacked"));
                let n = common::flag_number(&argv, i, at_least..=usize::MAX);
                match flag {
                    "--seconds" => a.seconds = n as u64,
                    "--workers" => a.workers = n,
                    "--preload" => a.preload = n,
                    "--instances" => a.instances = n,
                    "--kill-after" => a.kill_after = Some(n as u64),
                    "--unacked" => a.unacked = n.min(1000) as u32,
                    "--stat-ack" => a.stat_ack = n.min(3600) as u32,
                    _ => a.pool = Some(n),
                }
                i += 1;
            }
            other => stop(&format!("unknown argument {other:?}")),
        }
        i += 1;
    }
    checked(a)
}

/// Refuses what cannot be measured, saying why; fills in the stream's default.
fn checked(mut a: Args) -> Args {
    let several = a.instances > 1 || a.kill_after.is_some();
    if several && a.backends.iter().any(|b| b == "sqlite") {
        stop(
            "--instances and --kill-after need PostgreSQL (`postgres`): one SQLite file has \
             one writer process, so several instances on it would not be the service's design",
        );
    }
    if let Some(s) = a.kill_after {
        if a.instances < 2 {
            stop("--kill-after needs --instances 2 or more: the others carry on");
        }
        if s >= a.seconds {
            stop("--kill-after must come before the end of the run (--seconds)");
        }
    }
    if a.unacked == u32::MAX {
        // The floor escalates nothing, so it has no escalation check.
        a.unacked = if several && !a.floor { 2 } else { 0 };
    }
    a
}

/// A fresh database with the demo hospital; the nurse's and the doctor's tokens.
fn demo_db(backend: &str, bin: &str) -> (BenchDb, String, String) {
    let db = BenchDb::new(backend);
    let out = Command::new(bin)
        .args(["--database", &db.url_text, "demo"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the service binary {bin} (BENCH_BIN?): {e}"));
    let demo = String::from_utf8_lossy(&out.stdout).to_string();
    let token_of = |email: &str| {
        demo.lines()
            .find(|l| l.contains(email))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_else(|| stop("the demo command printed no tokens"))
            .to_string()
    };
    let (nurse, doctor) = (token_of("grace.okafor@"), token_of("amy.patel@"));
    (db, nurse, doctor)
}

/// Gives the database the history a running hospital's has before the run: `n` completed
/// tasks, each with its `raised` event and its sent push, then, on PostgreSQL, fresh
/// statistics (`ANALYZE`). Without them a new PostgreSQL database is measured in a state no hospital's
/// stays in: autovacuum first analyzes a table a minute or more after it starts to fill,
/// and until then a prepared statement's generic plan is made for a table thought empty.
/// A connection that drew such a plan early kept it for the whole run: a lookup of three
/// tasks by id read all of them (`Seq Scan ... Rows Removed by Filter: 6716`, 3 ms where
/// the index takes 0.05), in some runs and not others. The raw loop gets the same history.
fn history(db: &BenchDb, n: usize) {
    let store = bleepless::store::Store::open(&db.url, 4).unwrap();
    if n > 0 {
        let (role, grace) = store
            .write_now(|c| {
                let role =
                    bleepless::store::directory::find_role(c, "Medicine FY1 night")?.unwrap();
                let grace =
                    bleepless::store::directory::find_staff(c, "grace.okafor@example.nhs.uk")?;
                Ok((role.id, grace.id))
            })
            .unwrap();
        let now = chrono::Utc::now();
        common::preload(
            &store,
            n,
            0,
            0,
            now,
            "Ward 5 (Acute Medicine)",
            &role,
            &grace,
        );
    }
    store
        .write_now(|c| {
            use diesel::RunQueryDsl;
            diesel::sql_query(
                "INSERT INTO outbox (id, kind, destination, dedupe_key, task_id, task_version, \
                 level, recipient_id, status, attempts, due_at, created_at, sent_at) \
                 SELECT 'history-' || id, 'push', '', 'history:' || id, id, version, 0, NULL, \
                 'sent', 1, raised_at, raised_at, raised_at FROM tasks \
                 WHERE id LIKE '00000000-bench-%'",
            )
            .execute(c)?;
            Ok(())
        })
        .unwrap();
    // Not on SQLite, which the service never analyzes either: with `sqlite_stat4` there,
    // SQLite prepares a statement again each time new values are bound to it (perf:
    // `sqlite3Reprepare` under `sqlite3_step`, a fifth of the writer's time), and the
    // service ran at about half its rate (`BENCH_SQLITE_ANALYZE=1` to see it); with
    // `sqlite_stat1` alone its plans were worse still.
    if std::env::var_os("BENCH_SQLITE_ANALYZE").is_some() || !store.is_sqlite() {
        let mut conn = store.conn().unwrap();
        diesel::connection::SimpleConnection::batch_execute(&mut *conn, "ANALYZE").unwrap();
    }
}

/// What the timed part of a service run measured.
pub struct Measured {
    pub all: Lat,
    pub secs: f64,
    pub generator_cpu: Option<f64>,
    /// The PostgreSQL server's CPU seconds in the timed part (PostgreSQL runs only).
    pub postgres_cpu: Option<f64>,
    /// The machine's busy share in the timed part, in percent.
    pub machine_busy: Option<f64>,
    pub pg_transactions: Option<i64>,
    pub unacked_raised: usize,
    pub stream_faults: http::Faults,
}

/// Kills instance 0 after `after` seconds of the run, returning it; the proxy stops giving
/// it connections.
async fn killer(mut victim: Instance, proxy: Arc<Proxy>, after: u64, started: Instant) -> Instance {
    tokio::time::sleep(Duration::from_secs(after)).await;
    victim.look();
    victim.kill();
    proxy.mark_dead(0);
    victim.killed_at = Some(started.elapsed().as_secs_f64());
    eprintln!(
        "killed instance 0 (pid {}) {after} s into the run",
        victim.pid()
    );
    victim
}

/// The timed part: every worker's loop, the unacknowledged stream and the kill.
async fn drive(
    a: &Args,
    host: &str,
    tokens: (&str, &str),
    insts: &mut Vec<Instance>,
    proxy: Option<Arc<Proxy>>,
    db: &BenchDb,
) -> Measured {
    let stop_flag = Arc::new(AtomicBool::new(false));
    // Every connection is open before the clock starts.
    let mut clients = Vec::new();
    for _ in 0..a.workers {
        clients.push(Http1::connect(host).await.expect("connect to the service"));
    }
    let pg_before = (db.url_text.starts_with("postgres"))
        .then(|| common::pg_transactions(&db.url_text))
        .flatten();
    let started = Instant::now();
    insts.iter_mut().for_each(Instance::start_clock);
    let machine_before = common::machine_cpu();
    let generator_before = common::cpu_seconds(std::process::id());
    let postgres_before = common::postgres_cpu();
    let (nurse, doctor) = (tokens.0.to_string(), tokens.1.to_string());
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, c)| {
            tokio::spawn(http::worker(
                c,
                nurse.clone(),
                doctor.clone(),
                stop_flag.clone(),
                n,
            ))
        })
        .collect();
    let stream = (a.unacked > 0).then(|| {
        tokio::spawn(escalations::stream(
            host.to_string(),
            nurse.clone(),
            a.unacked,
            stop_flag.clone(),
        ))
    });
    let kill = match (a.kill_after, proxy) {
        (Some(s), Some(p)) => Some(tokio::spawn(killer(insts.remove(0), p, s, started))),
        _ => None,
    };
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    stop_flag.store(true, Ordering::Relaxed);
    let mut all = Lat::default();
    for h in handles {
        all.add(h.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    insts.iter_mut().for_each(Instance::look);
    if let Some(k) = kill {
        insts.insert(0, k.await.unwrap());
    }
    let machine_busy = common::machine_busy_since(machine_before);
    let postgres_cpu = pg_before
        .is_some()
        .then(|| common::postgres_cpu_between(&postgres_before, &common::postgres_cpu()));
    let generator_cpu = match (generator_before, common::cpu_seconds(std::process::id())) {
        (Some(b), Some(e)) => Some(e - b),
        _ => None,
    };
    let (unacked_raised, stream_faults) = match stream {
        Some(s) => s.await.unwrap(),
        None => (0, Default::default()),
    };
    Measured {
        all,
        secs,
        generator_cpu,
        postgres_cpu,
        machine_busy,
        pg_transactions: pg_before,
        unacked_raised,
        stream_faults,
    }
}

/// One service run on `backend`: its figures, and whether the escalation check passed.
async fn service(backend: &str, a: &Args, bin: &str) -> (f64, bool) {
    let (db, nurse, doctor) = demo_db(backend, bin);
    history(&db, a.preload);
    let config_dir = tempfile::tempdir().unwrap();
    let stat_ack = (a.unacked > 0).then_some(a.stat_ack);
    let config = (stat_ack.is_some() || a.pool.is_some()).then(|| {
        let path = config_dir.path().join("bleepless.toml");
        std::fs::write(&path, instances::config_text(a.pool, stat_ack)).unwrap();
        path
    });
    let exe = std::env::current_exe().expect("this bench's own path");
    let program = match a.floor {
        true => (
            exe.to_str().expect("a path in UTF-8"),
            &["--floor-server"][..],
        ),
        false => (bin, &[][..]),
    };
    let mut insts = instances::spawn(program, &db.url_text, config.as_deref(), a.instances);
    instances::wait_ready(&mut insts).await;
    let proxy = if a.instances > 1 || a.proxy {
        Some(Arc::new(
            Proxy::start(insts.iter().map(|i| i.addr).collect()).await,
        ))
    } else {
        None
    };
    let host = match &proxy {
        Some(p) => p.addr.clone(),
        None => insts[0].addr.to_string(),
    };
    let mut m = drive(a, &host, (&nurse, &doctor), &mut insts, proxy, &db).await;
    let mut passed = true;
    if a.unacked > 0 {
        // Every task raised gets its first deadline and a couple of ticks, then the
        // instances stop and the database is judged as of that moment.
        tokio::time::sleep(Duration::from_secs(u64::from(a.stat_ack) + 3)).await;
        let stopped_at = chrono::Utc::now();
        insts.iter_mut().for_each(Instance::kill);
        let slack = 3.0;
        let c = escalations::check(&db.url, i64::from(a.stat_ack), slack, stopped_at);
        passed = escalations::print(&c, m.unacked_raised, slack);
    } else {
        insts.iter_mut().for_each(Instance::kill);
    }
    if let Some(before) = m.pg_transactions {
        // The server counts a backend's transactions when it goes idle or exits.
        tokio::time::sleep(Duration::from_millis(500)).await;
        m.pg_transactions = common::pg_transactions(&db.url_text).map(|n| n - before);
    }
    let rate = report::service(backend, a, &m, &insts);
    (rate, passed)
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--floor-server") {
        return floor::serve(&argv[2..]);
    }
    tokio::runtime::Runtime::new()
        .expect("a tokio runtime")
        .block_on(run());
}

/// One run of the raw loop on a database of its own, with the same history as the service's.
async fn raw_limit(backend: &str, a: &Args, bin: &str) -> raw::Raw {
    let (db, _, _) = demo_db(backend, bin);
    history(&db, a.preload);
    let (seconds, workers) = (a.seconds, a.workers);
    tokio::task::spawn_blocking(move || raw::run(&db.url, workers, seconds))
        .await
        .unwrap()
}

async fn run() {
    let a = args();
    // BENCH_BIN runs another build of the service, such as one with frame pointers for perf.
    let bin = std::env::var("BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_bleepless").into());
    let mut passed = true;
    for b in a.backends.clone() {
        // The raw limit is measured before and after the service, and the service is
        // judged against their mean: on this machine kind the raw limit moves from one
        // minute to the next by more than the service's builds differ.
        let before = match a.raw && a.service {
            true => Some(raw_limit(&b, &a, &bin).await),
            false => None,
        };
        let mut rate = None;
        if a.service {
            let (r, ok) = service(&b, &a, &bin).await;
            rate = Some(r);
            passed &= ok;
        }
        if a.raw {
            let after = raw_limit(&b, &a, &bin).await;
            let what = if a.floor { "HTTP floor" } else { "service" };
            report::raw(
                &b,
                a.workers,
                &after,
                before.as_ref(),
                rate.map(|r| (what, r)),
            );
        }
    }
    if !passed {
        std::process::exit(1);
    }
}

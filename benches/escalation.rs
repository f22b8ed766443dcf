//! Escalation and notification benchmark. Stores many tasks (most of them history), of which
//! many are open and a block fall due in the same second; times one escalation tick over
//! them, then lets the real dispatcher deliver the resulting pushes (aes128gcm + VAPID) to a
//! local push endpoint, and reports pushes per second and lateness (due → push received).
//!
//!   cargo bench --bench escalation -- [sqlite|postgres|both] [--tasks N] [--open N] [--due N]
//!       [--alone] [--batch N] [--keys-ahead N]
mod common;

use bleepless::clock::{Clock, ManualClock};
use bleepless::config::DispatchConfig;
use bleepless::domain::task::Policy;
use bleepless::outbox::links::LinkSigner;
use bleepless::outbox::notification::Notifier;
use bleepless::outbox::push::{
    generate_vapid_keys, PushSender, DEFAULT_KEYS_AHEAD, MAX_KEYS_AHEAD,
};
use bleepless::outbox::record::RecordServers;
use bleepless::outbox::worker::Worker;
use bleepless::store::{directory, notifications, Store};
use common::{summary, BenchDb};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    backends: Vec<String>,
    tasks: usize,
    open: usize,
    due: usize,
    alone: bool,
    /// The dispatcher's claim size; the service's default unless `--batch` says otherwise.
    batch: i64,
    /// Push key pairs made ahead; the service's default unless `--keys-ahead` says otherwise.
    keys_ahead: usize,
}

impl Args {
    /// How the tick and the dispatcher run, for the report.
    fn mode(&self) -> &'static str {
        if self.alone {
            "tick alone, then dispatch"
        } else {
            "dispatcher beside the tick, as in the service"
        }
    }
}

fn args() -> Args {
    let mut a = Args {
        backends: vec!["sqlite".into(), "postgres".into()],
        tasks: 1_000_000,
        open: 100_000,
        due: 10_000,
        alone: false,
        batch: DispatchConfig::default().batch,
        keys_ahead: DEFAULT_KEYS_AHEAD,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        match argv[i].as_str() {
            "sqlite" | "postgres" => a.backends = vec![argv[i].clone()],
            "--alone" => a.alone = true,
            "--keys-ahead" => {
                a.keys_ahead = common::flag_number(&argv, i, 0..=MAX_KEYS_AHEAD);
                i += 1;
            }
            flag @ ("--tasks" | "--open" | "--due" | "--batch") => {
                let at_least = usize::from(flag != "--open");
                let most = if flag == "--batch" { 1000 } else { usize::MAX };
                let n = common::flag_number(&argv, i, at_least..=most);
                match flag {
                    "--tasks" => a.tasks = n,
                    "--open" => a.open = n,
                    "--due" => a.due = n,
                    // As the service's `[dispatch] batch`.
                    _ => a.batch = n as i64,
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    if !(a.due <= a.open && a.open <= a.tasks) {
        common::stop("need --due <= --open <= --tasks");
    }
    a
}

/// A push service on loopback that answers 201 and notes when each push arrived.
fn push_endpoint() -> (String, Arc<Mutex<Vec<Instant>>>) {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let log = arrivals.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let log = log.clone();
            let server = actix_web::HttpServer::new(move || {
                let log = log.clone();
                actix_web::App::new().default_service(actix_web::web::to(
                    move |_body: actix_web::web::Bytes| {
                        let log = log.clone();
                        async move {
                            log.lock().unwrap().push(Instant::now());
                            actix_web::HttpResponse::Created().finish()
                        }
                    },
                ))
            })
            .workers(1)
            .bind("127.0.0.1:0")
            .unwrap();
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}/push/"), arrivals)
}

/// The ward, the nurse who raised the tasks, and the role they are for, held by a doctor
/// whose phone is subscribed at `endpoint`: (role id, nurse id).
fn hospital(
    store: &Store,
    endpoint: &str,
    keys: &(String, String),
    due_at: chrono::DateTime<chrono::Utc>,
) -> (String, String) {
    store
        .write_now(|c| {
            directory::add_ward(c, "Ward 5", due_at)?;
            let (nurse, _) = directory::add_staff(c, "Sister Bench", None, "coordinator", due_at)?;
            let (doctor, _) = directory::add_staff(c, "Dr Bench", None, "clinician", due_at)?;
            let role = directory::add_role(c, "Medicine FY1 night", due_at)?;
            directory::hand_over(c, &role, &doctor, false, None, due_at)?;
            notifications::subscribe(
                c,
                &doctor.id,
                &format!("{endpoint}dr-bench"),
                &keys.0,
                &keys.1,
                None,
                due_at,
            )?;
            Ok((role.id, nurse.id))
        })
        .unwrap()
}

/// Waits until `n` pushes have arrived, or ten minutes have passed.
async fn until_arrived(arrivals: &Mutex<Vec<Instant>>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while arrivals.lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run(backend: &str, a: &Args) {
    let db = BenchDb::new(backend);
    let store = Store::open(&db.url, 8).unwrap();
    let clock = ManualClock::new(chrono::Utc::now());
    let due_at = clock.now();
    let (endpoint, arrivals) = push_endpoint();
    let keys = bleepless_keys();
    let (role, raiser) = hospital(&store, &endpoint, &keys, due_at);
    // Made as the service makes it at start, before the history: its key pairs are made
    // ahead while the machine is otherwise idle, as they would be between ticks.
    let vapid = generate_vapid_keys();
    let push = PushSender::new(
        &vapid,
        "mailto:bench@example.nhs.uk",
        Duration::from_secs(10),
    )
    .unwrap()
    .with_keys_ahead(a.keys_ahead);
    common::preload(
        &store, a.tasks, a.open, a.due, due_at, "Ward 5", &role, &raiser,
    );

    let policy = Policy::default();
    let app = bleepless::app::App::new(store.clone(), Arc::new(clock.clone()), policy.clone());
    // As the scheduler does after the tick before: the pushes this tick will send if nobody
    // acknowledges are foreseen, and their key agreements made while the machine is idle.
    let sight = bleepless::foresight(&push, a.keys_ahead);
    let foreseen = bleepless::escalation::look_ahead(&app, Some(due_at), sight.as_ref()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    // All made: as many as the stock holds of those foreseen (at most `--keys-ahead`).
    let all_made = || {
        let (held, made) = push.foreseen();
        made >= held
    };
    while !all_made() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let agreed_ready = (foreseen, push.foreseen().1);
    let keys_ready = push.keys_in_stock();
    let dispatcher = Worker {
        store: store.clone(),
        clock: Arc::new(clock.clone()),
        config: DispatchConfig {
            batch: a.batch,
            ..DispatchConfig::default()
        },
        notifier: Notifier {
            push,
            email: None,
            text: None,
            links: LinkSigner::new(b"bench"),
            public_url: "http://127.0.0.1".into(),
            ack_seconds: policy.ack_seconds,
        },
        records: RecordServers::new(&[], "http://127.0.0.1").unwrap(),
        owner: "bench".into(),
    };
    // By default as in the service: the dispatcher runs beside the tick and sends each
    // group of escalations' pushes as soon as that group is committed. With --alone the
    // tick runs by itself first, to time it without the dispatcher competing.
    let wake = app.doorbell.clone();
    let mut dispatcher = Some(dispatcher);
    let mut handle = None;
    if !a.alone {
        handle = dispatcher.take().map(|d| tokio::spawn(d.run(wake.clone())));
    }
    let cpu_before = CpuMark::now();
    let started = Instant::now();
    let n = bleepless::escalation::tick(&app, due_at).await.unwrap();
    let tick = started.elapsed();
    let (handle, send_start) = match handle {
        Some(h) => (h, started),
        None => match dispatcher {
            Some(d) => (tokio::spawn(d.run(wake)), Instant::now()),
            None => unreachable!("the dispatcher runs once"),
        },
    };
    until_arrived(&arrivals, n).await;
    handle.abort();
    let cpu = cpu_before.elapsed();
    let got = arrivals.lock().unwrap().clone();
    let burst = Burst {
        escalated: n,
        keys_ready,
        agreed_ready,
        tick,
        pushes: got.len(),
        send_secs: send_start.elapsed().as_secs_f64(),
        lateness: got.iter().map(|t| t.duration_since(started)).collect(),
        cpu,
    };
    report(backend, a, burst);
}

/// What one run measured.
struct Burst {
    escalated: usize,
    keys_ready: usize,
    /// Pushes foreseen by the tick before, and their key agreements made by this tick.
    agreed_ready: (usize, usize),
    tick: Duration,
    pushes: usize,
    send_secs: f64,
    /// From the tick's start to each push received.
    lateness: Vec<Duration>,
    cpu: Cpu,
}

/// Prints a run's table; with `BENCH_TIMELINE` set, also the pushes received in each tenth
/// of a second, on stderr.
fn report(backend: &str, a: &Args, b: Burst) {
    let Burst {
        escalated: n,
        keys_ready,
        agreed_ready,
        tick,
        pushes,
        send_secs,
        lateness,
        cpu,
    } = b;
    if std::env::var("BENCH_TIMELINE").is_ok() {
        let mut per =
            vec![0usize; 1 + lateness.iter().max().map_or(0, |d| d.as_millis() / 100) as usize];
        for d in &lateness {
            per[(d.as_millis() / 100) as usize] += 1;
        }
        eprintln!(
            "pushes per 100 ms from the tick's start (the tick ended at {:.0} ms): {per:?}",
            tick.as_secs_f64() * 1000.0
        );
    }
    let (p50, p99, max) = summary(lateness);
    println!(
        "\n## {backend}: {} tasks stored, {} open, {} due in the same second ({}, claims of {})",
        a.tasks,
        a.open,
        a.due,
        a.mode(),
        a.batch
    );
    println!("| measure | value |\n|---|---|");
    println!("| one tick: tasks escalated | {n} |");
    println!("| push key pairs made ahead, at the tick's start | {keys_ready} |");
    println!(
        "| pushes foreseen by the tick before / their key agreements made ahead, at the tick's start | {} / {} |",
        agreed_ready.0, agreed_ready.1
    );
    println!(
        "| one tick: time (escalate + enqueue) | {:.2} s |",
        tick.as_secs_f64()
    );
    println!(
        "| pushes delivered (aes128gcm + VAPID, loopback), from tick start | {} in {:.2} s = {:.0}/s |",
        pushes,
        send_secs,
        pushes as f64 / send_secs
    );
    println!(
        "| lateness, start of tick → push received: p50 / p99 / max | {:.0} / {:.0} / {:.0} ms |",
        p50, p99, max
    );
    println!(
        "| lateness p99 + one tick period (5 s), worst case | {:.1} s |",
        p99 / 1000.0 + 5.0
    );
    println!(
        "| CPU, tick start → last push: this process (service and endpoint) / PostgreSQL / machine busy | {:.2} s / {:.2} s / {:.0}% |",
        cpu.process, cpu.postgres, cpu.busy
    );
}

/// The CPU used from the tick's start to the last push received.
struct Cpu {
    /// This process's: the service's tick and dispatcher, and the push endpoint.
    process: f64,
    /// Every PostgreSQL server process's (none on SQLite).
    postgres: f64,
    /// The share of the machine's two cores that was busy, in percent.
    busy: f64,
}

/// The CPU counters at one moment, to take [`Cpu`] from.
struct CpuMark {
    process: Option<f64>,
    postgres: std::collections::HashMap<u32, f64>,
    machine: Option<(u64, u64)>,
}

impl CpuMark {
    fn now() -> CpuMark {
        CpuMark {
            process: common::cpu_seconds(std::process::id()),
            postgres: common::postgres_cpu(),
            machine: common::machine_cpu(),
        }
    }

    /// The CPU used since this mark.
    fn elapsed(self) -> Cpu {
        let now = common::cpu_seconds(std::process::id());
        Cpu {
            process: now.zip(self.process).map_or(0.0, |(b, a)| b - a),
            postgres: common::postgres_cpu_between(&self.postgres, &common::postgres_cpu()),
            busy: common::machine_busy_since(self.machine).unwrap_or(0.0),
        }
    }
}

/// A browser-like subscription key pair (only the public half and auth secret are needed
/// by the sender).
fn bleepless_keys() -> (String, String) {
    (
        "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
            .into(),
        "tBHItJI5svbpez7KI4CCXg".into(),
    )
}

#[tokio::main]
async fn main() {
    let a = args();
    for b in a.backends.clone() {
        run(&b, &a).await;
    }
}

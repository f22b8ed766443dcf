//! Load benchmark: starts the real service (release build) on a fresh database and drives a
//! mixed workload over loopback with a bounded number of keep-alive clients: raise →
//! acknowledge → (start, every other one) → complete lifecycles, with list and dashboard
//! reads mixed in. Reports
//! throughput, p50/p99/max latency per request kind, and the service's peak memory.
//!
//!   cargo bench --bench load -- [sqlite|postgres|both] [--seconds N] [--workers N] [--preload N]
mod common;

use common::{peak_rss_mib, summary, BenchDb};
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    backends: Vec<String>,
    seconds: u64,
    workers: usize,
    preload: usize,
}

fn args() -> Args {
    let mut a = Args {
        backends: vec!["sqlite".into(), "postgres".into()],
        seconds: 15,
        workers: 32,
        preload: 0,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let next = || argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match argv[i].as_str() {
            "sqlite" | "postgres" => a.backends = vec![argv[i].clone()],
            "both" => {}
            "--seconds" => {
                a.seconds = next().unwrap_or(a.seconds);
                i += 1;
            }
            "--workers" => {
                a.workers = next().map_or(a.workers, |v| v as usize);
                i += 1;
            }
            "--preload" => {
                a.preload = next().map_or(a.preload, |v| v as usize);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    a
}

#[derive(Default)]
struct Lat {
    raise: Vec<Duration>,
    ack: Vec<Duration>,
    start: Vec<Duration>,
    dashboard: Vec<Duration>,
    complete: Vec<Duration>,
    read: Vec<Duration>,
    errors: usize,
    lifecycles: usize,
}

async fn timed(
    req: reqwest::RequestBuilder,
    expect: u16,
    into: &mut Vec<Duration>,
    errors: &mut usize,
) -> Option<serde_json::Value> {
    let t = Instant::now();
    let res = req.send().await.ok()?;
    let status = res.status().as_u16();
    let body = res.json::<serde_json::Value>().await.ok();
    into.push(t.elapsed());
    if status != expect {
        *errors += 1;
        if *errors < 5 {
            eprintln!("unexpected {status}: {body:?}");
        }
        return None;
    }
    body
}

async fn worker(
    c: reqwest::Client,
    base: String,
    nurse: String,
    doctor: String,
    stop: Arc<AtomicBool>,
    n: usize,
) -> Lat {
    let mut l = Lat::default();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let raise = c.post(format!("{base}/api/v1/tasks")).bearer_auth(&nurse).json(&json!({
            "nhs_number": "9990000018", "ward": "Ward 5 (Acute Medicine)", "bed": format!("{}", (n + i) % 28 + 1),
            "category": "bloods", "description": "FBC, U&E and CRP before the ward round", "priority": "urgent",
            "assignee": "Medicine FY1 night",
        }));
        let Some(task) = timed(raise, 201, &mut l.raise, &mut l.errors).await else {
            continue;
        };
        let id = task["id"].as_str().unwrap_or_default().to_string();
        let ack = c
            .post(format!("{base}/api/v1/tasks/{id}/acknowledge"))
            .bearer_auth(&doctor);
        if timed(ack, 200, &mut l.ack, &mut l.errors).await.is_none() {
            continue;
        }
        // Every other task is started before it is completed.
        if i.is_multiple_of(2) {
            let start = c
                .post(format!("{base}/api/v1/tasks/{id}/start"))
                .bearer_auth(&doctor);
            if timed(start, 200, &mut l.start, &mut l.errors)
                .await
                .is_none()
            {
                continue;
            }
        }
        let done = c
            .post(format!("{base}/api/v1/tasks/{id}/complete"))
            .bearer_auth(&doctor)
            .json(&json!({ "outcome": { "code": "done", "text": "Taken and sent" } }));
        if timed(done, 200, &mut l.complete, &mut l.errors)
            .await
            .is_some()
        {
            l.lifecycles += 1;
        }
        if i.is_multiple_of(5) {
            timed(
                c.get(format!("{base}/api/v1/tasks?limit=20"))
                    .bearer_auth(&nurse),
                200,
                &mut l.read,
                &mut l.errors,
            )
            .await;
            timed(
                c.get(format!("{base}/api/v1/dashboard"))
                    .bearer_auth(&nurse),
                200,
                &mut l.dashboard,
                &mut l.errors,
            )
            .await;
        }
    }
    l
}

fn token_of(demo: &str, email: &str) -> String {
    demo.lines()
        .find(|l| l.contains(email))
        .and_then(|l| l.split_whitespace().last())
        .expect("demo token")
        .to_string()
}

async fn run(backend: &str, a: &Args) {
    let db = BenchDb::new(backend);
    let bin = env!("CARGO_BIN_EXE_bleepless");
    let out = Command::new(bin)
        .args(["--database", &db.url_text, "demo"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let demo = String::from_utf8_lossy(&out.stdout).to_string();
    let nurse = token_of(&demo, "grace.okafor@");
    let doctor = token_of(&demo, "amy.patel@");
    if a.preload > 0 {
        let store = bleepless::store::Store::open(&db.url, 4).unwrap();
        let (role, grace) = store
            .write_now(|c| {
                let role =
                    bleepless::store::directory::find_role(c, "Medicine FY1 night")?.unwrap();
                let grace =
                    bleepless::store::directory::find_staff(c, "grace.okafor@example.nhs.uk")?;
                Ok((role.id, grace.id))
            })
            .unwrap();
        common::preload(
            &store,
            a.preload,
            0,
            0,
            chrono::Utc::now(),
            "Ward 5 (Acute Medicine)",
            &role,
            &grace,
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(bin)
        .args([
            "--database",
            &db.url_text,
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        // Each task's push fails for want of a registered phone (measured in the escalation
        // benchmark instead); those warnings are not this benchmark's business, unless
        // BENCH_SERVICE_LOG asks for the service's log.
        .stderr(match std::env::var_os("BENCH_SERVICE_LOG") {
            Some(_) => Stdio::inherit(),
            None => Stdio::null(),
        })
        .spawn()
        .unwrap();
    let c = reqwest::Client::new();
    for _ in 0..200 {
        if c.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Each client is built before the clock starts: building one loads the system's TLS
    // trust store (tens of ms of CPU), and building 32 while the first requests were in
    // flight made those requests wait up to 3 s.
    let clients: Vec<reqwest::Client> = (0..a.workers).map(|_| reqwest::Client::new()).collect();
    let started = Instant::now();
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, c)| {
            tokio::spawn(worker(
                c,
                base.clone(),
                nurse.clone(),
                doctor.clone(),
                stop.clone(),
                n,
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Lat::default();
    for h in handles {
        let l = h.await.unwrap();
        all.raise.extend(l.raise);
        all.ack.extend(l.ack);
        all.start.extend(l.start);
        all.dashboard.extend(l.dashboard);
        all.complete.extend(l.complete);
        all.read.extend(l.read);
        all.errors += l.errors;
        all.lifecycles += l.lifecycles;
    }
    let secs = started.elapsed().as_secs_f64();
    let rss = peak_rss_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let requests = all.raise.len()
        + all.ack.len()
        + all.start.len()
        + all.complete.len()
        + all.read.len()
        + all.dashboard.len();
    let mut every = Vec::new();
    for v in [
        &all.raise,
        &all.ack,
        &all.start,
        &all.complete,
        &all.read,
        &all.dashboard,
    ] {
        every.extend(v.iter().copied());
    }
    println!(
        "\n## {backend}: {} workers, {secs:.0} s, {} tasks preloaded",
        a.workers, a.preload
    );
    println!(
        "lifecycles/s: {:.0}   requests/s: {:.0}   errors: {}   peak RSS: {}",
        all.lifecycles as f64 / secs,
        requests as f64 / secs,
        all.errors,
        rss.map(|r| format!("{r:.1} MiB"))
            .unwrap_or_else(|| "?".into())
    );
    println!("| request | count | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|");
    for (name, v) in [
        ("raise", all.raise),
        ("acknowledge", all.ack),
        ("start", all.start),
        ("complete", all.complete),
        ("list reads", all.read),
        ("dashboard reads", all.dashboard),
        ("all", every),
    ] {
        let n = v.len();
        let (p50, p99, max) = summary(v);
        println!("| {name} | {n} | {p50:.1} | {p99:.1} | {max:.1} |");
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    for b in a.backends.clone() {
        run(&b, &a).await;
    }
}

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
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

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
        match argv[i].as_str() {
            "sqlite" | "postgres" => a.backends = vec![argv[i].clone()],
            "both" => {}
            flag @ ("--seconds" | "--workers" | "--preload") => {
                let at_least = usize::from(flag != "--preload");
                let n = common::flag_number(&argv, i, at_least..=usize::MAX);
                match flag {
                    "--seconds" => a.seconds = n as u64,
                    "--workers" => a.workers = n,
                    _ => a.preload = n,
                }
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

/// One keep-alive HTTP/1.1 connection to the service, one request at a time: the load
/// generator's own client. It does only what this workload needs (a JSON body out, a
/// `Content-Length` body back), so it costs the shared two cores a few µs per request;
/// reqwest, with a `serde_json::Value` parse of every answer, cost about a quarter core.
struct Http1 {
    stream: BufReader<TcpStream>,
    host: String,
    out: Vec<u8>,
    line: String,
}

impl Http1 {
    async fn connect(host: &str) -> std::io::Result<Http1> {
        let stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        Ok(Http1 {
            stream: BufReader::new(stream),
            host: host.to_string(),
            out: Vec::with_capacity(512),
            line: String::new(),
        })
    }

    /// Sends one request; returns the status and the body.
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&[u8]>,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        use std::io::Write as _;
        self.out.clear();
        write!(
            self.out,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n",
            self.host
        )?;
        if method == "POST" {
            let body = body.unwrap_or_default();
            write!(
                self.out,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )?;
            self.out.extend_from_slice(body);
        } else {
            self.out.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&self.out).await?;
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let (mut status, mut length) = (0u16, 0usize);
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line).await? == 0 {
                return Err(bad("the service closed the connection"));
            }
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            if status == 0 {
                status = line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad(line))?;
            } else if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().map_err(|_| bad(line))?;
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(bad(
                        "a chunked answer: this client reads Content-Length only",
                    ));
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

#[derive(serde::Deserialize)]
struct Created {
    id: String,
}

/// Sends one request and times it; the body when the status is the one expected.
async fn timed(
    c: &mut Http1,
    (method, path, token, body): (&str, &str, &str, Option<&[u8]>),
    expect: u16,
    into: &mut Vec<Duration>,
    errors: &mut usize,
) -> Option<Vec<u8>> {
    let t = Instant::now();
    let answer = c.send(method, path, token, body).await;
    into.push(t.elapsed());
    if answer.is_err() {
        // The connection is no longer usable: open another for the next request.
        if let Ok(fresh) = Http1::connect(&c.host.clone()).await {
            *c = fresh;
        }
    }
    match answer {
        Ok((status, body)) if status == expect => Some(body),
        other => {
            *errors += 1;
            if *errors < 5 {
                match other {
                    Ok((status, body)) => {
                        eprintln!("unexpected {status}: {}", String::from_utf8_lossy(&body))
                    }
                    Err(e) => eprintln!("{method} {path}: {e}"),
                }
            }
            None
        }
    }
}

async fn worker(
    mut c: Http1,
    nurse: String,
    doctor: String,
    stop: Arc<AtomicBool>,
    n: usize,
) -> Lat {
    let mut l = Lat::default();
    let mut i = 0usize;
    let done =
        serde_json::to_vec(&json!({ "outcome": { "code": "done", "text": "Taken and sent" } }))
            .unwrap();
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let raise = serde_json::to_vec(&json!({
            "nhs_number": "9990000018", "ward": "Ward 5 (Acute Medicine)", "bed": format!("{}", (n + i) % 28 + 1),
            "category": "bloods", "description": "FBC, U&E and CRP before the ward round", "priority": "urgent",
            "assignee": "Medicine FY1 night",
        }))
        .unwrap();
        let req = ("POST", "/api/v1/tasks", nurse.as_str(), Some(&raise[..]));
        let Some(task) = timed(&mut c, req, 201, &mut l.raise, &mut l.errors).await else {
            continue;
        };
        let Ok(Created { id }) = serde_json::from_slice(&task) else {
            l.errors += 1;
            continue;
        };
        let path = format!("/api/v1/tasks/{id}/acknowledge");
        let req = ("POST", path.as_str(), doctor.as_str(), None);
        if timed(&mut c, req, 200, &mut l.ack, &mut l.errors)
            .await
            .is_none()
        {
            continue;
        }
        // Every other task is started before it is completed.
        if i.is_multiple_of(2) {
            let path = format!("/api/v1/tasks/{id}/start");
            let req = ("POST", path.as_str(), doctor.as_str(), None);
            if timed(&mut c, req, 200, &mut l.start, &mut l.errors)
                .await
                .is_none()
            {
                continue;
            }
        }
        let path = format!("/api/v1/tasks/{id}/complete");
        let req = ("POST", path.as_str(), doctor.as_str(), Some(&done[..]));
        if timed(&mut c, req, 200, &mut l.complete, &mut l.errors)
            .await
            .is_some()
        {
            l.lifecycles += 1;
        }
        if i.is_multiple_of(5) {
            let req = ("GET", "/api/v1/tasks?limit=20", nurse.as_str(), None);
            timed(&mut c, req, 200, &mut l.read, &mut l.errors).await;
            let req = ("GET", "/api/v1/dashboard", nurse.as_str(), None);
            timed(&mut c, req, 200, &mut l.dashboard, &mut l.errors).await;
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
    // BENCH_BIN runs another build of the service, such as one with frame pointers for perf.
    let bin = std::env::var("BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_bleepless").into());
    let bin = bin.as_str();
    let out = Command::new(bin)
        .args(["--database", &db.url_text, "demo"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the service binary {bin} (BENCH_BIN?): {e}"));
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
    let host = format!("127.0.0.1:{port}");
    for _ in 0..200 {
        if TcpStream::connect(&host).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Every connection is open before the clock starts.
    let mut clients = Vec::new();
    for _ in 0..a.workers {
        clients.push(Http1::connect(&host).await.expect("connect to the service"));
    }
    let started = Instant::now();
    let cpu_before = (
        common::cpu_seconds(child.id()),
        common::cpu_seconds(std::process::id()),
    );
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, c)| tokio::spawn(worker(c, nurse.clone(), doctor.clone(), stop.clone(), n)))
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
    // CPU per lifecycle, of the service and of this load generator, over the timed part.
    let per_lifecycle = |before: Option<f64>, pid: u32| match (before, common::cpu_seconds(pid)) {
        (Some(b), Some(a)) if all.lifecycles > 0 => {
            format!("{:.2} ms", (a - b) * 1000.0 / all.lifecycles as f64)
        }
        _ => "?".into(),
    };
    let cpu_service = per_lifecycle(cpu_before.0, child.id());
    let cpu_generator = per_lifecycle(cpu_before.1, std::process::id());
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
    println!("CPU per lifecycle: service {cpu_service}, load generator {cpu_generator}");
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

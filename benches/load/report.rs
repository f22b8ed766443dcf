//! The load bench's printed figures: the service run's and its raw companion's.
use crate::common::summary;
use crate::http::Lat;
use crate::instances::Instance;
use crate::raw::Raw;
use crate::{Args, Measured};
use std::time::Duration;

/// Prints a table of latencies, one row per kind.
fn latencies(first: &str, rows: Vec<(&str, Vec<Duration>)>) {
    println!("| {first} | count | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|");
    for (name, v) in rows {
        let n = v.len();
        let (p50, p99, max) = summary(v);
        println!("| {name} | {n} | {p50:.1} | {p99:.1} | {max:.1} |");
    }
}

fn ms_per(seconds: Option<f64>, lifecycles: usize) -> String {
    match seconds {
        Some(s) if lifecycles > 0 => format!("{:.2} ms", s * 1000.0 / lifecycles as f64),
        _ => "?".into(),
    }
}

/// ", PostgreSQL server X ms" when the run was on PostgreSQL.
fn server(seconds: Option<f64>, lifecycles: usize) -> String {
    seconds
        .map(|s| format!(", PostgreSQL server {}", ms_per(Some(s), lifecycles)))
        .unwrap_or_default()
}

/// The machine's busy share: beyond what the bench names, anything else running.
fn machine(busy: Option<f64>) -> String {
    let busy = busy
        .map(|b| format!("{b:.0}%"))
        .unwrap_or_else(|| "?".into());
    format!("the machine's CPU {busy} busy")
}

/// Each instance's CPU per lifecycle (of all lifecycles) and peak RSS.
fn per_instance(insts: &[Instance], lifecycles: usize) {
    if insts.len() < 2 {
        return;
    }
    println!("| instance | CPU in the run | CPU per lifecycle (of all) | peak RSS | killed |\n|---|---|---|---|---|");
    for (n, i) in insts.iter().enumerate() {
        let rss = i.seen.and_then(|s| s.1);
        println!(
            "| {n} | {} | {} | {} | {} |",
            i.cpu_used()
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_else(|| "?".into()),
            ms_per(i.cpu_used(), lifecycles),
            rss.map(|r| format!("{r:.1} MiB"))
                .unwrap_or_else(|| "?".into()),
            i.killed_at
                .map(|s| format!("at {s:.1} s"))
                .unwrap_or_else(|| "no".into()),
        );
    }
}

/// Prints the service run; returns its lifecycles a second.
pub fn service(backend: &str, a: &Args, m: &Measured, insts: &[Instance]) -> f64 {
    let all: &Lat = &m.all;
    let secs = m.secs;
    let rate = all.lifecycles as f64 / secs;
    let kinds: Vec<(&str, &Vec<Duration>)> = vec![
        ("raise", &all.raise),
        ("acknowledge", &all.ack),
        ("start", &all.start),
        ("complete", &all.complete),
        ("list reads", &all.read),
        ("dashboard reads", &all.dashboard),
    ];
    let requests: usize = kinds.iter().map(|(_, v)| v.len()).sum();
    let every: Vec<Duration> = kinds.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let front = if insts.len() > 1 || a.proxy {
        " behind the round-robin proxy"
    } else {
        ""
    };
    let what = if a.floor { " of the HTTP floor" } else { "" };
    println!(
        "\n## {backend}: {} workers, {secs:.0} s, {} tasks preloaded, {} instance(s){what}{front}",
        a.workers,
        a.preload,
        insts.len()
    );
    let f = all.faults;
    let rss = insts
        .iter()
        .filter_map(|i| i.seen.and_then(|s| s.1))
        .fold(0.0, f64::max);
    println!(
        "lifecycles/s: {rate:.0}   requests/s: {:.0}   errors: {}   peak RSS: {rss:.1} MiB{}",
        requests as f64 / secs,
        f.errors,
        if insts.len() > 1 {
            " (largest instance)"
        } else {
            ""
        }
    );
    if f.dropped + m.stream_faults.dropped > 0 {
        println!(
            "connections dropped under a request (retried through the proxy): {} (of those, status changes found done on retry: {}); the unacknowledged stream's: {}",
            f.dropped, f.done_before_drop, m.stream_faults.dropped
        );
    }
    let service_cpu: Option<f64> = insts.iter().map(Instance::cpu_used).sum();
    println!(
        "CPU per lifecycle: service {} (all instances), load generator {}{}; {}",
        ms_per(service_cpu, all.lifecycles),
        ms_per(m.generator_cpu, all.lifecycles),
        server(m.postgres_cpu, all.lifecycles),
        machine(m.machine_busy)
    );
    if let Some(n) = m.pg_transactions {
        println!(
            "PostgreSQL transactions per lifecycle (pg_stat_database, every instance's, the dispatcher and tick included): {:.1}",
            n as f64 / all.lifecycles.max(1) as f64
        );
    }
    per_instance(insts, all.lifecycles);
    let mut rows: Vec<(&str, Vec<Duration>)> =
        kinds.into_iter().map(|(k, v)| (k, v.clone())).collect();
    rows.push(("all", every));
    latencies("request", rows);
    rate
}

/// Prints the raw companion's run, and the service's (or the floor's) rate as a share of it.
pub fn raw(
    backend: &str,
    connections: usize,
    r: &Raw,
    before: Option<&Raw>,
    service: Option<(&str, f64)>,
) {
    let rate = r.lifecycles as f64 / r.secs;
    println!("\n## {backend} raw limit: the same write transactions through diesel, no HTTP, {connections} connections, {:.0} s", r.secs);
    println!(
        "lifecycles/s: {rate:.0}   commits/s: {:.0}   failed transactions: {}",
        r.commits as f64 / r.secs,
        r.failures
    );
    println!(
        "CPU per lifecycle: the raw loops (diesel, in this process) {}{}; {}",
        ms_per(r.client_cpu, r.lifecycles),
        server(r.postgres_cpu, r.lifecycles),
        machine(r.machine_busy)
    );
    latencies(
        "transaction",
        vec![
            ("raise", r.raise.clone()),
            ("acknowledge", r.ack.clone()),
            ("start", r.start.clone()),
            ("complete", r.complete.clone()),
        ],
    );
    let Some((what, s)) = service else { return };
    match before {
        Some(b) => {
            let first = b.lifecycles as f64 / b.secs;
            let mean = (first + rate) / 2.0;
            println!(
                "raw limit before the {what}: {first:.0} lifecycles/s, after: {rate:.0}; mean {mean:.0}"
            );
            println!(
                "{what} / raw limit: {:.2} ({s:.0} / {mean:.0} lifecycles/s; against the run before {:.2}, after {:.2})",
                s / mean.max(f64::MIN_POSITIVE),
                s / first.max(f64::MIN_POSITIVE),
                s / rate.max(f64::MIN_POSITIVE)
            );
        }
        None => println!(
            "{what} / raw limit: {:.2} ({s:.0} / {rate:.0} lifecycles/s)",
            s / rate.max(f64::MIN_POSITIVE)
        ),
    }
}

//! The rota at a hospital's size (issue 15), through the library (release build):
//!
//! 1. Set-up: 500 on-call roles, 5,000 clinicians (ten per role), and a year of shifts: each
//!    role has a day shift (08:00–20:00 local) and a night shift (20:00–08:00) every day
//!    for 365 days, held by the role's ten in turn: 365,000 rows, across both clock changes.
//! 2. "Who holds X now": `directory::current_holders` for random roles, and the rota's own
//!    answer (`store::rota::slots` for one role around now + `domain::rota::holders_at`),
//!    each call through the store's read path (a pooled connection on a blocking thread).
//! 3. The tick's hand-over work: `app::rota::catch_up` as the tick runs it (`App::run_in`),
//!    at boundaries where all 500 roles change hands, with two unacknowledged tasks
//!    waiting on each role; and at ticks with no boundary due (the common case).
//!
//!   cargo bench --bench rota -- [sqlite|postgres|both] [--calls N] [--boundaries N]
mod common;

use bleepless::app::rota::{catch_up, HandOver};
use bleepless::app::tasks::raise;
use bleepless::app::{App, Ctx};
use bleepless::clock::ManualClock;
use bleepless::domain::rota::{holders_at, Zone};
use bleepless::domain::task::Policy;
use bleepless::domain::{Category, NewTask, NhsNumber, Priority};
use bleepless::store::directory::{self, Staff};
use bleepless::store::rota::{self as rota_store, NewShift};
use bleepless::store::schema::{outbox, rota_shifts};
use bleepless::store::Store;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use common::{summary, BenchDb};
use diesel::prelude::*;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Instant;

const ROLES: usize = 500;
const STAFF_PER_ROLE: usize = 10;
const DAYS: i64 = 365;
/// Tasks waiting (unacknowledged) on each role when the boundaries come.
const TASKS_PER_ROLE: usize = 2;
/// Ticks with no boundary due measured after each boundary, a minute apart.
const QUIET_TICKS: usize = 3;

struct Args {
    backends: Vec<String>,
    calls: usize,
    boundaries: usize,
}

fn args() -> Args {
    let mut a = Args {
        backends: vec!["sqlite".into(), "postgres".into()],
        calls: 10_000,
        boundaries: 9,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        match argv[i].as_str() {
            "sqlite" | "postgres" => a.backends = vec![argv[i].clone()],
            "both" => a.backends = vec!["sqlite".into(), "postgres".into()],
            "--calls" => {
                a.calls = common::flag_number(&argv, i, 1..=1_000_000);
                i += 1;
            }
            "--boundaries" => {
                // From the tenth on, a role's first holder comes back to tasks still
                // waiting at the version pushed to them: the hand-over fails on the
                // outbox's unique key (see BENCHMARKS.md, eighth round).
                a.boundaries = common::flag_number(&argv, i, 1..=200);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    a
}

fn zone() -> Zone {
    Zone::parse("Europe/London").unwrap()
}

/// The first day of the year of shifts (a Monday), and the day the bench's clock starts on:
/// its boundaries run through the night the clocks go forward (28 March 2027, 11 hours).
fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()
}
fn start_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 3, 25).unwrap()
}

fn local(day: NaiveDate, hour: u32) -> DateTime<Utc> {
    zone()
        .instant(day.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap()))
        .unwrap()
}

/// The hospital: its roles (by id) and the coordinator who raises the tasks.
struct Hospital {
    roles: Vec<String>,
    coordinator: Staff,
}

/// 500 roles, ten clinicians each, and a year of day and night shifts, written in large
/// transactions (history, not traffic): the shifts through `store::rota::add_shifts`.
fn setup(store: &Store, now: DateTime<Utc>) -> Hospital {
    let started = Instant::now();
    let (roles, staff, coordinator) = store
        .write_now(|c| {
            directory::add_ward(c, "Ward 5", now)?;
            let (coordinator, _) =
                directory::add_staff(c, "Sister Rota", None, "coordinator", now)?;
            let mut roles = Vec::with_capacity(ROLES);
            let mut staff = Vec::with_capacity(ROLES * STAFF_PER_ROLE);
            for r in 0..ROLES {
                roles.push(directory::add_role(c, &format!("Bench role {r:03}"), now)?.id);
                for s in 0..STAFF_PER_ROLE {
                    let name = format!("Dr Bench {r:03}-{s}");
                    staff.push(directory::add_staff(c, &name, None, "clinician", now)?.0.id);
                }
            }
            Ok((roles, staff, coordinator))
        })
        .expect("roles and staff");
    let people = started.elapsed();
    let started = Instant::now();
    let mut batch: Vec<NewShift> = Vec::with_capacity(50_000);
    let mut written = 0;
    let flush = |batch: &mut Vec<NewShift>| {
        let rows = std::mem::take(batch);
        store
            .write_now(move |c| rota_store::add_shifts(c, &rows))
            .expect("shifts")
    };
    for d in 0..DAYS {
        let day = first_day() + Duration::days(d);
        let (eight, twenty) = (local(day, 8), local(day, 20));
        let next_eight = local(day + Duration::days(1), 8);
        for (r, role) in roles.iter().enumerate() {
            let holder = |k: i64| &staff[r * STAFF_PER_ROLE + (k as usize) % STAFF_PER_ROLE];
            let by_day = holder(2 * d);
            let by_night = holder(2 * d + 1);
            batch.push(NewShift::new(role, Some(by_day), (eight, twenty), now));
            batch.push(NewShift::new(
                role,
                Some(by_night),
                (twenty, next_eight),
                now,
            ));
        }
        if batch.len() >= 50_000 {
            written += flush(&mut batch);
        }
    }
    written += flush(&mut batch);
    let shifts = started.elapsed();
    let started = Instant::now();
    let held = history(store, &roles, &staff);
    eprintln!(
        "set up {ROLES} roles and {} staff in {people:.1?}, {written} shifts in {shifts:.1?}, \
         {held} past holdings in {:.1?}",
        staff.len() + 1,
        started.elapsed()
    );
    Hospital { roles, coordinator }
}

/// A year of the bleeps' history before the bench starts: two ended holdings a day for
/// each role, as a year of applying the rota leaves in `role_holdings` (which "who holds X
/// now" reads). Written with plain multi-row inserts, 1,000 rows a statement.
fn history(store: &Store, roles: &[String], staff: &[String]) -> usize {
    let at = |t: DateTime<Utc>| t.format("'%Y-%m-%d %H:%M:%S'").to_string();
    let mut values = Vec::with_capacity(1000);
    let mut statements = Vec::new();
    for d in 0..DAYS {
        let day = start_day() - Duration::days(DAYS - d);
        let bounds = [
            local(day, 8),
            local(day, 20),
            local(day + Duration::days(1), 8),
        ];
        for (r, role) in roles.iter().enumerate() {
            for k in 0..2 {
                let who = &staff[r * STAFF_PER_ROLE + ((2 * d + k) as usize) % STAFF_PER_ROLE];
                let (from, until) = (at(bounds[k as usize]), at(bounds[k as usize + 1]));
                let id = uuid::Uuid::new_v4();
                values.push(format!(
                    "('{id}', '{role}', '{who}', {from}, {until}, 'rota', {from})"
                ));
                if values.len() == 1000 {
                    statements.push(std::mem::take(&mut values).join(", "));
                }
            }
        }
    }
    if !values.is_empty() {
        statements.push(values.join(", "));
    }
    let n = (DAYS as usize) * roles.len() * 2;
    for group in statements.chunks(50) {
        store
            .write_now(|c| {
                for v in group {
                    diesel::sql_query(format!(
                        "INSERT INTO role_holdings (id, role_id, staff_id, held_from, \
                         held_until, source, confirmed_at) VALUES {v}"
                    ))
                    .execute(c)?;
                }
                Ok(())
            })
            .expect("past holdings");
    }
    n
}

/// Two unacknowledged tasks waiting on each role, each raised by its own command.
async fn raise_tasks(app: &App, ctx: &Ctx, h: &Hospital) {
    for (r, role) in h.roles.iter().enumerate() {
        for k in 0..TASKS_PER_ROLE {
            let (by, role) = (h.coordinator.clone(), role.clone());
            app.run_in(ctx.clone(), move |c, ctx| {
                let task = NewTask {
                    nhs_number: NhsNumber::parse("9990000018").unwrap(),
                    ward: "Ward 5".into(),
                    bed: format!("{}", (r + k) % 30 + 1),
                    category: Category::parse("bloods").unwrap(),
                    description: "Bloods before the ward round".into(),
                    priority: Priority::Routine,
                    news2: None,
                    assignee: role,
                };
                raise(c, ctx, &by, task)
            })
            .await
            .expect("raise");
        }
    }
}

/// Latencies (ms) of "who holds X now" for random roles, both ways, through `store.read`.
async fn who_holds(store: &Store, roles: &[String], now: DateTime<Utc>, calls: usize) -> Reads {
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let (mut held, mut rota, mut disagree) = (Vec::new(), Vec::new(), 0);
    for _ in 0..calls {
        let role = roles[rng.gen_range(0..roles.len())].clone();
        let r = role.clone();
        let t = Instant::now();
        let mut holders = store
            .read(move |c| directory::current_holders(c, &r))
            .await
            .unwrap();
        held.push(t.elapsed());
        let t = Instant::now();
        let mut named = store
            .read(move |c| {
                let one = std::slice::from_ref(&role);
                let slots = rota_store::slots(c, one, now, now + Duration::seconds(1))?;
                Ok(holders_at(slots.get(&role).map_or(&[][..], |s| s), now))
            })
            .await
            .unwrap();
        rota.push(t.elapsed());
        holders.sort();
        named.sort();
        if holders != named || holders.len() != 1 {
            disagree += 1;
        }
    }
    Reads {
        held: summary(held),
        rota: summary(rota),
        disagree,
    }
}

struct Reads {
    held: (f64, f64, f64),
    rota: (f64, f64, f64),
    disagree: usize,
}

async fn outbox_rows(store: &Store) -> i64 {
    store
        .read(|c| Ok(outbox::table.count().get_result::<i64>(c)?))
        .await
        .unwrap()
}

/// One run of `catch_up` at `now`, as the tick runs it: its time, and what it handed over.
async fn tick_at(app: &App, now: DateTime<Utc>) -> (std::time::Duration, Vec<HandOver>) {
    let ctx = app.ctx_at(now);
    let t = Instant::now();
    let out = app.run_in(ctx, catch_up).await.expect("catch_up");
    (t.elapsed(), out)
}

/// What the boundaries and the quiet ticks between them took and did.
struct Ticks {
    first: std::time::Duration,
    boundary: Vec<std::time::Duration>,
    quiet: Vec<std::time::Duration>,
    handed: Vec<usize>,
    renotified: Vec<usize>,
    queued: Vec<i64>,
    /// The lengths of the shifts between the boundaries, in hours.
    hours: Vec<i64>,
}

async fn boundaries(app: &App, h: &Hospital, start: DateTime<Utc>, n: usize) -> Ticks {
    // The first application of the rota (every role it covers now), then the tasks.
    let (first, handed) = tick_at(app, start).await;
    assert_eq!(
        handed.len(),
        ROLES,
        "the first application hands every role"
    );
    let ctx = app.ctx_at(start);
    raise_tasks(app, &ctx, h).await;
    let mut t = Ticks {
        first,
        boundary: Vec::new(),
        quiet: Vec::new(),
        handed: Vec::new(),
        renotified: Vec::new(),
        queued: Vec::new(),
        hours: Vec::new(),
    };
    let mut at = Vec::new();
    for d in 0..=(n as i64 / 2) {
        let day = start_day() + Duration::days(d);
        at.extend([local(day, 8), local(day, 20)]);
    }
    at.truncate(n);
    for w in at.windows(2) {
        t.hours.push((w[1] - w[0]).num_hours());
    }
    for b in at {
        let before = outbox_rows(&app.store).await;
        let (took, handed) = tick_at(app, b).await;
        t.queued.push(outbox_rows(&app.store).await - before);
        t.boundary.push(took);
        t.handed.push(handed.len());
        t.renotified
            .push(handed.iter().map(|h| h.renotified.len()).sum());
        for q in 1..=QUIET_TICKS {
            let (took, handed) = tick_at(app, b + Duration::minutes(q as i64)).await;
            assert!(handed.is_empty(), "no boundary is due between boundaries");
            t.quiet.push(took);
        }
    }
    t
}

fn range<T: Ord + Copy + std::fmt::Display>(v: &[T]) -> String {
    let (lo, hi) = (v.iter().min(), v.iter().max());
    match (lo, hi) {
        (Some(lo), Some(hi)) if lo == hi => format!("{lo}"),
        (Some(lo), Some(hi)) => format!("{lo}–{hi}"),
        _ => "none".into(),
    }
}

async fn run(backend: &str, a: &Args) {
    let db = BenchDb::new(backend);
    let start = local(start_day(), 7);
    let clock = ManualClock::new(start);
    let store = Store::open(&db.url, 8).unwrap();
    let setup_started = Instant::now();
    let hospital = setup(&store, start - Duration::days(120));
    let setup_secs = setup_started.elapsed().as_secs_f64();
    let rows: i64 = store
        .read(|c| Ok(rota_shifts::table.count().get_result(c)?))
        .await
        .unwrap();
    let policy = Policy {
        zone: zone(),
        ..Policy::default()
    };
    let app = App::new(store.clone(), Arc::new(clock.clone()), policy);

    let ticks = boundaries(&app, &hospital, start, a.boundaries).await;
    // Reads at a quiet moment after the last boundary (every role has one holder).
    let now = after_last(a.boundaries);
    let reads = who_holds(&store, &hospital.roles, now, a.calls).await;

    println!("\n## {backend}: the rota");
    println!("| measure | value |\n|---|---|");
    println!(
        "| set-up: {ROLES} roles, {} staff, {rows} shifts | {setup_secs:.1} s |",
        ROLES * STAFF_PER_ROLE + 1
    );
    let row = |what: &str, (p50, p99, max): (f64, f64, f64)| {
        println!("| {what} p50 / p99 / max | {p50:.3} / {p99:.3} / {max:.3} ms |")
    };
    row(
        &format!("who holds X now: `current_holders`, {} calls", a.calls),
        reads.held,
    );
    row(
        &format!(
            "who holds X now: the rota (`slots` + `holders_at`), {} calls",
            a.calls
        ),
        reads.rota,
    );
    println!(
        "| calls where the two answers differ, or name other than one holder | {} |",
        reads.disagree
    );
    println!(
        "| first application (all {ROLES} roles, no tasks yet) | {:.1} ms |",
        ticks.first.as_secs_f64() * 1000.0
    );
    row(
        &format!(
            "hand-over at a boundary, {} boundaries",
            ticks.boundary.len()
        ),
        summary(ticks.boundary.clone()),
    );
    println!(
        "| roles handed over / tasks re-notified / outbox rows queued, per boundary | {} / {} / {} |",
        range(&ticks.handed),
        range(&ticks.renotified),
        range(&ticks.queued)
    );
    println!(
        "| shifts between the boundaries (the night the clocks go forward is 11 h) | {} h |",
        range(&ticks.hours)
    );
    row(
        &format!("tick with no boundary due, {} ticks", ticks.quiet.len()),
        summary(ticks.quiet),
    );
}

/// A quiet moment after the last of `n` boundaries measured (08:00, 20:00, 08:00, …).
fn after_last(n: usize) -> DateTime<Utc> {
    let day = start_day() + Duration::days((n as i64 - 1) / 2);
    let last = if n % 2 == 1 {
        local(day, 8)
    } else {
        local(day, 20)
    };
    last + Duration::minutes(30)
}

#[tokio::main]
async fn main() {
    let a = args();
    for backend in a.backends.clone() {
        run(&backend, &a).await;
    }
}

//! The escalation check of the load bench: while the lifecycles run, a stream of stat
//! tasks goes to a bleep whose holder never acknowledges, so they escalate level after
//! level, with every instance's tick racing for them (and one instance perhaps killed
//! mid-tick). Afterwards the database must show, for each of them, exactly the escalations
//! it was due: one per level, none lost, none doubled.
//!
//! An unacknowledged task never stops escalating (past the end of its chain it re-notifies
//! everyone reached, level after level), so "due" is judged against the moment the
//! instances were stopped: each level falls due one time-to-acknowledge after the previous
//! one was escalated (the first at the task's deadline), and every level due more than
//! `slack` before the stop must have been escalated, once.
use crate::http::{raise, Faults, Http1};
use bleepless::store::schema::{outbox, task_events, tasks};
use bleepless::store::{directory, from_db, DbConnection, Store};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The bleep the stream's tasks are for: the day FY1's, which the workers' doctor (the
/// night FY1) does not hold. Its chain goes on to the night SHO, registrar and site manager.
pub const ROLE: &str = "Medicine FY1 day";

/// Raises `per_second` stat tasks a second for `ROLE` until `stop`; how many it raised.
pub async fn stream(
    host: String,
    nurse: String,
    per_second: u32,
    stop: Arc<AtomicBool>,
) -> (usize, Faults) {
    let mut faults = Faults::default();
    let mut raised = 0;
    let Ok(mut c) = Http1::connect(&host).await else {
        faults.errors += 1;
        return (raised, faults);
    };
    let body = serde_json::to_vec(&json!({
        "nhs_number": "9990000018", "ward": "Ward 6 (Respiratory)", "bed": "12",
        "category": "bloods", "description": "Nobody acknowledges this one (escalation check)",
        "priority": "stat", "assignee": ROLE,
    }))
    .unwrap();
    let mut every = tokio::time::interval(std::time::Duration::from_secs_f64(
        1.0 / f64::from(per_second),
    ));
    let mut times = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        every.tick().await;
        if raise(&mut c, &nurse, &body, &mut times, &mut faults)
            .await
            .is_some()
        {
            raised += 1;
        }
    }
    (raised, faults)
}

/// What the database says about the stream's tasks.
#[derive(Default, Debug)]
pub struct Check {
    pub tasks: usize,
    pub escalations: usize,
    pub top_level: i32,
    /// Levels due more than `slack` before the stop and never escalated.
    pub lost: usize,
    /// A level escalated more than once, or sooner than its time after the one before.
    pub doubled: usize,
    /// A level jumped over (no role of this chain is without a holder, so none should be).
    pub skipped: usize,
    /// The task's level is not that of its last `escalated` event.
    pub inconsistent: usize,
    /// Push rows to one person for one task and level, beyond the first.
    pub pushes_doubled: usize,
    /// Escalated levels with no push row.
    pub pushes_missing: usize,
    /// `escalation_repaired` events (the auditor found a task with no next escalation).
    pub repaired: usize,
    /// Tasks acknowledged or closed: nobody should have.
    pub not_waiting: usize,
    /// From due to escalated, in seconds, for every escalation.
    pub lateness: Vec<f64>,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.tasks > 0
            && self.escalations > 0
            && self.lost + self.doubled + self.skipped + self.inconsistent == 0
            && self.pushes_doubled + self.pushes_missing + self.not_waiting == 0
    }
}

type TaskRow = (String, NaiveDateTime, String, i32, Option<NaiveDateTime>);
type EventRow = (String, i32, NaiveDateTime, String, Option<String>);
type PushRow = (String, i32, Option<String>);

fn rows(
    c: &mut DbConnection,
    role: &str,
) -> QueryResult<(Vec<TaskRow>, Vec<EventRow>, Vec<PushRow>)> {
    let stream_tasks = tasks::table
        .filter(tasks::assignee_role_id.eq(role))
        .filter(tasks::priority.eq("stat"));
    let t = stream_tasks
        .select((
            tasks::id,
            tasks::ack_deadline,
            tasks::status,
            tasks::escalation_level,
            tasks::next_escalation_at,
        ))
        .load(c)?;
    let e = task_events::table
        .filter(task_events::task_id.eq_any(stream_tasks.select(tasks::id)))
        .filter(task_events::kind.eq_any([
            "escalated",
            "escalation_repaired",
            "escalation_skipped",
        ]))
        .select((
            task_events::task_id,
            task_events::seq,
            task_events::at,
            task_events::kind,
            task_events::detail,
        ))
        .order((task_events::task_id, task_events::seq))
        .load(c)?;
    let o = outbox::table
        .filter(outbox::task_id.eq_any(stream_tasks.select(tasks::id)))
        .filter(outbox::kind.eq("push"))
        .select((outbox::task_id, outbox::level, outbox::recipient_id))
        .load(c)?;
    Ok((t, e, o))
}

/// Reads the stream's tasks, their escalation events and their pushes, and judges them
/// against `stopped_at`, when the last instance stopped.
pub fn check(
    url: &bleepless::config::DatabaseUrl,
    ack: i64,
    slack: f64,
    stopped_at: DateTime<Utc>,
) -> Check {
    let store = Store::open(url, 1).expect("open the database to check it");
    let mut conn = store.conn().expect("a connection to check with");
    let role = directory::find_role(&mut conn, ROLE)
        .ok()
        .flatten()
        .expect("the demo hospital's day FY1 bleep");
    let (task_rows, event_rows, push_rows) =
        rows(&mut conn, &role.id).expect("read the stream's rows");
    let mut events: HashMap<String, Vec<EventRow>> = HashMap::new();
    for e in event_rows {
        events.entry(e.0.clone()).or_default().push(e);
    }
    let mut pushes: HashMap<(String, i32), HashMap<Option<String>, usize>> = HashMap::new();
    for (task, level, to) in push_rows {
        *pushes
            .entry((task, level))
            .or_default()
            .entry(to)
            .or_default() += 1;
    }
    let mut out = Check {
        tasks: task_rows.len(),
        ..Check::default()
    };
    let ack = Duration::seconds(ack);
    let slack = Duration::milliseconds((slack * 1000.0) as i64);
    for (id, deadline, status, level, next) in task_rows {
        if status != "requested" {
            out.not_waiting += 1;
        }
        let mut due = from_db(deadline);
        let mut last = 0;
        for (_, _, at, kind, detail) in events.remove(&id).unwrap_or_default() {
            match kind.as_str() {
                "escalation_repaired" => out.repaired += 1,
                "escalation_skipped" => out.skipped += 1,
                _ => {
                    let at = from_db(at);
                    let l = level_of(detail.as_deref());
                    out.escalations += 1;
                    out.top_level = out.top_level.max(l);
                    if l <= last || at < due {
                        out.doubled += 1;
                    } else if l > last + 1 {
                        out.skipped += 1;
                    }
                    out.lateness
                        .push((at - due).num_milliseconds() as f64 / 1000.0);
                    let counts = pushes.remove(&(id.clone(), l)).unwrap_or_default();
                    out.pushes_missing += usize::from(counts.is_empty());
                    out.pushes_doubled += counts.values().map(|n| n - 1).sum::<usize>();
                    last = l;
                    due = at + ack;
                }
            }
        }
        out.inconsistent += usize::from(level != last);
        // Still waiting with no next escalation at all is lost too (the auditor's case).
        let overdue = next.map(from_db).is_none_or(|n| n <= stopped_at - slack);
        if status == "requested" && overdue {
            out.lost += 1;
        }
    }
    out
}

fn level_of(detail: Option<&str>) -> i32 {
    detail
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .and_then(|v| v.get("level").and_then(|l| l.as_i64()))
        .unwrap_or(-1) as i32
}

/// Prints the check; whether it passed.
pub fn print(c: &Check, raised: usize, slack: f64) -> bool {
    let (p50, p99, max) = crate::common::summary(
        c.lateness
            .iter()
            .map(|s| std::time::Duration::from_secs_f64(s.max(0.0)))
            .collect(),
    );
    let late = c.lateness.iter().filter(|&&s| s > slack).count();
    println!(
        "escalation check: {} tasks nobody acknowledged ({raised} raised by the stream), {} escalations (up to level {})",
        c.tasks, c.escalations, c.top_level
    );
    println!(
        "  lost {}, doubled {}, levels skipped {}, level not its last event's {}, acknowledged or closed {}",
        c.lost, c.doubled, c.skipped, c.inconsistent, c.not_waiting
    );
    println!(
        "  pushes doubled {}, levels with no push {}, repaired by the auditor {}",
        c.pushes_doubled, c.pushes_missing, c.repaired
    );
    println!(
        "  due → escalated: p50 {:.2} s, p99 {:.2} s, max {:.2} s; later than {slack:.0} s: {late}",
        p50 / 1000.0,
        p99 / 1000.0,
        max / 1000.0
    );
    let passed = c.passed();
    println!("  {}", if passed { "PASSED" } else { "FAILED" });
    passed
}

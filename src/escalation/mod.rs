//! The cron-driven escalation tick: a caller of the store, holding no state between ticks.
use crate::clock::SharedClock;
use crate::domain::task::Policy;
use crate::domain::Status;
use crate::error::AppResult;
use crate::store::notifications::Addressee;
use crate::store::tasks::{self as task_store, Assignee, NewEventRow, Task};
use crate::store::{directory, notifications, to_db, DbConnection, Store};
use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;

/// What escalating from one (assignee, level) comes to: the same for every task there, so
/// worked out once per group of tasks.
#[derive(Clone)]
struct Plan {
    level: i32,
    skipped: Vec<String>,
    reached: Option<String>,
    recipients: usize,
    to: Vec<Addressee>,
}

fn plan(conn: &mut DbConnection, task: &Task, policy: &Policy) -> AppResult<Plan> {
    let chain = notifications::escalation_roles(conn, task, policy.fallback_role.as_deref())?;
    // Escalation never waits on nobody: a role with no holder is passed over at once.
    let mut level = task.escalation_level + 1;
    let mut skipped = Vec::new();
    while let Some(role) = chain.get(level as usize - 1) {
        if !directory::current_holders(conn, &role.id)?.is_empty() || level as usize == chain.len()
        {
            break;
        }
        skipped.push(role.name.clone());
        level += 1;
    }
    let reached = chain.get(level as usize - 1).map(|r| r.name.clone());
    let recipients = notifications::recipients(conn, task, level, &chain)?;
    let to = notifications::addresses(conn, &recipients)?;
    Ok(Plan {
        level,
        skipped,
        reached,
        recipients: recipients.len(),
        to,
    })
}

/// Escalates, in the caller's transaction, those of `due` still as they were read: each
/// moves up a level (past roles nobody holds), with its timeline events and notifications.
/// The chain and its holders are read once per (assignee, level), the tasks are changed
/// with a version check each, and events and outbox rows are written many to a statement.
/// Returns the ids escalated; a task changed meanwhile (acknowledged, or escalated by
/// another instance) is left for the next tick to judge again.
pub fn escalate_group(
    conn: &mut DbConnection,
    due: &[Task],
    now: DateTime<Utc>,
    policy: &Policy,
) -> AppResult<Vec<(String, i32)>> {
    let mut plans: HashMap<(Assignee, i32), Plan> = HashMap::new();
    let mut next = Vec::with_capacity(due.len());
    for task in due {
        if task.status != Status::Requested || task.next_escalation_at.is_none_or(|t| t > now) {
            continue;
        }
        let key = (task.assignee.clone(), task.escalation_level);
        let p = match plans.get(&key) {
            Some(p) => p,
            None => {
                let p = plan(conn, task, policy)?;
                plans.entry(key.clone()).or_insert(p)
            }
        };
        let mut n = task.clone();
        n.escalation_level = p.level;
        n.next_escalation_at =
            Some(now + Duration::seconds(i64::from(policy.ack_seconds.seconds(task.priority))));
        n.version = task.version + 1;
        n.updated_at = now;
        next.push((task, n));
    }
    let changed =
        task_store::save_escalations(conn, &next.iter().map(|(_, n)| n).collect::<Vec<_>>(), now)?;
    next.retain(|(_, n)| changed.contains(&n.id));
    let ids: Vec<&str> = next.iter().map(|(_, n)| n.id.as_str()).collect();
    let mut seqs = task_store::last_seqs(conn, &ids)?;
    let mut events = Vec::with_capacity(next.len());
    let mut outbox = Vec::with_capacity(next.len());
    let mut done = Vec::with_capacity(next.len());
    for (task, n) in &next {
        let p = &plans[&(task.assignee.clone(), task.escalation_level)];
        let seq = seqs.entry(n.id.clone()).or_insert(0);
        for name in &p.skipped {
            *seq += 1;
            events.push(NewEventRow {
                task_id: n.id.clone(),
                seq: *seq,
                at: to_db(now),
                actor_id: None,
                kind: "escalation_skipped",
                from_status: None,
                to_status: None,
                detail: Some(
                    json!({ "role": name, "reason": "no one holds the bleep" }).to_string(),
                ),
            });
            tracing::warn!(task_id = %n.id, role = %name, "no one holds the bleep; escalating past it");
        }
        *seq += 1;
        events.push(NewEventRow {
            task_id: n.id.clone(),
            seq: *seq,
            at: to_db(now),
            actor_id: None,
            kind: "escalated",
            from_status: None,
            to_status: None,
            detail: Some(
                json!({
                    "level": p.level,
                    "reached_role": p.reached,
                    "recipients": p.recipients,
                    "overdue_seconds": (now - task.ack_deadline).num_seconds(),
                })
                .to_string(),
            ),
        });
        let before = outbox.len();
        notifications::outbox_rows(n, &p.to, policy.email, now, &mut outbox);
        tracing::warn!(task_id = %n.id, level = p.level, notifications = outbox.len() - before, "task escalated");
        done.push((n.id.clone(), p.level));
    }
    task_store::insert_events(conn, &events)?;
    notifications::insert_outbox(conn, &outbox)?;
    Ok(done)
}

/// Tasks escalated per transaction: one commit (and, on PostgreSQL, a handful of round
/// trips) for many, which is what lets one tick carry thousands falling due at once.
const PER_TRANSACTION: usize = 500;

/// One tick: escalates every due task, a group of them per transaction, so a crash mid-tick
/// loses nothing (a group not committed is still due at the next tick). `wake` is told
/// after each group commits, so its notifications go out while the tick goes on. A group
/// that fails is retried one task per transaction, so one bad task cannot hold up the
/// others. On PostgreSQL, groups run side by side (one per core).
pub async fn tick(
    store: &Store,
    now: DateTime<Utc>,
    policy: &Policy,
    wake: &Notify,
) -> AppResult<usize> {
    let mut escalated = 0;
    loop {
        let due = store
            .read(move |c| task_store::due_for_escalation(c, now, 2000))
            .await?;
        if due.is_empty() {
            return Ok(escalated);
        }
        let read = due.len();
        // On PostgreSQL each group is a transaction on its own connection and the server's
        // work per row is most of the cost, so groups run side by side, one per core. On
        // SQLite every write goes through the one writer anyway.
        let side_by_side = if store.is_sqlite() {
            1
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        };
        let mut done = 0;
        for wave in due.chunks(PER_TRANSACTION * side_by_side) {
            let groups = wave
                .chunks(PER_TRANSACTION)
                .map(|chunk| escalate_chunk(store, chunk, now, policy, wake));
            done += join_all(groups).await.into_iter().sum::<usize>();
        }
        escalated += done;
        if read < 2000 || done == 0 {
            return Ok(escalated);
        }
    }
}

/// Escalates one group of due tasks in one transaction; if that fails, one task at a time,
/// so that one bad task cannot hold back the rest. Wakes the dispatcher when done. Returns
/// how many tasks were escalated.
async fn escalate_chunk(
    store: &Store,
    chunk: &[Task],
    now: DateTime<Utc>,
    policy: &Policy,
    wake: &Notify,
) -> usize {
    let (group, p) = (chunk.to_vec(), policy.clone());
    let done = match store
        .write(move |c| escalate_group(c, &group, now, &p))
        .await
    {
        Ok(k) => k.len(),
        Err(e) => {
            tracing::warn!(error = %e, "escalating a group failed; one at a time");
            let mut k = 0;
            for t in chunk {
                let (one, p) = (t.clone(), policy.clone());
                match store
                    .write(move |c| escalate_group(c, &[one], now, &p))
                    .await
                {
                    Ok(v) => k += v.len(),
                    Err(e) => {
                        tracing::error!(task_id = %t.id, error = %e, "escalation failed; will retry next tick")
                    }
                }
            }
            k
        }
    };
    wake.notify_one();
    done
}

/// Runs the tick on the cron schedule, reading time from the clock (so tests can move it).
pub async fn run_scheduler(
    store: Store,
    clock: SharedClock,
    schedule: cron::Schedule,
    policy: Policy,
    outbox: Arc<Notify>,
) {
    let mut next = schedule.after(&clock.now()).next();
    loop {
        let now = clock.now();
        match next {
            Some(at) if now >= at => {
                match tick(&store, now, &policy, &outbox).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(escalated = n, "escalation tick");
                        outbox.notify_one();
                    }
                    Err(e) => tracing::error!(error = %e, "escalation tick failed; will retry"),
                }
                next = schedule.after(&now).next();
            }
            None => return,
            _ => {}
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

//! The cron-driven escalation tick: a caller of the store, holding no state between ticks.
use crate::clock::SharedClock;
use crate::domain::task::Policy;
use crate::domain::Status;
use crate::error::AppResult;
use crate::store::schema::tasks;
use crate::store::tasks::{self as task_store, NewEvent};
use crate::store::{directory, notifications, to_db, DbConnection, Store};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Notify;

/// Ids of tasks whose current level has run out, oldest first.
pub fn due(conn: &mut DbConnection, now: DateTime<Utc>, limit: i64) -> AppResult<Vec<String>> {
    Ok(tasks::table
        .filter(tasks::status.eq(Status::Requested.code()))
        .filter(tasks::next_escalation_at.le(to_db(now)))
        .order(tasks::next_escalation_at.asc())
        .limit(limit)
        .select(tasks::id)
        .load(conn)?)
}

/// Escalates one task if it is still due: one transaction moves it up a level (past roles
/// nobody holds), records why, and enqueues the notifications. Returns the new level, or
/// None if it was not due any more (acknowledged, or another instance got there first).
pub fn escalate(
    conn: &mut DbConnection,
    id: &str,
    now: DateTime<Utc>,
    policy: &Policy,
) -> AppResult<Option<i32>> {
    let task = task_store::get(conn, id)?;
    if task.status != Status::Requested || task.next_escalation_at.is_none_or(|t| t > now) {
        return Ok(None);
    }
    let chain = notifications::escalation_roles(conn, &task, policy.fallback_role.as_deref())?;
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
    let mut next = task.clone();
    next.escalation_level = level;
    next.next_escalation_at =
        Some(now + Duration::seconds(i64::from(policy.ack_seconds.seconds(task.priority))));
    next.version = task.version + 1;
    next.updated_at = now;
    if !task_store::save_if_unchanged(conn, &next, task.version)? {
        return Ok(None);
    }
    for name in &skipped {
        task_store::append_event(
            conn,
            id,
            now,
            NewEvent {
                actor: None,
                kind: "escalation_skipped",
                from: None,
                to: None,
                detail: Some(json!({ "role": name, "reason": "no one holds the bleep" })),
            },
        )?;
        tracing::warn!(task_id = %id, role = %name, "no one holds the bleep; escalating past it");
    }
    let recipients = notifications::recipients(conn, &next, level, &chain)?;
    let queued = notifications::enqueue(conn, &next, &recipients, policy.email, now)?;
    task_store::append_event(
        conn,
        id,
        now,
        NewEvent {
            actor: None,
            kind: "escalated",
            from: None,
            to: None,
            detail: Some(json!({
                "level": level,
                "reached_role": reached,
                "recipients": recipients.len(),
                "overdue_seconds": (now - task.ack_deadline).num_seconds(),
            })),
        },
    )?;
    tracing::warn!(task_id = %id, level, notifications = queued, "task escalated");
    Ok(Some(level))
}

/// Escalations committed together: one fsync for many, which is what lets one tick carry
/// thousands of tasks falling due at once.
const PER_TRANSACTION: usize = 100;

/// One tick: escalates every due task, a group of them per transaction, so a crash mid-tick
/// loses nothing (a group not committed is still due at the next tick). A group that fails
/// is retried one task per transaction, so one bad task cannot hold up the others.
pub async fn tick(store: &Store, now: DateTime<Utc>, policy: &Policy) -> AppResult<usize> {
    let mut escalated = 0;
    loop {
        let ids = store.read(move |c| due(c, now, 1000)).await?;
        if ids.is_empty() {
            return Ok(escalated);
        }
        let batch = ids.len();
        let policy = policy.clone();
        let done = store
            .run(move |store| {
                let mut n = 0;
                for group in ids.chunks(PER_TRANSACTION) {
                    let together = store.write_now(|c| {
                        let mut k = 0;
                        for id in group {
                            if escalate(c, id, now, &policy)?.is_some() {
                                k += 1;
                            }
                        }
                        Ok(k)
                    });
                    n += match together {
                        Ok(k) => k,
                        Err(e) => {
                            tracing::warn!(error = %e, "escalating a group failed; one at a time");
                            let mut k = 0;
                            for id in group {
                                match store.write_now(|c| escalate(c, id, now, &policy)) {
                                    Ok(Some(_)) => k += 1,
                                    Ok(None) => {}
                                    Err(e) => tracing::error!(task_id = %id, error = %e, "escalation failed; will retry next tick"),
                                }
                            }
                            k
                        }
                    };
                }
                Ok(n)
            })
            .await?;
        escalated += done;
        if batch < 1000 || done == 0 {
            return Ok(escalated);
        }
    }
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
                match tick(&store, now, &policy).await {
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

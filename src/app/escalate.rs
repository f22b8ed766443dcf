//! The escalate command: tasks whose level ran out go up their chain, with their events and
//! notifications, many tasks to a transaction (the tick calls it).
use super::recipients::{available_holders, escalation_roles, recipients};
use super::Ctx;
use crate::domain::escalation::{escalated, is_due, is_lost, next_step, repaired};
use crate::domain::{Assignee, Task};
use crate::error::AppResult;
use crate::store::events::{self, NewEvent, NewEventRow};
use crate::store::notifications;
use crate::store::outbox::{self, Addressee};
use crate::store::{tasks, to_db, DbConnection};
use serde_json::json;
use std::collections::HashMap;

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

fn plan(conn: &mut DbConnection, task: &Task, ctx: &Ctx) -> AppResult<Plan> {
    let chain = escalation_roles(conn, task, ctx.policy.fallback_role.as_deref())?;
    let mut held = Vec::with_capacity(chain.len());
    for role in &chain {
        held.push(!available_holders(conn, &role.id, ctx.now)?.is_empty());
    }
    let step = next_step(task.escalation_level, &held);
    let recipients = recipients(conn, task, step.level, &chain, ctx.now)?;
    let to = outbox::addresses(conn, &recipients)?;
    Ok(Plan {
        level: step.level,
        skipped: step
            .skipped
            .iter()
            .map(|&i| chain[i].name.clone())
            .collect(),
        reached: chain.get(step.level as usize - 1).map(|r| r.name.clone()),
        recipients: recipients.len(),
        to,
    })
}

fn event(
    task_id: &str,
    seq: i32,
    ctx: &Ctx,
    kind: &'static str,
    detail: serde_json::Value,
) -> NewEventRow {
    NewEventRow {
        task_id: task_id.to_string(),
        seq,
        at: to_db(ctx.now),
        actor_id: None,
        kind,
        from_status: None,
        to_status: None,
        detail: Some(detail.to_string()),
    }
}

/// Escalates those of `due` still as they were read: each moves up a level (past roles
/// nobody holds), with its timeline events and notifications. The chain and its holders
/// are read once per (assignee, level), the tasks are changed with a version check each,
/// and events and outbox rows are written many to a statement. Returns the ids escalated
/// with their new level; a task changed meanwhile (acknowledged, or escalated by another
/// instance) is left for the next tick to judge again.
pub fn escalate(conn: &mut DbConnection, ctx: &Ctx, due: &[Task]) -> AppResult<Vec<(String, i32)>> {
    let mut plans: HashMap<(Assignee, i32), Plan> = HashMap::new();
    let mut next = Vec::with_capacity(due.len());
    for task in due.iter().filter(|t| is_due(t, ctx.now)) {
        let key = (task.assignee.clone(), task.escalation_level);
        let p = match plans.get(&key) {
            Some(p) => p,
            None => {
                let p = plan(conn, task, ctx)?;
                plans.entry(key.clone()).or_insert(p)
            }
        };
        next.push((task, escalated(task, p.level, ctx.now, &ctx.policy)));
    }
    let changed = tasks::save_escalations(
        conn,
        &next.iter().map(|(_, n)| n).collect::<Vec<_>>(),
        ctx.now,
    )?;
    next.retain(|(_, n)| changed.contains(&n.id));
    let ids: Vec<&str> = next.iter().map(|(_, n)| n.id.as_str()).collect();
    let mut seqs = events::last_seqs(conn, &ids)?;
    let mut rows = Vec::with_capacity(next.len());
    let mut queued = Vec::with_capacity(next.len());
    let mut done = Vec::with_capacity(next.len());
    for (task, n) in &next {
        let p = &plans[&(task.assignee.clone(), task.escalation_level)];
        let seq = seqs.entry(n.id.clone()).or_insert(0);
        for name in &p.skipped {
            *seq += 1;
            let why = json!({ "role": name, "reason": "no one holds the bleep" });
            rows.push(event(&n.id, *seq, ctx, "escalation_skipped", why));
            tracing::warn!(task_id = %n.id, role = %name, "no one holds the bleep; escalating past it");
        }
        *seq += 1;
        let detail = json!({
            "level": p.level,
            "reached_role": p.reached,
            "recipients": p.recipients,
            "overdue_seconds": (ctx.now - task.ack_deadline).num_seconds(),
        });
        rows.push(event(&n.id, *seq, ctx, "escalated", detail));
        let before = queued.len();
        outbox::notifications(n, &p.to, &ctx.policy, ctx.now, &mut queued);
        tracing::warn!(task_id = %n.id, level = p.level, notifications = queued.len() - before, "task escalated");
        done.push((n.id.clone(), p.level));
    }
    events::insert_events(conn, &rows)?;
    outbox::insert(conn, &queued)?;
    Ok(done)
}

/// The pushes the tick at `ctx.now` will send if nobody acknowledges first: how many to
/// each phone, by its subscription's `p256dh` key, for at most `most` tasks falling due by
/// then, the soonest first. Read only; the escalation's own plan for each (assignee,
/// level) says who is reached, and each person reached gets a push on each of their
/// phones. So the push encryption's costly part can be done ahead, while the machine is
/// idle (`outbox::stock`).
pub fn foresee(conn: &mut DbConnection, ctx: &Ctx, most: i64) -> AppResult<HashMap<String, usize>> {
    let mut groups: HashMap<(Assignee, i32), (Task, usize)> = HashMap::new();
    for task in tasks::due_for_escalation(conn, ctx.now, most)? {
        let key = (task.assignee.clone(), task.escalation_level);
        groups.entry(key).or_insert((task, 0)).1 += 1;
    }
    let mut pushes: HashMap<String, usize> = HashMap::new();
    for (task, n) in groups.into_values() {
        let to = plan(conn, &task, ctx)?.to;
        let ids: Vec<&str> = to.iter().map(|a| a.id.as_str()).collect();
        for device in notifications::devices_of(conn, &ids)?
            .into_values()
            .flatten()
        {
            *pushes.entry(device.p256dh).or_default() += n;
        }
    }
    Ok(pushes)
}

/// The escalation auditor's command: every unacknowledged task must have its next
/// escalation; one that lost it (a bug, a hand-edited row, a half-applied restore) would
/// never be chased again. Each is put back to fall due now, so the tick escalates it at
/// once, with an `escalation_repaired` event. Logged at ERROR: it should never happen.
/// Returns the ids repaired.
pub fn repair_lost(conn: &mut DbConnection, ctx: &Ctx) -> AppResult<Vec<String>> {
    let mut done = Vec::new();
    for task in tasks::lost_escalations(conn, 500)? {
        if !is_lost(&task) {
            continue;
        }
        let next = repaired(&task, ctx.now);
        if !tasks::save_if_unchanged(conn, &next, &task)? {
            continue;
        }
        let detail = json!({
            "reason": "the task had no next escalation time",
            "overdue_seconds": (ctx.now - task.ack_deadline).num_seconds(),
        });
        let event = NewEvent {
            actor: None,
            kind: "escalation_repaired",
            from: None,
            to: None,
            detail: Some(detail),
        };
        events::append_event(conn, &task.id, ctx.now, event)?;
        tracing::error!(task_id = %task.id, level = task.escalation_level, "an unacknowledged task had lost its escalation; repaired");
        done.push(task.id);
    }
    Ok(done)
}

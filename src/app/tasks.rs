//! The task's commands: raise, the status changes (acknowledge, start, complete, decline,
//! cancel, reassign) and comment.
use super::recent::Held;
use super::recipients::standing;
use super::Ctx;
use crate::domain::task::{required_text, MAX_TEXT};
use crate::domain::transition::{decide, Change, Decided, Refusal, WhoMay};
use crate::domain::{Action, Assignee, NewTask, Permission, Status, Task};
use crate::error::{AppError, AppResult};
use crate::store::acting::{self, Acting, Who};
use crate::store::directory::{self, Lookup, Role, Staff};
use crate::store::events::{self, Event, NewEvent, Person, Story};
use crate::store::outbox::{self, Addressee, NewDelivery};
use crate::store::tasks::Saved;
use crate::store::{self, new_id, tasks, DbConnection};
use serde_json::json;

/// A status change as a caller asks for it; a reassignment names its new assignee as a
/// staff id or a role's id or name.
pub type Command = Change<String>;

fn resolve_assignee(conn: &mut DbConnection, key: &str, ctx: &Ctx) -> AppResult<Assignee> {
    let key = assignee_key(key)?;
    let found = directory::assignee_lookup(
        conn,
        Lookup {
            ward: None,
            key,
            caller_token: None,
            now: ctx.now,
        },
    )?;
    assignee_from(key, found.staff, found.role)
}

fn assignee_key(key: &str) -> AppResult<&str> {
    let key = key.trim();
    if key.is_empty() {
        return Err(AppError::Unprocessable(
            "assignee is required: an on-call role (id or name) or a staff id".into(),
        ));
    }
    Ok(key)
}

/// The assignee a key names, given the member of staff it is the id of, or else the role.
fn assignee_from(key: &str, staff: Option<Staff>, role: Option<Role>) -> AppResult<Assignee> {
    if let Some(s) = staff {
        if !s.active {
            return Err(AppError::Unprocessable(format!(
                "assignee {} is no longer active",
                s.name
            )));
        }
        if !s.can(Permission::Clinician) {
            return Err(AppError::Unprocessable(format!(
                "assignee {} is not a clinician; assign the task to a clinician or an on-call role",
                s.name
            )));
        }
        return Ok(Assignee::Staff(s.id));
    }
    if let Some(r) = role {
        return Ok(Assignee::Role(r.id));
    }
    Err(AppError::Unprocessable(format!(
        "assignee {key:?} is neither a member of staff nor an on-call role"
    )))
}

/// Queues the task for the patient record when the record should hold this version: once
/// it is completed or cancelled, and again after every later change (a comment), so the
/// record holds what Bleepless holds. The sender reads the task as it is when it sends.
fn queue_for_record(conn: &mut DbConnection, task: &Task, ctx: &Ctx) -> AppResult<()> {
    if matches!(task.status, Status::Completed | Status::Cancelled) {
        let mut rows = Vec::new();
        outbox::for_the_record(task, &ctx.policy.records, ctx.now, &mut rows);
        outbox::insert(conn, &rows)?;
    }
    Ok(())
}

/// Queues the notifications of whoever the task is for now.
fn notify_first_recipients(conn: &mut DbConnection, task: &Task, ctx: &Ctx) -> AppResult<usize> {
    let rows = first_notifications(conn, task, ctx)?;
    outbox::insert(conn, &rows)
}

/// The notifications of whoever the task is for now (none when no one holds its bleep).
fn first_notifications(
    conn: &mut DbConnection,
    task: &Task,
    ctx: &Ctx,
) -> AppResult<Vec<NewDelivery>> {
    let to = outbox::first_addressees(conn, &task.assignee, ctx.now)?;
    Ok(notifications_to(task, &to, ctx))
}

/// The task's first notifications to `to`, whoever it reaches now.
fn notifications_to(task: &Task, to: &[Addressee], ctx: &Ctx) -> Vec<NewDelivery> {
    if to.is_empty() {
        tracing::warn!(task_id = %task.id, "no one holds the bleep this task is for");
    }
    let mut rows = Vec::new();
    outbox::notifications(task, to, &ctx.policy, ctx.now, &mut rows);
    rows
}

/// Raises a task: writes it and its `raised` event, and queues its first notifications. It
/// keeps itself whole (see `Store::whole_then_read`): it reads, then writes one statement,
/// or, when no one can be notified, its writes and the escalation in one transaction.
pub fn raise(conn: &mut DbConnection, ctx: &Ctx, by: &Staff, new: NewTask) -> AppResult<Task> {
    Ok(raise_told(conn, ctx, Actor::Known(by), new)?.0)
}

/// [`raise`], answering too with the new task's story, told without reading it back: its
/// `raised` event by its raiser, and the assignee's name as the raise looked it up. `None`
/// when the task went on up its chain at once (everyone it is for was busy).
///
/// Its reads are one statement (`directory::assignee_lookup`): the ward, the assignee, who
/// the task reaches now and, for a staff token, the raiser.
pub fn raise_told(
    conn: &mut DbConnection,
    ctx: &Ctx,
    actor: Actor,
    new: NewTask,
) -> AppResult<(Task, Option<Story>)> {
    // A task raised a second after a shift boundary reaches the incoming holder, even if
    // the tick has not run since: who holds the bleep is read after this.
    super::rota::catch_up_in_passing(conn, ctx)?;
    let caller_token = match &actor {
        Actor::Token { token, .. } => Some(*token),
        Actor::Known(_) => None,
    };
    let lookup = Lookup {
        ward: Some(&new.ward),
        key: new.assignee.trim(),
        caller_token,
        now: ctx.now,
    };
    let mut found = directory::assignee_lookup(conn, lookup)?;
    let by = match (&actor, found.caller.take()) {
        (Actor::Known(by), _) => (*by).clone(),
        (Actor::Token { .. }, Some(by)) => by,
        (Actor::Token { .. }, None) => actor.checked(conn)?,
    };
    let by = &by;
    if !by.can(Permission::Coordinator) {
        return Err(AppError::Forbidden(
            "only coordinators may raise tasks".into(),
        ));
    }
    if !found.ward_known {
        let known = directory::list_wards(conn)?;
        return Err(AppError::Unprocessable(format!(
            "ward {:?} is not a ward of this hospital; known wards: {}",
            new.ward,
            if known.is_empty() {
                "none yet".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let assignee_name = match (&found.staff, &found.role) {
        (Some(s), _) => Some(s.name.clone()),
        (None, r) => r.as_ref().map(|r| r.name.clone()),
    };
    let assignee = assignee_from(assignee_key(&new.assignee)?, found.staff, found.role)?;
    let task = Task::raised(new_id(), new, assignee, &by.id, ctx.now, &ctx.policy);
    let story = Story {
        events: vec![NewEvent::raised(&task).told(1, task.raised_at, Some(person(by)))],
        assignee_name,
    };
    let first = notifications_to(&task, &found.reached, ctx);
    if !first.is_empty() {
        // The usual raise: one statement on PostgreSQL (see `store::raised::write`).
        store::raised::write(conn, &task, &first)?;
        tracing::info!(task_id = %task.id, priority = %task.priority, notifications = first.len(), "task raised");
        return Ok((task, Some(story)));
    }
    store::atomically(conn, |c| {
        store::raised::write(c, &task, &[])?;
        tracing::info!(task_id = %task.id, priority = %task.priority, notifications = 0, "task raised");
        if !all_busy(c, &task, ctx)? {
            return Ok((task, Some(story)));
        }
        // Everyone it is for is busy: it goes on up its chain now, not at its deadline.
        let due_now = Task {
            next_escalation_at: Some(ctx.now),
            ..task.clone()
        };
        super::escalate::escalate(c, ctx, &[due_now])?;
        tracing::info!(task_id = %task.id, "everyone the task is for is busy; passed on at once");
        Ok((tasks::load(c, &task.id)?, None))
    })
}

/// Is the task for someone, all of whom are busy?
fn all_busy(conn: &mut DbConnection, task: &Task, ctx: &Ctx) -> AppResult<bool> {
    let people = match &task.assignee {
        Assignee::Staff(s) => vec![s.clone()],
        Assignee::Role(r) => directory::current_holders(conn, r)?,
    };
    Ok(!people.is_empty()
        && crate::store::rota::busy_among(conn, &people, ctx.now)?.len() == people.len())
}

fn assignee_label(conn: &mut DbConnection, a: &Assignee) -> AppResult<String> {
    Ok(match a {
        Assignee::Role(r) => format!("a holder of {}", directory::role_by_id(conn, r)?.name),
        Assignee::Staff(s) => directory::staff_by_id(conn, s)?
            .map(|s| s.name)
            .unwrap_or_else(|| s.clone()),
    })
}

/// The error a refusal is answered with, naming who may act or who got there first.
fn refused(
    conn: &mut DbConnection,
    task: &Task,
    action: Action,
    r: Refusal,
) -> AppResult<AppError> {
    if let Refusal::NotAllowed { who_may } = r {
        let who_may = match who_may {
            WhoMay::ACoordinatorOrAdmin => "a coordinator or an admin".to_string(),
            WhoMay::TheAssignee => assignee_label(conn, &task.assignee)?,
        };
        return Ok(AppError::Forbidden(format!(
            "only {who_may} may {action} this task"
        )));
    }
    if action == Action::Acknowledge && task.status != Status::Requested {
        if let (Some(by), Some(at)) = (&task.acknowledged_by, task.acknowledged_at) {
            let name = directory::staff_by_id(conn, by)?
                .map(|s| s.name)
                .unwrap_or_else(|| by.clone());
            return Ok(AppError::conflict(
                format!(
                    "task already acknowledged by {name} at {}; it is now {}",
                    at.format("%H:%M:%S UTC"),
                    task.status
                ),
                json!({
                    "current_status": task.status,
                    "acknowledged_by": { "id": by, "name": name },
                    "acknowledged_at": at,
                }),
            ));
        }
    }
    Ok(AppError::conflict(
        format!("cannot {action} a task that is {}", task.status),
        json!({ "current_status": task.status }),
    ))
}

/// Applies one status change with all its effects: the event, whoever was being chased
/// no longer chased, a reassigned task's new first notifications, the record. Competing
/// writers are settled by the version column: the loser re-reads and is judged again
/// against what the winner did.
///
/// It keeps itself whole (see `Store::whole_then_read`): it reads, then writes the change
/// alone as one statement ([`tasks::save_change`]), or, when the change has more to write
/// beside it (a reassignment's notifications, a decline's notice, the record), all of it in
/// one transaction.
pub fn act(
    conn: &mut DbConnection,
    ctx: &Ctx,
    id: &str,
    who: &Staff,
    command: Command,
) -> AppResult<Task> {
    Ok(act_told(conn, ctx, id, Actor::Known(who), command)?.0)
}

/// Who acts on a task: a member of staff already known, or the bearer of a staff token that
/// the task's own read checks (one statement fewer a change). `otherwise` checks the
/// caller's credentials in full, saying why they are refused, when that read finds no one.
pub enum Actor<'a> {
    Known(&'a Staff),
    Token {
        token: &'a str,
        otherwise: &'a dyn Fn(&mut DbConnection) -> AppResult<Staff>,
    },
}

impl Actor<'_> {
    /// Who this is, checked on their own.
    fn checked(&self, conn: &mut DbConnection) -> AppResult<Staff> {
        match self {
            Actor::Known(s) => Ok((*s).clone()),
            Actor::Token { otherwise, .. } => otherwise(conn),
        }
    }
}

/// The task as the actor's read finds it, who the actor is (`known`, once found), and
/// whether they were found by their staff token.
fn read_for(
    conn: &mut DbConnection,
    id: &str,
    (actor, token_hash): (&Actor, Option<&str>),
    known: &Option<Staff>,
) -> AppResult<(Acting, Staff, bool)> {
    if let (None, Some(hash)) = (known, token_hash) {
        match acting::load(conn, id, Who::Token(hash)) {
            Ok(mut read) => {
                if let Some(who) = read.caller.take() {
                    return Ok((read, who, true));
                }
            }
            // No task, or no one's token: which one, the full check and a read by id tell.
            Err(AppError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let who = match known {
        Some(who) => who.clone(),
        None => actor.checked(conn)?,
    };
    Ok((acting::load(conn, id, Who::Id(&who.id))?, who, false))
}

/// [`act`], answering too with the task's story as the change left it, when that can be told
/// without another read: the timeline read with the task (`store::acting`, one statement
/// with the caller's hold on its bleep) and the change's own event. `None` for a
/// reassignment (whose assignee's name was not read) and when another event was appended
/// between the read and the write (the story would miss it).
pub fn act_told(
    conn: &mut DbConnection,
    ctx: &Ctx,
    id: &str,
    actor: Actor,
    command: Command,
) -> AppResult<(Task, Option<Story>)> {
    let action = command.action();
    let mut known = match &actor {
        Actor::Known(who) => Some((*who).clone()),
        // A reassignment looks its new assignee up: only for a caller checked first.
        Actor::Token { .. } if action == Action::Reassign => Some(actor.checked(conn)?),
        Actor::Token { .. } => None,
    };
    // Whoever holds the bleep by the rota now may act, even before the next tick.
    super::rota::catch_up_in_passing(conn, ctx)?;
    let change = command.resolve(|to| resolve_assignee(conn, &to, ctx))?;
    let token = match &actor {
        Actor::Token { token, .. } => Some(directory::hash_token(token)),
        Actor::Known(_) => None,
    };
    if let Some(hash) = &token {
        if let Some(done) = act_on_recent(conn, ctx, id, hash, action, &change)? {
            return Ok(done);
        }
    }
    // Only a staff token is checked by the change's own write (a personal token is not).
    let mut staff_token = false;
    for _attempt in 0..5 {
        let (read, who, by_staff_token) = read_for(conn, id, (&actor, token.as_deref()), &known)?;
        staff_token |= by_staff_token;
        let Acting {
            task,
            story,
            holds_its_bleep,
            ..
        } = read;
        let who = &*known.insert(who);
        let standing = standing(
            conn,
            (&task, Some(holds_its_bleep)),
            who,
            action,
            &ctx.policy,
        )?;
        let decided = match decide(&task, &change, &standing, ctx.now, &ctx.policy) {
            Ok(d) => d,
            Err(r) => return Err(refused(conn, &task, action, r)?),
        };
        if let Some((next, event)) = write_change(conn, ctx, who, action, &task, decided, None)? {
            let told = told(story, event, action);
            remember(ctx, &next, &told, who, token.filter(|_| staff_token));
            return Ok((next, told));
        }
    }
    Err(AppError::conflict(
        "the task is changing too quickly; try again",
        json!({}),
    ))
}

/// The story after the change: as read, and the change's own event, when nothing else was
/// appended between (and the assignee's name is still right: not after a reassignment).
fn told(mut story: Story, event: Event, action: Action) -> Option<Story> {
    let follows = story.events.last().map_or(0, |e| e.seq) + 1 == event.seq;
    (follows && action != Action::Reassign).then(|| {
        story.events.push(event);
        story
    })
}

/// Holds the task as the change left it for the same caller's next change (see
/// [`super::recent`]), when they came with a staff token (`token_hash`), the whole story is
/// known, and the task is still in hand (their start or completion may follow).
fn remember(ctx: &Ctx, next: &Task, told: &Option<Story>, who: &Staff, token_hash: Option<String>) {
    match (told, token_hash) {
        (Some(story), Some(token_hash))
            if matches!(next.status, Status::Accepted | Status::InProgress) =>
        {
            ctx.recent.put(Held {
                task: next.clone(),
                story: story.clone(),
                staff: who.clone(),
                token_hash,
            })
        }
        _ => ctx.recent.forget(&next.id),
    }
}

/// A start or completion by whoever acknowledged the task, on the task as this instance's
/// last change of it for them left it: decided on what is held, with no read, and saved
/// only if the task, the token and its holder are all still as they were. `None` when
/// nothing is held, the rule refuses, or anything changed: the change is then read and
/// judged afresh (nothing was written).
fn act_on_recent(
    conn: &mut DbConnection,
    ctx: &Ctx,
    id: &str,
    token_hash: &str,
    action: Action,
    change: &Change,
) -> AppResult<Option<(Task, Option<Story>)>> {
    if !matches!(action, Action::Start | Action::Complete) {
        return Ok(None);
    }
    let Some(held) = ctx.recent.take(id, token_hash) else {
        return Ok(None);
    };
    let Held {
        task, story, staff, ..
    } = held;
    // Their own acknowledgement is their standing: nothing else is read for it.
    if task.acknowledged_by.as_deref() != Some(staff.id.as_str()) {
        return Ok(None);
    }
    let Ok(standing) = standing(conn, (&task, None), &staff, action, &ctx.policy) else {
        return Ok(None);
    };
    let Ok(decided) = decide(&task, change, &standing, ctx.now, &ctx.policy) else {
        return Ok(None);
    };
    let caller = tasks::Caller {
        token_hash: token_hash.to_string(),
        staff_id: staff.id.clone(),
        permissions: crate::domain::staff::format_permissions(&staff.roles),
    };
    let saved = write_change(conn, ctx, &staff, action, &task, decided, Some(&caller))?;
    let Some((next, event)) = saved else {
        return Ok(None);
    };
    let told = told(story, event, action);
    remember(ctx, &next, &told, &staff, Some(token_hash.to_string()));
    Ok(Some((next, told)))
}

/// Writes a decided change and its effects, kept whole: alone as its one statement, or,
/// when the change has more to write beside it (a reassignment's notifications, a
/// decline's notice, the record), all of it in one transaction. The task as it is now and
/// the change's event, or `None` when the task had changed since it was read, or the
/// `caller` is no longer as the change was decided for (nothing is written then).
fn write_change(
    conn: &mut DbConnection,
    ctx: &Ctx,
    who: &Staff,
    action: Action,
    task: &Task,
    decided: Decided,
    caller: Option<&tasks::Caller>,
) -> AppResult<Option<(Task, Event)>> {
    let more = matches!(action, Action::Reassign | Action::Decline)
        || (matches!(decided.next.status, Status::Completed | Status::Cancelled)
            && !ctx.policy.records.is_empty());
    let write = |conn: &mut DbConnection| -> AppResult<Option<(Task, Event)>> {
        let Decided {
            next,
            kind,
            from,
            to,
            detail,
        } = decided;
        let event = NewEvent {
            actor: Some(&who.id),
            kind,
            from: Some(from),
            to: Some(to),
            detail,
        };
        // Whoever was being chased no longer needs to be; a reassigned task starts afresh.
        let mut told = event.told(0, ctx.now, Some(person(who)));
        let Some(Saved { stopped, seq }) =
            tasks::save_change(conn, &next, task, ctx.now, event, caller)?
        else {
            return Ok(None);
        };
        told.seq = seq;
        if action == Action::Reassign {
            notify_first_recipients(conn, &next, ctx)?;
        }
        if action == Action::Decline {
            tell_raiser(
                conn,
                ctx,
                &next,
                who,
                "declined your task",
                "for the reason",
            )?;
        }
        queue_for_record(conn, &next, ctx)?;
        tracing::info!(task_id = %next.id, from = %from, to = %to, staff_id = %who.id, cancelled = stopped, "task {kind}");
        Ok(Some((next, told)))
    };
    match more {
        true => store::atomically(conn, write),
        false => write(conn),
    }
}

/// Adds a comment to the task's thread. A task already sent to the record is sent again.
pub fn comment(
    conn: &mut DbConnection,
    ctx: &Ctx,
    id: &str,
    who: &Staff,
    text: &str,
) -> AppResult<Event> {
    if !(who.can(Permission::Coordinator)
        || who.can(Permission::Clinician)
        || who.can(Permission::Admin))
    {
        return Err(AppError::Forbidden(
            "bed managers can read tasks but not comment on them".into(),
        ));
    }
    let text = required_text("text", text, MAX_TEXT).map_err(AppError::Unprocessable)?;
    if tasks::touch(conn, id, ctx.now)?.is_none() {
        return Err(AppError::NotFound(format!("no task with id {id}")));
    }
    let detail = json!({ "text": text });
    let seq = events::append_event(
        conn,
        id,
        ctx.now,
        NewEvent {
            actor: Some(&who.id),
            kind: "commented",
            from: None,
            to: None,
            detail: Some(detail.clone()),
        },
    )?;
    let task = tasks::load(conn, id)?;
    if !ctx.policy.records.is_empty() {
        queue_for_record(conn, &task, ctx)?;
    }
    tell_raiser(conn, ctx, &task, who, "replied on your task", "to read it")?;
    tracing::info!(task_id = %id, staff_id = %who.id, "comment added");
    Ok(Event {
        seq,
        at: ctx.now,
        actor: Some(person(who)),
        kind: "commented".into(),
        from_status: None,
        to_status: None,
        detail: Some(detail),
    })
}

/// A member of staff as the timeline names them.
fn person(who: &Staff) -> Person {
    Person {
        id: who.id.clone(),
        name: who.name.clone(),
    }
}

/// Tells whoever raised the task, on their phones, that someone else declined it or
/// replied on it; tapped, the notice opens the task's page. The notice names the ward and
/// bed, never the patient, and not the reason or the reply (they are on the page).
fn tell_raiser(
    conn: &mut DbConnection,
    ctx: &Ctx,
    task: &Task,
    who: &Staff,
    what: &str,
    open_for: &str,
) -> AppResult<()> {
    if who.id == task.raised_by {
        return Ok(());
    }
    let title = format!("{} {what}", who.name);
    let body = format!("{}, bed {}: open the task {open_for}.", task.ward, task.bed);
    let mut rows = Vec::new();
    let path = format!("/tasks/{}", task.id);
    outbox::notice_opening(&task.raised_by, &title, &body, &path, ctx.now, &mut rows);
    outbox::insert(conn, &rows)?;
    tracing::info!(task_id = %task.id, staff_id = %who.id, "raiser told: {what}");
    Ok(())
}

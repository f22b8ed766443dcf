//! Who a task reaches: its assignee or the holders of its role, then the roles of its
//! escalation chain, read from the directory as it is now.
use crate::domain::task::Policy;
use crate::domain::transition::Standing;
use crate::domain::{Action, Assignee, Permission, Task};
use crate::error::{AppError, AppResult};
use crate::store::directory::{self, Role, Staff};
use crate::store::{rota, DbConnection};
use chrono::{DateTime, Utc};

/// The roles a task escalates through after its assignee, in order. For a task assigned to a
/// role that is the role's chain; for one assigned to a person, the fallback role and its chain.
pub fn escalation_roles(
    conn: &mut DbConnection,
    task: &Task,
    fallback_role: Option<&str>,
) -> AppResult<Vec<Role>> {
    let (start, skip_first) = match &task.assignee {
        Assignee::Role(r) => (Some(directory::role_by_id(conn, r)?), true),
        Assignee::Staff(_) => match fallback_role {
            Some(name) => (directory::find_role(conn, name)?, false),
            None => (None, false),
        },
    };
    let mut chain = Vec::new();
    let mut next = start;
    while let Some(role) = next {
        if chain.iter().any(|r: &Role| r.id == role.id) || chain.len() >= 16 {
            break;
        }
        next = match &role.escalates_to {
            Some(id) => Some(directory::role_by_id(conn, id)?),
            None => None,
        };
        chain.push(role);
    }
    if skip_first && !chain.is_empty() {
        chain.remove(0);
    }
    Ok(chain)
}

/// Who holds the role now and is not busy: those new bleeps go to.
pub fn available_holders(
    conn: &mut DbConnection,
    role_id: &str,
    now: DateTime<Utc>,
) -> AppResult<Vec<String>> {
    rota::available_holders(conn, role_id, now)
}

/// Whoever the task is for right now: its assignee, or every holder of its role who is
/// not busy. A busy assignee is passed by: the task goes on up its chain.
pub fn first_recipients(
    conn: &mut DbConnection,
    task: &Task,
    now: DateTime<Utc>,
) -> AppResult<Vec<String>> {
    match &task.assignee {
        Assignee::Staff(s) => {
            let busy = rota::busy_among(conn, std::slice::from_ref(s), now)?;
            Ok(if busy.is_empty() {
                vec![s.clone()]
            } else {
                Vec::new()
            })
        }
        Assignee::Role(r) => available_holders(conn, r, now),
    }
}

/// Everyone reached at `level`: the first recipients and the holders of every role of the
/// chain reached so far.
pub fn recipients(
    conn: &mut DbConnection,
    task: &Task,
    level: i32,
    chain: &[Role],
    now: DateTime<Utc>,
) -> AppResult<Vec<String>> {
    let mut out = first_recipients(conn, task, now)?;
    for role in chain.iter().take(level.max(0) as usize) {
        for h in available_holders(conn, &role.id, now)? {
            if !out.contains(&h) {
                out.push(h);
            }
        }
    }
    Ok(out)
}

/// Is this person the task's assignee, or do they hold the role it is assigned to? Whether
/// they hold it is read, unless the caller read it with the task (`holds_its_bleep`).
fn is_assignee(
    conn: &mut DbConnection,
    task: &Task,
    who: &Staff,
    holds_its_bleep: Option<bool>,
) -> AppResult<bool> {
    Ok(match &task.assignee {
        Assignee::Staff(s) => s == &who.id,
        Assignee::Role(r) => {
            who.active
                && match holds_its_bleep {
                    Some(holds) => holds,
                    None => directory::current_holders(conn, r)?
                        .iter()
                        .any(|h| h == &who.id),
                }
        }
    })
}

/// Has the task escalated to a role this person holds?
fn reached_by_escalation(
    conn: &mut DbConnection,
    task: &Task,
    who: &Staff,
    policy: &Policy,
) -> AppResult<bool> {
    if task.escalation_level == 0 || !who.active {
        return Ok(false);
    }
    let chain = escalation_roles(conn, task, policy.fallback_role.as_deref())?;
    let held = directory::roles_held_by(conn, &who.id)?;
    Ok(chain
        .iter()
        .take(task.escalation_level as usize)
        .any(|r| held.contains(&r.id)))
}

/// What this person is to this task when they try `action`, for
/// [`crate::domain::transition::decide`]. Only what can settle the question is read: nothing
/// for the person who acknowledged the task, the escalation chain only for acknowledging,
/// and whether they hold the task's bleep only when `holds_its_bleep` does not already say.
pub fn standing(
    conn: &mut DbConnection,
    (task, holds_its_bleep): (&Task, Option<bool>),
    who: &Staff,
    action: Action,
    policy: &Policy,
) -> AppResult<Standing> {
    // Clinical work is for those who may hold a bleep, whatever bleep they were given.
    if matches!(
        action,
        Action::Acknowledge | Action::Start | Action::Complete
    ) {
        who.may_hold_bleep().map_err(AppError::Forbidden)?;
    }
    let mut s = Standing {
        staff_id: who.id.clone(),
        coordinates: who.can(Permission::Coordinator) || who.can(Permission::Admin),
        ..Standing::default()
    };
    let acknowledged_it = task.acknowledged_by.as_deref() == Some(who.id.as_str());
    match action {
        Action::Cancel | Action::Reassign => {}
        Action::Start | Action::Complete | Action::Decline if acknowledged_it => {}
        Action::Start | Action::Complete | Action::Decline => {
            s.is_assignee = is_assignee(conn, task, who, holds_its_bleep)?;
        }
        Action::Acknowledge => {
            s.is_assignee = is_assignee(conn, task, who, holds_its_bleep)?;
            s.reached_by_escalation =
                !s.is_assignee && reached_by_escalation(conn, task, who, policy)?;
        }
    }
    Ok(s)
}

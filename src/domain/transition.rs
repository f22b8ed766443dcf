//! How a person's command changes a task: a pure function of (task, command, the actor's
//! standing, time, policy) that returns the next task and the event that records it, or
//! says why not. The caller (the `app` layer) reads the facts and writes the result.
use super::task::{Assignee, Policy, Task};
use super::{Action, OutcomeCode, Status};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// A status change asked for by a person. A caller names a reassignment's new assignee as
/// it likes (`Change<String>`: a staff id, a role's id or name); the rules take it resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<To = Assignee> {
    Acknowledge,
    Start,
    Complete { code: OutcomeCode, text: String },
    Cancel { reason: String },
    Decline { reason: String },
    Reassign { to: To, reason: Option<String> },
}

impl<To> Change<To> {
    /// The same change with its reassignment target resolved by `resolve`.
    pub fn resolve<T, E>(self, resolve: impl FnOnce(To) -> Result<T, E>) -> Result<Change<T>, E> {
        Ok(match self {
            Change::Acknowledge => Change::Acknowledge,
            Change::Start => Change::Start,
            Change::Complete { code, text } => Change::Complete { code, text },
            Change::Cancel { reason } => Change::Cancel { reason },
            Change::Decline { reason } => Change::Decline { reason },
            Change::Reassign { to, reason } => Change::Reassign {
                to: resolve(to)?,
                reason,
            },
        })
    }

    pub fn action(&self) -> Action {
        match self {
            Change::Acknowledge => Action::Acknowledge,
            Change::Start => Action::Start,
            Change::Complete { .. } => Action::Complete,
            Change::Cancel { .. } => Action::Cancel,
            Change::Decline { .. } => Action::Decline,
            Change::Reassign { .. } => Action::Reassign,
        }
    }
}

/// What the actor is to this task, as read by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    pub staff_id: String,
    /// The task's assignee, or an active holder of the role it is assigned to.
    pub is_assignee: bool,
    /// An active holder of a role the task has escalated to.
    pub reached_by_escalation: bool,
    /// May cancel and reassign: a coordinator or an admin.
    pub coordinates: bool,
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The actor may not do this; `who_may` says who may.
    NotAllowed { who_may: WhoMay },
    /// The state machine forbids it from the task's current status.
    NotNow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhoMay {
    TheAssignee,
    ACoordinatorOrAdmin,
}

/// The change decided: the task as it will be, and its timeline entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub next: Task,
    pub kind: &'static str,
    pub from: Status,
    pub to: Status,
    pub detail: Option<Value>,
}

/// May this actor make this change to this task?
fn allowed(task: &Task, action: Action, s: &Standing) -> Result<(), Refusal> {
    let ok = match action {
        Action::Acknowledge => s.is_assignee || s.reached_by_escalation,
        Action::Start | Action::Complete | Action::Decline => {
            task.acknowledged_by.as_deref() == Some(s.staff_id.as_str()) || s.is_assignee
        }
        Action::Cancel | Action::Reassign => s.coordinates,
    };
    if ok {
        return Ok(());
    }
    Err(Refusal::NotAllowed {
        who_may: match action {
            Action::Cancel | Action::Reassign => WhoMay::ACoordinatorOrAdmin,
            _ => WhoMay::TheAssignee,
        },
    })
}

pub fn assignee_json(a: &Assignee) -> Value {
    match a {
        Assignee::Role(id) => json!({ "role": id }),
        Assignee::Staff(id) => json!({ "staff": id }),
    }
}

/// Decides a change. `statusReason` always explains the current status: set by cancel,
/// decline and reassign, cleared by every other move, so a completed task never carries
/// an old reassign reason.
pub fn decide(
    task: &Task,
    change: &Change,
    standing: &Standing,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<Decided, Refusal> {
    let action = change.action();
    allowed(task, action, standing)?;
    let to = action.next_status(task.status).ok_or(Refusal::NotNow)?;
    let mut next = task.clone();
    next.status = to;
    next.version = task.version + 1;
    next.updated_at = now;
    next.status_reason = None;
    let mut detail = None;
    match change {
        Change::Acknowledge => {
            next.acknowledged_by = Some(standing.staff_id.clone());
            next.acknowledged_at = Some(now);
            next.next_escalation_at = None;
        }
        Change::Start => next.started_at = Some(now),
        Change::Complete { code, text } => {
            next.outcome = Some((*code, text.clone()));
            next.ended_at = Some(now);
            next.next_escalation_at = None;
            detail = Some(json!({ "outcome": { "code": code, "text": text } }));
        }
        Change::Cancel { reason } | Change::Decline { reason } => {
            next.status_reason = Some(reason.clone());
            next.ended_at = Some(now);
            next.next_escalation_at = None;
            detail = Some(json!({ "reason": reason }));
        }
        Change::Reassign {
            to: assignee,
            reason,
        } => {
            next.assignee = assignee.clone();
            next.acknowledged_by = None;
            next.acknowledged_at = None;
            next.started_at = None;
            next.ended_at = None;
            next.status_reason = reason.clone();
            next.escalation_level = 0;
            next.ack_deadline = policy.ack_seconds.deadline(task.priority, now);
            next.next_escalation_at = Some(next.ack_deadline);
            detail = Some(json!({
                "from": assignee_json(&task.assignee),
                "to": assignee_json(assignee),
                "reason": reason,
            }));
        }
    }
    Ok(Decided {
        next,
        kind: action.past_tense(),
        from: task.status,
        to,
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::task::tests::requested_task;
    use chrono::Duration;

    fn doctor(id: &str) -> Standing {
        Standing {
            staff_id: id.into(),
            is_assignee: true,
            ..Standing::default()
        }
    }

    fn nurse() -> Standing {
        Standing {
            staff_id: "nurse".into(),
            coordinates: true,
            ..Standing::default()
        }
    }

    #[test]
    fn acknowledging_records_who_and_stops_the_escalation() {
        let t = requested_task();
        let now = t.raised_at + Duration::seconds(30);
        let d = decide(
            &t,
            &Change::Acknowledge,
            &doctor("amy"),
            now,
            &Policy::default(),
        )
        .unwrap();
        assert_eq!(
            (d.from, d.to, d.kind),
            (Status::Requested, Status::Accepted, "acknowledged")
        );
        assert_eq!(d.next.acknowledged_by.as_deref(), Some("amy"));
        assert_eq!(d.next.acknowledged_at, Some(now));
        assert_eq!(d.next.next_escalation_at, None);
        assert_eq!(d.next.version, t.version + 1);
    }

    #[test]
    fn only_the_assignee_or_an_escalation_holder_may_acknowledge() {
        let t = requested_task();
        let stranger = Standing {
            staff_id: "bob".into(),
            ..Standing::default()
        };
        let refused = decide(
            &t,
            &Change::Acknowledge,
            &stranger,
            t.raised_at,
            &Policy::default(),
        );
        assert_eq!(
            refused,
            Err(Refusal::NotAllowed {
                who_may: WhoMay::TheAssignee
            })
        );
        let reached = Standing {
            reached_by_escalation: true,
            ..stranger
        };
        assert!(decide(
            &t,
            &Change::Acknowledge,
            &reached,
            t.raised_at,
            &Policy::default()
        )
        .is_ok());
    }

    #[test]
    fn a_coordinator_may_cancel_but_not_acknowledge() {
        let t = requested_task();
        let p = Policy::default();
        let cancel = Change::Cancel {
            reason: "patient discharged".into(),
        };
        let d = decide(&t, &cancel, &nurse(), t.raised_at, &p).unwrap();
        assert_eq!(d.to, Status::Cancelled);
        assert_eq!(d.next.status_reason.as_deref(), Some("patient discharged"));
        assert!(matches!(
            decide(&t, &Change::Acknowledge, &nurse(), t.raised_at, &p),
            Err(Refusal::NotAllowed { .. })
        ));
    }

    #[test]
    fn a_move_the_state_machine_forbids_is_refused_as_not_now() {
        let mut t = requested_task();
        t.status = Status::Completed;
        assert_eq!(
            decide(
                &t,
                &Change::Start,
                &doctor("amy"),
                t.raised_at,
                &Policy::default()
            ),
            Err(Refusal::NotNow)
        );
    }

    #[test]
    fn completing_a_reassigned_task_clears_the_reassign_reason() {
        let t = requested_task();
        let p = Policy::default();
        let now = t.raised_at + Duration::minutes(1);
        let reassign = Change::Reassign {
            to: Assignee::Staff("amy".into()),
            reason: Some("Bob is in theatre".into()),
        };
        let r = decide(&t, &reassign, &nurse(), now, &p).unwrap().next;
        assert_eq!(r.status_reason.as_deref(), Some("Bob is in theatre"));
        assert_eq!(r.ack_deadline, p.ack_seconds.deadline(t.priority, now));
        assert_eq!(r.escalation_level, 0);
        let a = decide(&r, &Change::Acknowledge, &doctor("amy"), now, &p)
            .unwrap()
            .next;
        assert_eq!(a.status_reason, None);
        let done = Change::Complete {
            code: OutcomeCode::Done,
            text: String::new(),
        };
        let c = decide(&a, &done, &doctor("amy"), now, &p).unwrap().next;
        assert_eq!(c.status, Status::Completed);
        assert_eq!(c.status_reason, None);
        assert_eq!(c.outcome, Some((OutcomeCode::Done, String::new())));
    }
}

//! Escalation as pure rules: which level a task goes up to, past roles nobody holds, and
//! the task as it is after escalating.
use super::task::{Policy, Task};
use super::Status;
use chrono::{DateTime, Duration, Utc};

/// Where one escalation step lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The new level: 1 is the first role of the chain after the assignee.
    pub level: i32,
    /// Indexes into the chain of the roles passed over because nobody holds them.
    pub skipped: Vec<usize>,
}

/// The next level from `level`, given whether each role of the chain has a holder now.
/// Escalation never waits on nobody: a role with no holder is passed over at once, except
/// the last of the chain, which is where it stops.
pub fn next_step(level: i32, held: &[bool]) -> Step {
    let mut next = level.max(0) + 1;
    let mut skipped = Vec::new();
    while let Some(&has_holder) = held.get(next as usize - 1) {
        if has_holder || next as usize == held.len() {
            break;
        }
        skipped.push(next as usize - 1);
        next += 1;
    }
    Step {
        level: next,
        skipped,
    }
}

/// Is the task due to escalate now?
pub fn is_due(task: &Task, now: DateTime<Utc>) -> bool {
    task.status == Status::Requested && task.next_escalation_at.is_some_and(|t| t <= now)
}

/// The task after escalating to `level`: the next level falls due one time-to-acknowledge
/// from now.
pub fn escalated(task: &Task, level: i32, now: DateTime<Utc>, policy: &Policy) -> Task {
    let mut n = task.clone();
    n.escalation_level = level;
    n.next_escalation_at =
        Some(now + Duration::seconds(i64::from(policy.ack_seconds.seconds(task.priority))));
    n.version = task.version + 1;
    n.updated_at = now;
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::task::tests::requested_task;

    #[test]
    fn a_role_nobody_holds_is_passed_over_at_once() {
        assert_eq!(
            next_step(0, &[true, true]),
            Step {
                level: 1,
                skipped: vec![]
            }
        );
        assert_eq!(
            next_step(0, &[false, true]),
            Step {
                level: 2,
                skipped: vec![0]
            }
        );
        assert_eq!(
            next_step(0, &[false, false, true]),
            Step {
                level: 3,
                skipped: vec![0, 1]
            }
        );
    }

    #[test]
    fn the_last_role_of_the_chain_is_where_it_stops_even_unheld() {
        assert_eq!(
            next_step(0, &[false, false]),
            Step {
                level: 2,
                skipped: vec![0]
            }
        );
        assert_eq!(
            next_step(2, &[true, true]),
            Step {
                level: 3,
                skipped: vec![]
            }
        );
        assert_eq!(
            next_step(0, &[]),
            Step {
                level: 1,
                skipped: vec![]
            }
        );
    }

    #[test]
    fn an_escalated_task_falls_due_again_one_time_to_acknowledge_later() {
        let t = requested_task();
        let now = t.ack_deadline + Duration::seconds(3);
        assert!(is_due(&t, now));
        assert!(!is_due(&t, t.ack_deadline - Duration::seconds(1)));
        let p = Policy::default();
        let e = escalated(&t, 2, now, &p);
        assert_eq!(e.escalation_level, 2);
        assert_eq!(e.next_escalation_at, Some(now + Duration::seconds(120)));
        assert_eq!(e.version, t.version + 1);
        assert!(!is_due(&e, now));
    }
}

//! A task as the pages show it: the words and local times the coordinator's list, the
//! clinician's phone page, the dashboard and the task page share.
use super::time;
use crate::domain::rota::Zone;
use crate::domain::Status;
use crate::error::AppResult;
use crate::store::deliveries::{self, NotificationView};
use crate::store::receipts::Sighting;
use crate::store::DbConnection;
use crate::web::api::TaskView;
use chrono::{DateTime, Utc};

pub fn status_label(s: Status) -> &'static str {
    match s {
        Status::Requested => "Waiting for acknowledgement",
        Status::Accepted => "Acknowledged",
        Status::InProgress => "In progress",
        Status::Completed => "Completed",
        Status::Cancelled => "Cancelled",
        Status::Rejected => "Declined",
    }
}

/// Who has had a waiting task on screen: "seen by Dr Amy Patel 22:01, Dr Ben Hughes 22:03",
/// in the hospital's time.
pub fn seen_line(seen: &[Sighting], zone: &Zone, now: DateTime<Utc>) -> String {
    if seen.is_empty() {
        return String::new();
    }
    let who: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.name, time::clock(zone, s.at, now)))
        .collect();
    format!("seen by {}", who.join(", "))
}

/// The people a task's bleeps went to since it was last reassigned (those before had it
/// taken from them), first reached first, each once.
pub fn reached(conn: &mut DbConnection, v: &TaskView) -> AppResult<Vec<String>> {
    let sent = deliveries::notifications(conn, Some(&v.id), None, 200)?;
    Ok(reached_names(&sent, v))
}

/// The same from its notifications, newest first as they are read.
pub fn reached_names(sent: &[NotificationView], v: &TaskView) -> Vec<String> {
    let since = v
        .timeline
        .iter()
        .flatten()
        .filter(|e| e.kind == "reassigned")
        .map(|e| e.at)
        .next_back();
    let mut names: Vec<String> = Vec::new();
    for n in sent.iter().rev() {
        let current = since.is_none_or(|at| n.created_at >= at);
        if current && !n.recipient.name.is_empty() && !names.contains(&n.recipient.name) {
            names.push(n.recipient.name.clone());
        }
    }
    names
}

/// One comment of a task's thread.
pub struct Reply {
    pub who: String,
    pub at: String,
    pub text: String,
}

/// A task as the pages show it.
pub struct Card {
    pub id: String,
    pub priority: String,
    pub category: String,
    pub ward: String,
    pub bed: String,
    pub nhs_number: String,
    pub news2: Option<i32>,
    pub description: String,
    pub raised_by: String,
    /// When it was raised, in the hospital's time.
    pub raised_at: String,
    pub status: String,
    pub status_label: &'static str,
    pub overdue: bool,
    /// "due in 3 min" or "2 min 40 s overdue" while it waits; empty after.
    pub due: String,
    pub escalation_level: i32,
    /// Who has it: whoever acknowledged it, else the role or person it is for with the
    /// people its bleeps reached.
    pub who: String,
    /// "seen by Dr Amy Patel 22:01" while it waits, from the phones' receipts.
    pub seen: String,
    /// Why it was declined, cancelled or reassigned.
    pub reason: Option<String>,
    pub thread: Vec<Reply>,
}

impl Card {
    /// `reached`: the people its bleeps went to (see [`reached`]).
    pub fn new(v: TaskView, reached: &[String], zone: &Zone, now: DateTime<Utc>) -> Card {
        let thread = v
            .timeline
            .iter()
            .flatten()
            .filter(|e| e.kind == "commented")
            .map(|e| Reply {
                who: e.actor.as_ref().map(|a| a.name.clone()).unwrap_or_default(),
                at: time::clock(zone, e.at, now),
                text: e
                    .detail
                    .as_ref()
                    .and_then(|d| d["text"].as_str())
                    .unwrap_or("")
                    .to_string(),
            })
            .collect();
        let who = match &v.acknowledged_by {
            Some(p) => p.name.clone(),
            None if reached.is_empty() || reached == [v.assignee.name.clone()] => {
                v.assignee.name.clone()
            }
            None => format!("{}: bleeped {}", v.assignee.name, reached.join(", ")),
        };
        let waiting = v.status == Status::Requested;
        Card {
            seen: seen_line(&v.seen_by, zone, now),
            who,
            raised_at: time::clock(zone, v.raised_at, now),
            due: if waiting {
                time::due(v.ack_deadline, now)
            } else {
                String::new()
            },
            reason: v.status_reason.clone(),
            id: v.id,
            priority: v.priority.code().into(),
            category: v.category.code().into(),
            ward: v.ward,
            bed: v.bed,
            nhs_number: v.nhs_number,
            news2: v.news2,
            description: v.description,
            raised_by: v.raised_by.name,
            status: v.status.code().into(),
            status_label: status_label(v.status),
            overdue: v.overdue,
            escalation_level: v.escalation_level,
            thread,
        }
    }

    /// The newest reply, for a list that shows one line per task.
    pub fn last_reply(&self) -> Option<&Reply> {
        self.thread.last()
    }
}

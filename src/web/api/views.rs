//! A task as the API shows it, with names beside ids.
use crate::domain::timeline::{Event, Person};
use crate::domain::{Assignee, Task};
use crate::domain::{Category, OutcomeCode, Priority, Status};
use crate::error::{AppError, AppResult};
use crate::store::directory;
use crate::store::events;
use crate::store::receipts::{self, Sighting};
use crate::store::DbConnection;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Serialize)]
pub struct AssigneeView {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub name: String,
}

#[derive(Serialize)]
pub struct OutcomeView {
    pub code: OutcomeCode,
    pub label: &'static str,
    pub text: String,
}

/// A task as the API shows it, with names beside ids.
#[derive(Serialize)]
pub struct TaskView {
    pub id: String,
    pub nhs_number: String,
    pub ward: String,
    pub bed: String,
    pub category: Category,
    pub description: String,
    pub priority: Priority,
    pub news2: Option<i32>,
    pub status: Status,
    pub assignee: AssigneeView,
    pub raised_by: Person,
    pub raised_at: DateTime<Utc>,
    pub ack_deadline: DateTime<Utc>,
    pub overdue: bool,
    pub acknowledged_by: Option<Person>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: Option<OutcomeView>,
    pub status_reason: Option<String>,
    pub escalation_level: i32,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// Who has had it on screen while it waited (from their phones' receipts), first
    /// sighting per person; empty once it is acknowledged.
    pub seen_by: Vec<Sighting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<Event>>,
}

/// Puts names beside the ids of many tasks with two queries.
pub fn views(
    conn: &mut DbConnection,
    list: Vec<Task>,
    now: DateTime<Utc>,
) -> AppResult<Vec<TaskView>> {
    let mut staff_ids: Vec<&str> = Vec::new();
    let mut role_ids: Vec<&str> = Vec::new();
    for t in &list {
        staff_ids.push(&t.raised_by);
        if let Some(a) = &t.acknowledged_by {
            staff_ids.push(a);
        }
        match &t.assignee {
            Assignee::Role(r) => role_ids.push(r),
            Assignee::Staff(s) => staff_ids.push(s),
        }
    }
    let staff = directory::staff_names(conn, &staff_ids)?;
    let roles = directory::role_names(conn, &role_ids)?;
    // Seen matters while a task waits; once acknowledged, who has it says more.
    let waiting: Vec<&str> = list
        .iter()
        .filter(|t| t.status == Status::Requested)
        .map(|t| t.id.as_str())
        .collect();
    let mut seen = if waiting.is_empty() {
        HashMap::new()
    } else {
        receipts::sightings(conn, &waiting)?
    };
    let person = |id: &str, names: &HashMap<String, String>| Person {
        id: id.to_string(),
        name: names.get(id).cloned().unwrap_or_default(),
    };
    Ok(list
        .into_iter()
        .map(|t| TaskView {
            seen_by: seen.remove(&t.id).unwrap_or_default(),
            overdue: t.is_overdue(now),
            assignee: match &t.assignee {
                Assignee::Role(r) => AssigneeView {
                    kind: "role",
                    id: r.clone(),
                    name: roles.get(r).cloned().unwrap_or_default(),
                },
                Assignee::Staff(s) => AssigneeView {
                    kind: "staff",
                    id: s.clone(),
                    name: staff.get(s).cloned().unwrap_or_default(),
                },
            },
            raised_by: person(&t.raised_by, &staff),
            acknowledged_by: t.acknowledged_by.as_deref().map(|a| person(a, &staff)),
            outcome: t.outcome.map(|(code, text)| OutcomeView {
                code,
                label: code.label(),
                text,
            }),
            id: t.id,
            nhs_number: t.nhs_number,
            ward: t.ward,
            bed: t.bed,
            category: t.category,
            description: t.description,
            priority: t.priority,
            news2: t.news2,
            status: t.status,
            raised_at: t.raised_at,
            ack_deadline: t.ack_deadline,
            acknowledged_at: t.acknowledged_at,
            started_at: t.started_at,
            ended_at: t.ended_at,
            status_reason: t.status_reason,
            escalation_level: t.escalation_level,
            version: t.version,
            updated_at: t.updated_at,
            timeline: None,
        })
        .collect())
}

pub fn one_view(conn: &mut DbConnection, task: Task, now: DateTime<Utc>) -> AppResult<TaskView> {
    let id = task.id.clone();
    let mut v = views(conn, vec![task], now)?
        .pop()
        .ok_or_else(|| AppError::Internal("view of one task is empty".into()))?;
    let mut known: HashMap<String, String> = HashMap::new();
    for p in [Some(&v.raised_by), v.acknowledged_by.as_ref()]
        .into_iter()
        .flatten()
    {
        known.insert(p.id.clone(), p.name.clone());
    }
    v.timeline = Some(events::timeline_knowing(conn, &id, &known)?);
    Ok(v)
}

//! What the API answers: a task with names beside ids, and the body of every other answer.
//! Each type derives `ToSchema`, so the OpenAPI document (`/api/v1/openapi.json`) describes
//! exactly what the handlers serialise.
use crate::domain::timeline::{Event, Person};
use crate::domain::{Assignee, Task};
use crate::domain::{Category, OutcomeCode, Priority, Status};
use crate::error::AppResult;
use crate::store::audit::AuditEntry;
use crate::store::dashboard::{FailedDelivery, WardLine};
use crate::store::deliveries::{DeliveryView, NotificationView};
use crate::store::directory;
use crate::store::directory::{Role, Staff};
use crate::store::events::{self, Story};
use crate::store::receipts::{self, Sighting, SilentDevice};
use crate::store::DbConnection;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// Who a task is assigned to: an on-call role (a bleep) or a member of staff.
#[derive(Serialize, ToSchema)]
pub struct AssigneeView {
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = "^(role|staff)$")]
    pub kind: &'static str,
    pub id: String,
    pub name: String,
}

/// How a completed task ended.
#[derive(Serialize, ToSchema)]
pub struct OutcomeView {
    pub code: OutcomeCode,
    #[schema(value_type = String)]
    pub label: &'static str,
    pub text: String,
}

/// A task as the API shows it, with names beside ids.
#[derive(Serialize, ToSchema)]
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
    /// Every event of the task, oldest first: only when one task is read or changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<Event>>,
}

/// `GET /tasks`: a page of tasks, and the cursor of the next page (null on the last).
#[derive(Serialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<TaskView>,
    /// Give it as `after=` to read the next page.
    pub next: Option<String>,
}

/// A task's comments, oldest first.
#[derive(Serialize, ToSchema)]
pub struct Comments {
    pub comments: Vec<Event>,
}

/// An on-call role (a bleep) by id and name.
#[derive(Serialize, ToSchema)]
pub struct RoleRef {
    pub id: String,
    pub name: String,
}

/// `GET /me`: the caller, and the bleeps they hold now.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub staff: Staff,
    pub holds: Vec<RoleRef>,
}

#[derive(Serialize, ToSchema)]
pub struct Wards {
    /// Ward names, in order.
    pub wards: Vec<String>,
}

/// An on-call role with the next role up its escalation chain and who holds it now.
#[derive(Serialize, ToSchema)]
pub struct RoleLine {
    pub id: String,
    pub name: String,
    /// The id of the role a task escalates to, or null at the end of the chain.
    pub escalates_to: Option<String>,
    pub held_by: Vec<Person>,
}

#[derive(Serialize, ToSchema)]
pub struct Roles {
    pub roles: Vec<RoleLine>,
}

/// A bleep handed over: the role, and who holds it now.
#[derive(Serialize, ToSchema)]
pub struct HandedOver {
    pub role: Role,
    pub held_by: Person,
}

#[derive(Serialize, ToSchema)]
pub struct StaffList {
    pub staff: Vec<Staff>,
}

/// The audit log, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
}

/// The public key a browser subscribes to push with.
#[derive(Serialize, ToSchema)]
pub struct VapidKey {
    /// The VAPID public key, base64url.
    pub public_key: String,
}

/// A push subscription stored: its id, to delete it with.
#[derive(Serialize, ToSchema)]
pub struct Subscribed {
    pub id: String,
}

/// A device as its owner sees it. What the push service answered stays in the log.
#[derive(Serialize, ToSchema)]
pub struct DeviceView {
    pub id: String,
    /// The push service's host name.
    pub endpoint_host: String,
    pub user_agent: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// When the device last said it showed a push.
    pub last_shown_at: Option<DateTime<Utc>>,
    /// Whether the last push to this device failed.
    pub failing: bool,
    /// Its push service takes pushes that it never shows: fix it or remove it.
    pub silent: bool,
}

/// A member of staff's mobile number for text messages, as stored.
#[derive(Serialize, ToSchema)]
pub struct MobileSet {
    pub mobile: Option<String>,
}

/// Whether this receipt was new (false: it had been recorded already).
#[derive(Serialize, ToSchema)]
pub struct ReceiptRecorded {
    pub recorded: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Devices {
    pub devices: Vec<DeviceView>,
}

/// Deliveries that chase a person (push, email), newest first.
#[derive(Serialize, ToSchema)]
pub struct Notifications {
    pub notifications: Vec<NotificationView>,
}

/// A task past its acknowledgement deadline, on the dashboard.
#[derive(Serialize, ToSchema)]
pub struct LateTask {
    pub task_id: String,
    pub ward: String,
    pub bed: String,
    pub priority: Priority,
    pub category: Category,
    pub escalation_level: i32,
    pub overdue_minutes: i64,
}

/// Escalations in one hour (UTC).
#[derive(Serialize, ToSchema)]
pub struct HourCount {
    /// The hour of the day, 0 to 23, UTC.
    pub hour_utc: u32,
    pub escalations: i64,
}

/// The escalation dashboard's figures.
#[derive(Serialize, ToSchema)]
pub struct DashboardView {
    pub wards: Vec<WardLine>,
    pub late: Vec<LateTask>,
    /// The last 24 hours, oldest first.
    pub escalations_per_hour: Vec<HourCount>,
    pub failed_deliveries: Vec<FailedDelivery>,
    /// Phones whose push service takes bleeps that they never show.
    pub silent_devices: Vec<SilentDevice>,
}

/// A patient-record server the service delivers to.
#[derive(Serialize, ToSchema)]
pub struct RecordServer {
    pub name: String,
    pub base_url: String,
}

/// What has not reached the patient record (or, with `?status=`, what has).
#[derive(Serialize, ToSchema)]
pub struct RecordDeliveries {
    /// Whether any record server is configured.
    pub configured: bool,
    /// The first record server's base URL (kept for older callers; see `record_servers`).
    pub record_server: Option<String>,
    pub record_servers: Vec<RecordServer>,
    pub deliveries: Vec<DeliveryView>,
}

/// `/healthz`: `ok`, or `failing` with the reasons.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(value_type = String, pattern = "^(ok|failing)$")]
    pub status: &'static str,
    pub reasons: Vec<String>,
    pub last_tick: Option<DateTime<Utc>>,
    pub escalations_repaired: i64,
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
    let names = directory::names(conn, &staff_ids, &role_ids)?;
    let mut seen = sightings_of(conn, &list)?;
    Ok(list
        .into_iter()
        .map(|t| {
            let seen_by = seen.remove(&t.id).unwrap_or_default();
            view_of(t, &names, seen_by, now)
        })
        .collect())
}

/// Who has seen each task that still waits: seen matters while a task waits; once it is
/// acknowledged, who has it says more.
fn sightings_of(
    conn: &mut DbConnection,
    list: &[Task],
) -> AppResult<HashMap<String, Vec<Sighting>>> {
    let waiting: Vec<&str> = list
        .iter()
        .filter(|t| t.status == Status::Requested)
        .map(|t| t.id.as_str())
        .collect();
    if waiting.is_empty() {
        return Ok(HashMap::new());
    }
    receipts::sightings(conn, &waiting)
}

/// Names by id: `(staff, roles)`.
type Names = (HashMap<String, String>, HashMap<String, String>);

/// The view of one task, given the names of the people and the role it names.
fn view_of(
    t: Task,
    (staff, roles): &Names,
    seen_by: Vec<Sighting>,
    now: DateTime<Utc>,
) -> TaskView {
    let person = |id: &str| Person {
        id: id.to_string(),
        name: staff.get(id).cloned().unwrap_or_default(),
    };
    TaskView {
        seen_by,
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
        raised_by: person(&t.raised_by),
        acknowledged_by: t.acknowledged_by.as_deref().map(person),
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
    }
}

/// One task with its timeline: the timeline, its actors' names and the assignee's name in
/// one statement (the raiser and the acknowledger are among the actors), and who has seen
/// it while it waits.
pub fn one_view(conn: &mut DbConnection, task: Task, now: DateTime<Utc>) -> AppResult<TaskView> {
    told_view(conn, (task, None), now)
}

/// The same, with the task's story when the command that changed it told it (see
/// `app::tasks::act_told`): then only who has seen it is read, and that only while it waits.
pub fn told_view(
    conn: &mut DbConnection,
    (task, story): (Task, Option<Story>),
    now: DateTime<Utc>,
) -> AppResult<TaskView> {
    let seen_by = sightings_of(conn, std::slice::from_ref(&task))?
        .remove(&task.id)
        .unwrap_or_default();
    view_with_story(conn, task, seen_by, story, now)
}

/// The view of a task this request has just raised: no phone can have shown it yet (its
/// notifications go out after the commit), so no sightings are read; nor its story, when
/// the raise told it (`app::tasks::raise_told`).
pub fn raised_view(
    conn: &mut DbConnection,
    (task, story): (Task, Option<Story>),
    now: DateTime<Utc>,
) -> AppResult<TaskView> {
    view_with_story(conn, task, Vec::new(), story, now)
}

fn view_with_story(
    conn: &mut DbConnection,
    task: Task,
    seen_by: Vec<Sighting>,
    story: Option<Story>,
    now: DateTime<Utc>,
) -> AppResult<TaskView> {
    let story = match story {
        Some(s) => s,
        None => events::story(conn, &task.id, Some(&task.assignee))?,
    };
    let (mut staff, mut roles) = (HashMap::new(), HashMap::new());
    for p in story.events.iter().filter_map(|e| e.actor.as_ref()) {
        staff.insert(p.id.clone(), p.name.clone());
    }
    if let Some(name) = story.assignee_name {
        match &task.assignee {
            Assignee::Role(r) => roles.insert(r.clone(), name),
            Assignee::Staff(s) => staff.insert(s.clone(), name),
        };
    }
    // The raiser and the acknowledger are the actors of their events; anyone else (a task
    // written some other way) is looked up.
    let missing: Vec<&str> = [Some(&task.raised_by), task.acknowledged_by.as_ref()]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .filter(|id| !staff.contains_key(*id))
        .collect();
    if !missing.is_empty() {
        staff.extend(directory::names(conn, &missing, &[])?.0);
    }
    let mut v = view_of(task, &(staff, roles), seen_by, now);
    v.timeline = Some(story.events);
    Ok(v)
}

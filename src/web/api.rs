//! The JSON API under /api/v1, for systems and for the pages' scripts.
use super::auth::{client_address, SESSION_COOKIE};
use super::auth::{Caller, Credentials};
use super::errors::json_error;
use super::AppState;
use crate::app::roles::HandedBy;
use crate::app::tasks::{self as commands, Command};
use crate::domain::delivery::Delivery;
use crate::domain::task::{required_text, MAX_BED, MAX_DESCRIPTION, MAX_TEXT};
use crate::domain::timeline::{Event, Person};
use crate::domain::{Assignee, NewTask, News2, Task};
use crate::domain::{Category, NhsNumber, OutcomeCode, Permission, Priority, Status};
use crate::error::{AppError, AppResult};
use crate::outbox::endpoints::EndpointPolicy;
use crate::store::audit::{self, Action as AuditAction, Actor, Entry};
use crate::store::directory::{self, Staff};
use crate::store::events;
use crate::store::sessions;
use crate::store::tasks::{self, Cursor, Filter};
use crate::store::throttle::{self, Bucket};
use crate::store::{deliveries, notifications, DbConnection};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/me", web::get().to(me))
        .route("/me/password", web::post().to(change_password))
        .route("/tasks", web::get().to(list_tasks))
        .route("/tasks", web::post().to(raise_task))
        .route("/tasks/{id}", web::get().to(get_task))
        .route("/tasks/{id}/comments", web::get().to(list_comments))
        .route("/tasks/{id}/comments", web::post().to(add_comment))
        .route(
            "/tasks/{id}/notifications",
            web::get().to(task_notifications),
        )
        .route("/tasks/{id}/{action}", web::post().to(act_on_task))
        .route("/wards", web::get().to(list_wards))
        .route("/roles", web::get().to(list_roles))
        .route("/roles/{id}/hand-over", web::post().to(hand_over))
        .route("/roles/{id}/escalate", web::post().to(set_escalation))
        .route("/staff", web::get().to(list_staff))
        .route("/staff/{id}/deactivate", web::post().to(deactivate_staff))
        .route("/audit", web::get().to(audit_log))
        .route("/push/vapid-public-key", web::get().to(vapid_public_key))
        .route("/push-subscriptions", web::post().to(subscribe))
        .route("/push-subscriptions", web::get().to(my_devices))
        .route("/push-subscriptions/{id}", web::delete().to(unsubscribe))
        .route("/notifications", web::get().to(list_notifications))
        .route("/dashboard", web::get().to(dashboard));
}

/// `/healthz`: 200 when the database answers, the escalation tick has run within three of
/// its periods, and nothing due has waited longer than `[health] max_due_age_seconds`;
/// otherwise 503 with the reasons, for a load balancer and an outside monitor.
pub async fn health(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    use crate::domain::health::{problems, Readings};
    use crate::store::heartbeats::{self, REPAIRS, TICK};
    let started = state.app.started;
    let (readings, repairs) = state
        .store
        .read(move |c| {
            let readings = Readings {
                last_tick: heartbeats::last(c, TICK)?.map(|(at, _)| at),
                started,
                oldest_delivery: heartbeats::oldest_waiting_delivery(c)?,
                oldest_escalation: heartbeats::oldest_due_escalation(c)?,
            };
            Ok((
                readings,
                heartbeats::last(c, REPAIRS)?.map_or(0, |(_, n)| n),
            ))
        })
        .await?;
    let now = state.clock.now();
    let mut fires = state.config.schedule.after(&now);
    let period = match (fires.next(), fires.next()) {
        (Some(a), Some(b)) => b - a,
        _ => chrono::Duration::days(1),
    };
    let max_age = chrono::Duration::from_std(state.config.health.max_due_age)
        .unwrap_or(chrono::Duration::seconds(120));
    let reasons = problems(&readings, now, period, max_age);
    let body = json!({
        "status": if reasons.is_empty() { "ok" } else { "failing" },
        "reasons": reasons,
        "last_tick": readings.last_tick,
        "escalations_repaired": repairs,
    });
    Ok(if reasons.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    })
}

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
    let person = |id: &str, names: &HashMap<String, String>| Person {
        id: id.to_string(),
        name: names.get(id).cloned().unwrap_or_default(),
    };
    Ok(list
        .into_iter()
        .map(|t| TaskView {
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

async fn me(state: web::Data<AppState>, Caller(staff): Caller) -> AppResult<HttpResponse> {
    let id = staff.id.clone();
    let roles = state
        .store
        .read(move |c| {
            let held = directory::roles_held_by(c, &id)?;
            let refs: Vec<&str> = held.iter().map(String::as_str).collect();
            let names = directory::role_names(c, &refs)?;
            Ok(held
                .into_iter()
                .map(|r| json!({ "id": r, "name": names.get(&r).cloned().unwrap_or_default() }))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "staff": staff, "holds": roles })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RaiseBody {
    nhs_number: String,
    ward: String,
    bed: String,
    category: Category,
    description: String,
    priority: Priority,
    #[serde(default)]
    news2: Option<i32>,
    assignee: String,
}

fn unprocessable(e: impl ToString) -> AppError {
    AppError::Unprocessable(e.to_string())
}

impl RaiseBody {
    fn validate(self) -> AppResult<NewTask> {
        let nhs_number = NhsNumber::parse(&self.nhs_number)
            .map_err(|e| unprocessable(format!("nhs_number: {e}")))?;
        let news2 = self
            .news2
            .map(News2::new)
            .transpose()
            .map_err(unprocessable)?;
        Ok(NewTask {
            nhs_number,
            ward: required_text("ward", &self.ward, 100).map_err(unprocessable)?,
            bed: required_text("bed", &self.bed, MAX_BED).map_err(unprocessable)?,
            category: self.category,
            description: required_text("description", &self.description, MAX_DESCRIPTION)
                .map_err(unprocessable)?,
            priority: self.priority,
            news2,
            assignee: self.assignee,
        })
    }
}

async fn raise_task(
    state: web::Data<AppState>,
    auth: Credentials,
    body: web::Json<RaiseBody>,
) -> AppResult<HttpResponse> {
    // Checked after the credentials, so a caller who may not raise learns nothing more.
    let new = body.into_inner().validate();
    let now = state.clock.now();
    let view = state
        .app
        .run_then_read(
            move |c, ctx| {
                let staff = auth.staff(c, ctx.now)?;
                commands::raise(c, ctx, &staff, new?)
            },
            move |c, task| one_view(c, task, now),
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/tasks/{}", view.id)))
        .json(view))
}

async fn get_task(
    state: web::Data<AppState>,
    _caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let now = state.clock.now();
    let view = state
        .store
        .read(move |c| {
            let task = tasks::get(c, &id)?;
            one_view(c, task, now)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<String>,
    ward: Option<String>,
    priority: Option<String>,
    assignee: Option<String>,
    overdue: Option<bool>,
    after: Option<String>,
    limit: Option<i64>,
}

fn parse_list<T>(
    field: &str,
    value: &Option<String>,
    parse: fn(&str) -> Result<T, String>,
) -> AppResult<Vec<T>> {
    value
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse(s).map_err(|e| AppError::BadRequest(format!("{field}: {e}"))))
        .collect()
}

/// Role and staff ids a list filter `assignee=` stands for; `me` means me and my bleeps.
fn assignee_ids(conn: &mut DbConnection, key: &str, caller: &Staff) -> AppResult<Vec<String>> {
    if key == "me" {
        let mut ids = directory::roles_held_by(conn, &caller.id)?;
        ids.push(caller.id.clone());
        return Ok(ids);
    }
    if let Some(s) = directory::staff_by_id(conn, key)? {
        return Ok(vec![s.id]);
    }
    if let Some(r) = directory::find_role(conn, key)? {
        return Ok(vec![r.id]);
    }
    Err(AppError::BadRequest(format!(
        "assignee: {key:?} is neither \"me\", a staff id, nor an on-call role"
    )))
}

async fn list_tasks(
    state: web::Data<AppState>,
    auth: Credentials,
    params: web::Query<ListParams>,
) -> AppResult<HttpResponse> {
    let p = params.into_inner();
    let assignee = p.assignee.clone();
    // Checked after the credentials, so a caller who may not list learns nothing more.
    let filter = list_filter(p);
    let now = state.clock.now();
    let (list, next) = state
        .store
        .read(move |c| {
            let staff = auth.staff(c, now)?;
            let mut filter = filter?;
            if let Some(a) = assignee {
                filter.assignees = Some(assignee_ids(c, a.trim(), &staff)?);
            }
            let (list, next) = tasks::list(c, &filter, now)?;
            Ok((views(c, list, now)?, next))
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "tasks": list,
        "next": next.map(|c| c.encode()),
    })))
}

/// A list request's filter, or what is wrong with its parameters.
fn list_filter(p: ListParams) -> AppResult<Filter> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit is {limit}; give 1 to 200"
        )));
    }
    let after = match &p.after {
        Some(a) => Some(Cursor::decode(a).ok_or_else(|| {
            AppError::BadRequest(
                "after: not a cursor given by this API (use the `next` value)".into(),
            )
        })?),
        None => None,
    };
    Ok(Filter {
        statuses: parse_list("status", &p.status, Status::parse)?,
        priorities: parse_list("priority", &p.priority, Priority::parse)?,
        ward: p.ward,
        assignees: None,
        overdue: p.overdue,
        raised_by: None,
        escalated: false,
        after,
        limit,
    })
}

/// An optional JSON body: empty means "no details"; anything else must be valid JSON.
fn optional_body<T: serde::de::DeserializeOwned + Default>(
    req: &HttpRequest,
    body: &[u8],
) -> AppResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let ct = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(json_error(actix_web::error::JsonPayloadError::ContentType));
    }
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    outcome: Option<OutcomeBody>,
    reason: Option<String>,
    assignee: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeBody {
    code: OutcomeCode,
    text: String,
}

fn command(action: &str, body: ActionBody) -> AppResult<Command> {
    let reason = |why: &str| -> AppResult<String> {
        let r = body.reason.clone().unwrap_or_default();
        required_text("reason", &r, MAX_TEXT)
            .map_err(|_| unprocessable(format!("a reason is required to {why}")))
    };
    let no_extras = |allowed: &[&str]| -> AppResult<()> {
        let given = [
            ("outcome", body.outcome.is_some()),
            ("reason", body.reason.is_some()),
            ("assignee", body.assignee.is_some()),
        ];
        for (name, present) in given {
            if present && !allowed.contains(&name) {
                return Err(AppError::BadRequest(format!(
                    "{action} takes no field {name:?}"
                )));
            }
        }
        Ok(())
    };
    Ok(match action {
        "acknowledge" => {
            no_extras(&[])?;
            Command::Acknowledge
        }
        "start" => {
            no_extras(&[])?;
            Command::Start
        }
        "complete" => {
            no_extras(&["outcome"])?;
            let o = body.outcome.ok_or_else(|| {
                unprocessable("an outcome is required to complete: {\"outcome\": {\"code\": ..., \"text\": ...}}")
            })?;
            let text = required_text("outcome.text", &o.text, MAX_TEXT).map_err(unprocessable)?;
            Command::Complete { code: o.code, text }
        }
        "cancel" => {
            no_extras(&["reason"])?;
            Command::Cancel {
                reason: reason("cancel")?,
            }
        }
        "decline" => {
            no_extras(&["reason"])?;
            Command::Decline {
                reason: reason("decline")?,
            }
        }
        "reassign" => {
            no_extras(&["assignee", "reason"])?;
            let assignee = body
                .assignee
                .clone()
                .ok_or_else(|| unprocessable("assignee is required to reassign"))?;
            let reason = match &body.reason {
                Some(r) => Some(required_text("reason", r, MAX_TEXT).map_err(unprocessable)?),
                None => None,
            };
            Command::Reassign {
                to: assignee,
                reason,
            }
        }
        other => {
            return Err(AppError::NotFound(format!(
                "no action {other:?}: use acknowledge, start, complete, cancel, decline or reassign"
            )))
        }
    })
}

async fn act_on_task(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Credentials,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> AppResult<HttpResponse> {
    let (id, action) = path.into_inner();
    // Checked after the credentials, so a caller who may not act learns nothing more.
    let cmd = optional_body(&req, &body).and_then(|b| command(&action, b));
    let now = state.clock.now();
    let view = state
        .app
        .run_then_read(
            move |c, ctx| {
                let staff = auth.staff(c, ctx.now)?;
                commands::act(c, ctx, &id, &staff, cmd?)
            },
            move |c, task| one_view(c, task, now),
        )
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    text: String,
}

async fn add_comment(
    state: web::Data<AppState>,
    Caller(staff): Caller,
    id: web::Path<String>,
    body: web::Json<CommentBody>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let event = state
        .app
        .run(move |c, ctx| commands::comment(c, ctx, &id, &staff, &body.text))
        .await?;
    Ok(HttpResponse::Created().json(event))
}

async fn list_comments(
    state: web::Data<AppState>,
    _caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let thread = state
        .store
        .read(move |c| {
            tasks::get(c, &id)?;
            Ok(events::timeline(c, &id)?
                .into_iter()
                .filter(|e| e.kind == "commented")
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "comments": thread })))
}

async fn list_wards(state: web::Data<AppState>, _caller: Caller) -> AppResult<HttpResponse> {
    let wards = state.store.read(directory::list_wards).await?;
    Ok(HttpResponse::Ok().json(json!({ "wards": wards })))
}

async fn list_roles(state: web::Data<AppState>, _caller: Caller) -> AppResult<HttpResponse> {
    let roles = state
        .store
        .read(|c| {
            let roles = directory::list_roles(c)?;
            let mut out = Vec::new();
            for r in roles {
                let holders = directory::current_holders(c, &r.id)?;
                let refs: Vec<&str> = holders.iter().map(String::as_str).collect();
                let names = directory::staff_names(c, &refs)?;
                let held_by: Vec<Person> = holders
                    .iter()
                    .map(|h| Person { id: h.clone(), name: names.get(h).cloned().unwrap_or_default() })
                    .collect();
                out.push(json!({ "id": r.id, "name": r.name, "escalates_to": r.escalates_to, "held_by": held_by }));
            }
            Ok(out)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "roles": roles })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HandOverBody {
    to: String,
    #[serde(default)]
    share: bool,
}

async fn hand_over(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(staff): Caller,
    id: web::Path<String>,
    body: web::Json<HandOverBody>,
) -> AppResult<HttpResponse> {
    let role_key = id.into_inner();
    let HandOverBody { to: to_key, share } = body.into_inner();
    let client = client_address(&req, &state);
    let result = state
        .app
        .run(move |c, ctx| {
            let role = directory::find_role(c, &role_key)?
                .ok_or_else(|| AppError::NotFound(format!("no on-call role {role_key:?}")))?;
            let to = directory::staff_by_id(c, &to_key)?.ok_or_else(|| {
                AppError::Unprocessable(format!("to: no member of staff with id {to_key:?}"))
            })?;
            crate::app::roles::hand_over(c, ctx, &role, &to, share, HandedBy::Staff(&staff))?;
            audit::record(
                c,
                Entry {
                    actor: Actor::Staff(&staff.id),
                    action: AuditAction::HandedOver,
                    subject: Some(&role.id),
                    detail: json!({ "role": role.name, "to": to.id, "share": share }),
                    client: Some(&client),
                },
                ctx.now,
            )?;
            Ok(json!({ "role": role, "held_by": Person { id: to.id, name: to.name } }))
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

async fn list_staff(state: web::Data<AppState>, _caller: Caller) -> AppResult<HttpResponse> {
    let staff = state.store.read(directory::list_staff).await?;
    Ok(HttpResponse::Ok().json(json!({ "staff": staff })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalateBody {
    /// The next role (id or name), or null to end the chain here.
    to: Option<String>,
}

async fn set_escalation(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(staff): Caller,
    id: web::Path<String>,
    body: web::Json<EscalateBody>,
) -> AppResult<HttpResponse> {
    if !staff.can(Permission::Admin) {
        return Err(AppError::Forbidden(
            "only an admin may change escalation chains".into(),
        ));
    }
    let key = id.into_inner();
    let to = body.into_inner().to;
    let (client, now) = (client_address(&req, &state), state.clock.now());
    let role = state
        .store
        .write(move |c| {
            let role = directory::find_role(c, &key)?
                .ok_or_else(|| AppError::NotFound(format!("no on-call role {key:?}")))?;
            let next = match &to {
                Some(n) => Some(directory::find_role(c, n)?.ok_or_else(|| {
                    AppError::Unprocessable(format!("to: no on-call role {n:?}"))
                })?),
                None => None,
            };
            directory::set_escalation(c, &role, next.as_ref())?;
            audit::record(
                c,
                Entry {
                    actor: Actor::Staff(&staff.id),
                    action: AuditAction::EscalationSet,
                    subject: Some(&role.id),
                    detail: json!({ "role": role.name, "to": next.as_ref().map(|n| &n.name) }),
                    client: Some(&client),
                },
                now,
            )?;
            directory::role_by_id(c, &role.id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(role))
}

async fn vapid_public_key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "public_key": state.vapid_public_key }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionKeys {
    p256dh: String,
    auth: String,
}

/// The browser's `PushSubscription.toJSON()`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SubscriptionBody {
    endpoint: String,
    keys: SubscriptionKeys,
    #[serde(default)]
    expiration_time: Option<serde_json::Value>,
}

fn check_key(field: &str, value: &str, len: usize) -> AppResult<()> {
    let bytes = crate::outbox::push::decode_key(value)
        .map_err(|_| unprocessable(format!("keys.{field} is not base64url")))?;
    if bytes.len() != len {
        return Err(unprocessable(format!(
            "keys.{field} is {} bytes; a browser gives {len}",
            bytes.len()
        )));
    }
    Ok(())
}

async fn subscribe(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(staff): Caller,
    body: web::Json<SubscriptionBody>,
) -> AppResult<HttpResponse> {
    let b = body.into_inner();
    let _ = b.expiration_time;
    let endpoint = b.endpoint.trim().to_string();
    check_key("p256dh", &b.keys.p256dh, 65)?;
    check_key("auth", &b.keys.auth, 16)?;
    EndpointPolicy::of(&state.config.push)
        .check(&endpoint)
        .await
        .map_err(unprocessable)?;
    let ua = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect::<String>());
    let now = state.clock.now();
    let max = state.config.security.max_devices;
    let id = state
        .store
        .write(move |c| {
            notifications::room_for_device(c, &staff.id, &endpoint, max)?;
            notifications::subscribe(
                c,
                &staff.id,
                &endpoint,
                &b.keys.p256dh,
                &b.keys.auth,
                ua.as_deref(),
                now,
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(json!({ "id": id })))
}

/// A device as its owner sees it. Whatever the push service answered stays in the log:
/// echoing it would tell the caller what is listening at an address.
async fn my_devices(state: web::Data<AppState>, Caller(staff): Caller) -> AppResult<HttpResponse> {
    let devices = state
        .store
        .read(move |c| notifications::devices(c, &staff.id))
        .await?;
    let list: Vec<_> = devices
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id,
                "endpoint_host": d.endpoint.split('/').nth(2).unwrap_or(""),
                "user_agent": d.user_agent,
                "registered_at": crate::store::from_db(d.created_at),
                "last_success_at": d.last_success_at.map(crate::store::from_db),
                "failing": d.last_error.is_some(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "devices": list })))
}

async fn unsubscribe(
    state: web::Data<AppState>,
    Caller(staff): Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    state
        .store
        .write(move |c| notifications::unsubscribe(c, &staff.id, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationParams {
    status: Option<String>,
    limit: Option<i64>,
}

/// Deliveries across tasks, e.g. `?status=failed`: for those who watch the wards.
async fn list_notifications(
    state: web::Data<AppState>,
    Caller(staff): Caller,
    params: web::Query<NotificationParams>,
) -> AppResult<HttpResponse> {
    if !staff.watches_wards() {
        return Err(AppError::Forbidden(
            "delivery reports are for bed managers, coordinators and admins".into(),
        ));
    }
    let status = match &params.status {
        Some(s) => {
            Some(Delivery::parse(s).map_err(|e| AppError::BadRequest(format!("status: {e}")))?)
        }
        None => None,
    };
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit is {limit}; give 1 to 500"
        )));
    }
    let list = state
        .store
        .read(move |c| deliveries::notifications(c, None, status, limit))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "notifications": list })))
}

async fn task_notifications(
    state: web::Data<AppState>,
    _caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let list = state
        .store
        .read(move |c| {
            tasks::get(c, &id)?;
            deliveries::notifications(c, Some(&id), None, 500)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "notifications": list })))
}

/// The escalation dashboard's figures, for systems (the page shows the same).
async fn dashboard(state: web::Data<AppState>, auth: Credentials) -> AppResult<HttpResponse> {
    let now = state.clock.now();
    let figures = state.store.figures.clone();
    let body = state
        .store
        .read(move |c| {
            if !auth.staff(c, now)?.watches_wards() {
                return Err(AppError::Forbidden(
                    "the dashboard is for bed managers, coordinators and admins".into(),
                ));
            }
            let d = crate::store::dashboard::load(c, now, &figures)?;
            let late: Vec<_> = d
                .late
                .iter()
                .map(|l| {
                    json!({
                        "task_id": l.task.id, "ward": l.task.ward, "bed": l.task.bed,
                        "priority": l.task.priority, "category": l.task.category,
                        "escalation_level": l.task.escalation_level, "overdue_minutes": l.overdue_minutes,
                    })
                })
                .collect();
            let per_hour: Vec<_> = d
                .escalations_per_hour
                .iter()
                .map(|(hour, n)| json!({ "hour_utc": hour, "escalations": n }))
                .collect();
            Ok(json!({ "wards": d.wards, "late": late, "escalations_per_hour": per_hour, "failed_deliveries": d.failed }))
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// Deactivates a leaver: their sessions, API token, devices and bleeps end at once.
async fn deactivate_staff(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(admin): Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    if !admin.can(Permission::Admin) {
        return Err(AppError::Forbidden(
            "only an admin may deactivate staff".into(),
        ));
    }
    let id = id.into_inner();
    if id == admin.id {
        return Err(AppError::Unprocessable(
            "you cannot deactivate yourself: ask another admin".into(),
        ));
    }
    let client = client_address(&req, &state);
    let done = state
        .app
        .run(move |c, ctx| {
            crate::app::staff::deactivate(c, ctx, &id, Actor::Staff(&admin.id), Some(&client))
        })
        .await?;
    Ok(HttpResponse::Ok().json(done))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    action: Option<String>,
    limit: Option<i64>,
}

/// The audit log, newest first: for admins.
async fn audit_log(
    state: web::Data<AppState>,
    Caller(staff): Caller,
    params: web::Query<AuditParams>,
) -> AppResult<HttpResponse> {
    if !staff.can(Permission::Admin) {
        return Err(AppError::Forbidden("the audit log is for admins".into()));
    }
    let p = params.into_inner();
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit is {limit}; give 1 to 1000"
        )));
    }
    let action = match p.action {
        Some(a) => Some(
            AuditAction::parse(a.trim())
                .map_err(|e| AppError::BadRequest(format!("action: {e}")))?,
        ),
        None => None,
    };
    let entries = state
        .store
        .read(move |c| audit::list(c, limit, action.map(AuditAction::code)))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "entries": entries })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// Changes the caller's own password: the current one must be given (counted like a
/// sign-in attempt), and every other session of theirs ends.
async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(staff): Caller,
    body: web::Json<PasswordBody>,
) -> AppResult<HttpResponse> {
    let PasswordBody {
        current_password,
        new_password,
    } = body.into_inner();
    // A new password that will not do is refused before anything is counted.
    sessions::check_new_password(&new_password)?;
    let email = staff.email.clone().ok_or_else(|| {
        AppError::Unprocessable("you have no email address, so no password: ask an admin".into())
    })?;
    let (now, client) = (state.clock.now(), client_address(&req, &state));
    let limits = &state.config.security;
    let window =
        chrono::Duration::from_std(limits.lockout).unwrap_or(chrono::Duration::minutes(15));
    let account = Bucket::account(&email, limits.failures_per_account);
    let counted = {
        let (account, email) = (account.clone(), email.clone());
        state
            .store
            .write(move |c| {
                let buckets = [account];
                if let Some(wait) = throttle::locked_for(c, &buckets, now)? {
                    return Ok(Err(wait));
                }
                throttle::attempt(c, &buckets, window, now)?;
                Ok(Ok(sessions::password_of(c, &email)?.map(|(_, hash)| hash)))
            })
            .await?
    };
    let hash = match counted {
        Ok(hash) => hash,
        Err(wait) => {
            let mut res = AppError::TooManyRequests(format!(
                "too many wrong passwords: try again in {} minutes",
                (wait.num_seconds() + 59) / 60
            ))
            .error_response();
            res.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                wait.num_seconds().max(1).into(),
            );
            return Ok(res);
        }
    };
    let checked = web::block(move || {
        let right = sessions::verify_password(hash.as_deref(), &current_password);
        (right, right.then(|| sessions::hash_password(&new_password)))
    })
    .await
    .map_err(|e| AppError::Internal(format!("password check: {e}")))?;
    let keep = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let ended = state
        .store
        .write(move |c| {
            let (subject, action) = match &checked {
                (true, _) => (staff.id.as_str(), AuditAction::PasswordSet),
                (false, _) => (email.as_str(), AuditAction::SignInFailed),
            };
            let entry = Entry {
                actor: Actor::Staff(&staff.id),
                action,
                subject: Some(subject),
                detail: json!({ "via": "password change" }),
                client: Some(&client),
            };
            let (true, Some(new_hash)) = checked else {
                audit::record(c, entry, now)?;
                return Ok(Err(()));
            };
            let new_hash = new_hash?;
            sessions::store_password(c, &staff.id, &new_hash, keep.as_deref())?;
            throttle::clear(c, &account)?;
            audit::record(c, entry, now)?;
            Ok(Ok(()))
        })
        .await?;
    ended.map_err(|()| AppError::Forbidden("the current password is not right".into()))?;
    Ok(HttpResponse::NoContent().finish())
}

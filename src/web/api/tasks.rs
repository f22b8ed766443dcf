//! Tasks: raise, read, list, the status changes and the thread.
use super::views::{one_view, views};
use crate::app::tasks::{self as commands, Command};
use crate::domain::task::{required_text, MAX_BED, MAX_DESCRIPTION, MAX_TEXT};
use crate::domain::{Category, NhsNumber, OutcomeCode, Priority, Status};
use crate::domain::{NewTask, News2};
use crate::error::{AppError, AppResult};
use crate::store::directory::{self, Staff};
use crate::store::events;
use crate::store::tasks::{self, Cursor, Filter};
use crate::store::DbConnection;
use crate::web::auth::{Caller, Credentials};
use crate::web::errors::json_error;
use crate::web::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RaiseBody {
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

pub(super) fn unprocessable(e: impl ToString) -> AppError {
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

pub(super) async fn raise_task(
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

pub(super) async fn get_task(
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
pub(super) struct ListParams {
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

pub(super) async fn list_tasks(
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
pub(super) struct ActionBody {
    outcome: Option<OutcomeBody>,
    reason: Option<String>,
    assignee: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OutcomeBody {
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

pub(super) async fn act_on_task(
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
pub(super) struct CommentBody {
    text: String,
}

pub(super) async fn add_comment(
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

pub(super) async fn list_comments(
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

//! Tasks: raise, read, list, the status changes and the thread.
use super::views::{one_view, raised_view, told_view, views};
use super::views::{Comments, TaskList, TaskView};
use crate::app::tasks::{self as commands, Actor, Command};
use crate::app::Ctx;
use crate::domain::task::{required_text, MAX_BED, MAX_DESCRIPTION, MAX_TEXT};
use crate::domain::timeline::Event;
use crate::domain::Action;
use crate::domain::{Category, NhsNumber, OutcomeCode, Priority, Status};
use crate::domain::{NewTask, News2};
use crate::error::{AppError, AppResult};
use crate::store::directory::{self, Staff};
use crate::store::events;
use crate::store::tasks::{self, Cursor, Filter};
use crate::store::DbConnection;
use crate::web::auth::{Caller, Credentials};
use crate::web::errors::json_error;
use crate::web::errors::ErrorBody;
use crate::web::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// A new task.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RaiseBody {
    /// Ten digits with a valid check digit; spaces are allowed.
    #[schema(example = "999 000 0018")]
    nhs_number: String,
    /// A ward's name, as `GET /api/v1/wards` lists them.
    ward: String,
    bed: String,
    category: Category,
    description: String,
    priority: Priority,
    /// The NEWS2 score, 0 to 20, when there is one.
    #[serde(default)]
    news2: Option<i32>,
    /// An on-call role (id or name) or a member of staff (id).
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

/// Runs a task's command as the caller. With a staff token the command's own first read
/// checks it (see [`Actor`]: a statement fewer); any other credentials are checked first.
/// An input that is not valid is answered after the credentials are checked, so a caller
/// who may not act learns nothing more.
fn as_caller<I, T>(
    c: &mut DbConnection,
    ctx: &Ctx,
    auth: &Credentials,
    input: AppResult<I>,
    command: impl FnOnce(&mut DbConnection, Actor, I) -> AppResult<T>,
) -> AppResult<T> {
    let input = match input {
        Ok(input) => input,
        Err(e) => {
            auth.staff(c, ctx.now)?;
            return Err(e);
        }
    };
    let Some(token) = auth.staff_token() else {
        let staff = auth.staff(c, ctx.now)?;
        return command(c, Actor::Known(&staff), input);
    };
    let otherwise = |c: &mut DbConnection| auth.staff(c, ctx.now);
    let actor = Actor::Token {
        token,
        otherwise: &otherwise,
    };
    command(c, actor, input)
}

/// Raises a task: it is assigned, notified and escalated until someone acknowledges it.
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks",
    request_body = RaiseBody,
    responses(
        (status = 201, description = "The task, with its timeline", body = TaskView,
            headers(("Location" = String, description = "/api/v1/tasks/{id}"))),
        (status = 403, description = "The caller may not raise tasks", body = ErrorBody),
        (status = 422, description = "A field is not valid, or the assignee is unknown", body = ErrorBody),
    ))]
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
        .run_whole_then_read(
            move |c, ctx| {
                as_caller(c, ctx, &auth, new, |c, by, new| {
                    commands::raise_told(c, ctx, by, new)
                })
            },
            move |c, told| raised_view(c, told, now),
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/tasks/{}", view.id)))
        .json(view))
}

/// One task, with its timeline.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, description = "The task's id")),
    responses(
        (status = 200, description = "The task, with its timeline", body = TaskView),
        (status = 404, description = "No such task", body = ErrorBody),
    ))]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    /// Statuses, comma-separated, e.g. `requested,accepted`.
    status: Option<String>,
    /// A ward's name.
    ward: Option<String>,
    /// Priorities, comma-separated, e.g. `stat,asap`.
    priority: Option<String>,
    /// `me` (the caller and the bleeps they hold), a staff id, or an on-call role.
    assignee: Option<String>,
    /// Only tasks past (true) or within (false) their acknowledgement deadline.
    overdue: Option<bool>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
    /// 1 to 200; 50 when not given.
    #[param(minimum = 1, maximum = 200)]
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

/// Tasks, most urgent first, a page at a time.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks",
    params(ListParams),
    responses(
        (status = 200, description = "A page of tasks", body = TaskList),
        (status = 400, description = "A parameter is not valid", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(TaskList {
        tasks: list,
        next: next.map(|c| c.encode()),
    }))
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

/// The details an action takes: `complete` needs `outcome`; `cancel` and `decline` need
/// `reason`; `reassign` needs `assignee` and may give `reason`; `acknowledge` and `start`
/// take none (send no body). A field the action does not take is refused.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionBody {
    outcome: Option<OutcomeBody>,
    reason: Option<String>,
    /// The new assignee: an on-call role (id or name) or a member of staff (id).
    assignee: Option<String>,
}

/// How the task ended.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OutcomeBody {
    code: OutcomeCode,
    /// Needed for `unable` and `referred`; optional for the others, whose code says enough.
    #[serde(default)]
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
            let text = o.code.checked_text(&o.text).map_err(unprocessable)?;
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

/// Acknowledges, starts, completes, cancels, declines or reassigns a task.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/{action}", tag = "tasks",
    params(
        ("id" = String, Path, description = "The task's id"),
        ("action" = Action, Path, description = "What to do"),
    ),
    request_body(content = Option<ActionBody>, content_type = "application/json",
        description = "Needed by complete, cancel, decline and reassign; empty for the others"),
    responses(
        (status = 200, description = "The task as it is now, with its timeline", body = TaskView),
        (status = 400, description = "A field this action does not take, or a body that is not JSON", body = ErrorBody),
        (status = 403, description = "The caller may not do this to this task", body = ErrorBody),
        (status = 404, description = "No such task or action", body = ErrorBody),
        (status = 409, description = "The task's status does not allow it (the body says the current status)", body = ErrorBody),
        (status = 422, description = "A required detail is missing or not valid", body = ErrorBody),
    ))]
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
        .run_whole_then_read(
            move |c, ctx| {
                as_caller(c, ctx, &auth, cmd, |c, by, cmd| {
                    commands::act_told(c, ctx, &id, by, cmd)
                })
            },
            move |c, told| told_view(c, told, now),
        )
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// A comment on a task's thread.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CommentBody {
    text: String,
}

/// Adds a comment to a task's thread.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/comments", tag = "tasks",
    params(("id" = String, Path, description = "The task's id")),
    request_body = CommentBody,
    responses(
        (status = 201, description = "The comment, as an event of the task's timeline", body = Event),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 422, description = "The text is empty or too long", body = ErrorBody),
    ))]
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

/// A task's comments, oldest first.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/comments", tag = "tasks",
    params(("id" = String, Path, description = "The task's id")),
    responses(
        (status = 200, description = "The thread", body = Comments),
        (status = 404, description = "No such task", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(Comments { comments: thread }))
}

//! One task's page, for everyone it concerns: its details, who was bleeped and who saw
//! it, its timeline and thread; for coordinators, reassign and cancel (each confirmed).
use super::card::{self, Card};
use super::{html, see_other, time, Nav, PageError, PageResult, PageUser};
use crate::app::tasks::{self as commands, Command};
use crate::domain::task::{required_text, MAX_TEXT};
use crate::domain::{Assignee, Permission, Task};
use crate::error::{AppError, AppResult};
use crate::store::deliveries::{self, NotificationView};
use crate::store::directory::{self, Staff};
use crate::store::{tasks, DbConnection};
use crate::web::api::one_view;
use crate::web::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, ResponseError};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::HashMap;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tasks/{id}", web::get().to(show))
        .route("/tasks/{id}/comment", web::post().to(reply))
        .route("/tasks/{id}/reassign", web::post().to(reassign))
        .route("/tasks/{id}/cancel", web::post().to(cancel));
}

/// Who may read a task's page: coordinators, bed managers and admins; and the people it
/// concerns: who raised it, who it is for (or holds its bleep now), who was bleeped about
/// it and who acknowledged it.
fn may_see(c: &mut DbConnection, task: &Task, who: &Staff, bleeped: &[&str]) -> AppResult<bool> {
    let watcher = [
        Permission::Coordinator,
        Permission::BedManager,
        Permission::Admin,
    ];
    if watcher.iter().any(|p| who.can(*p))
        || task.raised_by == who.id
        || task.acknowledged_by.as_deref() == Some(who.id.as_str())
        || bleeped.contains(&who.id.as_str())
    {
        return Ok(true);
    }
    Ok(match &task.assignee {
        Assignee::Staff(s) => *s == who.id,
        Assignee::Role(r) => directory::current_holders(c, r)?.contains(&who.id),
    })
}

/// One bleep sent about the task: to whom, how, and what became of it.
pub struct Reached {
    who: String,
    channel: String,
    level: i32,
    status: String,
    sent: String,
    shown: String,
}

/// One event of the timeline, in the hospital's time.
pub struct Line {
    at: String,
    who: String,
    what: String,
    detail: String,
}

pub struct Choice {
    id: String,
    name: String,
}

/// A coordinator's change waiting for its confirmation.
pub struct Confirm {
    action: &'static str,
    question: String,
    assignee: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    nav: Option<Nav>,
    csrf: String,
    card: Card,
    due_at: String,
    acknowledged: String,
    reached: Vec<Reached>,
    timeline: Vec<Line>,
    may_reply: bool,
    coordinator: bool,
    open: bool,
    roles: Vec<Choice>,
    clinicians: Vec<Choice>,
    /// A problem with the last form sent: (which form, what to do).
    error: Option<(&'static str, String)>,
    confirm: Option<Confirm>,
}

/// Everything the page shows, read in one go.
struct Loaded {
    view: crate::web::api::TaskView,
    open: bool,
    sent: Vec<NotificationView>,
    roles: Vec<Choice>,
    clinicians: Vec<Choice>,
    names: HashMap<String, String>,
}

async fn load(state: &AppState, user: &PageUser, id: String) -> Result<Loaded, PageError> {
    let me = user.0.staff.clone();
    let now = state.clock.now();
    state
        .store
        .read(move |c| {
            let task = tasks::get(c, &id)?;
            let sent = deliveries::notifications(c, Some(&id), None, 200)?;
            let bleeped: Vec<&str> = sent.iter().map(|n| n.recipient.id.as_str()).collect();
            if !may_see(c, &task, &me, &bleeped)? {
                return Err(AppError::Forbidden(
                    "This task's page is for the people it concerns: who raised it, who it is for, who was bleeped about it, and coordinators, bed managers and admins.".into(),
                ));
            }
            let open = task.status.is_open();
            let mut names = HashMap::new();
            let roles: Vec<Choice> = directory::list_roles(c)?
                .into_iter()
                .map(|r| Choice { id: r.id, name: r.name })
                .collect();
            let clinicians: Vec<Choice> = directory::list_staff(c)?
                .into_iter()
                .filter(|s| s.can(Permission::Clinician))
                .map(|s| Choice { id: s.id, name: s.name })
                .collect();
            for ch in roles.iter().chain(&clinicians) {
                names.insert(ch.id.clone(), ch.name.clone());
            }
            let view = one_view(c, task, now)?;
            Ok(Loaded {
                view,
                open,
                sent,
                roles,
                clinicians,
                names,
            })
        })
        .await
        .map_err(PageError::from)
}

/// What an event adds in words: a reason, a reply, an outcome, a new assignee.
fn event_detail(e: &crate::domain::timeline::Event, names: &HashMap<String, String>) -> String {
    let Some(d) = &e.detail else {
        return String::new();
    };
    let name = |a: &serde_json::Value| {
        let id = a["role"].as_str().or(a["staff"].as_str()).unwrap_or("");
        names.get(id).cloned().unwrap_or_default()
    };
    let mut parts = Vec::new();
    if e.kind == "reassigned" {
        parts.push(format!("to {}", name(&d["to"])));
    }
    for key in ["text", "reason"] {
        if let Some(t) = d[key].as_str() {
            parts.push(t.to_string());
        }
    }
    if let Some(t) = d["outcome"]["text"].as_str() {
        parts.push(t.to_string());
    }
    parts.join(": ")
}

fn render(
    state: &AppState,
    user: &PageUser,
    l: Loaded,
    status: StatusCode,
    error: Option<(&'static str, String)>,
    confirm: Option<Confirm>,
) -> PageResult {
    let (zone, now) = (state.app.policy.zone, state.clock.now());
    let at = |t: DateTime<Utc>| time::clock(&zone, t, now);
    let timeline = l
        .view
        .timeline
        .iter()
        .flatten()
        .map(|e| Line {
            at: at(e.at),
            who: e
                .actor
                .as_ref()
                .map_or("Bleepless".into(), |a| a.name.clone()),
            what: crate::fhir::mapping::event_label(&e.kind).to_string(),
            detail: event_detail(e, &l.names),
        })
        .collect();
    let mut reached: Vec<Reached> = l
        .sent
        .iter()
        .map(|n| Reached {
            who: n.recipient.name.clone(),
            channel: n.channel.clone(),
            level: n.level,
            status: n.status.clone(),
            sent: n.sent_at.map(at).unwrap_or_default(),
            shown: n.shown_on.first().map(|s| at(s.at)).unwrap_or_default(),
        })
        .collect();
    reached.reverse();
    let acknowledged = match (&l.view.acknowledged_by, l.view.acknowledged_at) {
        (Some(p), Some(t)) => format!("{} at {}", p.name, at(t)),
        _ => String::new(),
    };
    let names: Vec<String> = card::reached_names(&l.sent, &l.view);
    let due_at = at(l.view.ack_deadline);
    let s = &user.0.staff;
    let page = TaskPage {
        nav: user.nav(),
        csrf: user.0.csrf.clone(),
        card: Card::new(l.view, &names, &zone, now),
        due_at,
        acknowledged,
        reached,
        timeline,
        may_reply: s.can(Permission::Coordinator)
            || s.can(Permission::Clinician)
            || s.can(Permission::Admin),
        coordinator: s.can(Permission::Coordinator) || s.can(Permission::Admin),
        open: l.open,
        roles: l.roles,
        clinicians: l.clinicians,
        error,
        confirm,
    };
    Ok(html(status, &page))
}

async fn show(state: web::Data<AppState>, user: PageUser, id: web::Path<String>) -> PageResult {
    let l = load(&state, &user, id.into_inner()).await?;
    render(&state, &user, l, StatusCode::OK, None, None)
}

#[derive(Deserialize)]
struct ReplyForm {
    csrf: String,
    #[serde(default)]
    text: String,
}

async fn reply(
    state: web::Data<AppState>,
    user: PageUser,
    id: web::Path<String>,
    form: web::Form<ReplyForm>,
) -> PageResult {
    let f = form.into_inner();
    user.check_csrf(&f.csrf)?;
    let id = id.into_inner();
    // Only someone who may read the task may write in its thread.
    load(&state, &user, id.clone()).await?;
    let (task, staff) = (id.clone(), user.0.staff.clone());
    let done = state
        .app
        .run(move |c, ctx| commands::comment(c, ctx, &task, &staff, &f.text))
        .await;
    match done {
        Ok(_) => see_other(&format!("/tasks/{id}#thread")),
        Err(AppError::Unprocessable(_)) => {
            let l = load(&state, &user, id).await?;
            let msg = "Write your reply (up to 2,000 characters).".to_string();
            render(
                &state,
                &user,
                l,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(("reply", msg)),
                None,
            )
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct ChangeForm {
    csrf: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    reason: String,
    /// "yes" once the coordinator has seen the confirmation step.
    #[serde(default)]
    confirm: String,
}

async fn reassign(
    state: web::Data<AppState>,
    user: PageUser,
    id: web::Path<String>,
    form: web::Form<ChangeForm>,
) -> PageResult {
    change(
        &state,
        &user,
        id.into_inner(),
        form.into_inner(),
        "reassign",
    )
    .await
}

async fn cancel(
    state: web::Data<AppState>,
    user: PageUser,
    id: web::Path<String>,
    form: web::Form<ChangeForm>,
) -> PageResult {
    change(&state, &user, id.into_inner(), form.into_inner(), "cancel").await
}

/// Checks a coordinator's reassign or cancel, asks for confirmation, then runs the same
/// command the API runs. A problem is shown beside the form, never as a server error.
async fn change(
    state: &AppState,
    user: &PageUser,
    id: String,
    f: ChangeForm,
    action: &'static str,
) -> PageResult {
    user.check_csrf(&f.csrf)?;
    user.require(
        &[Permission::Coordinator, Permission::Admin],
        "Reassigning and cancelling tasks",
    )?;
    let l = load(state, user, id.clone()).await?;
    let reason = f.reason.trim().to_string();
    let checked = match action {
        "cancel" => required_text("reason", &reason, MAX_TEXT)
            .map(|reason| Command::Cancel { reason })
            .map_err(|_| {
                "Give a reason for cancelling: whoever was bleeped will see it.".to_string()
            }),
        _ if f.assignee.trim().is_empty() => {
            Err("Choose who the task should go to: a bleep or a person.".to_string())
        }
        _ if reason.chars().count() > MAX_TEXT => {
            Err("The reason can be up to 2,000 characters.".to_string())
        }
        _ => Ok(Command::Reassign {
            to: f.assignee.trim().to_string(),
            reason: (!reason.is_empty()).then_some(reason.clone()),
        }),
    };
    let command = match checked {
        Ok(c) => c,
        Err(msg) => {
            return render(
                state,
                user,
                l,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some((action, msg)),
                None,
            )
        }
    };
    if f.confirm != "yes" {
        let question = match &command {
            Command::Cancel { .. } => "Cancel this task? Nobody will be bleeped about it again.".to_string(),
            _ => format!(
                "Reassign this task to {}? They will be bleeped now and its time to acknowledge starts again.",
                l.names.get(f.assignee.trim()).cloned().unwrap_or_else(|| f.assignee.trim().to_string())
            ),
        };
        let confirm = Confirm {
            action,
            question,
            assignee: f.assignee.trim().to_string(),
            reason,
        };
        return render(state, user, l, StatusCode::OK, None, Some(confirm));
    }
    let staff = user.0.staff.clone();
    let task = id.clone();
    let done = state
        .app
        .run(move |c, ctx| commands::act(c, ctx, &task, &staff, command))
        .await;
    match done {
        Ok(_) => see_other(&format!("/tasks/{id}")),
        Err(e @ (AppError::Unprocessable(_) | AppError::Conflict { .. })) => {
            let status = e.status_code();
            let l = load(state, user, id).await?;
            render(
                state,
                user,
                l,
                status,
                Some((action, e.public_message())),
                None,
            )
        }
        Err(e) => Err(e.into()),
    }
}

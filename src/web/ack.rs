//! One-click acknowledge from an email or a notification. Opening the link (GET) only shows
//! the task and a button, because mail scanners open links by themselves; pressing it (POST)
//! acknowledges. A link works once, for the person it was sent to, until it expires.
use super::AppState;
use crate::app::tasks::{self as commands, Actor, Command};
use crate::domain::{Category, Priority};
use crate::error::{AppError, AppResult};
use crate::store::schema::used_ack_links;
use crate::store::tasks;
use crate::store::{directory, to_db};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use diesel::prelude::*;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ack/{token}", web::get().to(show))
        .route("/ack/{token}", web::post().to(acknowledge))
        .route("/a/{code}", web::get().to(short_link));
}

/// A text message's short link: stands for the text's outbox row, whose task, recipient and
/// time make the same claim an emailed link carries. Opening it leads to that link's page.
async fn short_link(state: web::Data<AppState>, code: web::Path<String>) -> HttpResponse {
    use crate::outbox::links::{AckClaim, Purpose};
    use crate::outbox::notification::LINK_LIFETIME_HOURS;
    let id = match state.links.open(Purpose::Ack, &code, 1) {
        Ok(mut ids) => ids.remove(0),
        Err(e) => return error_page(&AppError::Forbidden(e.to_string())),
    };
    let row =
        match state
            .store
            .read(move |c| crate::store::outbox::get(c, &id))
            .await
        {
            Ok(Some(row)) => row,
            Ok(None) => return error_page(&AppError::NotFound(
                "this acknowledge link's message is no longer known; open Bleepless to acknowledge"
                    .into(),
            )),
            Err(e) => return error_page(&e),
        };
    let sent = crate::store::from_db(row.created_at);
    let claim = AckClaim {
        n: row.id,
        task: row.task_id,
        staff: row.recipient_id.unwrap_or_default(),
        exp: (sent + chrono::Duration::hours(LINK_LIFETIME_HOURS)).timestamp(),
    };
    let token = state.links.sign(&claim);
    HttpResponse::SeeOther()
        .insert_header(("Location", format!("/ack/{token}")))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .finish()
}

pub struct TaskSummary {
    pub priority: Priority,
    pub category: Category,
    pub ward: String,
    pub bed: String,
}

#[derive(Template)]
#[template(path = "ack.html")]
struct AckPage {
    title: String,
    task: Option<TaskSummary>,
    message: String,
    show_button: bool,
}

fn page(status: StatusCode, p: AckPage) -> HttpResponse {
    match p.render() {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .insert_header(("Referrer-Policy", "no-referrer"))
            .body(html),
        Err(e) => AppError::Internal(format!("ack page: {e}")).error_response(),
    }
}

fn error_page(e: &AppError) -> HttpResponse {
    page(
        e.status_code(),
        AckPage {
            title: "Cannot acknowledge".into(),
            task: None,
            message: e.public_message(),
            show_button: false,
        },
    )
}

fn wants_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

async fn show(state: web::Data<AppState>, token: web::Path<String>) -> HttpResponse {
    let now = state.clock.now();
    let claim = match state.links.verify(&token, now) {
        Ok(c) => c,
        Err(e) => return error_page(&AppError::Forbidden(e.to_string())),
    };
    let task = state
        .store
        .read(move |c| {
            let t = tasks::get(c, &claim.task)?;
            let by = match &t.acknowledged_by {
                Some(id) => directory::staff_by_id(c, id)?.map(|s| s.name),
                None => None,
            };
            Ok((t, by))
        })
        .await;
    let zone = state.app.policy.zone;
    match task {
        Ok((t, by)) => {
            let waiting = t.status == crate::domain::Status::Requested;
            // A used or late link says who has the task and since when, not "Acknowledge?".
            let (title, message) = match (waiting, by, t.acknowledged_at) {
                (true, _, _) => (
                    "Acknowledge this task?".to_string(),
                    "It is waiting for acknowledgement.".to_string(),
                ),
                (false, Some(name), Some(at)) => (
                    "Already acknowledged".to_string(),
                    format!(
                        "{name} acknowledged it at {}. Status now: {}.",
                        zone.local(at).format("%H:%M on %a %-d %b"),
                        t.status
                    ),
                ),
                (false, _, _) => (
                    "Nothing to acknowledge".to_string(),
                    format!("Status now: {}.", t.status),
                ),
            };
            page(
                StatusCode::OK,
                AckPage {
                    title,
                    message,
                    show_button: waiting,
                    task: Some(TaskSummary {
                        priority: t.priority,
                        category: t.category,
                        ward: t.ward,
                        bed: t.bed,
                    }),
                },
            )
        }
        Err(e) => error_page(&e),
    }
}

async fn acknowledge(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    let json = wants_json(&req);
    match ack_by_link(&state, &token).await {
        Ok(view) if json => HttpResponse::Ok().json(view),
        Ok(view) => page(
            StatusCode::OK,
            AckPage {
                title: "Acknowledged".into(),
                message: format!(
                    "You have acknowledged this task ({}, {} bed {}). The ward can see it.",
                    view.category, view.ward, view.bed
                ),
                show_button: false,
                task: None,
            },
        ),
        Err(e) if json => e.error_response(),
        Err(e) => error_page(&e),
    }
}

async fn ack_by_link(state: &AppState, token: &str) -> AppResult<super::api::TaskView> {
    let now = state.clock.now();
    let claim = state
        .links
        .verify(token, now)
        .map_err(|e| AppError::Forbidden(e.to_string()))?;
    let view = state
        .app
        .run(move |c, ctx| {
            let used: i64 = used_ack_links::table.find(&claim.n).count().get_result(c)?;
            if used > 0 {
                return Err(AppError::conflict(
                    "this acknowledge link has already been used",
                    serde_json::json!({}),
                ));
            }
            diesel::insert_into(used_ack_links::table)
                .values((
                    used_ack_links::notification_id.eq(&claim.n),
                    used_ack_links::used_at.eq(to_db(now)),
                ))
                .execute(c)?;
            let who = directory::staff_by_id(c, &claim.staff)?
                .filter(|s| s.active)
                .ok_or_else(|| {
                    AppError::Forbidden("this link's recipient is no longer active".into())
                })?;
            let told = commands::act_told(
                c,
                ctx,
                &claim.task,
                Actor::Known(&who),
                Command::Acknowledge,
            )?;
            tracing::info!(task_id = %claim.task, staff_id = %who.id, "acknowledged by link");
            super::api::told_view(c, told, now)
        })
        .await?;
    Ok(view)
}

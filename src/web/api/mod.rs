//! The JSON API under /api/v1, for systems and for the pages' scripts: one file per area.
mod deliveries;
mod devices;
mod people;
mod tasks;
mod views;

use crate::error::AppResult;
use crate::web::AppState;
use actix_web::{web, HttpResponse};
use deliveries::{dashboard, list_notifications, list_record_deliveries, task_notifications};
use devices::{my_devices, receipt, set_mobile, subscribe, unsubscribe, vapid_public_key};
use people::{
    audit_log, change_password, deactivate_staff, hand_over, list_roles, list_staff, list_wards,
    me, set_escalation,
};
use serde_json::json;
use tasks::{act_on_task, add_comment, get_task, list_comments, list_tasks, raise_task};
pub use views::{one_view, views, AssigneeView, OutcomeView, TaskView};

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
        .route("/staff/{id}/mobile", web::put().to(set_mobile))
        .route("/receipts", web::post().to(receipt))
        .route("/audit", web::get().to(audit_log))
        .route("/push/vapid-public-key", web::get().to(vapid_public_key))
        .route("/push-subscriptions", web::post().to(subscribe))
        .route("/push-subscriptions", web::get().to(my_devices))
        .route("/push-subscriptions/{id}", web::delete().to(unsubscribe))
        .route("/notifications", web::get().to(list_notifications))
        .route("/record-deliveries", web::get().to(list_record_deliveries))
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
    let period = tick_period(&state.config.schedule, now);
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

/// The time between the escalation tick's next two runs (a day when it has no more).
pub fn tick_period(
    schedule: &cron::Schedule,
    now: chrono::DateTime<chrono::Utc>,
) -> chrono::Duration {
    let mut fires = schedule.after(&now);
    match (fires.next(), fires.next()) {
        (Some(a), Some(b)) => b - a,
        _ => chrono::Duration::days(1),
    }
}

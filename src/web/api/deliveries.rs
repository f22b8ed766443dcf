//! What was sent: notifications across tasks and per task, deliveries to the record, and the
//! dashboard's figures.
use crate::domain::delivery::Delivery;
use crate::error::{AppError, AppResult};
use crate::store::deliveries::{self, RecordStatus};
use crate::store::directory::Staff;
use crate::store::tasks;
use crate::web::auth::{Caller, Credentials};
use crate::web::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

/// `?status=…&limit=…` of a delivery report.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportParams {
    status: Option<String>,
    limit: Option<i64>,
}

impl ReportParams {
    /// How many rows to show: 100 unless asked, 1 to 500.
    fn limit(&self) -> AppResult<i64> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(AppError::BadRequest(format!(
                "limit is {limit}; give 1 to 500"
            )));
        }
        Ok(limit)
    }
}

/// Delivery reports are for those who watch the wards.
fn may_read_reports(staff: &Staff) -> AppResult<()> {
    if staff.watches_wards() {
        return Ok(());
    }
    Err(AppError::Forbidden(
        "delivery reports are for bed managers, coordinators and admins".into(),
    ))
}

/// Deliveries across tasks, e.g. `?status=failed`: for those who watch the wards.
pub(super) async fn list_notifications(
    state: web::Data<AppState>,
    Caller(staff): Caller,
    params: web::Query<ReportParams>,
) -> AppResult<HttpResponse> {
    may_read_reports(&staff)?;
    let status = match &params.status {
        Some(s) => {
            Some(Delivery::parse(s).map_err(|e| AppError::BadRequest(format!("status: {e}")))?)
        }
        None => None,
    };
    let limit = params.limit()?;
    let list = state
        .store
        .read(move |c| deliveries::notifications(c, None, status, limit))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "notifications": list })))
}

pub(super) async fn task_notifications(
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
pub(super) async fn dashboard(
    state: web::Data<AppState>,
    auth: Credentials,
) -> AppResult<HttpResponse> {
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
            // Phones whose push service takes bleeps that they never show.
            let silent = crate::store::receipts::silent_devices(c, now)?;
            Ok(json!({ "wards": d.wards, "late": late, "escalations_per_hour": per_hour, "failed_deliveries": d.failed, "silent_devices": silent }))
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /api/v1/record-deliveries?status=failed|pending`: what has not reached the record.
pub(super) async fn list_record_deliveries(
    state: web::Data<AppState>,
    Caller(staff): Caller,
    params: web::Query<ReportParams>,
) -> AppResult<HttpResponse> {
    may_read_reports(&staff)?;
    let statuses = match &params.status {
        Some(s) => deliveries::parse_statuses(s)?,
        None => vec![
            RecordStatus::Pending,
            RecordStatus::Sending,
            RecordStatus::Failed,
        ],
    };
    let limit = params.limit()?;
    let list = state
        .store
        .read(move |c| deliveries::records(c, &statuses, limit))
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "configured": !state.config.record.is_empty(),
        "record_server": state.config.record.first().map(|r| r.base_url.clone()),
        "record_servers": state.config.record.iter()
            .map(|r| json!({ "name": r.name, "base_url": r.base_url }))
            .collect::<Vec<_>>(),
        "deliveries": list,
    })))
}

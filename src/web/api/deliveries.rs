//! What was sent: notifications across tasks and per task, deliveries to the record, and the
//! dashboard's figures.
use super::views::{
    DashboardView, HourCount, LateTask, Notifications, RecordDeliveries, RecordServer,
};
use crate::domain::delivery::Delivery;
use crate::error::{AppError, AppResult};
use crate::store::deliveries::{self, RecordStatus};
use crate::store::directory::Staff;
use crate::store::tasks;
use crate::web::auth::{Caller, Credentials};
use crate::web::errors::ErrorBody;
use crate::web::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

/// `?status=…&limit=…` of a delivery report.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportParams {
    /// Only deliveries in this state (for the record: comma-separated states).
    status: Option<String>,
    /// 1 to 500; 100 when not given.
    #[param(minimum = 1, maximum = 500)]
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
#[utoipa::path(get, path = "/api/v1/notifications", tag = "reports",
    params(ReportParams),
    responses(
        (status = 200, description = "Notifications, newest first", body = Notifications),
        (status = 400, description = "A parameter is not valid", body = ErrorBody),
        (status = 403, description = "Not a bed manager, coordinator or admin", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(Notifications {
        notifications: list,
    }))
}

/// The notifications of one task, newest first.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/notifications", tag = "reports",
    params(("id" = String, Path, description = "The task's id")),
    responses(
        (status = 200, description = "The task's notifications", body = Notifications),
        (status = 404, description = "No such task", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(Notifications {
        notifications: list,
    }))
}

/// The escalation dashboard's figures, for systems (the page shows the same).
#[utoipa::path(get, path = "/api/v1/dashboard", tag = "reports",
    responses(
        (status = 200, description = "The figures", body = DashboardView),
        (status = 403, description = "Not a bed manager, coordinator or admin", body = ErrorBody),
    ))]
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
                .map(|l| LateTask {
                    task_id: l.task.id.clone(),
                    ward: l.task.ward.clone(),
                    bed: l.task.bed.clone(),
                    priority: l.task.priority,
                    category: l.task.category,
                    escalation_level: l.task.escalation_level,
                    overdue_minutes: l.overdue_minutes,
                })
                .collect();
            let per_hour: Vec<_> = d
                .escalations_per_hour
                .iter()
                .map(|&(hour_utc, escalations)| HourCount {
                    hour_utc,
                    escalations,
                })
                .collect();
            // Phones whose push service takes bleeps that they never show.
            let silent = crate::store::receipts::silent_devices(c, now)?;
            Ok(DashboardView {
                late,
                escalations_per_hour: per_hour,
                wards: d.wards,
                failed_deliveries: d.failed,
                silent_devices: silent,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /api/v1/record-deliveries?status=failed|pending`: what has not reached the record.
#[utoipa::path(get, path = "/api/v1/record-deliveries", tag = "reports",
    params(ReportParams),
    responses(
        (status = 200, description = "Deliveries to the record, oldest first", body = RecordDeliveries),
        (status = 400, description = "A parameter is not valid", body = ErrorBody),
        (status = 403, description = "Not a bed manager, coordinator or admin", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(RecordDeliveries {
        configured: !state.config.record.is_empty(),
        record_server: state.config.record.first().map(|r| r.base_url.clone()),
        record_servers: state
            .config
            .record
            .iter()
            .map(|r| RecordServer {
                name: r.name.clone(),
                base_url: r.base_url.clone(),
            })
            .collect(),
        deliveries: list,
    }))
}

//! The service's own endpoint at the root: `/healthz`.
use super::tick_period;
use super::views::Health;
use crate::error::AppResult;
use crate::web::errors::ErrorBody;
use crate::web::AppState;
use actix_web::{web, HttpResponse};

/// A 503 from `/healthz`: the reasons, or the error shape when the database does not answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // described, not built: the handler writes one or the other directly
pub(crate) enum Unhealthy {
    Failing(Health),
    Error(ErrorBody),
}

/// `/healthz`: 200 when the database answers, the escalation tick has run within three of
/// its periods, and nothing due has waited longer than `[health] max_due_age_seconds`;
/// otherwise 503 with the reasons, for a load balancer and an outside monitor.
#[utoipa::path(get, path = "/healthz", tag = "service",
    security(()),
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "Failing, with the reasons (or, when the database does not answer, the error shape)", body = Unhealthy),
    ))]
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
    let healthy = reasons.is_empty();
    let body = Health {
        status: if healthy { "ok" } else { "failing" },
        reasons,
        last_tick: readings.last_tick,
        escalations_repaired: repairs,
    };
    Ok(if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    })
}

//! The JSON API under /api/v1, for systems and for the pages' scripts: one file per area.
//!
//! Every operation is a handler annotated with `#[utoipa::path(method, path = "...", ...)]`
//! and named once in the list given to [`operations!`] below: that list both registers the
//! handler (at the method and path its annotation gives) and puts it in the OpenAPI document
//! served at `/api/v1/openapi.json`, so what is served and what is described cannot drift.
//! To add an endpoint: annotate the handler, derive `ToSchema` on its body and answer types
//! (answers in `views.rs`), and add `module::handler` to the list.
mod deliveries;
mod devices;
mod document;
mod people;
mod rota;
mod service;
mod tasks;
mod tokens;
mod views;

use crate::web::{calendar, metrics};
use actix_web::web;
use document::Conventions;
pub use document::{openapi, openapi_json};
pub use service::health;
pub use views::{one_view, told_view, views, AssigneeView, OutcomeView, TaskView};

/// Registers each listed handler at its annotated method and path, and derives the OpenAPI
/// document ([`ApiDoc`]) from the same list. Handlers under `/api/v1` go in the first list,
/// the service's own endpoints at the root in the second. Within a list, order matters as
/// it does for actix routes: a literal segment before a `{parameter}` for the same method.
macro_rules! operations {
    (
        api: [$($am:ident :: $ah:ident),+ $(,)?],
        root: [$($rm:ident :: $rh:ident),+ $(,)?] $(,)?
    ) => {
        /// The OpenAPI 3.1 document of every operation listed in [`operations!`].
        #[derive(utoipa::OpenApi)]
        #[openapi(
            paths($($am::$ah,)+ $($rm::$rh),+),
            // Schemas that only parameters name are not collected on their own.
            components(schemas(crate::web::errors::ErrorBody, crate::domain::Action)),
            modifiers(&Conventions),
            info(
                title = "Bleepless API",
                description = "Clinical tasks that reach a phone, escalate when nobody answers, and end up in the patient record. Every error answers with one shape, ErrorBody.",
            ),
            tags(
                (name = "tasks", description = "Raise, read, list and act on tasks"),
                (name = "people", description = "Staff, wards, on-call roles (bleeps) and the audit log"),
                (name = "rota", description = "Shifts, patterns, imports, cover gaps, taking the bleep, busy and calendar feeds"),
                (name = "devices", description = "Push subscriptions of the caller's devices"),
                (name = "reports", description = "Deliveries and the escalation dashboard, for those who watch the wards"),
                (name = "service", description = "Health, metrics and this document"),
            ),
        )]
        pub struct ApiDoc;

        /// The routes under `/api/v1`, as listed.
        pub fn routes(cfg: &mut web::ServiceConfig) {
            pastey::paste! {
                $( document::register::<$am::[<__path_ $ah>], _, _>(cfg, API_PREFIX, $am::$ah); )+
            }
        }

        /// The service's own routes at the root (`/healthz`, `/metrics`), as listed.
        pub fn root_routes(cfg: &mut web::ServiceConfig) {
            pastey::paste! {
                $( document::register::<$rm::[<__path_ $rh>], _, _>(cfg, "", $rm::$rh); )+
            }
        }
    };
}

/// Where the JSON API is mounted.
pub const API_PREFIX: &str = "/api/v1";

operations! {
    api: [
        people::me,
        people::change_password,
        tokens::list_tokens,
        tokens::create_token,
        tokens::revoke_token,
        tasks::list_tasks,
        tasks::raise_task,
        tasks::get_task,
        tasks::list_comments,
        tasks::add_comment,
        deliveries::task_notifications,
        tasks::act_on_task,
        people::list_wards,
        people::list_roles,
        people::hand_over,
        people::set_escalation,
        rota::take,
        rota::list_allowed,
        rota::set_allowed,
        rota::role_calendar,
        rota::list_shifts,
        rota::add_shift,
        rota::remove_shift,
        rota::add_pattern,
        rota::import,
        rota::gaps,
        rota::list_busy,
        rota::set_busy,
        rota::my_hand_over,
        rota::confirm,
        rota::my_calendar,
        people::list_staff,
        people::deactivate_staff,
        devices::set_mobile,
        devices::receipt,
        people::audit_log,
        devices::vapid_public_key,
        devices::subscribe,
        devices::my_devices,
        devices::unsubscribe,
        deliveries::list_notifications,
        deliveries::list_record_deliveries,
        deliveries::dashboard,
        document::serve_document,
    ],
    root: [
        service::health,
        metrics::scrape,
        calendar::feed,
    ],
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

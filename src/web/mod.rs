//! actix-web: routes, extractors, and errors rendered as JSON.
pub mod ack;
pub mod api;
pub mod auth;
pub mod calendar;
pub mod errors;
pub mod fhir;
pub mod guard;
pub mod metrics;
pub mod oidc;
pub mod pages;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::store::Store;
use actix_web::web;
use std::sync::Arc;

/// Everything a handler may need, shared by all workers.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: SharedClock,
    pub config: Arc<Config>,
    /// Runs the commands (every change to a task goes through it).
    pub app: crate::app::App,
    pub links: crate::outbox::links::LinkSigner,
    pub vapid_public_key: String,
    /// What open pages wait on to learn that something changed.
    pub changes: Arc<pages::events::Changes>,
    /// This instance's request durations, for `/metrics`.
    pub request_timings: Arc<metrics::RequestTimings>,
    /// The identity provider people sign in with, when `[oidc]` is configured.
    pub oidc: Option<Arc<oidc::provider::Provider>>,
}

/// Largest request body accepted: a task is a few kilobytes at most.
pub const MAX_BODY: usize = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(errors::json_config())
        .app_data(errors::query_config())
        .app_data(errors::path_config())
        .app_data(web::PayloadConfig::new(MAX_BODY))
        .configure(fhir::routes)
        .service(web::scope(api::API_PREFIX).configure(api::routes))
        .configure(ack::routes)
        .configure(oidc::routes)
        .configure(pages::routes)
        // /healthz and /metrics: registered from the API's one list of operations.
        .configure(api::root_routes);
}

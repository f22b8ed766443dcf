//! Integration tests through HTTP against the real service and a real database.
mod cli;
mod errors;
mod escalation;
mod faults;
mod fhir;
mod health;
mod helpers;
mod lifecycle;
mod metrics;
mod oidc;
mod openapi;
mod outbox;
mod pages;
mod races;
mod rota;
mod rota_pages;
mod safety;
mod security;
#[path = "../support/mod.rs"]
mod support;
mod task_page;
mod text;
mod tokens;

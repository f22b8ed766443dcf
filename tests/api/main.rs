//! Integration tests through HTTP against the real service and a real database.
mod cli;
mod errors;
mod escalation;
mod helpers;
mod lifecycle;
mod races;
#[path = "../support/mod.rs"]
mod support;

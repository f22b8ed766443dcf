//! Test peers shared by integration test binaries (`mod support;`).
#![allow(dead_code)]

pub mod captured_log;
pub mod fhir_judge;
pub mod fhir_server;
pub mod oidc_provider;
pub mod peer;
pub mod push_service;
pub mod smtp;
pub mod text_provider;

//! Test peers shared by integration test binaries (`mod support;`).
#![allow(dead_code)]

pub mod push_service;
pub mod smtp;

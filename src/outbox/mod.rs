//! The one outbox's delivery loop ([`worker`]) and its kinds: Web Push, email and text
//! message to a person ([`notification`], over [`push`], [`email`] and [`text`]), and FHIR
//! to a patient-record server ([`record`]). Adding a kind touches this folder, `domain::delivery` (its retry
//! policy) and configuration.
pub mod ece;
pub mod email;
pub mod endpoints;
pub mod links;
pub mod notification;
mod outcomes;
pub mod push;
pub mod record;
pub mod stock;
pub mod text;
pub mod worker;

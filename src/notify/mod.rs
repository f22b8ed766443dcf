//! Delivery of notifications: web push and email senders (the outbox dispatcher comes later).
//!
//! Each sender does one delivery attempt and classifies the outcome so that the caller can
//! decide: delivered, retry later, or give up (and, for push, forget the subscription).
pub mod email;
pub mod push;

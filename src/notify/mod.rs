//! Delivery of notifications: the outbox dispatcher, and the web push and email senders.
//!
//! Each sender does one delivery attempt and classifies the outcome so that the caller can
//! decide: delivered, retry later, or give up (and, for push, forget the subscription).
pub mod dispatch;
pub mod ece;
pub mod email;
pub mod endpoints;
pub mod links;
pub mod push;

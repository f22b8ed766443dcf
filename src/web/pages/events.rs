//! Server-Sent Events: tells open pages that something changed, so they fetch their fresh
//! server-rendered fragment. Changes are seen from the database, so a change made through
//! any instance reaches pages held open on every instance.
use crate::domain::notification::Delivery;
use crate::store::schema::{notifications, tasks};
use crate::web::auth::Caller;
use crate::web::AppState;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::time::Duration;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(events));
}

/// Something that moves whenever a task or a delivery changes. Every part is read from an
/// index, so an open page costs the same with a million tasks stored as with ten.
type Stamp = (Option<NaiveDateTime>, Option<NaiveDateTime>, i64);

async fn stamp(state: &AppState) -> Option<Stamp> {
    state
        .store
        .read(|c| {
            let changed = tasks::table
                .select(diesel::dsl::max(tasks::updated_at))
                .get_result::<Option<NaiveDateTime>>(c)?;
            let raised = tasks::table
                .select(diesel::dsl::max(tasks::raised_at))
                .get_result::<Option<NaiveDateTime>>(c)?;
            let failed = notifications::table
                .filter(notifications::status.eq(Delivery::Failed.code()))
                .count()
                .get_result::<i64>(c)?;
            Ok((changed, raised, failed))
        })
        .await
        .ok()
}

async fn events(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    let first = stamp(&state).await;
    let stream =
        futures_util::stream::unfold((state, first, 0u32), |(state, last, quiet)| async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let now = stamp(&state).await;
            let (chunk, quiet) = if now.is_some() && now != last {
                (Bytes::from_static(b"event: change\ndata: {}\n\n"), 0)
            } else if quiet >= 20 {
                (Bytes::from_static(b": still here\n\n"), 0)
            } else {
                (Bytes::new(), quiet + 1)
            };
            let last = if now.is_some() { now } else { last };
            Some((Ok::<_, actix_web::Error>(chunk), (state, last, quiet)))
        });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}

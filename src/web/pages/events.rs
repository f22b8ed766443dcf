//! Server-Sent Events: tells open pages that something changed, so they fetch their fresh
//! server-rendered fragment. Changes are seen from the database, so a change made through
//! any instance reaches pages held open on every instance.
//!
//! One poller per instance reads the database, however many pages are open: it runs while
//! at least one page listens and stops when the last one goes, and every open page waits on
//! what it saw. (Each page used to poll for itself: a hundred open dashboards were a hundred
//! sets of reads every 0.7 s.)
use crate::domain::delivery::Delivery;
use crate::store::schema::{outbox, tasks};
use crate::store::Store;
use crate::web::auth::Caller;
use crate::web::AppState;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(events));
}

/// How often the poller looks for changes while a page listens.
const PERIOD: Duration = Duration::from_millis(700);
/// An `alive` event this often keeps an idle stream open through proxies and tells the page
/// that the server is still there: a page that hears nothing for 30 s says it cannot reach
/// the server.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Something that moves whenever a task, a delivery or who holds a bleep changes. Every
/// part is read from an index, so an open page costs the same with a million tasks stored
/// as with ten.
type Stamp = (
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    i64,
    Option<String>,
);

async fn stamp(store: &Store) -> Option<Stamp> {
    store
        .read(|c| {
            let changed = tasks::table
                .select(diesel::dsl::max(tasks::updated_at))
                .get_result::<Option<NaiveDateTime>>(c)?;
            let raised = tasks::table
                .select(diesel::dsl::max(tasks::raised_at))
                .get_result::<Option<NaiveDateTime>>(c)?;
            let failed = outbox::table
                .filter(outbox::status.eq(Delivery::Failed.code()))
                .count()
                .get_result::<i64>(c)?;
            let holders = crate::store::rota::directory_changed(c)?;
            Ok((changed, raised, failed, holders))
        })
        .await
        .ok()
}

/// The instance's one poller and what it last saw (`None` until its first read).
pub struct Changes {
    seen: watch::Sender<Option<Stamp>>,
    polling: AtomicBool,
}

impl Default for Changes {
    fn default() -> Changes {
        Changes {
            seen: watch::channel(None).0,
            polling: AtomicBool::new(false),
        }
    }
}

impl Changes {
    /// Listens for changes, starting the poller if none runs.
    fn listen(self: &Arc<Self>, store: &Store) -> watch::Receiver<Option<Stamp>> {
        let rx = self.seen.subscribe();
        if !self.polling.swap(true, SeqCst) {
            actix_web::rt::spawn(self.clone().poll(store.clone()));
        }
        rx
    }

    /// Reads the stamp every [`PERIOD`] and tells the listeners when it moved; returns when
    /// nobody listens.
    async fn poll(self: Arc<Self>, store: Store) {
        loop {
            if let Some(now) = stamp(&store).await {
                self.seen.send_if_modified(|last| {
                    let moved = last.as_ref() != Some(&now);
                    *last = Some(now);
                    moved
                });
            }
            tokio::time::sleep(PERIOD).await;
            if self.seen.receiver_count() == 0 {
                self.polling.store(false, SeqCst);
                // A page that began listening between the count and the store found the
                // poller still running; if so, keep going for it, unless it started another.
                if self.seen.receiver_count() == 0 || self.polling.swap(true, SeqCst) {
                    return;
                }
            }
        }
    }
}

async fn events(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    let mut rx = state.changes.listen(&state.store);
    let first = rx.borrow_and_update().clone();
    let stream = futures_util::stream::unfold((rx, first), |(mut rx, mut last)| async move {
        loop {
            match tokio::time::timeout(KEEP_ALIVE, rx.changed()).await {
                Err(_) => {
                    let chunk = Bytes::from_static(b"event: alive\ndata: {}\n\n");
                    return Some((Ok::<_, actix_web::Error>(chunk), (rx, last)));
                }
                Ok(Err(_)) => return None,
                Ok(Ok(())) => {
                    let now = rx.borrow_and_update().clone();
                    // The poller's first read is where this page starts from, not a change.
                    let moved = last.is_some() && now != last;
                    last = now;
                    if moved {
                        let chunk = Bytes::from_static(b"event: change\ndata: {}\n\n");
                        return Some((Ok(chunk), (rx, last)));
                    }
                }
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}

//! The cron-driven escalation tick: a caller of the `escalate` command, holding no state
//! between ticks.
use crate::app::escalate::{escalate, repair_lost};
use crate::app::{App, Ctx};
use crate::domain::Task;
use crate::error::AppResult;
use crate::store::heartbeats::{self, REPAIRS, TICK};
use crate::store::tasks as task_store;
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use std::collections::HashMap;
use std::sync::Arc;

/// Tasks escalated per transaction: one commit (and, on PostgreSQL, a handful of round
/// trips) for many, which is what lets one tick carry thousands falling due at once.
const PER_TRANSACTION: usize = 500;

/// One tick at `now`: escalates every due task, a group of them per transaction, so a
/// crash mid-tick loses nothing (a group not committed is still due at the next tick). The
/// outbox workers are woken after each group commits, so its notifications go out while
/// the tick goes on. A group that fails is retried one task per transaction, so one bad
/// task cannot hold up the others. On PostgreSQL, groups run side by side (one per core).
pub async fn tick(app: &App, now: DateTime<Utc>) -> AppResult<usize> {
    let ctx = app.ctx_at(now);
    // The rota first: a bleep changes hands at its boundary, and its waiting tasks go to
    // the incoming holder before anything escalates past them.
    if let Err(e) = app.run_in(ctx.clone(), crate::app::rota::catch_up).await {
        tracing::error!(error = %e, "applying the rota failed; will retry next tick");
    }
    let mut escalated = 0;
    loop {
        let due = app
            .store
            .read(move |c| task_store::due_for_escalation(c, now, 2000))
            .await?;
        if due.is_empty() {
            return Ok(escalated);
        }
        let read = due.len();
        // On PostgreSQL each group is a transaction on its own connection and the server's
        // work per row is most of the cost, so groups run side by side, one per core. On
        // SQLite every write goes through the one writer anyway.
        let side_by_side = if app.store.is_sqlite() {
            1
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        };
        let mut done = 0;
        for wave in due.chunks(PER_TRANSACTION * side_by_side) {
            let groups = wave
                .chunks(PER_TRANSACTION)
                .map(|chunk| escalate_chunk(app, &ctx, chunk));
            done += join_all(groups).await.into_iter().sum::<usize>();
        }
        escalated += done;
        if read < 2000 || done == 0 {
            return Ok(escalated);
        }
    }
}

/// Escalates one group of due tasks in one transaction; if that fails, one task at a time,
/// so that one bad task cannot hold back the rest. Returns how many were escalated.
async fn escalate_chunk(app: &App, ctx: &Ctx, chunk: &[Task]) -> usize {
    let group = chunk.to_vec();
    match app
        .run_in(ctx.clone(), move |c, ctx| escalate(c, ctx, &group))
        .await
    {
        Ok(k) => k.len(),
        Err(e) => {
            tracing::warn!(error = %e, "escalating a group failed; one at a time");
            let mut k = 0;
            for t in chunk {
                let one = t.clone();
                match app
                    .run_in(ctx.clone(), move |c, ctx| escalate(c, ctx, &[one]))
                    .await
                {
                    Ok(v) => k += v.len(),
                    Err(e) => {
                        tracing::error!(task_id = %t.id, error = %e, "escalation failed; will retry next tick")
                    }
                }
            }
            k
        }
    }
}

/// Where the pushes foreseen for the next tick go: to each phone's `p256dh` key, how many
/// (the push sender makes their key agreements ahead), and the most tasks looked at.
#[derive(Clone)]
pub struct Foresight {
    pub most: usize,
    pub take: Arc<dyn Fn(&Foreseen) + Send + Sync>,
}

/// Pushes foreseen: how many to each phone, by its subscription's `p256dh` key.
pub type Foreseen = HashMap<String, usize>;

/// Foresees the pushes of the tick at `at`, if nobody acknowledges before it, and hands
/// them to `sight`. Returns how many: none when there is no next tick or no `sight` (no
/// key stock). A failure is logged and costs nothing else: each push then does its own
/// encryption in full, as it would have.
pub async fn look_ahead(app: &App, at: Option<DateTime<Utc>>, sight: Option<&Foresight>) -> usize {
    let (Some(at), Some(sight)) = (at, sight) else {
        return 0;
    };
    let ctx = app.ctx_at(at);
    let most = sight.most as i64;
    match app
        .store
        .read(move |c| crate::app::escalate::foresee(c, &ctx, most))
        .await
    {
        Ok(pushes) => {
            (sight.take)(&pushes);
            let n = pushes.values().sum();
            app.foreseen.store(n, std::sync::atomic::Ordering::Relaxed);
            if n > 0 {
                tracing::debug!(
                    pushes = n,
                    phones = pushes.len(),
                    "pushes foreseen for the next tick"
                );
            }
            n
        }
        Err(e) => {
            tracing::warn!(error = %e, "foreseeing the next tick's pushes failed; each is made in full when sent");
            0
        }
    }
}

/// The outbound heartbeat: a URL called after every tick, so that an outside monitor (a
/// dead man's switch such as a healthchecks.io check or a GoAlert heartbeat monitor)
/// pages someone when the calls stop. The URL may hold a secret, so it is never logged.
pub struct Heartbeat {
    url: Option<String>,
    client: reqwest::Client,
}

impl Heartbeat {
    pub fn new(url: Option<String>) -> Heartbeat {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Heartbeat { url, client }
    }

    async fn call(&self) {
        let Some(url) = &self.url else { return };
        match self.client.get(url).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::warn!(status = %r.status(), "the heartbeat monitor did not take the heartbeat")
            }
            Err(e) => {
                let why = if e.is_timeout() {
                    "timed out"
                } else {
                    "cannot be reached"
                };
                tracing::warn!("the heartbeat monitor {why}")
            }
        }
    }
}

/// Everything the tick does at `now`: the auditor puts back any escalation an
/// unacknowledged task has lost, the due tasks escalate, and the tick leaves its
/// heartbeat, in the database (for `/healthz`) and at the outbound URL. Returns how many
/// tasks escalated.
pub async fn tick_and_beat(
    app: &App,
    now: DateTime<Utc>,
    heartbeat: &Heartbeat,
) -> AppResult<usize> {
    let started = std::time::Instant::now();
    let ctx = app.ctx_at(now);
    let repaired = app.run_in(ctx, repair_lost).await?.len() as i64;
    let escalated = tick(app, now).await?;
    let instance = app.instance.clone();
    app.store
        .write(move |c| {
            heartbeats::beat(c, TICK, now, &instance, 1)?;
            if repaired > 0 {
                heartbeats::beat(c, REPAIRS, now, &instance, repaired)?;
            }
            Ok(())
        })
        .await?;
    *app.last_tick_took.lock().unwrap_or_else(|e| e.into_inner()) = Some(started.elapsed());
    heartbeat.call().await;
    Ok(escalated)
}

/// Runs the tick on the cron schedule, reading time from the clock (so tests can move it).
/// Before the first tick and after each, the next tick's pushes are foreseen (`sight`).
pub async fn run_scheduler(
    app: App,
    schedule: cron::Schedule,
    heartbeat: Heartbeat,
    sight: Option<Foresight>,
) {
    let mut next = schedule.after(&app.clock.now()).next();
    look_ahead(&app, next, sight.as_ref()).await;
    let mut last = app.clock.now();
    loop {
        let now = app.clock.now();
        if now < last {
            // The clock stepped back (an NTP correction): tick now and plan from the new
            // time, or the tick would wait for the clock to catch up and nothing would
            // escalate meanwhile.
            tracing::warn!(
                by_seconds = (last - now).num_seconds(),
                "the clock stepped back; the escalation tick follows it"
            );
            next = Some(now);
        }
        last = now;
        match next {
            Some(at) if now >= at => {
                match tick_and_beat(&app, now, &heartbeat).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(escalated = n, "escalation tick"),
                    Err(e) => tracing::error!(error = %e, "escalation tick failed; will retry"),
                }
                next = schedule.after(&now).next();
                look_ahead(&app, next, sight.as_ref()).await;
            }
            None => return,
            _ => {}
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

//! The one delivery loop, for every kind: claims due rows with a lease, sends each by its
//! kind, and records what happened, retrying by the kind's policy
//! ([`crate::domain::delivery::Kind::retry_policy`]). It holds no state between rounds, so
//! several instances can share one database.
use super::notification::{self, Attempt, DeviceResult, Notifier};
pub use super::outcomes::RECORD_WAIT_MOST;
use super::outcomes::{device_results, gather, Done};
use super::record::RecordServers;
use crate::clock::SharedClock;
use crate::domain::delivery::{Failure, Kind, Outcome, RetryLimits};
use crate::domain::Task;
use crate::error::AppResult;
use crate::fhir;
use crate::store::outbox::{self, Doorbell, Leased, Row};
use crate::store::{notifications, receipts, tasks, Store};
use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// How the workers claim, lease and retry (`[dispatch]`); the configuration re-exports it.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Rows sent at once by one instance.
    pub batch: i64,
    pub max_attempts: i32,
    pub backoff_base: std::time::Duration,
    pub backoff_max: std::time::Duration,
    /// How long a claimed row is ours before another instance may take it over.
    pub lease: std::time::Duration,
}

impl DispatchConfig {
    /// The retry limits every kind's policy starts from.
    pub fn limits(&self) -> RetryLimits {
        RetryLimits {
            max_attempts: self.max_attempts,
            backoff_base: self.backoff_base,
            backoff_max: self.backoff_max,
        }
    }
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            batch: 50,
            max_attempts: 8,
            backoff_base: std::time::Duration::from_secs(5),
            backoff_max: std::time::Duration::from_secs(300),
            lease: std::time::Duration::from_secs(120),
        }
    }
}

pub struct Worker {
    pub store: Store,
    pub clock: SharedClock,
    pub config: DispatchConfig,
    pub notifier: Notifier,
    pub records: RecordServers,
    /// Names this instance in leases.
    pub owner: String,
}

/// Tasks already in hand, by id, as the commands that queued their rows wrote them.
type Known = HashMap<String, Arc<Task>>;

/// Which rows a claim takes.
enum Claim {
    /// Up to so many of everything due, the longest due first.
    Due(i64),
    /// Those of these rows, rung in by this instance's commands, that are ready to send.
    Rung(Vec<String>),
}

/// A claimed row, ready to send.
enum Job {
    Notify(Box<notification::Job>),
    Record {
        row: Row,
        bundle: serde_json::Value,
        /// The task's version the Bundle was made from.
        version: i64,
    },
    /// A notice to a person's phones (about no one task).
    Notice(Row, Vec<crate::store::notifications::Device>),
    /// A row that cannot be sent, and why.
    Unsendable(Row, String),
}

impl Job {
    fn row(&self) -> &Row {
        match self {
            Job::Notify(j) => &j.row,
            Job::Record { row, .. } | Job::Notice(row, _) | Job::Unsendable(row, _) => row,
        }
    }
}

/// Aborts a background task when its owner stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The shortest time between two claims.
const CLAIM_PACE: std::time::Duration = std::time::Duration::from_millis(5);

/// The longest time between two scans for everything due.
pub const SCAN_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Sends in flight at once, per instance.
const MAX_IN_FLIGHT: usize = 256;

impl Worker {
    /// Sends whatever is due, round after round. What this instance's commands ring in
    /// (`doorbell`) is claimed by id as it comes; everything else due (other instances'
    /// rows, retries, fallbacks, lapsed leases) by a scan at least every [`SCAN_EVERY`]. Each
    /// send runs on its own and records its own outcome, so a hanging endpoint holds up
    /// nothing but itself (and only until its timeout).
    pub async fn run(self, doorbell: Arc<Doorbell>) {
        doorbell.served_by(&self.owner, self.config.lease);
        let batch = usize::try_from(self.config.batch).unwrap_or(1);
        // A round's sends in a burst: half a claim, so that each round's read carries many.
        let enough = (batch / 2).clamp(1, MAX_IN_FLIGHT / 2);
        let me = Arc::new(self);
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel::<Done>();
        let _stop_recorder = AbortOnDrop(tokio::spawn(Worker::recorder(
            me.clone(),
            doorbell.clone(),
            done_rx,
            permits.clone(),
        )));
        let mut last_claim = tokio::time::Instant::now();
        let mut last_scan: Option<tokio::time::Instant> = None;
        // The last round took all it could, so more is waiting: the next goes at once.
        let mut full = false;
        loop {
            let free = permits.available_permits().min(batch);
            if free == 0 || (full && free < enough) {
                // Every send allowed is out, or work is waiting and few may start: go on
                // as soon as enough have ended for a round worth its read. (It slept
                // 20 ms here, and a burst's sends came in waves with the cores half idle.)
                if permits.acquire_many(enough as u32).await.is_err() {
                    return;
                }
                continue;
            }
            // Under load every request wakes the worker; claiming at most every few
            // milliseconds lets one claim carry many requests' deliveries. A burst (the
            // tick's escalations) is not paced: its rows are waiting already, and 10,000
            // of them at 50 a round would otherwise wait a second on the pace alone.
            if !full {
                tokio::time::sleep_until(last_claim + CLAIM_PACE).await;
            }
            last_claim = tokio::time::Instant::now();
            let scan_due =
                doorbell.scan_asked() || last_scan.is_none_or(|t| t.elapsed() >= SCAN_EVERY);
            let leased = match scan_due {
                true => Vec::new(),
                false => doorbell.take_leased(free),
            };
            let rung = match scan_due || !leased.is_empty() {
                true => Vec::new(),
                false => doorbell.take(free),
            };
            full = leased.len() >= free || rung.len() >= free;
            let claimed = if scan_due {
                let claimed = me.claim(Claim::Due(free as i64)).await;
                // A full batch may leave more due: scan again at once.
                full = claimed.as_ref().is_ok_and(|jobs| jobs.len() >= free);
                last_scan = (!full).then(tokio::time::Instant::now);
                claimed
            } else if !leased.is_empty() {
                let held = me.still_held(leased);
                let jobs = me.leased_jobs(held.clone()).await;
                if jobs.is_err() {
                    // Theirs to send still: tried again after the pause below, until half
                    // their lease is gone (then a scan takes them once it has run out).
                    doorbell.ring(outbox::Queued {
                        any: true,
                        due: Vec::new(),
                        leased: held,
                    });
                }
                jobs
            } else if !rung.is_empty() {
                me.claim(Claim::Rung(rung)).await
            } else {
                let next_scan = last_scan.map_or(last_claim, |t| t + SCAN_EVERY);
                tokio::select! {
                    _ = doorbell.rung() => {}
                    _ = tokio::time::sleep_until(next_scan) => {}
                }
                continue;
            };
            match claimed {
                Ok(jobs) if jobs.is_empty() => {}
                Ok(jobs) => {
                    for job in jobs {
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            return;
                        };
                        let (me, done_tx) = (me.clone(), done_tx.clone());
                        tokio::spawn(async move {
                            let done = me.deliver(&job, me.clock.now()).await;
                            let _ = done_tx.send(done);
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming deliveries failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Writes the sends' outcomes as they come in, many to a transaction, and rings in what
    /// follows from them (a text brought forward by a failed push).
    async fn recorder(
        me: Arc<Worker>,
        doorbell: Arc<Doorbell>,
        mut done_rx: tokio::sync::mpsc::UnboundedReceiver<Done>,
        permits: Arc<Semaphore>,
    ) {
        while let Some(first) = done_rx.recv().await {
            // A burst: a quarter of the sends allowed out at once.
            let sending_hard =
                || MAX_IN_FLIGHT.saturating_sub(permits.available_permits()) >= MAX_IN_FLIGHT / 4;
            let batch = gather(first, &mut done_rx, sending_hard, RECORD_WAIT_MOST).await;
            let due = me.record(batch).await;
            doorbell.ring(outbox::Queued {
                any: !due.is_empty(),
                due,
                leased: Vec::new(),
            });
        }
    }

    /// Runs rounds until nothing is due, waiting for every send it started, and returns
    /// how many rows it tried: for tests and benchmarks, which move the clock themselves.
    pub async fn drain(&self) -> AppResult<usize> {
        let mut tried = 0;
        loop {
            let n = self.dispatch_once().await?;
            if n == 0 {
                return Ok(tried);
            }
            tried += n;
        }
    }

    /// One round, waiting for every send it started.
    pub async fn dispatch_once(&self) -> AppResult<usize> {
        let jobs = self.claim(Claim::Due(self.config.batch)).await?;
        let n = jobs.len();
        let now = self.clock.now();
        let done = join_all(jobs.iter().map(|j| self.deliver(j, now))).await;
        self.record(done).await;
        Ok(n)
    }

    /// Claims rows with a lease: of several instances, each row goes to one. The claim is
    /// one short write; what to send is read after it commits, off the writer.
    async fn claim(&self, which: Claim) -> AppResult<Vec<Job>> {
        let now = self.clock.now();
        let lease_until =
            now + Duration::from_std(self.config.lease).unwrap_or(Duration::seconds(60));
        let owner = self.owner.clone();
        let rows = self
            .store
            .write_one(move |c| match which {
                Claim::Due(limit) => outbox::claim(c, &owner, now, lease_until, limit),
                Claim::Rung(ids) => outbox::claim_ids(c, &owner, now, lease_until, &ids),
            })
            .await?;
        self.jobs_of(rows, Known::new()).await
    }

    /// Of rows written leased to this instance, those to send now: all but any that waited
    /// here so long that less than half their lease is left, which could run out while
    /// they are sent and let another instance send them too. Those are left to a scan,
    /// which takes them once their lease has run out.
    fn still_held(&self, rows: Vec<Leased>) -> Vec<Leased> {
        let half = Duration::from_std(self.config.lease / 2).unwrap_or(Duration::MAX);
        let cutoff = crate::store::to_db(self.clock.now() + half);
        let (held, late): (Vec<Leased>, Vec<Leased>) = rows
            .into_iter()
            .partition(|r| r.row.lease_until.is_some_and(|until| until >= cutoff));
        for Leased { row, .. } in late {
            tracing::warn!(task_id = %row.task_id, delivery = %row.id, "a delivery waited past half its lease; left to the next instance's scan after it runs out");
        }
        held
    }

    /// What to send for each row written leased to this instance: a notification's task is
    /// the version its command wrote and handed over with it, not read again.
    async fn leased_jobs(&self, leased: Vec<Leased>) -> AppResult<Vec<Job>> {
        let mut known = HashMap::new();
        let rows = leased
            .into_iter()
            .map(|Leased { row, task }| {
                if let Some(task) = task {
                    known.insert(row.task_id.clone(), task);
                }
                row
            })
            .collect();
        self.jobs_of(rows, known).await
    }

    /// What to send for each claimed row; the tasks in `known` are not read again.
    async fn jobs_of(&self, rows: Vec<Row>, known: Known) -> AppResult<Vec<Job>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let (mut people, mut records, mut jobs) = (Vec::new(), Vec::new(), Vec::new());
        let mut notices = Vec::new();
        for row in rows {
            match Kind::parse(&row.kind) {
                Ok(Kind::Push | Kind::Email | Kind::Text) => people.push(row),
                Ok(Kind::Record) => records.push(row),
                Ok(Kind::Notice) => notices.push(row),
                Err(e) => jobs.push(Job::Unsendable(row, e)),
            }
        }
        jobs.extend(self.notification_jobs(people, known).await?);
        if !notices.is_empty() {
            let devices = self
                .store
                .read(move |c| {
                    let to: Vec<&str> = notices
                        .iter()
                        .filter_map(|r| r.recipient_id.as_deref())
                        .collect();
                    let d = notifications::devices_of(c, &to)?;
                    Ok((notices, d))
                })
                .await?;
            let (notices, mut devices) = devices;
            for row in notices {
                let d = devices
                    .remove(row.recipient_id.as_deref().unwrap_or_default())
                    .unwrap_or_default();
                jobs.push(Job::Notice(row, d));
            }
        }
        for row in records {
            let task_id = row.task_id.clone();
            let rec = self.store.read(move |c| fhir::load(c, &task_id)).await?;
            jobs.push(match self.records.bundle(&row.destination, &rec) {
                Ok(bundle) => Job::Record {
                    row,
                    bundle,
                    version: rec.task.version,
                },
                Err(why) => Job::Unsendable(row, why),
            });
        }
        Ok(jobs)
    }

    /// Reads what the notifications among the claimed rows are about, in one read (the
    /// tasks in `known` excepted).
    async fn notification_jobs(&self, rows: Vec<Row>, known: Known) -> AppResult<Vec<Job>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.store
            .read(move |c| {
                let task_ids: Vec<&str> = rows
                    .iter()
                    .map(|r| r.task_id.as_str())
                    .filter(|id| !known.contains_key(*id))
                    .collect();
                let staff_ids: Vec<&str> = rows
                    .iter()
                    .filter_map(|r| r.recipient_id.as_deref())
                    .collect();
                let is_text = |r: &&Row| r.kind == Kind::Text.code();
                let text_to: Vec<&str> = rows
                    .iter()
                    .filter(is_text)
                    .filter_map(|r| r.recipient_id.as_deref())
                    .collect();
                let text_about: Vec<&str> = rows
                    .iter()
                    .filter(is_text)
                    .map(|r| r.task_id.as_str())
                    .collect();
                // None at all when every task is known (`get_many` reads nothing then).
                let tasks = tasks::get_many(c, &task_ids)?;
                let staff = notifications::staff_with_devices(c, &staff_ids)?;
                let mobiles = notifications::mobiles(c, &text_to)?;
                let seen = receipts::seen(c, &text_about)?;
                let mut jobs = Vec::with_capacity(rows.len());
                for row in rows {
                    let task = known.get(&row.task_id).map(|t| Task::clone(t));
                    let Some(task) = task.or_else(|| tasks.get(&row.task_id).cloned()) else {
                        jobs.push(Job::Unsendable(row, "the task no longer exists".into()));
                        continue;
                    };
                    let recipient = row.recipient_id.as_deref().unwrap_or_default();
                    let (recipient_staff, devices) = match staff.get(recipient) {
                        Some((s, d)) if row.kind == Kind::Push.code() => (Some(s), d.clone()),
                        Some((s, _)) => (Some(s), Vec::new()),
                        None => (None, Vec::new()),
                    };
                    let text = row.kind == Kind::Text.code();
                    jobs.push(Job::Notify(Box::new(notification::Job {
                        recipient: recipient_staff.cloned(),
                        devices,
                        mobile: text.then(|| mobiles.get(recipient).cloned()).flatten(),
                        seen: text && seen.contains(&(row.task_id.clone(), recipient.to_string())),
                        task,
                        row,
                    })));
                }
                Ok(jobs)
            })
            .await
    }

    /// What follows a failed attempt of this row, by its kind's retry policy. A row of a
    /// kind this build does not know fails for good, with that said.
    fn after(&self, row: &Row, failure: Failure, now: DateTime<Utc>) -> Outcome {
        match Kind::parse(&row.kind) {
            Ok(kind) => kind.retry_policy(self.config.limits()).after(
                row.attempts,
                failure,
                now,
                rand::thread_rng().gen(),
            ),
            Err(e) => Outcome::Failed { error: e },
        }
    }

    async fn deliver(&self, job: &Job, now: DateTime<Utc>) -> Done {
        let row = job.row();
        let mut devices = Vec::new();
        let outcome = match job {
            Job::Notify(j) => match self.notifier.deliver(j, now, &mut devices).await {
                Attempt::Sent => Outcome::Sent,
                Attempt::NotNeeded => Outcome::Cancelled,
                Attempt::Failed(f) => self.after(row, f, now),
            },
            Job::Record {
                row,
                bundle,
                version,
            } => match self.records.send(&row.destination, bundle).await {
                Ok(()) => self.sent_to_record(row, *version, now).await,
                Err(f) => self.after(row, f, now),
            },
            Job::Notice(row, devices) => match self.notifier.send_notice(row, devices).await {
                Attempt::Sent => Outcome::Sent,
                Attempt::NotNeeded => Outcome::Cancelled,
                Attempt::Failed(f) => self.after(row, f, now),
            },
            Job::Unsendable(row, why) => self.after(row, Failure::Refused(why.clone()), now),
        };
        log(row, &outcome);
        // A failed push brings its text forward, where this instance sends texts at all
        // (with none configured no text is queued, and the statement would find nothing).
        let push_failed = self.notifier.text.is_some()
            && row.kind == Kind::Push.code()
            && matches!(outcome, Outcome::Failed { .. });
        Done {
            id: row.id.clone(),
            task_id: row.task_id.clone(),
            push_failed_to: row.recipient_id.clone().filter(|_| push_failed),
            outcome,
            devices,
        }
    }

    /// A Bundle was taken. If the task changed while it was on its way, the change's own
    /// send may have arrived first: send again, so the record ends with the latest.
    async fn sent_to_record(&self, row: &Row, version: i64, now: DateTime<Utc>) -> Outcome {
        let id = row.task_id.clone();
        match self.store.read(move |c| tasks::load(c, &id)).await {
            Ok(t) if t.version > version => Outcome::Retry {
                at: now,
                error: format!(
                    "the task changed while version {version} was being sent; sending it again"
                ),
            },
            _ => Outcome::Sent,
        }
    }

    /// Writes outcomes, if this instance still holds their leases. Each statement stands
    /// alone (an outcome, a text that now goes, a device's result), so on PostgreSQL each
    /// commits by itself, without the `BEGIN` and `COMMIT` round trips of a transaction; on
    /// SQLite they are one command of the writer's group. Returns the ids of the texts that
    /// now go (their push failed), to be claimed by id.
    async fn record(&self, batch: Vec<Done>) -> Vec<String> {
        let (owner, now) = (self.owner.clone(), self.clock.now());
        let ids: Vec<String> = batch.iter().map(|d| d.task_id.clone()).collect();
        let result = self
            .store
            .write_one(move |c| {
                // Rows with the same outcome are one statement (see `outbox::record`), and
                // so are the texts that failed pushes bring forward.
                let outcomes: Vec<(&str, &Outcome)> =
                    batch.iter().map(|d| (d.id.as_str(), &d.outcome)).collect();
                let recorded = outbox::record(c, &outcomes, &owner, now)?;
                for done in batch.iter().filter(|d| !recorded.contains(&d.id)) {
                    tracing::warn!(task_id = %done.task_id, delivery = %done.id, "lease lost before the outcome was recorded");
                }
                let failed: Vec<(&str, &str)> = batch
                    .iter()
                    .filter_map(|d| Some((d.task_id.as_str(), d.push_failed_to.as_deref()?)))
                    .collect();
                let mut due = Vec::new();
                for (task_id, text) in receipts::texts_now(c, &failed, now)? {
                    tracing::info!(task_id = %task_id, "push failed; the text message goes now");
                    due.push(text);
                }
                for (device, result) in device_results(&batch) {
                    match result {
                        DeviceResult::Gone => notifications::forget_device(c, device)?,
                        DeviceResult::Delivered => notifications::device_result(c, device, None, now)?,
                        DeviceResult::Failed(e) => notifications::device_result(c, device, Some(e), now)?,
                    }
                }
                Ok(due)
            })
            .await;
        result.unwrap_or_else(|e| {
            // The leases run out and the rows are sent again: at least once, never lost.
            for task_id in ids {
                tracing::error!(task_id = %task_id, error = %e, "could not record a delivery outcome");
            }
            Vec::new()
        })
    }
}

fn log(row: &Row, outcome: &Outcome) {
    let (task_id, kind, attempt) = (&row.task_id, &row.kind, row.attempts);
    match outcome {
        Outcome::Sent => {
            tracing::info!(task_id = %task_id, level = row.level, kind = %kind, destination = %row.destination, "delivered")
        }
        Outcome::Retry { error, .. } => {
            tracing::warn!(task_id = %task_id, kind = %kind, attempt, %error, "delivery failed; will retry")
        }
        Outcome::Failing { error, .. } => {
            tracing::error!(task_id = %task_id, kind = %kind, attempt, %error, "delivery keeps failing; will keep trying")
        }
        Outcome::Failed { error } => {
            tracing::error!(task_id = %task_id, kind = %kind, attempt, %error, "delivery failed for good")
        }
        Outcome::Cancelled => {}
    }
}

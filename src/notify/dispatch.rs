//! The outbox dispatcher: claims due rows with a lease, sends them, records what happened,
//! and retries failures with exponential back-off and jitter. It holds no state between
//! rounds, so several instances can share one database.
use super::email::{EmailError, EmailSender, TaskEmail};
use super::links::{AckClaim, LinkSigner};
use super::push::{PushError, PushSender, Subscription, Urgency};
use crate::clock::SharedClock;
use crate::config::DispatchConfig;
use crate::domain::notification::{backoff, Channel};
use crate::domain::task::AckTargets;
use crate::domain::Task;
use crate::domain::{Priority, Status};
use crate::error::{AppError, AppResult};
use crate::store::directory::{self, Staff};
use crate::store::notifications::{self, Device, NotificationRow, Outcome};
use crate::store::tasks;
use crate::store::Store;
use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use rand::Rng;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::{Notify, Semaphore};

/// How long a one-click acknowledge link works.
pub const LINK_LIFETIME_HOURS: i64 = 12;

pub struct Dispatcher {
    pub store: Store,
    pub clock: SharedClock,
    pub push: PushSender,
    pub email: Option<EmailSender>,
    pub config: DispatchConfig,
    pub links: LinkSigner,
    pub public_url: String,
    pub ack_seconds: AckTargets,
    /// Names this instance in leases.
    pub owner: String,
}

struct Job {
    row: NotificationRow,
    task: Task,
    recipient: Option<Staff>,
    devices: Vec<Device>,
}

enum DeviceResult {
    Delivered,
    Gone,
    Failed(String),
}

struct Done {
    id: String,
    task_id: String,
    outcome: Outcome,
    devices: Vec<(String, DeviceResult)>,
}

/// What to write of each device a batch of sends reached: its latest result, or that it is
/// gone if its push service said so to any of them. One write per device, not per push: a
/// doctor's phone that took a hundred pushes in a batch is one row to update.
fn device_results(batch: &[Done]) -> Vec<(&str, &DeviceResult)> {
    let mut latest: Vec<(&str, &DeviceResult)> = Vec::new();
    for (device, result) in batch.iter().flat_map(|d| &d.devices) {
        match latest.iter_mut().find(|seen| seen.0 == device.as_str()) {
            Some((_, DeviceResult::Gone)) => {}
            Some((_, seen)) => *seen = result,
            None => latest.push((device, result)),
        }
    }
    latest
}

fn urgency(p: Priority) -> Urgency {
    match p {
        Priority::Stat | Priority::Asap => Urgency::High,
        Priority::Urgent => Urgency::Normal,
        Priority::Routine => Urgency::Low,
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

/// Sends in flight at once, per instance.
const MAX_IN_FLIGHT: usize = 256;

impl Dispatcher {
    /// Sends whatever is due, round after round; wakes early when `wake` is notified. Each
    /// send runs on its own and records its own outcome, so a hanging endpoint holds up
    /// nothing but itself (and only until its timeout).
    pub async fn run(self, wake: Arc<Notify>) {
        let me = Arc::new(self);
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        // Outcomes are written by one recorder, many to a transaction, as they come in.
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Done>();
        let recorder = {
            let me = me.clone();
            tokio::spawn(async move {
                while let Some(first) = done_rx.recv().await {
                    let mut batch = vec![first];
                    while batch.len() < 256 {
                        match done_rx.try_recv() {
                            Ok(d) => batch.push(d),
                            Err(_) => break,
                        }
                    }
                    me.record(batch).await;
                }
            })
        };
        let _stop_recorder = AbortOnDrop(recorder);
        let mut last_claim = tokio::time::Instant::now();
        loop {
            let free = permits.available_permits().min(me.config.batch as usize);
            if free == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
            // Under load every request wakes the dispatcher; claiming at most every few
            // milliseconds lets one claim carry many requests' notifications.
            tokio::time::sleep_until(last_claim + CLAIM_PACE).await;
            last_claim = tokio::time::Instant::now();
            match me.claim(free as i64).await {
                Ok(jobs) if jobs.is_empty() => {
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                    }
                }
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
                    tracing::error!(error = %e, "claiming notifications failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// One round, waiting for every send it started: for tests and benchmarks.
    pub async fn dispatch_once(&self) -> AppResult<usize> {
        let jobs = self.claim(self.config.batch).await?;
        let n = jobs.len();
        join_all(jobs.into_iter().map(|j| self.deliver_and_record(j))).await;
        Ok(n)
    }

    /// Claims up to `limit` due rows with a lease: of several instances, each row goes to one.
    /// The claim is one short write; what to send is read after it commits, off the writer.
    async fn claim(&self, limit: i64) -> AppResult<Vec<Job>> {
        let now = self.clock.now();
        let lease_until =
            now + Duration::from_std(self.config.lease).unwrap_or(Duration::seconds(60));
        let owner = self.owner.clone();
        let rows = self
            .store
            .write(move |c| notifications::claim_due(c, &owner, now, lease_until, limit))
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.store
            .read(move |c| {
                let task_ids: Vec<&str> = rows.iter().map(|r| r.task_id.as_str()).collect();
                let staff_ids: Vec<&str> = rows.iter().map(|r| r.recipient_id.as_str()).collect();
                let push_ids: Vec<&str> = rows
                    .iter()
                    .filter(|r| r.channel == Channel::Push.code())
                    .map(|r| r.recipient_id.as_str())
                    .collect();
                let tasks = tasks::get_many(c, &task_ids)?;
                let staff = directory::staff_by_ids(c, &staff_ids)?;
                let devices = notifications::devices_of(c, &push_ids)?;
                let mut jobs = Vec::with_capacity(rows.len());
                for row in &rows {
                    let task = tasks.get(&row.task_id).cloned().ok_or_else(|| {
                        AppError::Internal(format!("notification {} has no task", row.id))
                    })?;
                    let devices = if row.channel == Channel::Push.code() {
                        devices.get(&row.recipient_id).cloned().unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    jobs.push(Job {
                        recipient: staff.get(&row.recipient_id).cloned(),
                        devices,
                        task,
                        row: row.clone(),
                    });
                }
                Ok(jobs)
            })
            .await
    }

    async fn deliver_and_record(&self, job: Job) {
        let done = self.deliver(&job, self.clock.now()).await;
        self.record(vec![done]).await;
    }

    /// Writes outcomes in one transaction, if this instance still holds their leases.
    async fn record(&self, batch: Vec<Done>) {
        let (owner, now) = (self.owner.clone(), self.clock.now());
        let ids: Vec<String> = batch.iter().map(|d| d.task_id.clone()).collect();
        let result = self
            .store
            .write(move |c| {
                // Sent, the common outcome, is one statement for the whole batch; the others
                // carry their own error or retry time, one statement each.
                let sent: Vec<&str> = batch
                    .iter()
                    .filter(|d| matches!(d.outcome, Outcome::Sent))
                    .map(|d| d.id.as_str())
                    .collect();
                let recorded = notifications::record_sent(c, &sent, &owner, now)?;
                for done in &batch {
                    let held = match done.outcome {
                        Outcome::Sent => recorded.contains(done.id.as_str()),
                        _ => notifications::record(c, &done.id, &owner, &done.outcome, now)?,
                    };
                    if !held {
                        tracing::warn!(task_id = %done.task_id, notification = %done.id, "lease lost before the outcome was recorded");
                    }
                }
                for (device, result) in device_results(&batch) {
                    match result {
                        DeviceResult::Gone => notifications::forget_device(c, device)?,
                        DeviceResult::Delivered => notifications::device_result(c, device, None, now)?,
                        DeviceResult::Failed(e) => notifications::device_result(c, device, Some(e), now)?,
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            // The leases run out and the rows are sent again: at least once, never lost.
            for task_id in ids {
                tracing::error!(task_id = %task_id, error = %e, "could not record a delivery outcome");
            }
        }
    }

    fn retry_or_fail(&self, row: &NotificationRow, error: String, now: DateTime<Utc>) -> Outcome {
        if row.attempts >= self.config.max_attempts {
            return Outcome::Failed {
                error: format!("gave up after {} attempts: {error}", row.attempts),
            };
        }
        let wait = backoff(
            row.attempts.max(1) as u32,
            self.config.backoff_base,
            self.config.backoff_max,
            rand::thread_rng().gen(),
        );
        Outcome::Retry {
            at: now + Duration::from_std(wait).unwrap_or(Duration::seconds(5)),
            error,
        }
    }

    fn ack_url(&self, job: &Job, now: DateTime<Utc>) -> String {
        let token = self.links.sign(&AckClaim {
            n: job.row.id.clone(),
            task: job.task.id.clone(),
            staff: job.row.recipient_id.clone(),
            exp: (now + Duration::hours(LINK_LIFETIME_HOURS)).timestamp(),
        });
        format!("{}/ack/{token}", self.public_url)
    }

    async fn deliver(&self, job: &Job, now: DateTime<Utc>) -> Done {
        let (row, task) = (&job.row, &job.task);
        let mut done = Done {
            id: row.id.clone(),
            task_id: task.id.clone(),
            outcome: Outcome::Sent,
            devices: Vec::new(),
        };
        if task.status != Status::Requested {
            done.outcome = Outcome::Cancelled;
            return done;
        }
        let Some(recipient) = &job.recipient else {
            done.outcome = Outcome::Failed {
                error: "the recipient no longer exists".into(),
            };
            return done;
        };
        done.outcome = if row.channel == Channel::Email.code() {
            self.send_email(job, recipient, now).await
        } else {
            self.send_push(job, now, &mut done.devices).await
        };
        match &done.outcome {
            Outcome::Sent => {
                tracing::info!(task_id = %task.id, level = row.level, channel = %row.channel, staff_id = %recipient.id, "notification sent")
            }
            Outcome::Retry { error, .. } => {
                tracing::warn!(task_id = %task.id, channel = %row.channel, attempt = row.attempts, %error, "notification failed; will retry")
            }
            Outcome::Failed { error } => {
                tracing::error!(task_id = %task.id, channel = %row.channel, staff_id = %recipient.id, %error, "notification failed for good")
            }
            Outcome::Cancelled => {}
        }
        done
    }

    async fn send_push(
        &self,
        job: &Job,
        now: DateTime<Utc>,
        results: &mut Vec<(String, DeviceResult)>,
    ) -> Outcome {
        let (row, task) = (&job.row, &job.task);
        if job.devices.is_empty() {
            return Outcome::Failed {
                error: "no device registered for push notifications".into(),
            };
        }
        // Never the patient's name or NHS number: this passes through a third-party push service.
        let payload = json!({
            // Lets a receiver drop a repeat: delivery is at least once.
            "notification_id": row.id,
            "task_id": task.id,
            "priority": task.priority,
            "ward": task.ward,
            "bed": task.bed,
            "category": task.category,
            "level": row.level,
            "ack_url": self.ack_url(job, now),
            "url": format!("{}/me#task-{}", self.public_url, task.id),
        })
        .to_string();
        let ttl = self.ack_seconds.seconds(task.priority).max(60);
        let sends = job.devices.iter().map(|d| {
            let sub = Subscription {
                endpoint: d.endpoint.clone(),
                p256dh: d.p256dh.clone(),
                auth: d.auth.clone(),
            };
            let payload = payload.as_bytes();
            async move {
                let r = self
                    .push
                    .send(&sub, payload, ttl, urgency(task.priority), &task.id)
                    .await;
                (d.id.clone(), r)
            }
        });
        let mut delivered = false;
        let mut retry = None;
        let mut errors = Vec::new();
        for (device, r) in join_all(sends).await {
            match r {
                Ok(()) => {
                    delivered = true;
                    results.push((device, DeviceResult::Delivered));
                }
                Err(PushError::Gone) => {
                    errors.push("device unsubscribed (removed)".to_string());
                    results.push((device, DeviceResult::Gone));
                }
                Err(PushError::Retry(e)) => {
                    retry = Some(e.clone());
                    results.push((device, DeviceResult::Failed(e)));
                }
                Err(PushError::Permanent(e)) => {
                    errors.push(e.clone());
                    results.push((device, DeviceResult::Failed(e)));
                }
            }
        }
        if delivered {
            Outcome::Sent
        } else if let Some(e) = retry {
            self.retry_or_fail(row, e, now)
        } else {
            Outcome::Failed {
                error: errors.join("; "),
            }
        }
    }

    async fn send_email(&self, job: &Job, recipient: &Staff, now: DateTime<Utc>) -> Outcome {
        let (row, task) = (&job.row, &job.task);
        let (Some(sender), Some(to)) = (&self.email, &recipient.email) else {
            return Outcome::Failed {
                error: "email is not configured, or the recipient has no address".into(),
            };
        };
        let msg = TaskEmail {
            to: to.clone(),
            message_id: row.id.clone(),
            task_id: task.id.clone(),
            priority: task.priority.code().to_string(),
            ward: task.ward.clone(),
            bed: task.bed.clone(),
            category: task.category.code().to_string(),
            escalation_level: row.level,
            ack_url: self.ack_url(job, now),
            task_url: format!("{}/me#task-{}", self.public_url, task.id),
        };
        match sender.send(&msg).await {
            Ok(()) => Outcome::Sent,
            Err(EmailError::Retry(e)) => self.retry_or_fail(row, e, now),
            Err(EmailError::Permanent(e)) => Outcome::Failed { error: e },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(id: &str, devices: Vec<(&str, DeviceResult)>) -> Done {
        Done {
            id: id.into(),
            task_id: "t".into(),
            outcome: Outcome::Sent,
            devices: devices
                .into_iter()
                .map(|(d, r)| (d.to_string(), r))
                .collect(),
        }
    }

    fn summary(batch: &[Done]) -> Vec<(String, String)> {
        device_results(batch)
            .into_iter()
            .map(|(d, r)| {
                let r = match r {
                    DeviceResult::Delivered => "delivered".to_string(),
                    DeviceResult::Gone => "gone".to_string(),
                    DeviceResult::Failed(e) => format!("failed: {e}"),
                };
                (d.to_string(), r)
            })
            .collect()
    }

    #[test]
    fn each_device_is_written_once_with_its_latest_result_and_gone_stays_gone() {
        let batch = [
            done(
                "n1",
                vec![
                    ("phone", DeviceResult::Delivered),
                    ("tablet", DeviceResult::Gone),
                ],
            ),
            done("n2", vec![("phone", DeviceResult::Failed("503".into()))]),
            done(
                "n3",
                vec![
                    ("tablet", DeviceResult::Delivered),
                    ("watch", DeviceResult::Delivered),
                ],
            ),
        ];
        assert_eq!(
            summary(&batch),
            [
                ("phone".to_string(), "failed: 503".to_string()),
                ("tablet".to_string(), "gone".to_string()),
                ("watch".to_string(), "delivered".to_string()),
            ]
        );
        let later = [
            done(
                "n4",
                vec![("phone", DeviceResult::Failed("timeout".into()))],
            ),
            done("n5", vec![("phone", DeviceResult::Delivered)]),
        ];
        assert_eq!(
            summary(&later),
            [("phone".to_string(), "delivered".to_string())]
        );
    }
}

//! The kinds that chase a person: a Web Push message to each of their devices, and an
//! email. Neither carries the patient's name or NHS number.
use super::email::{EmailError, EmailSender, TaskEmail};
use super::links::{AckClaim, LinkSigner, Purpose};
use super::push::{PushError, PushSender, Subscription, Urgency};
use super::text::{TextMessage, TextSender};
use crate::domain::delivery::{Failure, Kind};
use crate::domain::task::AckTargets;
use crate::domain::{Priority, Status, Task};
use crate::store::directory::Staff;
use crate::store::notifications::Device;
use crate::store::outbox::Row;
use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use serde_json::json;

/// How long a one-click acknowledge link works.
pub const LINK_LIFETIME_HOURS: i64 = 12;

/// Sends notifications.
pub struct Notifier {
    pub push: PushSender,
    pub email: Option<EmailSender>,
    pub text: Option<TextSender>,
    pub links: LinkSigner,
    pub public_url: String,
    pub ack_seconds: AckTargets,
}

/// A notification to send, with what it is sent about and to.
pub struct Job {
    pub row: Row,
    pub task: Task,
    pub recipient: Option<Staff>,
    pub devices: Vec<Device>,
    /// For a text: the recipient's mobile number, and whether they have had the task on
    /// screen already (then the text is not needed).
    pub mobile: Option<String>,
    pub seen: bool,
}

/// What one push service said of one device.
pub enum DeviceResult {
    Delivered,
    Gone,
    Failed(String),
}

/// One attempt's result, before the kind's retry policy is applied.
pub enum Attempt {
    Sent,
    /// The task no longer needs it.
    NotNeeded,
    Failed(Failure),
}

fn urgency(p: Priority) -> Urgency {
    match p {
        Priority::Stat | Priority::Asap => Urgency::High,
        Priority::Urgent => Urgency::Normal,
        Priority::Routine => Urgency::Low,
    }
}

impl Notifier {
    fn ack_url(&self, job: &Job, recipient: &Staff, now: DateTime<Utc>) -> String {
        let token = self.links.sign(&AckClaim {
            n: job.row.id.clone(),
            task: job.task.id.clone(),
            staff: recipient.id.clone(),
            exp: (now + Duration::hours(LINK_LIFETIME_HOURS)).timestamp(),
        });
        format!("{}/ack/{token}", self.public_url)
    }

    /// One attempt: what each device said goes into `devices`.
    pub async fn deliver(
        &self,
        job: &Job,
        now: DateTime<Utc>,
        devices: &mut Vec<(String, DeviceResult)>,
    ) -> Attempt {
        if job.task.status != Status::Requested {
            return Attempt::NotNeeded;
        }
        let Some(recipient) = &job.recipient else {
            return Attempt::Failed(Failure::Refused("the recipient no longer exists".into()));
        };
        let sent = match Kind::parse(&job.row.kind) {
            Ok(Kind::Email) => self.send_email(job, recipient, now).await,
            Ok(Kind::Text) if job.seen => return Attempt::NotNeeded,
            Ok(Kind::Text) => self.send_text(job).await,
            _ => self.send_push(job, recipient, now, devices).await,
        };
        match sent {
            Ok(()) => Attempt::Sent,
            Err(f) => Attempt::Failed(f),
        }
    }

    async fn send_push(
        &self,
        job: &Job,
        recipient: &Staff,
        now: DateTime<Utc>,
        results: &mut Vec<(String, DeviceResult)>,
    ) -> Result<(), Failure> {
        let (row, task) = (&job.row, &job.task);
        if job.devices.is_empty() {
            return Err(Failure::Refused(
                "no device registered for push notifications".into(),
            ));
        }
        // Never the patient's name or NHS number: this passes through a third-party push service.
        let mut payload = json!({
            // Lets a receiver drop a repeat: delivery is at least once.
            "notification_id": row.id,
            "task_id": task.id,
            "priority": task.priority,
            "ward": task.ward,
            "bed": task.bed,
            "category": task.category,
            "level": row.level,
            "ack_url": self.ack_url(job, recipient, now),
            "url": format!("{}/me#task-{}", self.public_url, task.id),
        });
        let ttl = self.ack_seconds.seconds(task.priority).max(60);
        let sends = job.devices.iter().map(|d| {
            let sub = Subscription {
                endpoint: d.endpoint.clone(),
                p256dh: d.p256dh.clone(),
                auth: d.auth.clone(),
            };
            // What the phone sends back when it shows the push: signed for this push and
            // this device, so a receipt needs no session and cannot be made up.
            payload["receipt"] = json!(self.links.seal(Purpose::Receipt, &[&row.id, &d.id]));
            let payload = payload.to_string();
            async move {
                let r = self
                    .push
                    .send(
                        &sub,
                        payload.as_bytes(),
                        ttl,
                        urgency(task.priority),
                        &task.id,
                    )
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
        match (delivered, retry) {
            (true, _) => Ok(()),
            (false, Some(e)) => Err(Failure::Transient(e)),
            (false, None) => Err(Failure::Refused(errors.join("; "))),
        }
    }

    /// A notice to a person's phones, about no one task (a bleep handed to them). With no
    /// phone registered it is not needed: their page shows the same.
    pub async fn send_notice(&self, row: &Row, devices: &[Device]) -> Attempt {
        if devices.is_empty() {
            return Attempt::NotNeeded;
        }
        let said: serde_json::Value = serde_json::from_str(&row.destination).unwrap_or_default();
        let payload = json!({
            "notification_id": row.id,
            "notice": true,
            "title": said["title"],
            "body": said["body"],
            "url": format!("{}{}", self.public_url, notice_path(&said)),
        })
        .to_string();
        let sends = devices.iter().map(|d| {
            let sub = Subscription {
                endpoint: d.endpoint.clone(),
                p256dh: d.p256dh.clone(),
                auth: d.auth.clone(),
            };
            let payload = payload.clone();
            async move {
                self.push
                    .send(
                        &sub,
                        payload.as_bytes(),
                        3600,
                        Urgency::Normal,
                        "bleep-notice",
                    )
                    .await
            }
        });
        let results = join_all(sends).await;
        if results.iter().any(Result::is_ok) {
            return Attempt::Sent;
        }
        match results.into_iter().find_map(|r| match r {
            Err(PushError::Retry(e)) => Some(e),
            _ => None,
        }) {
            Some(e) => Attempt::Failed(Failure::Transient(e)),
            None => Attempt::Failed(Failure::Refused("no phone took the notice".into())),
        }
    }

    /// The fallback: a text to the recipient's mobile with a short acknowledge link.
    async fn send_text(&self, job: &Job) -> Result<(), Failure> {
        let (row, task) = (&job.row, &job.task);
        let Some(sender) = &self.text else {
            return Err(Failure::Refused(
                "text messages are not configured ([text])".into(),
            ));
        };
        let Some(to) = &job.mobile else {
            return Err(Failure::Refused(
                "no mobile number registered for text messages".into(),
            ));
        };
        let Some(code) = self.links.seal(Purpose::Ack, &[&row.id]) else {
            return Err(Failure::Refused(
                "this delivery's id cannot be linked".into(),
            ));
        };
        sender
            .send(&TextMessage {
                to: to.clone(),
                body: text_body(task, row.level, &format!("{}/a/{code}", self.public_url)),
                reference: row.id.clone(),
            })
            .await
    }

    async fn send_email(
        &self,
        job: &Job,
        recipient: &Staff,
        now: DateTime<Utc>,
    ) -> Result<(), Failure> {
        let (row, task) = (&job.row, &job.task);
        let (Some(sender), Some(to)) = (&self.email, &recipient.email) else {
            return Err(Failure::Refused(
                "email is not configured, or the recipient has no address".into(),
            ));
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
            ack_url: self.ack_url(job, recipient, now),
            task_url: format!("{}/me#task-{}", self.public_url, task.id),
        };
        match sender.send(&msg).await {
            Ok(()) => Ok(()),
            Err(EmailError::Retry(e)) => Err(Failure::Transient(e)),
            Err(EmailError::Permanent(e)) => Err(Failure::Refused(e)),
        }
    }
}

/// A text message: priority, category, ward and bed, and the link; never the patient.
pub fn text_body(task: &Task, level: i32, link: &str) -> String {
    let escalated = if level > 0 { " (escalated)" } else { "" };
    format!(
        "Bleepless {}{escalated}: {}, {} bed {}. Acknowledge: {link}",
        task.priority.code().to_uppercase(),
        task.category.code().replace('_', " "),
        task.ward,
        task.bed
    )
}

/// The page a notice opens: a path on this service (My bleeps unless it names another).
fn notice_path(said: &serde_json::Value) -> &str {
    match said["path"].as_str() {
        Some(p) if p.starts_with('/') && !p.starts_with("//") => p,
        _ => "/me",
    }
}

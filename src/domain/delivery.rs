//! Deliveries: what the one outbox sends (its kinds), where a row is in its life, and each
//! kind's retry policy, declared here and nowhere else.
use super::coded_enum;
use chrono::{DateTime, Utc};
use std::time::Duration;

coded_enum!(
    /// How a delivery goes out: to a person's devices, to their mailbox, as a text message
    /// to their mobile (the fallback when a push was not seen), to a patient record server,
    /// or a notice to a person's phones that is about no one task (a bleep handed to them).
    Kind, "delivery kind" {
        Push => "push",
        Email => "email",
        Text => "text",
        Record => "record",
        Notice => "notice",
    }
);

coded_enum!(
    /// Where an outbox row is in its life. `failing` rows are still retried (a kind whose
    /// deliveries must arrive in the end); `failed` and `cancelled` rows are finished.
    Delivery, "delivery status" {
        Pending => "pending",
        Sending => "sending",
        Sent => "sent",
        Failing => "failing",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

/// How long after a notification a text message follows it when nobody it reached has seen
/// or acknowledged the task, per priority; `None` sends no text at that priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextAfter {
    pub stat: Option<u32>,
    pub asap: Option<u32>,
    pub urgent: Option<u32>,
    pub routine: Option<u32>,
}

impl TextAfter {
    pub fn seconds(&self, p: crate::domain::Priority) -> Option<u32> {
        use crate::domain::Priority;
        match p {
            Priority::Stat => self.stat,
            Priority::Asap => self.asap,
            Priority::Urgent => self.urgent,
            Priority::Routine => self.routine,
        }
    }
}

/// How long after a push service took a push the device has to show it before it counts as
/// silent.
pub const SHOW_WITHIN: chrono::Duration = chrono::Duration::minutes(2);

/// Whether a device takes pushes it does not show: its push service took one over
/// [`SHOW_WITHIN`] ago and it has shown nothing since (a minute's grace for clocks and
/// batching). A dead iPhone web app subscription, or notifications turned off for the
/// browser, look like this; a device that has never taken a push is not silent.
pub fn silent(
    accepted: Option<DateTime<Utc>>,
    shown: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    let Some(accepted) = accepted else {
        return false;
    };
    accepted < now - SHOW_WITHIN
        && shown.is_none_or(|s| s < accepted - chrono::Duration::minutes(1))
}

/// The statuses of rows that wait to be sent, as an SQL list.
pub const WAITING_SQL: &str = "'pending', 'failing'";

/// What the operator configures: how often and how fast to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryLimits {
    pub max_attempts: i32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// What happens once a delivery has failed `max_attempts` times, or was refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GivingUp {
    /// It fails for good and is shown as failed: a notification that did not reach a
    /// person in time is no use later; the escalation goes on and reaches someone else.
    Fail,
    /// It is kept, marked `failing` for someone to look at, and retried at the longest
    /// back-off until it arrives: the patient record must hold every task.
    KeepTrying,
}

/// A kind's retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub limits: RetryLimits,
    pub giving_up: GivingUp,
}

/// Each kind's policy, in one place.
impl Kind {
    pub fn retry_policy(self, limits: RetryLimits) -> RetryPolicy {
        let giving_up = match self {
            Kind::Push | Kind::Email | Kind::Text | Kind::Notice => GivingUp::Fail,
            Kind::Record => GivingUp::KeepTrying,
        };
        RetryPolicy { limits, giving_up }
    }

    /// Whether a row not yet sent stops being needed once nobody needs chasing (the task
    /// was acknowledged or closed).
    pub fn chases_a_person(self) -> bool {
        match self {
            Kind::Push | Kind::Email | Kind::Text => true,
            Kind::Record | Kind::Notice => false,
        }
    }

    /// The kinds whose rows chase a person, as an SQL list.
    pub fn chasing_sql() -> String {
        Kind::ALL
            .iter()
            .filter(|k| k.chases_a_person())
            .map(|k| format!("'{}'", k.code()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why one attempt did not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth trying again: the far end is down, busy or slow.
    Transient(String),
    /// The far end refused it: trying the same again will not help.
    Refused(String),
    /// The far end is busy and said when to come back (HTTP 429 with `Retry-After`).
    Busy {
        error: String,
        retry_after: Duration,
    },
}

/// What to record of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Not sent; try again at `at`.
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Not sent after every attempt (or refused): still retried at `at`, marked for attention.
    Failing {
        at: DateTime<Utc>,
        error: String,
    },
    Failed {
        error: String,
    },
    /// Not needed any more (the task was acknowledged or closed before it went out).
    Cancelled,
}

impl RetryPolicy {
    /// What follows a failed attempt, the `attempts`th. `jitter` in [0, 1) spreads retries.
    pub fn after(
        &self,
        attempts: i32,
        failure: Failure,
        now: DateTime<Utc>,
        jitter: f64,
    ) -> Outcome {
        let (error, refused, not_before) = match failure {
            Failure::Transient(e) => (e, false, Duration::ZERO),
            Failure::Refused(e) => (e, true, Duration::ZERO),
            Failure::Busy { error, retry_after } => (error, false, retry_after),
        };
        let exhausted = attempts >= self.limits.max_attempts;
        let wait = |d: Duration| {
            now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(60))
        };
        match self.giving_up {
            GivingUp::Fail if refused => Outcome::Failed { error },
            GivingUp::Fail if exhausted => Outcome::Failed {
                error: format!("gave up after {attempts} attempts: {error}"),
            },
            GivingUp::KeepTrying if refused || exhausted => Outcome::Failing {
                at: wait(self.limits.backoff_max),
                error,
            },
            // The far end's own word on when to come back wins over a shorter back-off.
            _ => Outcome::Retry {
                at: wait(
                    backoff(
                        attempts.max(1) as u32,
                        self.limits.backoff_base,
                        self.limits.backoff_max,
                        jitter,
                    )
                    .max(not_before),
                ),
                error,
            },
        }
    }
}

/// How long to wait before retry number `attempt` (1-based): exponential from `base`,
/// capped at `max`, then scaled between 0.75 and 1.25 by `jitter` in [0, 1) so that many
/// rows failing together do not all retry together.
pub fn backoff(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(max);
    capped.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0 + 0.25)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn backoff_grows_exponentially_and_is_capped() {
        let b = Duration::from_secs(2);
        let m = Duration::from_secs(300);
        let mid = |a| backoff(a, b, m, 0.5);
        assert_eq!(mid(1), Duration::from_secs(2));
        assert_eq!(mid(2), Duration::from_secs(4));
        assert_eq!(mid(5), Duration::from_secs(32));
        assert_eq!(mid(30), Duration::from_secs(300));
        assert!(backoff(3, b, m, 0.0) < backoff(3, b, m, 0.99));
    }

    fn limits() -> RetryLimits {
        RetryLimits {
            max_attempts: 3,
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
        }
    }

    #[test]
    fn a_notification_retries_then_fails_for_good_and_a_refusal_fails_at_once() {
        let p = Kind::Push.retry_policy(limits());
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 22, 0, 0).unwrap();
        let down = || Failure::Transient("503".into());
        assert!(
            matches!(p.after(1, down(), now, 0.5), Outcome::Retry { at, .. } if at == now + chrono::Duration::seconds(5))
        );
        assert_eq!(
            p.after(3, down(), now, 0.5),
            Outcome::Failed {
                error: "gave up after 3 attempts: 503".into()
            }
        );
        assert_eq!(
            p.after(1, Failure::Refused("400".into()), now, 0.5),
            Outcome::Failed {
                error: "400".into()
            }
        );
    }

    #[test]
    fn a_record_delivery_never_gives_up_and_is_marked_failing() {
        let p = Kind::Record.retry_policy(limits());
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 22, 0, 0).unwrap();
        let later = now + chrono::Duration::seconds(300);
        assert_eq!(
            p.after(1, Failure::Refused("422".into()), now, 0.5),
            Outcome::Failing {
                at: later,
                error: "422".into()
            }
        );
        assert_eq!(
            p.after(9, Failure::Transient("timed out".into()), now, 0.5),
            Outcome::Failing {
                at: later,
                error: "timed out".into()
            }
        );
        assert!(matches!(
            p.after(1, Failure::Transient("503".into()), now, 0.5),
            Outcome::Retry { .. }
        ));
    }

    #[test]
    fn a_device_is_silent_when_it_took_a_push_two_minutes_ago_and_showed_nothing_since() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 22, 10, 0).unwrap();
        let ago = |m: i64| Some(now - chrono::Duration::minutes(m));
        assert!(!silent(None, None, now), "never took a push");
        assert!(!silent(ago(1), None, now), "still has time to show it");
        assert!(silent(ago(3), None, now), "never showed one");
        assert!(!silent(ago(3), ago(3), now), "showed it");
        assert!(silent(ago(3), ago(9), now), "showed an older one only");
    }

    #[test]
    fn only_notifications_chase_a_person() {
        assert_eq!(Kind::chasing_sql(), "'push', 'email', 'text'");
    }

    #[test]
    fn a_busy_provider_is_retried_no_sooner_than_it_asked_and_still_given_up_on() {
        let p = Kind::Text.retry_policy(limits());
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 22, 0, 0).unwrap();
        let busy = || Failure::Busy {
            error: "429".into(),
            retry_after: Duration::from_secs(30),
        };
        assert!(
            matches!(p.after(1, busy(), now, 0.5), Outcome::Retry { at, .. } if at == now + chrono::Duration::seconds(30))
        );
        assert!(matches!(
            p.after(3, busy(), now, 0.5),
            Outcome::Failed { .. }
        ));
    }
}

//! Notifications: channels, delivery states, and the pure parts of delivery policy.
use super::coded_enum;
use std::time::Duration;

coded_enum!(
    /// How a notification reaches a person.
    Channel, "channel" {
        Push => "push",
        Email => "email",
    }
);

coded_enum!(
    /// Where an outbox row is in its life.
    Delivery, "delivery status" {
        Pending => "pending",
        Sending => "sending",
        Sent => "sent",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

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
}

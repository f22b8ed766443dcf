//! Is the service doing its job? The rules `/healthz` answers by: the escalation tick ran
//! within its last three periods, and nothing due has waited too long.
use chrono::{DateTime, Duration, Utc};

/// What was read of the service's own loops.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    /// When any instance's tick last ran, or None if it never has.
    pub last_tick: Option<DateTime<Utc>>,
    /// When this instance started: the tick is not late before it has had its chance.
    pub started: DateTime<Utc>,
    /// The due time of the longest-waiting delivery.
    pub oldest_delivery: Option<DateTime<Utc>>,
    /// When the task longest due to escalate fell due.
    pub oldest_escalation: Option<DateTime<Utc>>,
}

/// Why the service is not healthy; empty when it is. `period` is the tick's period.
pub fn problems(
    r: &Readings,
    now: DateTime<Utc>,
    period: Duration,
    max_age: Duration,
) -> Vec<String> {
    let mut out = Vec::new();
    let stale = period * 3;
    // A new instance has three periods to run its first tick.
    let since = r.last_tick.map_or(r.started, |t| t.max(r.started));
    if now - since > stale {
        out.push(match r.last_tick {
            Some(t) => format!(
                "the escalation tick has not run for {} s (last at {}; it runs every {} s)",
                (now - t).num_seconds(),
                t.format("%Y-%m-%dT%H:%M:%SZ"),
                period.num_seconds()
            ),
            None => format!(
                "the escalation tick has not run since the service started {} s ago",
                (now - r.started).num_seconds()
            ),
        });
    }
    let late = |what: &str, at: Option<DateTime<Utc>>| {
        at.filter(|t| now - *t > max_age).map(|t| {
            format!(
                "{what} has waited {} s (longer than {} s)",
                (now - t).num_seconds(),
                max_age.num_seconds()
            )
        })
    };
    out.extend(late("a delivery", r.oldest_delivery));
    out.extend(late("an escalation", r.oldest_escalation));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 22, 0, 0).unwrap() + Duration::seconds(secs)
    }

    #[test]
    fn the_tick_is_late_after_three_periods_not_before() {
        let (p, max) = (Duration::seconds(5), Duration::seconds(120));
        let r = Readings {
            last_tick: Some(at(0)),
            started: at(-100),
            ..Readings::default()
        };
        assert!(problems(&r, at(15), p, max).is_empty());
        let why = problems(&r, at(16), p, max);
        assert_eq!(why.len(), 1);
        assert!(why[0].contains("has not run for 16 s"), "{why:?}");
        let new = Readings {
            last_tick: None,
            started: at(0),
            ..Readings::default()
        };
        assert!(
            problems(&new, at(10), p, max).is_empty(),
            "a new instance has its chance"
        );
        assert!(problems(&new, at(20), p, max)[0].contains("since the service started"));
    }

    #[test]
    fn due_work_older_than_the_limit_is_a_problem() {
        let (p, max) = (Duration::seconds(5), Duration::seconds(120));
        let r = Readings {
            last_tick: Some(at(300)),
            started: at(0),
            oldest_delivery: Some(at(100)),
            oldest_escalation: Some(at(250)),
        };
        let why = problems(&r, at(301), p, max);
        assert_eq!(why, ["a delivery has waited 201 s (longer than 120 s)"]);
    }
}

//! What an instance knows of the rota's next boundary, so that commands between
//! boundaries need not ask the database whether one has passed.
use crate::store::rota as store;
use chrono::{DateTime, Utc};

/// How long an instance trusts what it learned of the rota's next boundary. A shift that
/// another instance or the command line adds, with a boundary already passed or due
/// within this time, is applied by this instance's commands this much later at most (and
/// by the next tick in any case); a shift this process adds is noticed at once.
pub const QUIET_AT_MOST: std::time::Duration = std::time::Duration::from_secs(1);

/// What this instance last learned of the rota: that no boundary was due at one time, and
/// when the next one is. Until then (and for at most [`QUIET_AT_MOST`]) no boundary can be
/// due, so a command need not ask the database: on PostgreSQL a round trip fewer for
/// nearly every command, on SQLite two statements fewer on the one writer.
#[derive(Default)]
pub struct RotaQuiet(std::sync::Mutex<Option<Quiet>>);

struct Quiet {
    learned: std::time::Instant,
    /// This process's count of changes to shifts when it was learned.
    changes: u64,
    /// The time nothing was due at, and the next boundary after it (None: none).
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
}

impl RotaQuiet {
    /// Is no boundary due at `now`, by what was learned (and is still trusted)?
    pub fn is_quiet(&self, now: DateTime<Utc>) -> bool {
        let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        known.as_ref().is_some_and(|q| {
            q.learned.elapsed() < QUIET_AT_MOST
                && q.changes == store::shifts_changed()
                && q.from <= now
                && q.until.is_none_or(|next| now < next)
        })
    }

    /// Nothing was due at `from`; the next boundary is `until`.
    pub(super) fn learn(&self, from: DateTime<Utc>, until: Option<DateTime<Utc>>, changes: u64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Quiet {
            learned: std::time::Instant::now(),
            changes,
            from,
            until,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn what_was_learned_of_the_next_boundary_holds_until_it_and_no_longer() {
        let at = |h| Utc.with_ymd_and_hms(2026, 12, 3, h, 0, 0).unwrap();
        let quiet = RotaQuiet::default();
        assert!(!quiet.is_quiet(at(8)), "nothing learned yet");
        quiet.learn(at(8), Some(at(9)), store::shifts_changed());
        assert!(quiet.is_quiet(at(8)));
        assert!(!quiet.is_quiet(at(9)), "the boundary itself is due");
        assert!(!quiet.is_quiet(at(7)), "before what was learned");
        // A shift this process adds or removes: asked again at once.
        quiet.learn(at(8), Some(at(9)), store::shifts_changed().wrapping_sub(1));
        assert!(!quiet.is_quiet(at(8)));
        // No boundary ahead: quiet, but only for a while.
        quiet.learn(at(8), None, store::shifts_changed());
        assert!(quiet.is_quiet(at(20)));
        *quiet.0.lock().unwrap() = Some(Quiet {
            learned: std::time::Instant::now() - QUIET_AT_MOST,
            changes: store::shifts_changed(),
            from: at(8),
            until: None,
        });
        assert!(!quiet.is_quiet(at(8)), "trusted for a second at most");
    }
}

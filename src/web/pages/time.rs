//! Times as the ward reads them: the hospital's local clock, and how long until (or past)
//! a deadline in words.
use crate::domain::rota::Zone;
use chrono::{DateTime, Utc};

/// "14:05", or "Sat 14:05" when not today, in the hospital's time zone.
pub fn clock(zone: &Zone, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    zone.short(at, now)
}

/// A length of time in words: seconds under a minute, minutes and seconds under ten
/// minutes, whole minutes under an hour, then hours and minutes.
pub fn span(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if secs < 60 {
        format!("{s} s")
    } else if secs < 600 && s > 0 {
        format!("{m} min {s} s")
    } else if secs < 3600 {
        format!("{m} min")
    } else if m == 0 {
        format!("{h} h")
    } else {
        format!("{h} h {m} min")
    }
}

/// "due in 3 min", "due in 40 s", "2 min 40 s overdue": never a bare "0 min".
pub fn due(deadline: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let left = (deadline - now).num_seconds();
    if left >= 0 {
        format!("due in {}", span(left))
    } else {
        format!("{} overdue", span(-left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_a_minute_shows_seconds_never_zero_minutes() {
        let now = Utc::now();
        let at = |s| now + chrono::Duration::seconds(s);
        assert_eq!(due(at(180), now), "due in 3 min");
        assert_eq!(due(at(40), now), "due in 40 s");
        assert_eq!(due(at(-160), now), "2 min 40 s overdue");
        assert_eq!(due(at(-5), now), "5 s overdue");
        assert_eq!(due(at(-3900), now), "1 h 5 min overdue");
        assert_eq!(due(at(-1500), now), "25 min overdue");
    }
}

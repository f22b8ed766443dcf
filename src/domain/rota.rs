//! The rota's rules (DESIGN.md decision 10): local times and the clock changes, recurring
//! patterns, who holds a role at an instant (shifts and overrides), gaps and clashes. Pure:
//! the store keeps shifts as instants, and everything here takes them as values.
use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;

/// From when to when (an instant each; the end not included).
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// The hospital's time zone: shifts are entered and shown in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(pub Tz);

impl Default for Zone {
    fn default() -> Zone {
        Zone(chrono_tz::Europe::London)
    }
}

impl Zone {
    pub fn parse(name: &str) -> Result<Zone, String> {
        name.trim().parse::<Tz>().map(Zone).map_err(|_| {
            format!("time zone {name:?} is not an IANA time zone name such as Europe/London")
        })
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The instant a local date and time names, or why it names none or two (the clocks
    /// going forward skip an hour; going back, an hour happens twice).
    pub fn instant(&self, local: NaiveDateTime) -> Result<DateTime<Utc>, String> {
        let shown = local.format("%Y-%m-%d %H:%M");
        match self.0.from_local_datetime(&local) {
            LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
            LocalResult::None => Err(format!(
                "{shown} does not exist in {}: the clocks go forward then",
                self.name()
            )),
            LocalResult::Ambiguous(a, b) => Err(format!(
                "{shown} happens twice in {} as the clocks go back: give its offset, \
                 {} or {}",
                self.name(),
                a.format("%Y-%m-%dT%H:%M%:z"),
                b.format("%Y-%m-%dT%H:%M%:z"),
            )),
        }
    }

    /// Reads a time as written on a rota: `2026-12-24 20:00` (local, also with a `T`), or
    /// with its offset (`2026-10-25T01:30+01:00`, or `Z`), which settles an hour that
    /// happens twice.
    pub fn parse_time(&self, s: &str) -> Result<DateTime<Utc>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("a time is required, such as 2026-12-24 20:00".into());
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(t.with_timezone(&Utc));
        }
        for f in ["%Y-%m-%dT%H:%M%:z", "%Y-%m-%d %H:%M%:z"] {
            if let Ok(t) = DateTime::parse_from_str(s, f) {
                return Ok(t.with_timezone(&Utc));
            }
        }
        for f in [
            "%Y-%m-%d %H:%M",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S",
        ] {
            if let Ok(local) = NaiveDateTime::parse_from_str(s, f) {
                return self.instant(local);
            }
        }
        Err(format!(
            "{s:?} is not a time: write it as 2026-12-24 20:00 (local time) or 2026-12-24T20:00+00:00"
        ))
    }

    pub fn local(&self, t: DateTime<Utc>) -> DateTime<Tz> {
        t.with_timezone(&self.0)
    }

    /// "08:00", or "Sat 08:00" when `t` is not on the same local day as `now`.
    pub fn short(&self, t: DateTime<Utc>, now: DateTime<Utc>) -> String {
        let (l, n) = (self.local(t), self.local(now));
        if l.date_naive() == n.date_naive() {
            l.format("%H:%M").to_string()
        } else {
            l.format("%a %H:%M").to_string()
        }
    }
}

/// Days of the week a pattern runs on, as a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weekdays(u8);

impl Weekdays {
    /// `daily`, `weekdays`, `weekends`, or days such as `Mon,Wed,Fri`.
    pub fn parse(s: &str) -> Result<Weekdays, String> {
        let s = s.trim().to_ascii_lowercase();
        let bits = match s.as_str() {
            "daily" | "every day" | "all" => 0b111_1111,
            "weekdays" => 0b001_1111,
            "weekends" => 0b110_0000,
            _ => {
                let mut bits = 0u8;
                for part in s.split([',', ' ']).filter(|p| !p.is_empty()) {
                    let day: Weekday = part.parse().map_err(|_| {
                        format!("{part:?} is not a day: write days as Mon,Tue,… or daily, weekdays, weekends")
                    })?;
                    bits |= 1 << day.num_days_from_monday();
                }
                bits
            }
        };
        if bits == 0 {
            return Err("a pattern needs at least one day".into());
        }
        Ok(Weekdays(bits))
    }

    pub fn has(&self, d: Weekday) -> bool {
        self.0 & (1 << d.num_days_from_monday()) != 0
    }

    /// The set as written back: `daily`, `weekdays`, `weekends` or `Mon,Tue`.
    pub fn code(&self) -> String {
        match self.0 {
            0b111_1111 => "daily".into(),
            0b001_1111 => "weekdays".into(),
            0b110_0000 => "weekends".into(),
            bits => (0..7)
                .filter(|i| bits & (1 << i) != 0)
                .map(|i| Weekday::try_from(i as u8).map_or("?".into(), |d| d.to_string()))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// The most days one pattern may cover (a year and a bit).
pub const MAX_PATTERN_DAYS: i64 = 400;

/// A shift that recurs: on these days, from `starts` to `ends` local time (an end at or
/// before the start is the next morning), from `first_day` to `last_day`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub weekdays: Weekdays,
    pub starts: NaiveTime,
    pub ends: NaiveTime,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

impl Pattern {
    pub fn parse_clock(s: &str, field: &str) -> Result<NaiveTime, String> {
        NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map_err(|_| format!("{field} {s:?} is not a time of day such as 20:00"))
    }

    pub fn parse_day(s: &str, field: &str) -> Result<NaiveDate, String> {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| format!("{field} {s:?} is not a date such as 2026-12-01"))
    }

    /// Each shift of the pattern as instants. A day whose start or end does not exist, or
    /// happens twice, at a clock change is refused, naming the day.
    pub fn shifts(&self, zone: Zone) -> Result<Vec<Span>, String> {
        if self.last_day < self.first_day {
            return Err("last_day is before first_day".into());
        }
        if (self.last_day - self.first_day).num_days() >= MAX_PATTERN_DAYS {
            return Err(format!(
                "a pattern covers at most {MAX_PATTERN_DAYS} days; add another for the rest"
            ));
        }
        if self.starts == self.ends {
            return Err("starts and ends are the same time: a shift needs a length".into());
        }
        let overnight = self.ends <= self.starts;
        let mut out = Vec::new();
        let mut day = self.first_day;
        while day <= self.last_day {
            if self.weekdays.has(day.weekday()) {
                let end_day = if overnight {
                    day + Duration::days(1)
                } else {
                    day
                };
                let s = zone
                    .instant(day.and_time(self.starts))
                    .map_err(|e| format!("the shift of {day}: starts: {e}"))?;
                let e = zone
                    .instant(end_day.and_time(self.ends))
                    .map_err(|e| format!("the shift of {day}: ends: {e}"))?;
                out.push((s, e));
            }
            day += Duration::days(1);
        }
        Ok(out)
    }
}

/// One line of a role's rota as the rules need it. An ordinary shift has a `staff` and no
/// `replaces`; an override replaces `replaces` for its window, with `staff` covering (or
/// nobody, when `staff` is None).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub staff: Option<String>,
    pub replaces: Option<String>,
    pub starts: DateTime<Utc>,
    pub ends: DateTime<Utc>,
}

impl Slot {
    pub fn covers(&self, t: DateTime<Utc>) -> bool {
        self.starts <= t && t < self.ends
    }
}

/// Who holds the role at `t` by its rota: everyone on a shift then, less those an override
/// replaces, plus whoever covers. Sorted, so two answers compare.
pub fn holders_at(slots: &[Slot], t: DateTime<Utc>) -> Vec<String> {
    let mut out: Vec<String> = slots
        .iter()
        .filter(|s| s.replaces.is_none() && s.covers(t))
        .filter_map(|s| s.staff.clone())
        .collect();
    for o in slots.iter().filter(|s| s.replaces.is_some() && s.covers(t)) {
        out.retain(|h| Some(h) != o.replaces.as_ref());
    }
    for o in slots.iter().filter(|s| s.replaces.is_some() && s.covers(t)) {
        if let Some(s) = &o.staff {
            out.push(s.clone());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// When the rota ends a person's time on the role, from `t` on: the end of the run of
/// slots that keep them on it (a night followed at once by a day is one run).
pub fn held_until(slots: &[Slot], staff: &str, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut at = t;
    for _ in 0..64 {
        if !holders_at(slots, at).iter().any(|h| h == staff) {
            return (at > t).then_some(at);
        }
        // The next instant anything changes.
        at = slots
            .iter()
            .flat_map(|s| [s.starts, s.ends])
            .filter(|b| *b > at)
            .min()?;
    }
    Some(at)
}

/// The periods within `[from, to)` when nobody holds the role by its rota.
pub fn gaps(slots: &[Slot], from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Span> {
    let mut points: Vec<DateTime<Utc>> = slots
        .iter()
        .flat_map(|s| [s.starts, s.ends])
        .filter(|b| *b > from && *b < to)
        .collect();
    points.push(from);
    points.push(to);
    points.sort();
    points.dedup();
    let mut out: Vec<Span> = Vec::new();
    for w in points.windows(2) {
        if !holders_at(slots, w[0]).is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.1 == w[0] => last.1 = w[1],
            _ => out.push((w[0], w[1])),
        }
    }
    out
}

/// The longest shift: a weekend on call. Reads of the rota rely on it as a bound.
pub const MAX_SHIFT: Duration = Duration::hours(72);

/// A shift's own checks: it has a length, and not an absurd one.
pub fn check_span(starts: DateTime<Utc>, ends: DateTime<Utc>) -> Result<(), String> {
    if ends <= starts {
        return Err("the shift ends before it starts: end must be after start".into());
    }
    if ends - starts > MAX_SHIFT {
        return Err("a shift lasts at most 72 hours; split a longer one".into());
    }
    Ok(())
}

/// Do two spans overlap (touching ends do not)?
pub fn overlap(a: Span, b: Span) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        Zone::default()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn slot(staff: &str, from: &str, to: &str) -> Slot {
        Slot {
            staff: Some(staff.into()),
            replaces: None,
            starts: at(from),
            ends: at(to),
        }
    }

    #[test]
    fn nights_across_the_clock_changes_are_eleven_and_thirteen_hours() {
        let nights = |first: &str| Pattern {
            weekdays: Weekdays::parse("daily").unwrap(),
            starts: Pattern::parse_clock("20:00", "starts").unwrap(),
            ends: Pattern::parse_clock("08:00", "ends").unwrap(),
            first_day: Pattern::parse_day(first, "first_day").unwrap(),
            last_day: Pattern::parse_day(first, "last_day").unwrap(),
        };
        let spring = nights("2027-03-27").shifts(zone()).unwrap();
        assert_eq!(spring[0].1 - spring[0].0, Duration::hours(11));
        assert_eq!(spring[0].0, at("2027-03-27T20:00:00Z"));
        assert_eq!(spring[0].1, at("2027-03-28T07:00:00Z"));
        let autumn = nights("2026-10-24").shifts(zone()).unwrap();
        assert_eq!(autumn[0].1 - autumn[0].0, Duration::hours(13));
        let winter = nights("2026-12-01").shifts(zone()).unwrap();
        assert_eq!(winter[0].1 - winter[0].0, Duration::hours(12));
    }

    #[test]
    fn times_that_do_not_exist_or_happen_twice_are_refused_with_the_way_out() {
        let gone = zone().parse_time("2027-03-28 01:30").unwrap_err();
        assert!(gone.contains("does not exist"), "{gone}");
        let twice = zone().parse_time("2026-10-25 01:30").unwrap_err();
        assert!(
            twice.contains("happens twice") && twice.contains("+01:00"),
            "{twice}"
        );
        assert_eq!(
            zone().parse_time("2026-10-25T01:30+00:00").unwrap(),
            at("2026-10-25T01:30:00Z")
        );
        assert_eq!(
            zone().parse_time("2026-07-01 08:00").unwrap(),
            at("2026-07-01T07:00:00Z")
        );
        assert!(zone()
            .parse_time("tomorrow")
            .unwrap_err()
            .contains("not a time"));
        let p = Pattern {
            weekdays: Weekdays::parse("Sun").unwrap(),
            starts: Pattern::parse_clock("01:30", "starts").unwrap(),
            ends: Pattern::parse_clock("09:00", "ends").unwrap(),
            first_day: Pattern::parse_day("2027-03-22", "first_day").unwrap(),
            last_day: Pattern::parse_day("2027-03-29", "last_day").unwrap(),
        };
        let e = p.shifts(zone()).unwrap_err();
        assert!(e.contains("2027-03-28") && e.contains("starts"), "{e}");
    }

    #[test]
    fn weekdays_read_and_write_back() {
        assert_eq!(Weekdays::parse("weekends").unwrap().code(), "weekends");
        assert_eq!(
            Weekdays::parse("mon, wed,Fri").unwrap().code(),
            "Mon,Wed,Fri"
        );
        assert!(Weekdays::parse("Funday").is_err());
        assert!(Weekdays::parse("").is_err());
    }

    #[test]
    fn overrides_replace_one_person_and_overlaps_share_the_bleep() {
        let mut slots = vec![
            slot("amy", "2026-12-01T20:00:00Z", "2026-12-02T08:00:00Z"),
            slot("ben", "2026-12-02T07:30:00Z", "2026-12-02T20:00:00Z"),
        ];
        assert_eq!(
            holders_at(&slots, at("2026-12-02T07:59:59Z")),
            ["amy", "ben"]
        );
        assert_eq!(holders_at(&slots, at("2026-12-02T08:00:00Z")), ["ben"]);
        slots.push(Slot {
            staff: Some("cat".into()),
            replaces: Some("amy".into()),
            starts: at("2026-12-01T23:00:00Z"),
            ends: at("2026-12-02T03:00:00Z"),
        });
        assert_eq!(holders_at(&slots, at("2026-12-02T01:00:00Z")), ["cat"]);
        slots.push(Slot {
            staff: None,
            replaces: Some("ben".into()),
            starts: at("2026-12-02T12:00:00Z"),
            ends: at("2026-12-02T13:00:00Z"),
        });
        assert!(holders_at(&slots, at("2026-12-02T12:30:00Z")).is_empty());
        assert_eq!(
            gaps(
                &slots,
                at("2026-12-02T00:00:00Z"),
                at("2026-12-03T00:00:00Z")
            ),
            vec![
                (at("2026-12-02T12:00:00Z"), at("2026-12-02T13:00:00Z")),
                (at("2026-12-02T20:00:00Z"), at("2026-12-03T00:00:00Z")),
            ]
        );
        assert_eq!(
            held_until(&slots, "amy", at("2026-12-01T21:00:00Z")),
            Some(at("2026-12-01T23:00:00Z"))
        );
        assert_eq!(
            held_until(&slots, "ben", at("2026-12-02T08:00:00Z")),
            Some(at("2026-12-02T12:00:00Z"))
        );
    }

    #[test]
    fn spans_must_have_a_length() {
        assert!(check_span(at("2026-12-02T08:00:00Z"), at("2026-12-02T08:00:00Z")).is_err());
        assert!(check_span(at("2026-12-02T08:00:00Z"), at("2026-12-01T20:00:00Z")).is_err());
        assert!(check_span(at("2026-12-01T20:00:00Z"), at("2026-12-02T08:00:00Z")).is_ok());
    }
}

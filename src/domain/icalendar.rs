//! iCalendar (RFC 5545) for rota feeds: a phone's calendar subscribes to a person's shifts
//! or a role's. Times are written in UTC, which every calendar converts to its own zone.
use chrono::{DateTime, Utc};

/// One event of a feed.
pub struct Event {
    pub uid: String,
    pub starts: DateTime<Utc>,
    pub ends: DateTime<Utc>,
    pub summary: String,
    pub description: String,
}

/// Escapes a TEXT value (RFC 5545 3.3.11).
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Writes a content line, folded at 75 octets (RFC 5545 3.1) without splitting a character.
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A whole calendar named `name`.
pub fn calendar(name: &str, events: &[Event], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(&mut out, "PRODID:-//Bleepless//Rota//EN");
    line(&mut out, "CALSCALE:GREGORIAN");
    line(&mut out, "METHOD:PUBLISH");
    line(&mut out, &format!("X-WR-CALNAME:{}", text(name)));
    line(&mut out, "REFRESH-INTERVAL;VALUE=DURATION:PT1H");
    for e in events {
        line(&mut out, "BEGIN:VEVENT");
        line(&mut out, &format!("UID:{}", text(&e.uid)));
        line(&mut out, &format!("DTSTAMP:{}", stamp(now)));
        line(&mut out, &format!("DTSTART:{}", stamp(e.starts)));
        line(&mut out, &format!("DTEND:{}", stamp(e.ends)));
        line(&mut out, &format!("SUMMARY:{}", text(&e.summary)));
        if !e.description.is_empty() {
            line(&mut out, &format!("DESCRIPTION:{}", text(&e.description)));
        }
        line(&mut out, "END:VEVENT");
    }
    line(&mut out, "END:VCALENDAR");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn lines_are_folded_and_text_escaped() {
        let e = Event {
            uid: "1@bleepless".into(),
            starts: Utc.with_ymd_and_hms(2026, 12, 1, 20, 0, 0).unwrap(),
            ends: Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap(),
            summary: "Medicine FY1, night; ward 7".into(),
            description: "é".repeat(60),
        };
        let cal = calendar(
            "Amy's rota",
            &[e],
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
        );
        assert!(cal.contains("SUMMARY:Medicine FY1\\, night\\; ward 7\r\n"));
        assert!(cal.contains("DTSTART:20261201T200000Z\r\n"));
        assert!(cal.lines().all(|l| l.len() <= 76), "{cal}");
        assert!(cal.contains("\r\n é"), "a long line is folded: {cal}");
    }
}

//! [`Stamp`], the SQL type of the timestamps that statements written by hand ([`super::sql`])
//! bind and read: PostgreSQL's `timestamp`, and on SQLite the same text diesel writes for its
//! `Timestamp` (`2026-12-04 13:45:01.123456`), written and read here without chrono's
//! format strings.
//!
//! diesel formats each SQLite timestamp with `format("%F %T%.f")`, which parses the format
//! string every time, and reads one by trying up to 18 formats in turn with
//! `parse_from_str`. On the SQLite writer, which every command waits for, that was about 7%
//! of its time (a task row holds seven timestamps). The text is the same byte for byte, so
//! rows written either way compare and sort together, and anything else SQLite may hold (a
//! `T` between date and time, an offset, a Julian day number) is left to diesel's reading.
//! On PostgreSQL the binary protocol is already cheap: diesel's own code runs.
//!
//! Statements built with diesel's query builder keep diesel's `Timestamp`: a type of
//! another crate (chrono's) cannot be given a second SQL type for the builder's
//! comparisons, only for bound and read values. The hot statements are written by hand.
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use diesel::deserialize::{self, FromSql};
use diesel::pg::Pg;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Timestamp;
use diesel::sqlite::{Sqlite, SqliteType, SqliteValue};

/// A point in time without a zone (always UTC here), as [`chrono::NaiveDateTime`].
#[derive(
    Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
)]
#[diesel(postgres_type(oid = 1114, array_oid = 1115))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Stamp;

/// The text diesel's `format("%F %T%.f")` gives, for years 0 to 9999 and no leap second;
/// `None` for any other time, which chrono then formats.
fn format(t: &NaiveDateTime) -> Option<String> {
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    let mut s = String::with_capacity(29);
    push_digits(&mut s, year as u32, 4);
    s.push('-');
    push_digits(&mut s, t.month(), 2);
    s.push('-');
    push_digits(&mut s, t.day(), 2);
    s.push(' ');
    push_digits(&mut s, t.hour(), 2);
    s.push(':');
    push_digits(&mut s, t.minute(), 2);
    s.push(':');
    push_digits(&mut s, t.second(), 2);
    // `%.f`: nothing for a whole second, else 3, 6 or 9 digits, the fewest that hold it.
    if nanos != 0 {
        s.push('.');
        if nanos % 1_000_000 == 0 {
            push_digits(&mut s, nanos / 1_000_000, 3);
        } else if nanos % 1_000 == 0 {
            push_digits(&mut s, nanos / 1_000, 6);
        } else {
            push_digits(&mut s, nanos, 9);
        }
    }
    Some(s)
}

fn push_digits(s: &mut String, n: u32, width: u32) {
    for i in (0..width).rev() {
        s.push(char::from(b'0' + (n / 10u32.pow(i) % 10) as u8));
    }
}

/// Reads `YYYY-MM-DD HH:MM:SS`, with `.` and 1 to 9 digits of a second or without: what
/// [`format`] and SQLite's `CURRENT_TIMESTAMP` write. `None` for anything else.
fn parse(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            num(20, b.len())? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let time = NaiveTime::from_hms_nano_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?, nanos)?;
    Some(NaiveDateTime::new(date, time))
}

impl ToSql<Stamp, Sqlite> for NaiveDateTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        match format(self) {
            Some(s) => {
                out.set_value(s);
                Ok(IsNull::No)
            }
            None => <NaiveDateTime as ToSql<Timestamp, Sqlite>>::to_sql(self, out),
        }
    }
}

impl FromSql<Stamp, Sqlite> for NaiveDateTime {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        if value.value_type() == Some(SqliteType::Text) {
            if let Some(t) = parse(value.read_text()) {
                return Ok(t);
            }
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value)
    }
}

impl ToSql<Stamp, Pg> for NaiveDateTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <NaiveDateTime as ToSql<Timestamp, Pg>>::to_sql(self, out)
    }
}

impl FromSql<Stamp, Pg> for NaiveDateTime {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    /// The text is diesel's, byte for byte, for every precision a timestamp comes in.
    #[test]
    fn formats_as_diesel_does() {
        for s in [
            "2026-12-04 13:45:01",
            "2026-12-04 13:45:01.5",
            "2026-01-09 03:05:07.123",
            "2026-12-04 23:59:59.000001",
            "0001-01-01 00:00:00.120000",
            "9999-12-31 23:59:59.999999999",
            "2026-02-28 12:00:00.000000001",
        ] {
            let t = at(s);
            assert_eq!(format(&t).unwrap(), t.format("%F %T%.f").to_string(), "{s}");
            assert_eq!(parse(&format(&t).unwrap()), Some(t), "{s}");
        }
        let far = NaiveDate::from_ymd_opt(10_000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        assert_eq!(format(&far), None);
    }

    #[test]
    fn reads_what_sqlite_writes_and_refuses_the_rest() {
        assert_eq!(
            parse("2026-12-04 13:45:01"),
            Some(at("2026-12-04 13:45:01"))
        );
        assert_eq!(
            parse("2026-12-04 13:45:01.25"),
            Some(at("2026-12-04 13:45:01.25"))
        );
        for bad in [
            "2026-12-04T13:45:01",
            "2026-12-04 13:45:01Z",
            "2026-12-04 13:45:01.",
            "2026-12-04 13:45:01.1234567890",
            "2026-02-30 13:45:01",
            "2026-12-04 24:00:00",
            "2026-12-04 13:45",
            "2026-12-04 13:45:0x",
            "2459000.5",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}

//! `expires` timestamps as Go's `time.Time` marshals them.
//!
//! Go writes RFC3339Nano (`2006-01-02T15:04:05.999999999Z07:00`): the fraction loses its
//! trailing zeros (and its dot when it is zero), a zero offset is written `Z`, any other offset
//! is kept as `±hh:mm`. Go parses any RFC 3339 time and re-emits it this way, so a client that
//! writes `.500000000` or `+00:00` gets different bytes back from a Go server's
//! re-serialisation; we keep the offset and format exactly as Go does.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{Duration, OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};

/// A point in time with the UTC offset it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoTime(OffsetDateTime);

impl GoTime {
    pub fn now() -> Self {
        GoTime(OffsetDateTime::now_utc())
    }

    pub fn from_offset_datetime(t: OffsetDateTime) -> Self {
        GoTime(t)
    }

    pub fn as_offset_datetime(&self) -> OffsetDateTime {
        self.0
    }

    /// Now plus a duration, in UTC (what notary does: `time.Now().Add(d)` in the server's
    /// zone; a UTC server writes `Z`).
    pub fn now_plus(d: Duration) -> Self {
        GoTime(OffsetDateTime::now_utc() + d)
    }

    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(GoTime)
            .map_err(|e| crate::Error::Json(format!("invalid RFC 3339 time {s:?}: {e}")))
    }

    pub fn is_before(&self, other: &GoTime) -> bool {
        self.0 < other.0
    }

    /// Go's `AddDate(years, 0, 0)` in UTC for the common case of whole years.
    pub fn plus_years(&self, years: i32) -> Self {
        let t = self.0;
        let year = t.year() + years;
        let date = time::Date::from_calendar_date(year, t.month(), 1)
            .ok()
            .and_then(|d| d.replace_day(t.day()).ok())
            // Go normalises Feb 29 in a non-leap year to Mar 1.
            .or_else(|| time::Date::from_calendar_date(year, time::Month::March, 1).ok())
            .unwrap_or(t.date());
        GoTime(t.replace_date(date))
    }
}

impl fmt::Display for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        let nanos = t.nanosecond();
        if nanos != 0 {
            let digits = format!("{nanos:09}");
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        let off: UtcOffset = t.offset();
        if off.is_utc() {
            f.write_str("Z")
        } else {
            let secs = off.whole_seconds();
            let sign = if secs < 0 { '-' } else { '+' };
            let secs = secs.abs();
            write!(f, "{sign}{:02}:{:02}", secs / 3600, (secs / 60) % 60)
        }
    }
}

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoTime::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        for (input, go) in [
            (
                "2036-11-20T14:51:44.286926111Z",
                "2036-11-20T14:51:44.286926111Z",
            ),
            (
                "2029-11-22T14:51:44.243550500Z",
                "2029-11-22T14:51:44.2435505Z",
            ),
            ("2029-11-22T14:51:44.000Z", "2029-11-22T14:51:44Z"),
            ("2029-11-22T14:51:44+00:00", "2029-11-22T14:51:44Z"),
            (
                "2116-07-03T18:08:08.423870533-05:00",
                "2116-07-03T18:08:08.423870533-05:00",
            ),
            ("2020-01-01T00:00:00.1+05:30", "2020-01-01T00:00:00.1+05:30"),
        ] {
            assert_eq!(GoTime::parse(input).unwrap().to_string(), go, "{input}");
        }
        assert!(GoTime::parse("2020-01-01 00:00:00").is_err());
    }

    #[test]
    fn add_years_normalises_leap_day() {
        let t = GoTime::parse("2024-02-29T10:00:00Z").unwrap();
        assert_eq!(t.plus_years(1).to_string(), "2025-03-01T10:00:00Z");
        assert_eq!(t.plus_years(4).to_string(), "2028-02-29T10:00:00Z");
    }
}

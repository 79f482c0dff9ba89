//! Instants as integer milliseconds since the Unix epoch, shown as RFC 3339 UTC.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// An instant in UTC with millisecond precision. The clock lives in `app`; here time is a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Dates outside years 1970..=9999 are refused so every stored time formats as RFC 3339.
const MAX_MILLIS: i64 = 253_402_300_799_999;

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Self(ms.clamp(0, MAX_MILLIS))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_millis(self, ms: i64) -> Self {
        Self::from_millis(self.0.saturating_add(ms))
    }

    /// Parses an RFC 3339 date-time with any offset and keeps the instant.
    pub fn parse(s: &str) -> Option<Self> {
        let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        let ms = i64::try_from(ms).ok()?;
        (0..=MAX_MILLIS).contains(&ms).then_some(Self(ms))
    }

    pub fn to_rfc3339(self) -> String {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .expect("stored times are clamped to years 1970..=9999");
        // Fixed millisecond precision: equal instants always print the same bytes.
        let d = t.date();
        let tm = t.time();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            tm.hour(),
            tm.minute(),
            tm.second(),
            tm.millisecond()
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_millis_and_parses_offsets() {
        let t = Timestamp::parse("2026-12-31T20:00:00+01:00").expect("valid");
        assert_eq!(t.to_rfc3339(), "2026-12-31T19:00:00.000Z");
        assert_eq!(Timestamp::parse(&t.to_rfc3339()), Some(t));
        assert_eq!(Timestamp::parse("2026-12-31"), None);
        assert_eq!(Timestamp::parse("1969-12-31T23:59:59Z"), None);
    }
}

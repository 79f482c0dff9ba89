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
        self.rfc3339().as_str().to_string()
    }

    /// The RFC 3339 text, `YYYY-MM-DDTHH:MM:SS.mmmZ`, in a fixed buffer: every answer and outbox
    /// payload carries several times, and `format!` cost more than the rest of a time's way out.
    /// Fixed millisecond precision: equal instants always print the same bytes.
    fn rfc3339(self) -> Rfc3339Text {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .expect("stored times are clamped to years 1970..=9999");
        let (d, tm) = (t.date(), t.time());
        let mut b = *b"0000-00-00T00:00:00.000Z";
        // Years are 1970..=9999 (`from_millis`, `parse`), so four digits always hold them.
        put_digits(&mut b[0..4], u32::try_from(d.year()).unwrap_or(0));
        put_digits(&mut b[5..7], u32::from(u8::from(d.month())));
        put_digits(&mut b[8..10], u32::from(d.day()));
        put_digits(&mut b[11..13], u32::from(tm.hour()));
        put_digits(&mut b[14..16], u32::from(tm.minute()));
        put_digits(&mut b[17..19], u32::from(tm.second()));
        put_digits(&mut b[20..23], u32::from(tm.millisecond()));
        Rfc3339Text(b)
    }
}

/// Writes `n` into `dst` as decimal digits, zero-padded on the left to the slice's length.
fn put_digits(dst: &mut [u8], mut n: u32) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

struct Rfc3339Text([u8; 24]);

impl Rfc3339Text {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("only ASCII digits and separators are written")
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rfc3339().as_str())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.rfc3339().as_str())
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

    #[test]
    fn formats_like_the_time_crate_across_the_range() {
        let samples = [
            0,
            1,
            999,
            86_399_999,
            951_782_400_000,   // 2000-02-29
            1_798_761_599_123, // 2026-12-31T23:59:59.123
            4_102_444_800_007,
            MAX_MILLIS,
        ];
        for ms in samples
            .into_iter()
            .chain((0..2000).map(|i| i * 126_230_400_001 % MAX_MILLIS))
        {
            let t = Timestamp::from_millis(ms);
            let reference = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .expect("in range");
            let want = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                reference.year(),
                u8::from(reference.month()),
                reference.day(),
                reference.hour(),
                reference.minute(),
                reference.second(),
                reference.millisecond()
            );
            assert_eq!(t.to_rfc3339(), want, "{ms}");
            assert_eq!(t.to_string(), want);
            assert_eq!(
                serde_json::to_string(&t).expect("json"),
                format!("\"{want}\"")
            );
            assert_eq!(Timestamp::parse(&want), Some(t));
        }
    }
}

//! Numbers and times as the screens print them. Times are UTC and say so: the console has no time
//! zone database, and a wrong local time at the door is worse than a labelled UTC one.

use crate::data::{Latency, Millis};

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn split(ms: Millis) -> ((i64, u32, u32), i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let day = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    (civil(day), sod / 3600, sod / 60 % 60, sod % 60)
}

/// `20:14:03`
pub fn clock(ms: Millis) -> String {
    let (_, h, m, s) = split(ms);
    format!("{h:02}:{m:02}:{s:02}")
}

/// `2026-12-31 20:00`
pub fn date_time(ms: Millis) -> String {
    let ((y, mo, d), h, m, _) = split(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}")
}

/// `2026-12-31T20:00:00Z`, the form the event form takes back.
pub fn rfc3339(ms: Millis) -> String {
    let ((y, mo, d), h, m, s) = split(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// `3h 02m`, `4m 05s`, `12s`
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `1.2 MiB`
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `n/a` for a figure the box does not provide.
pub fn or_na<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "n/a".to_string())
}

/// A figure in at most three or four characters: one decimal under 10, none from there on.
fn short(v: f64) -> String {
    if v < 9.95 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// `0`, `0.4`, `12`, `6021`: requests per second.
pub fn per_second(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else {
        short(v)
    }
}

/// `0.4/1.2/4.8 ms`, or `0.1/0.9/2.5 s` once the p99 reaches a second: one unit for the three, so
/// they read at a glance and fit the dashboard's narrowest panel.
pub fn latency(l: Latency) -> String {
    let (div, unit) = if l.p99_ms >= 1000.0 {
        (1000.0, "s")
    } else {
        (1.0, "ms")
    };
    let v = |ms: f64| short(ms / div);
    format!("{}/{}/{} {unit}", v(l.p50_ms), v(l.p95_ms), v(l.p99_ms))
}

/// `97.3%` of a ratio.
pub fn percent(r: f64) -> String {
    format!("{:.1}%", r * 100.0)
}

/// A text bar of `width` cells, `filled` of `total`: readable without colour.
pub fn bar(filled: i64, total: i64, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let cells = if total <= 0 {
        0
    } else {
        let f = (filled.clamp(0, total) as f64 / total as f64 * width as f64).round() as usize;
        // A seat sold shows: never round a non-zero count down to an empty bar.
        if filled > 0 {
            f.max(1)
        } else {
            f
        }
    };
    format!("{}{}", "█".repeat(cells), "░".repeat(width - cells))
}

/// Text cut to `width` characters, with `…` when cut.
pub fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates_and_durations() {
        // 2026-12-31T20:00:00Z
        let t = 1_798_747_200_000;
        assert_eq!(date_time(t), "2026-12-31 20:00");
        assert_eq!(rfc3339(t), "2026-12-31T20:00:00Z");
        assert_eq!(clock(t + 3_723_000), "21:02:03");
        assert_eq!(date_time(0), "1970-01-01 00:00");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3_725), "1h 02m");
        assert_eq!(duration(90_000), "1d 01h");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bar(1, 300, 10), "█░░░░░░░░░");
        assert_eq!(bar(40, 40, 4), "████");
        assert_eq!(fit("abcdef", 4), "abc…");
    }

    #[test]
    fn formats_request_figures_short() {
        assert_eq!(per_second(0.0), "0");
        assert_eq!(per_second(0.3), "0.3");
        assert_eq!(per_second(9.96), "10");
        assert_eq!(per_second(6021.4), "6021");
        let l = |p50_ms, p95_ms, p99_ms| Latency {
            p50_ms,
            p95_ms,
            p99_ms,
        };
        assert_eq!(latency(l(0.43, 1.26, 4.76)), "0.4/1.3/4.8 ms");
        assert_eq!(latency(l(3.0, 42.0, 999.0)), "3.0/42/999 ms");
        assert_eq!(latency(l(120.0, 900.0, 30_000.0)), "0.1/0.9/30 s");
        assert_eq!(percent(0.9731), "97.3%");
        assert_eq!(percent(1.0), "100.0%");
    }
}

//! Reads the box's `/metrics` text (Prometheus text format 0.0.4, as `metrics::exposition` writes
//! it) into the console's [`Traffic`] sample: requests and latency buckets summed over every route,
//! cache hits and misses summed over every kind, less the remote console's own requests (the
//! `console_http_*` series). Both backends go through here: the in-process console parses the same
//! text `/metrics` answers.
//!
//! Strict on purpose, since a figure read wrongly would be shown as true: every line must be a
//! comment or a well-formed sample, the families used must be declared with their type, and the
//! histograms must have the same ascending bounds on every series, end in `+Inf` and be cumulative.
//! Families the console does not use are checked for form and otherwise skipped.

use std::collections::{BTreeMap, HashMap};

use tui::{Millis, Traffic};

/// The families read, with the type each must be declared with.
const FAMILIES: [(&str, &str); 6] = [
    ("http_requests_total", "counter"),
    ("http_request_duration_seconds", "histogram"),
    ("console_http_requests_total", "counter"),
    ("console_http_request_duration_seconds", "histogram"),
    ("cache_hits_total", "counter"),
    ("cache_misses_total", "counter"),
];

/// One sample line: the metric name, its labels, its value.
#[derive(Debug, PartialEq)]
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

impl Sample<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value as a count: finite, not negative, whole.
    fn count(&self) -> Result<u64, String> {
        let v = self.value;
        if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(63) {
            Ok(v as u64)
        } else {
            Err(format!("{}: {v} is not a count", self.name))
        }
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    chars.next().is_some_and(ok_first) && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

/// `key="value",key="value"` (a trailing comma allowed), with `\\`, `\"` and `\n` escapes.
fn labels(mut s: &str) -> Result<Vec<(&str, String)>, String> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"").ok_or("a label without =\"")?;
        if !is_name(key, false) {
            return Err(format!("{key:?} is not a label name"));
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("label {key}: no closing quote")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err(format!("label {key}: a bad escape")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        out.push((key, value));
        s = &rest[end + 1..];
        s = match s.strip_prefix(',') {
            Some(r) => r,
            None if s.is_empty() => s,
            None => return Err(format!("after label {key}: {s:?}")),
        };
    }
    Ok(out)
}

/// `name{labels} value [timestamp]`.
fn sample(line: &str) -> Result<Sample<'_>, String> {
    let (name, labels, rest) = match line.find(['{', ' ']) {
        Some(i) if line.as_bytes()[i] == b'{' => {
            let close = line.rfind('}').ok_or("no closing }")?;
            if close < i {
                return Err("no closing }".into());
            }
            (&line[..i], labels(&line[i + 1..close])?, &line[close + 1..])
        }
        Some(i) => (&line[..i], Vec::new(), &line[i..]),
        None => return Err("no value".into()),
    };
    if !is_name(name, true) {
        return Err(format!("{name:?} is not a metric name"));
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("{v:?} is not a number"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("{ts:?} is not a timestamp"))?;
    }
    if fields.next().is_some() {
        return Err("more than a value and a timestamp".into());
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// Cumulative buckets: (upper bound, count at or below it), in the order read.
type Buckets = Vec<(f64, u64)>;

/// One histogram family: per series (its labels other than `le`), the cumulative buckets in order.
#[derive(Default)]
struct Histogram {
    series: BTreeMap<Vec<(String, String)>, Buckets>,
}

impl Histogram {
    fn add(&mut self, s: &Sample<'_>) -> Result<(), String> {
        let le = s
            .label("le")
            .ok_or_else(|| format!("{}: a bucket without le", s.name))?;
        let le: f64 = match le {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .map_err(|_| format!("{}: le {v:?} is not a number", s.name))?,
        };
        let key = s
            .labels
            .iter()
            .filter(|(k, _)| *k != "le")
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        self.series.entry(key).or_default().push((le, s.count()?));
        Ok(())
    }

    /// The buckets of every series added up; every series must have the same bounds, ascending,
    /// ending in `+Inf`, with counts that never go down.
    fn total(&self, name: &str) -> Result<Buckets, String> {
        let mut total: Option<Buckets> = None;
        for (labels, buckets) in &self.series {
            let ascending = buckets.windows(2).all(|w| w[0].0 < w[1].0);
            let cumulative = buckets.windows(2).all(|w| w[0].1 <= w[1].1);
            if !ascending || !cumulative || buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
                return Err(format!(
                    "{name}{labels:?}: buckets not ascending, cumulative and ending in +Inf"
                ));
            }
            match &mut total {
                None => total = Some(buckets.clone()),
                Some(t) => {
                    let same =
                        t.len() == buckets.len() && t.iter().zip(buckets).all(|(a, b)| a.0 == b.0);
                    if !same {
                        return Err(format!("{name}{labels:?}: other bounds than its siblings"));
                    }
                    for (a, b) in t.iter_mut().zip(buckets) {
                        a.1 += b.1;
                    }
                }
            }
        }
        total.ok_or_else(|| format!("{name}: no buckets"))
    }
}

/// The console's sample of the box's counters from its `/metrics` text; `since` is when the box
/// started (its counters with it).
pub fn traffic(text: &str, since: Millis) -> Result<Traffic, String> {
    let mut types: HashMap<&str, &str> = HashMap::new();
    let mut sums: HashMap<&str, u64> = HashMap::new();
    let mut requests = Histogram::default();
    let mut console = Histogram::default();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("/metrics line {}: {e}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_ascii_whitespace();
            if words.next() == Some("TYPE") {
                let (Some(family), Some(kind), None) = (words.next(), words.next(), words.next())
                else {
                    return Err(at("a malformed # TYPE line".into()));
                };
                if types.insert(family, kind).is_some() {
                    return Err(at(format!("{family} declared twice")));
                }
            }
            continue;
        }
        let s = sample(line).map_err(at)?;
        match s.name {
            "http_request_duration_seconds_bucket" => requests.add(&s).map_err(at)?,
            "console_http_request_duration_seconds_bucket" => console.add(&s).map_err(at)?,
            "http_requests_total"
            | "console_http_requests_total"
            | "cache_hits_total"
            | "cache_misses_total" => {
                let v = s.count().map_err(at)?;
                let sum = sums.entry(s.name).or_default();
                *sum = sum.checked_add(v).ok_or_else(|| at("overflow".into()))?;
            }
            _ => {}
        }
    }
    for (family, kind) in FAMILIES {
        match types.get(family) {
            Some(k) if *k == kind => {}
            Some(k) => return Err(format!("/metrics: {family} is a {k}, not a {kind}")),
            None => return Err(format!("/metrics: no {family}")),
        }
    }
    let sum = |name: &str| sums.get(name).copied().unwrap_or(0);
    let all = requests.total("http_request_duration_seconds")?;
    let own = console.total("console_http_request_duration_seconds")?;
    if all.len() != own.len() || all.iter().zip(&own).any(|(a, b)| a.0 != b.0) {
        return Err("/metrics: the console's latency buckets differ from the requests'".into());
    }
    // The console's requests are in both series; saturating, because a scrape reads one series
    // after the other while a second console's request may land in between.
    Ok(Traffic {
        since,
        requests: sum("http_requests_total").saturating_sub(sum("console_http_requests_total")),
        latency_buckets: all
            .iter()
            .zip(&own)
            .map(|(&(le, n), &(_, c))| (le * 1000.0, n.saturating_sub(c)))
            .collect(),
        cache_hits: sum("cache_hits_total"),
        cache_misses: sum("cache_misses_total"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scrape of two routes and the console's series, as `metrics::render` writes them.
    const TEXT: &str = r#"# HELP http_requests_total HTTP requests answered, by route template and status code.
# TYPE http_requests_total counter
http_requests_total{route="/api/v1/events/{id}",status="200"} 90
http_requests_total{route="/api/v1/events/{id}",status="404"} 4
http_requests_total{route="/api/v1/stats",status="200"} 6
# HELP http_request_duration_seconds Time.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{route="/api/v1/events/{id}",le="0.0005"} 60
http_request_duration_seconds_bucket{route="/api/v1/events/{id}",le="0.001"} 90
http_request_duration_seconds_bucket{route="/api/v1/events/{id}",le="+Inf"} 94
http_request_duration_seconds_sum{route="/api/v1/events/{id}"} 0.05
http_request_duration_seconds_count{route="/api/v1/events/{id}"} 94
http_request_duration_seconds_bucket{route="/api/v1/stats",le="0.0005"} 0
http_request_duration_seconds_bucket{route="/api/v1/stats",le="0.001"} 5
http_request_duration_seconds_bucket{route="/api/v1/stats",le="+Inf"} 6
http_request_duration_seconds_sum{route="/api/v1/stats"} 0.006
http_request_duration_seconds_count{route="/api/v1/stats"} 6
# HELP console_http_requests_total Console.
# TYPE console_http_requests_total counter
console_http_requests_total 6
# HELP console_http_request_duration_seconds Console.
# TYPE console_http_request_duration_seconds histogram
console_http_request_duration_seconds_bucket{le="0.0005"} 0
console_http_request_duration_seconds_bucket{le="0.001"} 5
console_http_request_duration_seconds_bucket{le="+Inf"} 6
console_http_request_duration_seconds_sum 0.006
console_http_request_duration_seconds_count 6
# HELP db_writer_queue Commands waiting.
# TYPE db_writer_queue gauge
db_writer_queue 0
# HELP cache_hits_total Reads answered from the cache, per kind.
# TYPE cache_hits_total counter
cache_hits_total{kind="event"} 85
cache_hits_total{kind="attendee"} 2
# HELP cache_misses_total Misses.
# TYPE cache_misses_total counter
cache_misses_total{kind="event"} 5
cache_misses_total{kind="attendee"} 0
"#;

    #[test]
    fn sums_routes_and_kinds_and_leaves_out_the_consoles_own_requests() {
        let t = traffic(TEXT, 7).expect("parses");
        assert_eq!(
            t,
            Traffic {
                since: 7,
                // 100 requests, 6 of them the console's.
                requests: 94,
                latency_buckets: vec![(0.5, 60), (1.0, 90), (f64::INFINITY, 94)],
                cache_hits: 87,
                cache_misses: 5,
            }
        );
    }

    #[test]
    fn the_real_exposition_parses() {
        let m = crate::metrics::Metrics::default();
        m.register_routes(["/a/{id}", "/b"]);
        m.record_request(Some("/a/{id}"), 200, std::time::Duration::from_micros(700));
        m.record_request(Some("/b"), 200, std::time::Duration::from_millis(3));
        m.record_console_request(std::time::Duration::from_millis(3));
        let outbox = crate::app::OutboxSnapshot {
            pending_count: 0,
            dead_count: 0,
            oldest_pending_age_seconds: 0.0,
            processed_total: 0,
            failed_total: 0,
            dead_total: 0,
            endpoints: vec![],
        };
        let mut text = crate::metrics::render(&m, &outbox, 0);
        crate::metrics::render_cache(&mut text, &[]);
        let t = traffic(&text, 0).expect("parses");
        assert_eq!(t.requests, 1);
        let at = |ms: f64| {
            t.latency_buckets
                .iter()
                .find(|b| (b.0 - ms).abs() < 1e-9)
                .map(|b| b.1)
        };
        assert_eq!((at(0.5), at(1.0), at(5.0)), (Some(0), Some(1), Some(1)));
        assert_eq!(t.latency_buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!((t.cache_hits, t.cache_misses), (0, 0));
    }

    fn broken(from: &str, to: &str) -> String {
        assert!(TEXT.contains(from), "{from}");
        let text = TEXT.replacen(from, to, 1);
        traffic(&text, 0).expect_err("refused")
    }

    #[test]
    fn refuses_what_it_cannot_read_for_sure() {
        // A line that is not a sample.
        assert!(broken("db_writer_queue 0", "db_writer_queue").contains("line"));
        assert!(broken("db_writer_queue 0", "db writer queue 0").contains("line"));
        assert!(broken(
            "cache_hits_total{kind=\"event\"} 85",
            "cache_hits_total{kind=event} 85"
        )
        .contains("line"));
        // A count that is not one.
        assert!(broken(
            "console_http_requests_total 6",
            "console_http_requests_total -6"
        )
        .contains("not a count"));
        assert!(broken(
            "cache_misses_total{kind=\"event\"} 5",
            "cache_misses_total{kind=\"event\"} 5.5"
        )
        .contains("not a count"));
        // A family that is missing, or of another type.
        assert!(broken(
            "# TYPE console_http_requests_total counter",
            "# TYPE console_http_requests_total gauge"
        )
        .contains("not a counter"));
        assert!(broken("# TYPE cache_hits_total counter", "").contains("no cache_hits_total"));
        // Buckets that are not cumulative, or bounds that differ between routes.
        assert!(broken(
            "{route=\"/api/v1/events/{id}\",le=\"0.001\"} 90",
            "{route=\"/api/v1/events/{id}\",le=\"0.001\"} 50"
        )
        .contains("cumulative"));
        assert!(broken(
            "{route=\"/api/v1/stats\",le=\"0.001\"} 5",
            "{route=\"/api/v1/stats\",le=\"0.0025\"} 5"
        )
        .contains("other bounds"));
        assert!(broken(
            "{route=\"/api/v1/stats\",le=\"+Inf\"} 6",
            "{route=\"/api/v1/stats\",le=\"30\"} 6"
        )
        .contains("+Inf"));
    }

    #[test]
    fn reads_labels_with_escapes_and_timestamps() {
        let s = sample(r#"x_total{a="q\"uo\\te\n",b="{,}",} 3 1700000000000"#).expect("sample");
        assert_eq!(s.name, "x_total");
        assert_eq!(
            s.labels,
            vec![("a", "q\"uo\\te\n".to_string()), ("b", "{,}".to_string())]
        );
        assert_eq!(s.value, 3.0);
        assert!(sample(r#"x{a="1"} 3 soon"#).is_err());
        assert!(sample(r#"x{a="1\q"} 3"#).is_err());
        assert!(sample(r#"x{1a="1"} 3"#).is_err());
        assert!(sample("x 1 2 3").is_err());
        assert_eq!(sample("x +Inf").expect("inf").value, f64::INFINITY);
    }
}

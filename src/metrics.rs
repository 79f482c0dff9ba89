//! The box's figures, kept in memory and rendered in the Prometheus text exposition format (version
//! 0.0.4) for `GET /metrics` (DESIGN.md section 6).
//!
//! Recording is on the hot path of every request and every group commit, so it takes no lock: each
//! series is an atomic counter, added to with relaxed ordering (a scrape may see one request's count
//! a moment before its latency; Prometheus expects no more). The request series have one slot per
//! route template, registered when the router is built, so a request finds its slot with one lookup
//! in a map that never changes afterwards, and every route shows zeros before its first request.
//!
//! Business counters (`registrations_total`, `waitlist_promotions_total`, `checkins_total`) come from
//! the domain events of each committed group (see `store::EventTally`): they count what is durable,
//! never what was attempted and rolled back.
//!
//! The requests of the remote operator console (its `User-Agent` starts with
//! [`CONSOLE_USER_AGENT`]) are counted like every other request, and once more in the
//! `console_http_*` series, so the console can leave its own polling out of the figures it shows.
//! [`exposition`] is the one text both `/metrics` and the in-process console read.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::app::OutboxSnapshot;
use crate::domain::DomainEventType;

/// How the remote console names itself in `User-Agent` (followed by its version).
pub const CONSOLE_USER_AGENT: &str = "boxoffice-console/";

/// The label of requests that matched no route (404s of the fallback): one series for all of them,
/// so scanners probing random paths cannot grow the output.
pub const UNMATCHED: &str = "unmatched";

/// Upper bounds of the request latency buckets, in nanoseconds (0.5 ms to 30 s).
const REQUEST_BUCKETS_NS: &[u64] = &[
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// Upper bounds of the group commit duration buckets, in nanoseconds (0.25 ms to 5 s): one fsync
/// takes about a millisecond on an SSD, tens on an SD card.
const COMMIT_BUCKETS_NS: &[u64] = &[
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    5_000_000_000,
];

/// Upper bounds of the commands-per-group buckets (`store.max_batch` is 256 by default).
const BATCH_BUCKETS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// Status codes are three digits; one counter per code from 100 to 999.
const STATUS_SLOTS: usize = 900;

/// A histogram with fixed buckets. Values are integers (nanoseconds, commands); the text shows them
/// divided by `divisor` (1e9 turns nanoseconds into seconds; a division keeps 30 s printing as `30`,
/// where a multiplication by 1e-9 would print `30.000000000000004`).
struct Histogram {
    bounds: &'static [u64],
    divisor: f64,
    /// Per bucket, not cumulative (one add per observation); the last is `+Inf`.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [u64], divisor: f64) -> Self {
        Self {
            bounds,
            divisor,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: u64) {
        let i = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines; `labels` is empty or `key="value",`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(b) => format!("{}", *b as f64 / self.divisor),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum.load(Ordering::Relaxed) as f64 / self.divisor;
        let bare = labels.trim_end_matches(',');
        if bare.is_empty() {
            let _ = writeln!(out, "{name}_sum {sum}");
            let _ = writeln!(out, "{name}_count {cumulative}");
        } else {
            let _ = writeln!(out, "{name}_sum{{{bare}}} {sum}");
            let _ = writeln!(out, "{name}_count{{{bare}}} {cumulative}");
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The request series of one route template.
struct RouteSlot {
    route: Box<str>,
    statuses: Box<[AtomicU64]>,
    latency: Histogram,
}

impl RouteSlot {
    fn new(route: &str) -> Self {
        Self {
            route: route.into(),
            statuses: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            latency: Histogram::new(REQUEST_BUCKETS_NS, 1e9),
        }
    }
}

/// Every route template's slot, fixed once the router is built; the last slot is `UNMATCHED`.
struct Routes {
    index: std::collections::HashMap<Box<str>, usize>,
    slots: Vec<RouteSlot>,
}

impl Routes {
    fn new<'a>(templates: impl IntoIterator<Item = &'a str>) -> Self {
        let mut index = std::collections::HashMap::new();
        let mut slots = Vec::new();
        for t in templates {
            if t != UNMATCHED && !index.contains_key(t) {
                index.insert(t.into(), slots.len());
                slots.push(RouteSlot::new(t));
            }
        }
        slots.push(RouteSlot::new(UNMATCHED));
        Self { index, slots }
    }

    fn slot(&self, route: Option<&str>) -> &RouteSlot {
        let unmatched = self.slots.len() - 1;
        let i = route
            .and_then(|r| self.index.get(r).copied())
            .unwrap_or(unmatched);
        &self.slots[i]
    }
}

/// The remote console's own requests, over all routes: already in the request series, counted here
/// a second time so the console can subtract them (route and status do not matter for that).
struct ConsoleSeries {
    requests: AtomicU64,
    latency: Histogram,
}

impl Default for ConsoleSeries {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            latency: Histogram::new(REQUEST_BUCKETS_NS, 1e9),
        }
    }
}

/// The in-memory series. One per `App`; shared by the HTTP layer (requests) and the writer thread
/// (commits).
pub struct Metrics {
    routes: OnceLock<Routes>,
    registrations_confirmed: AtomicU64,
    registrations_waitlisted: AtomicU64,
    registrations_cancelled: AtomicU64,
    promotions: AtomicU64,
    checkins: AtomicU64,
    commit_batch: Histogram,
    commit_duration: Histogram,
    console: ConsoleSeries,
    guard: GuardSeries,
}

/// Why a connection was closed as soon as it was accepted.
#[derive(Debug, Clone, Copy)]
pub enum Refused {
    /// Its address is banned (see `http::bans`).
    Banned,
    /// Every connection slot was taken (`http.max_connections`).
    OverCapacity,
    /// Its address already held as many connections as one address may
    /// (`http.max_connections_per_address`).
    AddressFull,
}

/// What the HTTP layer did against clients that break the protocol or crowd the box (I8).
#[derive(Default)]
struct GuardSeries {
    strikes: AtomicU64,
    bans: AtomicU64,
    refused_banned: AtomicU64,
    refused_over_capacity: AtomicU64,
    refused_address_full: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            routes: OnceLock::new(),
            registrations_confirmed: AtomicU64::new(0),
            registrations_waitlisted: AtomicU64::new(0),
            registrations_cancelled: AtomicU64::new(0),
            promotions: AtomicU64::new(0),
            checkins: AtomicU64::new(0),
            commit_batch: Histogram::new(BATCH_BUCKETS, 1.0),
            commit_duration: Histogram::new(COMMIT_BUCKETS_NS, 1e9),
            console: ConsoleSeries::default(),
            guard: GuardSeries::default(),
        }
    }
}

impl Metrics {
    /// Gives every route template its slot. The first call wins: the router calls it once, as it is
    /// built, before it serves a request.
    pub fn register_routes<'a>(&self, templates: impl IntoIterator<Item = &'a str>) {
        let _ = self.routes.set(Routes::new(templates));
    }

    /// Counts one answered request under its route template (`None`: no route matched).
    pub fn record_request(&self, route: Option<&str>, status: u16, elapsed: Duration) {
        let routes = self.routes.get_or_init(|| Routes::new([]));
        let slot = routes.slot(route);
        if let Some(counter) = usize::from(status)
            .checked_sub(100)
            .and_then(|i| slot.statuses.get(i))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        slot.latency.observe(nanos(elapsed));
    }

    /// Counts one request of the remote console a second time (see [`CONSOLE_USER_AGENT`]); the
    /// caller has counted it with [`Metrics::record_request`] too.
    pub fn record_console_request(&self, elapsed: Duration) {
        self.console.requests.fetch_add(1, Ordering::Relaxed);
        self.console.latency.observe(nanos(elapsed));
    }

    /// One strike against an address; `banned`: it banned the address.
    pub fn record_strike(&self, banned: bool) {
        self.guard.strikes.fetch_add(1, Ordering::Relaxed);
        if banned {
            self.guard.bans.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One connection closed as soon as it was accepted.
    pub fn record_refused_connection(&self, why: Refused) {
        let counter = match why {
            Refused::Banned => &self.guard.refused_banned,
            Refused::OverCapacity => &self.guard.refused_over_capacity,
            Refused::AddressFull => &self.guard.refused_address_full,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// One group commit of the writer: its size and duration, and the domain events it made durable
    /// (all zero when the commit failed).
    pub fn record_commit(&self, report: &crate::store::CommitReport) {
        self.commit_batch.observe(report.commands as u64);
        self.commit_duration.observe(nanos(report.duration));
        if !report.ok {
            return;
        }
        for (kind, n) in report.events.iter() {
            let counter = match kind {
                DomainEventType::RegistrationConfirmed => &self.registrations_confirmed,
                DomainEventType::RegistrationWaitlisted => &self.registrations_waitlisted,
                DomainEventType::RegistrationCancelled => &self.registrations_cancelled,
                DomainEventType::RegistrationPromoted => &self.promotions,
                DomainEventType::AttendeeCheckedIn => &self.checkins,
                _ => continue,
            };
            if n > 0 {
                counter.fetch_add(u64::from(n), Ordering::Relaxed);
            }
        }
    }
}

/// Appends one metric's `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// The whole text of `/metrics` for `app`: what the handler answers and what the in-process console
/// parses, so the two cannot differ.
pub fn exposition(app: &crate::app::App) -> crate::app::Result<String> {
    let outbox = app.outbox_stats()?;
    let mut text = render(app.metrics(), &outbox, app.store().writer_queue());
    render_cache(&mut text, &app.cache_stats());
    Ok(text)
}

/// Renders every series: requests, business counters, commits, the outbox and the writer's queue.
pub fn render(metrics: &Metrics, outbox: &OutboxSnapshot, writer_queue: usize) -> String {
    let mut out = String::with_capacity(16 * 1024);
    render_requests(&mut out, metrics);
    render_business(&mut out, metrics);
    render_guard(&mut out, metrics);
    render_commits(&mut out, metrics, writer_queue);
    render_outbox(&mut out, outbox);
    out
}

fn render_requests(out: &mut String, m: &Metrics) {
    let routes = m.routes.get_or_init(|| Routes::new([]));
    let name = "http_requests_total";
    header(
        out,
        name,
        "counter",
        "HTTP requests answered, by route template and status code.",
    );
    for slot in &routes.slots {
        let route = escape(&slot.route);
        for (i, counter) in slot.statuses.iter().enumerate() {
            let n = counter.load(Ordering::Relaxed);
            if n > 0 {
                let status = i + 100;
                let _ = writeln!(out, "{name}{{route=\"{route}\",status=\"{status}\"}} {n}");
            }
        }
    }
    let name = "http_request_duration_seconds";
    header(
        out,
        name,
        "histogram",
        "Time from receiving a request's head to its answer, by route template.",
    );
    for slot in &routes.slots {
        let labels = format!("route=\"{}\",", escape(&slot.route));
        slot.latency.render(out, name, &labels);
    }
    single(
        out,
        "console_http_requests_total",
        "counter",
        "Requests of the remote operator console (User-Agent boxoffice-console/), also counted in http_requests_total.",
        m.console.requests.load(Ordering::Relaxed) as f64,
    );
    let name = "console_http_request_duration_seconds";
    header(
        out,
        name,
        "histogram",
        "Latency of the remote operator console's requests over all routes, also in http_request_duration_seconds.",
    );
    m.console.latency.render(out, name, "");
}

fn render_guard(out: &mut String, m: &Metrics) {
    let g = &m.guard;
    single(
        out,
        "http_strikes_total",
        "counter",
        "Refusals counted against the caller's address: a head over the bounds or unparsable, a body over the bound, an anonymous 429.",
        g.strikes.load(Ordering::Relaxed) as f64,
    );
    single(
        out,
        "http_bans_total",
        "counter",
        "Addresses banned for http.ban_secs after http.ban_strikes strikes within http.ban_window_secs.",
        g.bans.load(Ordering::Relaxed) as f64,
    );
    let name = "http_connections_refused_total";
    header(
        out,
        name,
        "counter",
        "Connections closed as soon as they were accepted: their address is banned, every connection slot (http.max_connections) was taken, or their address held its share (http.max_connections_per_address).",
    );
    for (reason, counter) in [
        ("banned", &g.refused_banned),
        ("over_capacity", &g.refused_over_capacity),
        ("address_full", &g.refused_address_full),
    ] {
        let n = counter.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {n}");
    }
}

fn render_business(out: &mut String, m: &Metrics) {
    let name = "registrations_total";
    header(
        out,
        name,
        "counter",
        "Registrations that entered a status, counted from committed domain events: confirmed (a sale, a walk-up or an accepted offer), waitlisted, cancelled. Promotions from the waitlist are waitlist_promotions_total.",
    );
    for (status, counter) in [
        ("confirmed", &m.registrations_confirmed),
        ("waitlisted", &m.registrations_waitlisted),
        ("cancelled", &m.registrations_cancelled),
    ] {
        let n = counter.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{status=\"{status}\"}} {n}");
    }
    single(
        out,
        "waitlist_promotions_total",
        "counter",
        "Heads of a waitlist given a freed seat (confirmed, or offered under the offer policy), committed.",
        m.promotions.load(Ordering::Relaxed) as f64,
    );
    single(
        out,
        "checkins_total",
        "counter",
        "Check-ins committed (a reverted check-in is not subtracted).",
        m.checkins.load(Ordering::Relaxed) as f64,
    );
}

fn render_commits(out: &mut String, m: &Metrics, writer_queue: usize) {
    let name = "db_commit_batch_size";
    header(
        out,
        name,
        "histogram",
        "Commands in one group commit of the writer (one transaction, one fsync).",
    );
    m.commit_batch.render(out, name, "");
    let name = "db_commit_duration_seconds";
    header(
        out,
        name,
        "histogram",
        "Time of one group commit, from BEGIN IMMEDIATE to the end of COMMIT (its fsync included).",
    );
    m.commit_duration.render(out, name, "");
    single(
        out,
        "db_writer_queue",
        "gauge",
        "Commands waiting for the single writer.",
        writer_queue as f64,
    );
}

fn render_outbox(out: &mut String, outbox: &OutboxSnapshot) {
    single(
        out,
        "outbox_pending_count",
        "gauge",
        "Outbox messages not yet delivered to every subscriber.",
        outbox.pending_count as f64,
    );
    single(
        out,
        "outbox_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest pending outbox message (0 when none).",
        outbox.oldest_pending_age_seconds,
    );
    single(
        out,
        "outbox_processed_total",
        "counter",
        "Deliveries (message x endpoint) accepted by a receiver since start.",
        outbox.processed_total as f64,
    );
    single(
        out,
        "outbox_failed_total",
        "counter",
        "Failed delivery attempts since start.",
        outbox.failed_total as f64,
    );
    single(
        out,
        "outbox_dead_count",
        "gauge",
        "Outbox messages settled dead: every endpoint is done with them and at least one gave up.",
        outbox.dead_count as f64,
    );

    let name = "outbox_delivery_duration_seconds";
    header(
        out,
        name,
        "histogram",
        "Time from sending a webhook to its answer, per subscription.",
    );
    for ep in &outbox.endpoints {
        // Webhook ids are UUIDs: safe as label values without escaping. URLs are not exposed.
        let label = &ep.webhook_id;
        let mut cumulative = 0u64;
        for bucket in &ep.buckets {
            cumulative += bucket.count;
            let le = match bucket.le_ms {
                Some(ms) => format!("{}", ms as f64 / 1000.0),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{webhook_id=\"{label}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_sum{{webhook_id=\"{label}\"}} {}",
            ep.sum_ms / 1000.0
        );
        let _ = writeln!(out, "{name}_count{{webhook_id=\"{label}\"}} {cumulative}");
    }
}

/// Appends the read cache's hits and misses per kind (`cache_hits_total{kind}`, `cache_misses_total{kind}`).
pub fn render_cache(out: &mut String, stats: &[(crate::cache::Kind, crate::cache::KindStats)]) {
    header(
        out,
        "cache_hits_total",
        "counter",
        "Reads answered from the cache, per kind.",
    );
    for (kind, s) in stats {
        let _ = writeln!(
            out,
            "cache_hits_total{{kind=\"{}\"}} {}",
            kind.as_str(),
            s.hits
        );
    }
    header(
        out,
        "cache_misses_total",
        "counter",
        "Reads the cache could not answer (absent, expired or invalidated), per kind.",
    );
    for (kind, s) in stats {
        let _ = writeln!(
            out,
            "cache_misses_total{{kind=\"{}\"}} {}",
            kind.as_str(),
            s.misses
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_lands_in_its_route_and_status_and_unknown_routes_in_unmatched() {
        let m = Metrics::default();
        m.register_routes(["/a/{id}", "/b"]);
        m.record_request(Some("/a/{id}"), 200, Duration::from_millis(3));
        m.record_request(Some("/a/{id}"), 404, Duration::from_secs(100));
        m.record_request(None, 404, Duration::from_micros(10));
        let outbox = OutboxSnapshot {
            pending_count: 0,
            dead_count: 0,
            oldest_pending_age_seconds: 0.0,
            processed_total: 0,
            failed_total: 0,
            dead_total: 0,
            endpoints: vec![],
        };
        let text = render(&m, &outbox, 0);
        assert!(text.contains("http_requests_total{route=\"/a/{id}\",status=\"200\"} 1\n"));
        assert!(text.contains("http_requests_total{route=\"/a/{id}\",status=\"404\"} 1\n"));
        assert!(text.contains("http_requests_total{route=\"unmatched\",status=\"404\"} 1\n"));
        // 3 ms falls in the 5 ms bucket, not the 2.5 ms one; 100 s only in +Inf.
        assert!(text
            .contains("http_request_duration_seconds_bucket{route=\"/a/{id}\",le=\"0.0025\"} 0\n"));
        assert!(text
            .contains("http_request_duration_seconds_bucket{route=\"/a/{id}\",le=\"0.005\"} 1\n"));
        assert!(
            text.contains("http_request_duration_seconds_bucket{route=\"/a/{id}\",le=\"30\"} 1\n")
        );
        assert!(text
            .contains("http_request_duration_seconds_bucket{route=\"/a/{id}\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("http_request_duration_seconds_count{route=\"/b\"} 0\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

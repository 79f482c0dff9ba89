//! The box's figures in the Prometheus text exposition format (version 0.0.4), for `GET /metrics`.
//!
//! So far: the outbox (DESIGN.md section 4: pending, oldest pending age, processed, failed, dead, and
//! each endpoint's delivery latency as a histogram) and the writer's queue. Request counts, latency per
//! route, cache and business counters come with the operations issue.

use std::fmt::Write as _;

use crate::app::OutboxSnapshot;

/// Appends one metric's `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Renders the outbox snapshot and the writer's queue depth.
pub fn render(outbox: &OutboxSnapshot, writer_queue: usize) -> String {
    let mut out = String::with_capacity(2048);
    single(
        &mut out,
        "outbox_pending_count",
        "gauge",
        "Outbox messages not yet delivered to every subscriber.",
        outbox.pending_count as f64,
    );
    single(
        &mut out,
        "outbox_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest pending outbox message (0 when none).",
        outbox.oldest_pending_age_seconds,
    );
    single(
        &mut out,
        "outbox_processed_total",
        "counter",
        "Deliveries (message x endpoint) accepted by a receiver since start.",
        outbox.processed_total as f64,
    );
    single(
        &mut out,
        "outbox_failed_total",
        "counter",
        "Failed delivery attempts since start.",
        outbox.failed_total as f64,
    );
    single(
        &mut out,
        "outbox_dead_count",
        "gauge",
        "Outbox messages given up on by at least one endpoint.",
        outbox.dead_count as f64,
    );
    single(
        &mut out,
        "db_writer_queue",
        "gauge",
        "Commands waiting for the single writer.",
        writer_queue as f64,
    );

    let name = "outbox_delivery_duration_seconds";
    header(
        &mut out,
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
    out
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

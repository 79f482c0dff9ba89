//! The server's own counters, read from `/metrics` around a phase: the read cache's hits and misses
//! per kind (`cache_hits_total{kind}`, `cache_misses_total{kind}`), so a scenario reports the hit
//! rate of exactly its headline phase and not of its setup.

use std::collections::BTreeMap;

use anyhow::Context;
use hyper::StatusCode;
use serde::Serialize;

use crate::client::{Call, Target};

/// Hits and misses per cache kind at one moment.
#[derive(Debug, Clone, Default)]
pub struct CacheCounters {
    by_kind: BTreeMap<String, (u64, u64)>,
}

/// What one kind of the cache did over a phase.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct HitRate {
    pub hits: u64,
    pub misses: u64,
    /// `hits / (hits + misses)`; absent when the phase made no lookup of this kind.
    pub rate: Option<f64>,
}

impl HitRate {
    fn new(hits: u64, misses: u64) -> Self {
        let total = hits + misses;
        Self {
            hits,
            misses,
            #[allow(clippy::cast_precision_loss)]
            rate: (total > 0).then(|| hits as f64 / total as f64),
        }
    }
}

impl CacheCounters {
    /// Reads `/metrics` once. Fails when the route or the cache series are missing, since the
    /// figures a scenario reports would otherwise be silently absent.
    pub async fn read(target: &Target) -> anyhow::Result<Self> {
        let mut conn = target.connect().await?;
        let reply = conn
            .send(&Call::get("/metrics"))
            .await?
            .expect(StatusCode::OK, "GET /metrics")?;
        let text = std::str::from_utf8(&reply.body).context("/metrics is not UTF-8")?;
        let counters = Self::parse(text);
        if counters.by_kind.is_empty() {
            anyhow::bail!("/metrics has no cache_hits_total or cache_misses_total series");
        }
        Ok(counters)
    }

    /// Picks `cache_hits_total{kind="K"} N` and `cache_misses_total{kind="K"} N` out of the
    /// Prometheus text; every other line is ignored.
    fn parse(text: &str) -> Self {
        let mut by_kind: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for line in text.lines() {
            let (is_hit, rest) = if let Some(rest) = line.strip_prefix("cache_hits_total{") {
                (true, rest)
            } else if let Some(rest) = line.strip_prefix("cache_misses_total{") {
                (false, rest)
            } else {
                continue;
            };
            let Some((labels, value)) = rest.split_once('}') else {
                continue;
            };
            let Some(kind) = labels
                .split(',')
                .find_map(|l| l.trim().strip_prefix("kind=\""))
                .and_then(|k| k.strip_suffix('"'))
            else {
                continue;
            };
            // Counters are rendered as integers; a float form is accepted and truncated.
            let Ok(n) = value.trim().parse::<f64>() else {
                continue;
            };
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = n.max(0.0) as u64;
            let entry = by_kind.entry(kind.to_string()).or_default();
            if is_hit {
                entry.0 = n;
            } else {
                entry.1 = n;
            }
        }
        Self { by_kind }
    }

    /// The hits and misses of `kind` between `before` and now (`self`).
    pub fn since(&self, before: &Self, kind: &str) -> HitRate {
        let now = self.by_kind.get(kind).copied().unwrap_or_default();
        let then = before.by_kind.get(kind).copied().unwrap_or_default();
        HitRate::new(now.0.saturating_sub(then.0), now.1.saturating_sub(then.1))
    }

    /// Every kind together between `before` and now: the whole cache's hit rate.
    pub fn total_since(&self, before: &Self) -> HitRate {
        let (hits, misses) = self
            .all_since(before)
            .values()
            .fold((0, 0), |(h, m), r| (h + r.hits, m + r.misses));
        HitRate::new(hits, misses)
    }

    /// Every kind's hit rate between `before` and now.
    pub fn all_since(&self, before: &Self) -> BTreeMap<String, HitRate> {
        self.by_kind
            .keys()
            .map(|k| (k.clone(), self.since(before, k)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_adds_every_kind() {
        let before = CacheCounters::parse(
            "cache_hits_total{kind=\"event\"} 10\n\
             cache_misses_total{kind=\"event\"} 0\n\
             cache_hits_total{kind=\"position\"} 0\n\
             cache_misses_total{kind=\"position\"} 0\n",
        );
        let after = CacheCounters::parse(
            "cache_hits_total{kind=\"event\"} 100\n\
             cache_misses_total{kind=\"event\"} 5\n\
             cache_hits_total{kind=\"position\"} 5\n\
             cache_misses_total{kind=\"position\"} 0\n",
        );
        let t = after.total_since(&before);
        assert_eq!((t.hits, t.misses), (95, 5));
        assert_eq!(t.rate, Some(0.95));
    }

    #[test]
    fn reads_the_cache_series_and_ignores_the_rest() {
        let before = CacheCounters::parse(
            "# TYPE cache_hits_total counter\n\
             cache_hits_total{kind=\"event\"} 10\n\
             cache_misses_total{kind=\"event\"} 5\n\
             outbox_pending_count 3\n",
        );
        let after = CacheCounters::parse(
            "cache_hits_total{kind=\"event\"} 105\n\
             cache_misses_total{kind=\"event\"} 10\n\
             cache_hits_total{kind=\"position\"} 0\n",
        );
        let r = after.since(&before, "event");
        assert_eq!((r.hits, r.misses), (95, 5));
        assert_eq!(r.rate, Some(0.95));
        assert_eq!(after.since(&before, "position").rate, None);
    }
}

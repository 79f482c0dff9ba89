//! The server's own counters, read from `/metrics` around a phase: the read cache's hits and misses
//! per kind (`cache_hits_total{kind}`, `cache_misses_total{kind}`), so a scenario reports the hit
//! rate of exactly its headline phase and not of its setup; and the writer's group commits
//! (`db_commit_batch_size`, `db_commit_duration_seconds`), so a rush says how many sales shared each
//! commit and how long a commit took, fsync included.

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
        let counters = Self::parse(&exposition(target).await?);
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

/// The text of `/metrics`, read once.
async fn exposition(target: &Target) -> anyhow::Result<String> {
    let mut conn = target.connect().await?;
    let reply = conn
        .send(&Call::get("/metrics"))
        .await?
        .expect(StatusCode::OK, "GET /metrics")?;
    String::from_utf8(reply.body.to_vec()).context("/metrics is not UTF-8")
}

/// The writer's group commits so far: how many, the commands in them, and their time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Commits {
    groups: f64,
    commands: f64,
    seconds: f64,
}

/// What the writer's group commits did over a phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CommitFigures {
    pub groups: f64,
    /// Commands per group: in a rush, how many sales one transaction and one fsync served.
    pub mean_commands: Option<f64>,
    /// From `BEGIN IMMEDIATE` to the end of `COMMIT`, its fsync included.
    pub mean_commit_ms: Option<f64>,
}

impl Commits {
    /// Reads `/metrics` once. Fails when a commit series is missing.
    pub async fn read(target: &Target) -> anyhow::Result<Self> {
        Self::parse(&exposition(target).await?)
            .context("/metrics lacks db_commit_batch_size or db_commit_duration_seconds")
    }

    fn parse(text: &str) -> Option<Self> {
        let value = |name: &str| {
            text.lines().find_map(|l| {
                let (n, v) = l.split_once(' ')?;
                (n == name).then(|| v.trim().parse::<f64>().ok()).flatten()
            })
        };
        Some(Self {
            groups: value("db_commit_batch_size_count")?,
            commands: value("db_commit_batch_size_sum")?,
            seconds: value("db_commit_duration_seconds_sum")?,
        })
    }

    /// The commits between `before` and now (`self`).
    pub fn since(&self, before: &Self) -> CommitFigures {
        let groups = self.groups - before.groups;
        let per_group = |v: f64| (groups > 0.0).then(|| v / groups);
        CommitFigures {
            groups,
            mean_commands: per_group(self.commands - before.commands),
            mean_commit_ms: per_group((self.seconds - before.seconds) * 1000.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_over_a_phase_are_the_difference_of_two_readings() {
        let before = Commits::parse(
            "db_commit_batch_size_bucket{le=\"1\"} 3\n\
             db_commit_batch_size_sum 30\n\
             db_commit_batch_size_count 10\n\
             db_commit_duration_seconds_sum 0.01\n\
             db_commit_duration_seconds_count 10\n",
        )
        .expect("both series");
        let after = Commits::parse(
            "db_commit_batch_size_sum 2030\n\
             db_commit_batch_size_count 110\n\
             db_commit_duration_seconds_sum 0.21\n",
        )
        .expect("both series");
        let f = after.since(&before);
        assert_eq!(f.groups, 100.0);
        assert_eq!(f.mean_commands, Some(20.0));
        let ms = f.mean_commit_ms.expect("groups committed");
        assert!((ms - 2.0).abs() < 1e-9, "{ms}");
        assert_eq!(before.since(&before).mean_commands, None);
        assert_eq!(Commits::parse("db_commit_batch_size_sum 1\n"), None);
    }

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

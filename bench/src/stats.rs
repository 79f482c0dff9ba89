//! Latency percentiles over every recorded request.
//!
//! A run records at most a few hundred thousand latencies, so they are kept exactly and sorted once
//! rather than bucketed: the reported p99 is a real observed request, not a bucket boundary.

use std::time::Duration;

use serde::Serialize;

/// Percentiles in milliseconds, by the nearest-rank method.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Summarises `samples` (reordered in place); all zero when there are none.
    pub fn from_samples(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        Self {
            p50_ms: ms(nearest_rank(samples, 50)),
            p95_ms: ms(nearest_rank(samples, 95)),
            p99_ms: ms(nearest_rank(samples, 99)),
            max_ms: ms(samples[samples.len() - 1]),
        }
    }
}

/// The smallest sample with at least `pct` percent of the samples at or below it.
/// `sorted` must be sorted and non-empty.
fn nearest_rank(sorted: &[Duration], pct: usize) -> Duration {
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_observed_samples() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let l = Latency::from_samples(&mut v);
        assert_eq!(
            l,
            Latency {
                p50_ms: 50.0,
                p95_ms: 95.0,
                p99_ms: 99.0,
                max_ms: 100.0
            }
        );
    }

    #[test]
    fn a_single_sample_is_every_percentile() {
        let l = Latency::from_samples(&mut [Duration::from_millis(7)]);
        assert_eq!(
            l,
            Latency {
                p50_ms: 7.0,
                p95_ms: 7.0,
                p99_ms: 7.0,
                max_ms: 7.0
            }
        );
    }

    #[test]
    fn no_samples_is_all_zero() {
        assert_eq!(Latency::from_samples(&mut []), Latency::default());
    }
}

//! Latency percentiles (nearest rank over every sample, so a reported p99 is a request that
//! happened) and first/last/max summaries of sampled series.

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub requests: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn from_samples(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let rank = |pct: usize| samples[(samples.len() * pct).div_ceil(100).max(1) - 1];
        Self {
            requests: samples.len(),
            p50_ms: ms(rank(50)),
            p99_ms: ms(rank(99)),
            max_ms: ms(samples[samples.len() - 1]),
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// First, last and largest value of a sampled series.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Series {
    pub first: u64,
    pub last: u64,
    pub max: u64,
}

impl Series {
    pub fn of(values: &[u64]) -> Self {
        Self {
            first: values.first().copied().unwrap_or(0),
            last: values.last().copied().unwrap_or(0),
            max: values.iter().copied().max().unwrap_or(0),
        }
    }
}

/// Bytes as MiB with one decimal, for tables.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_observed_samples() {
        let mut s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::from_samples(&mut s);
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (50.0, 99.0, 100.0));
        assert_eq!(Latency::from_samples(&mut []).requests, 0);
    }

    #[test]
    fn series_keeps_first_last_and_max() {
        let s = Series::of(&[3, 9, 4]);
        assert_eq!((s.first, s.last, s.max), (3, 4, 9));
    }
}

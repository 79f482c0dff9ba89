//! Requests per second, latency percentiles and the cache hit rate of the last seconds, from
//! successive samples of the box's cumulative counters ([`Traffic`]). `update` pushes each dashboard
//! sample into a [`Window`]; the dashboard draws the [`Recent`] figures it keeps.
//!
//! The window reaches back [`WINDOW_MS`] (10 s): the figures are the growth of every counter from
//! the base sample (the newest one at least 10 s old, or the oldest one while the console has been
//! watching for less) to the newest sample, over the time between them, which the dashboard names.
//! Percentiles come from the growth of each latency bucket, interpolated within the bucket that holds
//! the rank, as Prometheus' `histogram_quantile` does: a percentile is only known to lie inside its
//! bucket (0.5 to 1 ms, say), and the interpolation assumes the requests are spread evenly within it.
//! When no request was answered in the window the rate is 0 and there are no percentiles, never an
//! invented number. Nothing here reads a clock: each sample carries the box's time.

use std::collections::VecDeque;

use crate::data::{Latency, Millis, Traffic};

/// How far back the figures reach.
pub const WINDOW_MS: Millis = 10_000;
/// Two samples closer than this give no figures yet: a rate over a few milliseconds is noise.
const MIN_SPAN_MS: Millis = 1_000;

/// What happened between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// The time the figures cover: about [`WINDOW_MS`], less in the first seconds.
    pub span_ms: Millis,
    /// Requests answered in the window.
    pub requests: u64,
    pub requests_per_s: f64,
    /// `None` when no request was answered in the window.
    pub latency: Option<Latency>,
    /// Hits over lookups; `None` when the cache was not asked.
    pub cache_hit_rate: Option<f64>,
}

/// What the dashboard shows for the request figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Recent {
    /// The box gave no counters: "n/a".
    #[default]
    Missing,
    /// One sample so far (or samples less than a second apart): no window yet.
    Gathering,
    Known(Figures),
}

/// The samples of the last [`WINDOW_MS`] and the figures they give.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    samples: VecDeque<(Millis, Traffic)>,
    recent: Recent,
}

impl Window {
    /// Takes the traffic of one dashboard sample taken at `at` (the box's clock).
    pub fn push(&mut self, at: Millis, traffic: Option<&Traffic>) {
        let Some(t) = traffic else {
            self.samples.clear();
            self.recent = Recent::Missing;
            return;
        };
        if let Some((last_at, last)) = self.samples.back() {
            if *last_at >= at {
                return;
            }
            // Another start of the box (its counters began again from zero), or a box whose buckets
            // differ: the old samples say nothing about the new counters.
            let bounds = |t: &Traffic| t.latency_buckets.iter().map(|b| b.0).collect::<Vec<_>>();
            if last.since != t.since || bounds(last) != bounds(t) {
                self.samples.clear();
            }
        }
        self.samples.push_back((at, t.clone()));
        // Keep one sample at or before the window's start, the base, and everything after it.
        while self
            .samples
            .get(1)
            .is_some_and(|(s, _)| *s <= at - WINDOW_MS)
        {
            self.samples.pop_front();
        }
        let (base_at, base) = &self.samples[0];
        let span_ms = at - base_at;
        self.recent = if span_ms < MIN_SPAN_MS {
            Recent::Gathering
        } else {
            Recent::Known(figures(base, t, span_ms))
        };
    }

    pub fn recent(&self) -> Recent {
        self.recent
    }
}

/// The figures of the growth from `base` to `now` over `span_ms` (at least 1 ms).
fn figures(base: &Traffic, now: &Traffic, span_ms: Millis) -> Figures {
    let requests = now.requests.saturating_sub(base.requests);
    // Per bucket, the growth; a running maximum keeps it cumulative even if two counters were read
    // a request apart (a scrape reads one series after another while requests go on).
    let mut running = 0;
    let grown: Vec<(f64, u64)> = now
        .latency_buckets
        .iter()
        .zip(&base.latency_buckets)
        .map(|(&(le, n), &(_, b))| {
            running = running.max(n.saturating_sub(b));
            (le, running)
        })
        .collect();
    let latency = (|| {
        Some(Latency {
            p50_ms: quantile(0.50, &grown)?,
            p95_ms: quantile(0.95, &grown)?,
            p99_ms: quantile(0.99, &grown)?,
        })
    })();
    let hits = now.cache_hits.saturating_sub(base.cache_hits);
    let misses = now.cache_misses.saturating_sub(base.cache_misses);
    let lookups = hits + misses;
    Figures {
        span_ms,
        requests,
        requests_per_s: requests as f64 * 1000.0 / span_ms as f64,
        latency,
        cache_hit_rate: (lookups > 0).then(|| hits as f64 / lookups as f64),
    }
}

/// The `q`-quantile (0 < q < 1) of a cumulative histogram (upper bound, count at or below it;
/// bounds ascending, the last `f64::INFINITY`), as Prometheus' `histogram_quantile` computes it:
/// find the first bucket whose count reaches the rank `q * total`, and interpolate linearly between
/// its lower bound (the previous bucket's upper bound, or 0 for the first) and its upper bound. A
/// rank in the `+Inf` bucket answers the highest finite bound, since nothing bounds it from above.
/// `None` for an empty histogram.
pub fn quantile(q: f64, buckets: &[(f64, u64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let i = buckets.iter().position(|&(_, n)| n as f64 >= rank)?;
    let (upper, count) = buckets[i];
    let (lower, below) = match i.checked_sub(1) {
        Some(j) => buckets[j],
        None => (0.0, 0),
    };
    if upper.is_infinite() {
        return Some(lower);
    }
    let inside = count.saturating_sub(below);
    if inside == 0 {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below as f64) / inside as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    /// 100 requests: 50 at most 1 ms (none under 0.5 ms), 40 more by 2.5 ms, 10 more by 5 ms.
    fn hundred() -> Vec<(f64, u64)> {
        vec![
            (0.5, 0),
            (1.0, 50),
            (2.5, 90),
            (5.0, 100),
            (10.0, 100),
            (INF, 100),
        ]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_percentile_is_interpolated_within_the_bucket_that_holds_its_rank() {
        let b = hundred();
        // Rank 50 is the last of the (0.5, 1] bucket: its upper bound.
        assert!(close(quantile(0.50, &b).expect("p50"), 1.0));
        // Rank 95 is the 5th of 10 in (2.5, 5]: halfway.
        assert!(close(quantile(0.95, &b).expect("p95"), 3.75));
        // Rank 99 is the 9th of 10 in (2.5, 5].
        assert!(close(quantile(0.99, &b).expect("p99"), 4.75));
        // Rank 25 is the 25th of 50 in (0.5, 1].
        assert!(close(quantile(0.25, &b).expect("p25"), 0.75));
    }

    #[test]
    fn the_first_bucket_starts_at_zero_and_the_inf_bucket_answers_the_highest_bound() {
        let first = vec![(0.5, 4), (1.0, 4), (INF, 4)];
        assert!(close(quantile(0.5, &first).expect("p50"), 0.25));
        // 2 of 100 took longer than the last finite bound: p99 is at least 10 ms, and that is
        // all the histogram knows.
        let slow = vec![(5.0, 90), (10.0, 98), (INF, 100)];
        assert!(close(quantile(0.99, &slow).expect("p99"), 10.0));
        assert!(close(
            quantile(0.95, &slow).expect("p95"),
            5.0 + 5.0 * 5.0 / 8.0
        ));
    }

    #[test]
    fn an_empty_histogram_has_no_percentiles() {
        assert_eq!(quantile(0.5, &[(1.0, 0), (INF, 0)]), None);
        assert_eq!(quantile(0.5, &[]), None);
    }

    fn traffic(requests: u64, buckets: &[u64], hits: u64, misses: u64) -> Traffic {
        let bounds = [0.5, 1.0, 2.5, 5.0, INF];
        Traffic {
            since: 1,
            requests,
            latency_buckets: bounds
                .iter()
                .copied()
                .zip(buckets.iter().copied())
                .collect(),
            cache_hits: hits,
            cache_misses: misses,
        }
    }

    #[test]
    fn figures_are_the_growth_over_the_last_ten_seconds() {
        let mut w = Window::default();
        assert_eq!(w.recent(), Recent::Missing);
        // Before the window: 1000 requests, all under 0.5 ms; they must not show.
        w.push(
            0,
            Some(&traffic(1000, &[1000, 1000, 1000, 1000, 1000], 10, 0)),
        );
        assert_eq!(w.recent(), Recent::Gathering);
        // One sample a second; in the last 10 s, 100 more requests shaped like `hundred()`, and
        // 90 cache hits with 10 misses.
        for s in 1..20 {
            w.push(s * 1000, Some(&traffic(1000, &[1000; 5], 10, 0)));
        }
        w.push(
            20_000,
            Some(&traffic(1100, &[1000, 1050, 1090, 1100, 1100], 100, 10)),
        );
        let Recent::Known(f) = w.recent() else {
            panic!("{:?}", w.recent())
        };
        assert_eq!(f.span_ms, 10_000);
        assert_eq!(f.requests, 100);
        assert!(close(f.requests_per_s, 10.0));
        let l = f.latency.expect("latency");
        assert!(
            close(l.p50_ms, 1.0) && close(l.p95_ms, 3.75) && close(l.p99_ms, 4.75),
            "{l:?}"
        );
        assert!(close(f.cache_hit_rate.expect("hit rate"), 0.9));
    }

    #[test]
    fn a_quiet_window_shows_zero_requests_and_no_percentiles() {
        let mut w = Window::default();
        let busy = traffic(500, &[100, 200, 300, 400, 500], 7, 3);
        for s in 0..=12 {
            w.push(s * 1000, Some(&busy));
        }
        let Recent::Known(f) = w.recent() else {
            panic!("{:?}", w.recent())
        };
        assert_eq!((f.requests, f.requests_per_s), (0, 0.0));
        assert_eq!((f.latency, f.cache_hit_rate), (None, None));
    }

    #[test]
    fn the_first_seconds_use_the_time_there_is() {
        let mut w = Window::default();
        w.push(10_000, Some(&traffic(0, &[0, 0, 0, 0, 0], 0, 0)));
        w.push(10_500, Some(&traffic(5, &[5, 5, 5, 5, 5], 0, 0)));
        assert_eq!(w.recent(), Recent::Gathering, "half a second is no window");
        w.push(14_000, Some(&traffic(40, &[40, 40, 40, 40, 40], 0, 0)));
        let Recent::Known(f) = w.recent() else {
            panic!("{:?}", w.recent())
        };
        assert_eq!((f.span_ms, f.requests), (4_000, 40));
        assert!(close(f.requests_per_s, 10.0));
    }

    #[test]
    fn a_restarted_box_starts_the_window_again_and_a_box_without_counters_is_missing() {
        let mut w = Window::default();
        w.push(0, Some(&traffic(900, &[900, 900, 900, 900, 900], 0, 0)));
        w.push(1_000, Some(&traffic(950, &[950, 950, 950, 950, 950], 0, 0)));
        let mut again = traffic(3, &[3, 3, 3, 3, 3], 0, 0);
        again.since = 2;
        w.push(2_000, Some(&again));
        assert_eq!(w.recent(), Recent::Gathering);
        w.push(3_000, None);
        assert_eq!(w.recent(), Recent::Missing);
        // A sample no newer than the last one (a late answer) changes nothing.
        w.push(4_000, Some(&traffic(10, &[10, 10, 10, 10, 10], 0, 0)));
        w.push(4_000, Some(&traffic(99, &[99, 99, 99, 99, 99], 0, 0)));
        w.push(5_000, Some(&traffic(20, &[20, 20, 20, 20, 20], 0, 0)));
        let Recent::Known(f) = w.recent() else {
            panic!("{:?}", w.recent())
        };
        assert_eq!(f.requests, 10);
    }
}

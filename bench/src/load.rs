//! The load loop: N keep-alive connections, one task each, sharing a counter of requests to send.
//!
//! Every task takes the next request index from one atomic counter until all are taken, so a slow
//! connection simply sends fewer requests (closed loop: at most N requests are in flight). All
//! connections are opened before the clock starts; the clock stops when the last response is read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hyper::StatusCode;
use serde::Serialize;

use crate::client::{Call, Target};
use crate::cpu::{CpuShares, Ticks};
use crate::stats::Latency;

/// Error samples kept per phase: enough to see what went wrong, not so many the report drowns.
const ERROR_SAMPLES: usize = 5;

/// Key under which requests that got no HTTP response at all are counted.
pub const TRANSPORT_ERROR: &str = "transport";

/// Key under which requests never sent (every connection was lost) are counted.
pub const UNSENT: &str = "unsent";

/// What one timed phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub phase: String,
    pub connections: usize,
    pub requests: usize,
    pub seconds: f64,
    /// Requests answered as expected (`requests - error_count`) per second: a failed request, however
    /// fast its answer, adds nothing to a rate.
    pub rps: f64,
    #[serde(flatten)]
    pub latency: Latency,
    /// Requests that did not get the expected status, by status code (or `transport`).
    pub errors: BTreeMap<String, usize>,
    pub error_count: usize,
    pub error_samples: Vec<String>,
    /// The machine's CPU time while the phase's requests were in flight (`None` where it was not
    /// measured: phases of a few sequential requests, or no `/proc/stat`).
    pub cpu: Option<CpuShares>,
}

impl Phase {
    /// A phase of a few requests sent one after another on one connection, such as creating the
    /// event; `latencies` holds one entry per request, all of which succeeded.
    pub fn sequential(phase: &str, latencies: &mut [Duration], elapsed: Duration) -> Self {
        Self {
            phase: phase.to_string(),
            connections: 1,
            requests: latencies.len(),
            seconds: elapsed.as_secs_f64(),
            rps: rate(latencies.len(), elapsed),
            latency: Latency::from_samples(latencies),
            errors: BTreeMap::new(),
            error_count: 0,
            error_samples: Vec::new(),
            cpu: None,
        }
    }
}

/// The rate of several phases taken together: all their requests answered as expected over all their
/// time (not the mean of their rates, which would weigh a short, fast phase like a long, slow one).
/// `None` without time.
pub fn combined_rate(phases: &[&Phase]) -> Option<f64> {
    let seconds: f64 = phases.iter().map(|p| p.seconds).sum();
    let requests: usize = phases
        .iter()
        .map(|p| p.requests.saturating_sub(p.error_count))
        .sum();
    #[allow(clippy::cast_precision_loss)]
    (seconds > 0.0).then(|| requests as f64 / seconds)
}

fn rate(requests: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        requests as f64 / secs
    } else {
        0.0
    }
}

/// Sends `total` requests over `connections` connections. `request(i)` builds the i-th request;
/// `on_success(i, body)` sees the body of every response whose status is `expect` (or the call's own
/// `Call::expect`).
///
/// Neither closure is timed separately, so both should be cheap: prepare request bodies beforehand.
pub async fn run<R, S>(
    phase: &str,
    target: &Target,
    connections: usize,
    total: usize,
    expect: StatusCode,
    request: R,
    on_success: S,
) -> anyhow::Result<Phase>
where
    R: Fn(usize) -> Call + Send + Sync + 'static,
    S: Fn(usize, &Bytes) + Send + Sync + 'static,
{
    let run = Slice {
        target,
        connections,
        expect,
        request: Arc::new(request),
        on_success: Arc::new(on_success),
    }
    .send(phase, 0, total)
    .await?;
    Ok(run.into_phase(phase))
}

/// One phase's requests, sent in one or more slices (`Slice::send`): what was sent, what came back.
#[derive(Default)]
pub struct Samples {
    connections: usize,
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    errors: BTreeMap<String, usize>,
    error_samples: Vec<String>,
    /// `None` when `/proc/stat` could not be read around one of the slices.
    cpu: Option<Ticks>,
}

impl Samples {
    /// Adds another slice of the same phase: its requests, its time, its latencies, its CPU ticks
    /// (unknown for the phase once unknown for one slice).
    pub fn extend(&mut self, other: Samples) {
        // `Samples::default()` is the empty phase the first slice starts.
        let first = self.requests == 0 && self.elapsed.is_zero();
        self.cpu = if first {
            other.cpu
        } else {
            self.cpu.zip(other.cpu).map(|(a, b)| a.plus(b))
        };
        self.connections = self.connections.max(other.connections);
        self.requests += other.requests;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        for (k, n) in other.errors {
            *self.errors.entry(k).or_insert(0) += n;
        }
        let room = ERROR_SAMPLES.saturating_sub(self.error_samples.len());
        self.error_samples
            .extend(other.error_samples.into_iter().take(room));
    }

    pub fn into_phase(mut self, phase: &str) -> Phase {
        Phase {
            phase: phase.to_string(),
            connections: self.connections,
            requests: self.requests,
            seconds: self.elapsed.as_secs_f64(),
            rps: rate(
                self.requests
                    .saturating_sub(self.errors.values().sum::<usize>()),
                self.elapsed,
            ),
            latency: Latency::from_samples(&mut self.latencies),
            error_count: self.errors.values().sum(),
            errors: self.errors,
            error_samples: self.error_samples,
            cpu: self.cpu.and_then(Ticks::shares),
        }
    }
}

/// A phase's load, which can be sent in slices: slice `[start, start + count)` sends requests
/// `request(start)` to `request(start + count - 1)`, so the slices of a phase together send what one
/// run of all of them would.
pub struct Slice<'a, R, S> {
    pub target: &'a Target,
    pub connections: usize,
    pub expect: StatusCode,
    pub request: Arc<R>,
    pub on_success: Arc<S>,
}

impl<R, S> Slice<'_, R, S>
where
    R: Fn(usize) -> Call + Send + Sync + 'static,
    S: Fn(usize, &Bytes) + Send + Sync + 'static,
{
    /// Sends requests `start..start + count` over fresh keep-alive connections, all opened before
    /// the clock starts; the clock stops when the last response is read.
    pub async fn send(&self, phase: &str, start: usize, count: usize) -> anyhow::Result<Samples> {
        let (total, expect) = (count, self.expect);
        let connections = self.connections.clamp(1, total.max(1));
        let mut conns = Vec::with_capacity(connections);
        for i in 0..connections {
            conns.push(
                self.target
                    .connect()
                    .await
                    .with_context(|| format!("{phase}: open connection {}", i + 1))?,
            );
        }

        let next = Arc::new(AtomicUsize::new(0));
        let samples = Arc::new(Mutex::new(Vec::<String>::new()));

        let ticks_before = Ticks::now();
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(connections);
        for mut conn in conns {
            let (next, request, on_success, samples, target) = (
                next.clone(),
                self.request.clone(),
                self.on_success.clone(),
                samples.clone(),
                self.target.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let i = start + i;
                    let call = request(i);
                    let t0 = Instant::now();
                    match conn.send(&call).await {
                        Ok(reply) => {
                            tally.latencies.push(t0.elapsed());
                            if reply.status == call.expect.unwrap_or(expect) {
                                on_success(i, &reply.body);
                            } else {
                                tally.error(reply.status.as_u16().to_string(), &samples, || {
                                    format!(
                                        "{} {} -> {}: {}",
                                        call.method,
                                        call.path,
                                        reply.status,
                                        reply.body_text()
                                    )
                                });
                            }
                        }
                        Err(e) => {
                            tally.error(TRANSPORT_ERROR.to_string(), &samples, || {
                                format!("{} {}: {e:#}", call.method, call.path)
                            });
                            // The connection is unusable after a transport error; one fresh attempt
                            // keeps a single dropped connection from silently shrinking the load.
                            match target.connect().await {
                                Ok(fresh) => conn = fresh,
                                Err(e) => {
                                    tally.sample(&samples, || {
                                        format!("reconnect failed, connection given up: {e:#}")
                                    });
                                    break;
                                }
                            }
                        }
                    }
                }
                tally
            }));
        }

        let mut latencies = Vec::with_capacity(total);
        let mut errors = BTreeMap::new();
        for task in tasks {
            let tally = task.await.context("load task panicked")?;
            latencies.extend(tally.latencies);
            for (k, n) in tally.errors {
                *errors.entry(k).or_insert(0) += n;
            }
        }
        let elapsed = started.elapsed();
        // Both readings or none: a span from boot to now is no phase's.
        let cpu = ticks_before
            .zip(Ticks::now())
            .map(|(before, after)| after.since(before));

        // Every index taken was either answered or failed in transport; indices never taken (every
        // task gave up after a failed reconnect) are counted too, so `requests - error_count` is
        // always the number of requests that got the expected answer.
        let accounted = latencies.len() + errors.get(TRANSPORT_ERROR).copied().unwrap_or(0);
        let unsent = total.saturating_sub(accounted);
        if unsent > 0 {
            errors.insert(UNSENT.to_string(), unsent);
        }
        let error_samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
        Ok(Samples {
            connections,
            requests: total,
            elapsed,
            latencies,
            errors,
            error_samples,
            cpu,
        })
    }
}

/// What one connection task saw; merged after the run so the hot loop shares nothing but the counter.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: BTreeMap<String, usize>,
}

impl Tally {
    fn error(
        &mut self,
        key: String,
        samples: &Mutex<Vec<String>>,
        describe: impl FnOnce() -> String,
    ) {
        *self.errors.entry(key).or_insert(0) += 1;
        self.sample(samples, describe);
    }

    fn sample(&self, samples: &Mutex<Vec<String>>, describe: impl FnOnce() -> String) {
        if let Ok(mut s) = samples.lock() {
            if s.len() < ERROR_SAMPLES {
                s.push(describe());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(requests: usize, cpu: Option<Ticks>) -> Samples {
        Samples {
            connections: 4,
            requests,
            elapsed: Duration::from_secs(1),
            latencies: vec![Duration::from_millis(1); requests],
            cpu,
            ..Samples::default()
        }
    }

    #[test]
    fn a_phase_in_slices_counts_the_cpu_ticks_of_every_slice() {
        let mut phase = Samples::default();
        phase.extend(slice(10, Some(Ticks::new(60, 20, 10, 10))));
        phase.extend(slice(10, Some(Ticks::new(20, 60, 10, 10))));
        let p = phase.into_phase("p");
        assert_eq!(p.requests, 20);
        let cpu = p.cpu.expect("both slices measured");
        assert_eq!(
            (cpu.busy_pct, cpu.idle_pct, cpu.steal_pct),
            (40.0, 40.0, 10.0)
        );
    }

    #[test]
    fn one_slice_without_a_reading_leaves_the_phase_without_one() {
        let mut phase = Samples::default();
        phase.extend(slice(10, Some(Ticks::new(60, 20, 10, 10))));
        phase.extend(slice(10, None));
        phase.extend(slice(10, Some(Ticks::new(60, 20, 10, 10))));
        assert_eq!(phase.into_phase("p").cpu, None);
    }
}

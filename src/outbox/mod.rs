//! The outbox processor: delivers every domain event the store recorded to every subscribed webhook
//! endpoint, at least once, in order per aggregate per endpoint (DESIGN.md section 4).
//!
//! One *step* for one endpoint reads (through the reader pool) the due retries and the messages past the
//! endpoint's cursor, sends them over HTTP with no transaction open, then records the outcomes and the
//! new cursor in one command on the single writer. Messages of one aggregate go one after another and a
//! failure stops the rest of that aggregate (they wait, in order, behind it); different aggregates go
//! in parallel, bounded per endpoint. Failures back off exponentially with jitter and end `dead` after
//! `max_attempts`. Each endpoint has its own timeout and circuit breaker, and in `spawn` its own task,
//! so a dead endpoint costs the others nothing.
//!
//! [`Processor::run_once`] is one step for every endpoint plus settling; tests call it to drain the
//! outbox deterministically. [`spawn`] runs the same steps in the background, woken by commits that
//! recorded domain events (see `App::open_with_clock`) or by the next due retry; idle, it sleeps.

mod client;
mod sign;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use client::{Failure, HttpClient, Request, Sent, WebhookClient};
pub use sign::{envelope, Signer};

use crate::app::{App, EndpointBatch, Error, OutboxOptions, Result};
use crate::domain::Timestamp;
use crate::store::webhooks::{Message, Outcome};

/// What one pass (or step) did; `did_work` tells a draining loop whether to go on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub attempted: usize,
    pub delivered: usize,
    pub failed: usize,
    pub dead: usize,
    /// Messages recorded as waiting (behind a failed message of their aggregate, or an open circuit).
    pub waiting: usize,
    /// A cursor moved or messages were settled.
    pub advanced: bool,
}

impl Pass {
    pub fn did_work(&self) -> bool {
        self.attempted > 0 || self.waiting > 0 || self.advanced
    }

    fn add(&mut self, o: Pass) {
        self.attempted += o.attempted;
        self.delivered += o.delivered;
        self.failed += o.failed;
        self.dead += o.dead;
        self.waiting += o.waiting;
        self.advanced |= o.advanced;
    }
}

/// The nominal delay before attempt `attempts + 1`: doubling from the initial delay, capped.
pub fn backoff_nominal_ms(opts: &OutboxOptions, attempts: i64) -> i64 {
    let doublings = u32::try_from((attempts - 1).clamp(0, 40)).unwrap_or(40);
    opts.backoff_initial_ms
        .saturating_mul(1_i64 << doublings.min(40))
        .min(opts.backoff_max_ms)
}

/// The delay actually used: uniformly between half and all of the nominal one, so endpoints that
/// failed together do not all come back at the same instant.
pub fn backoff_ms(opts: &OutboxOptions, attempts: i64) -> i64 {
    let nominal = backoff_nominal_ms(opts, attempts).max(1);
    let half = nominal / 2;
    half + rand::rng().random_range(0..=nominal - half)
}

/// A circuit breaker per endpoint: after `threshold` consecutive failures nothing is sent for the
/// cooldown; then one trial delivery decides whether it closes again.
#[derive(Debug, Clone, Copy, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Closed,
    Open { until: i64 },
    Trial,
}

impl Breaker {
    fn gate(&self, now: i64) -> Gate {
        match self.open_until {
            None => Gate::Closed,
            Some(until) if now < until => Gate::Open { until },
            Some(_) => Gate::Trial,
        }
    }

    fn success(&mut self) {
        self.failures = 0;
        self.open_until = None;
    }

    fn failure(&mut self, now: i64, opts: &OutboxOptions) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= opts.breaker_threshold || self.open_until.is_some() {
            self.open_until = Some(now.saturating_add(opts.breaker_cooldown_ms));
        }
    }
}

/// What one endpoint's step found.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The subscription no longer exists.
    Gone,
    Done {
        pass: Pass,
        /// When this endpoint next has something to do without being woken (a retry or the end of
        /// its breaker's cooldown); `None`: only a wake-up brings new work.
        next: Option<i64>,
    },
}

/// Delivers the outbox. Cheap to share: `Arc<Processor>`.
pub struct Processor {
    app: Arc<App>,
    client: Arc<dyn WebhookClient>,
    breakers: Mutex<HashMap<i64, Arc<Mutex<Breaker>>>>,
    endpoints_at_once: Arc<Semaphore>,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor").finish_non_exhaustive()
    }
}

/// Runs a blocking `App` call (store reads and writes) off the async threads.
async fn blocking<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&App) -> Result<T> + Send + 'static,
) -> Result<T> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(&app))
        .await
        .map_err(|e| Error::Internal(format!("outbox task: {e}")))?
}

impl Processor {
    pub fn new(app: Arc<App>, client: Arc<dyn WebhookClient>) -> Arc<Self> {
        let at_once = app.outbox_options().parallel_endpoints.max(1);
        Arc::new(Self {
            app,
            client,
            breakers: Mutex::default(),
            endpoints_at_once: Arc::new(Semaphore::new(at_once)),
        })
    }

    /// A processor with the real HTTP client.
    pub fn with_http(app: Arc<App>) -> Result<Arc<Self>> {
        let client = HttpClient::new().map_err(Error::Internal)?;
        Ok(Self::new(app, Arc::new(client)))
    }

    fn breaker(&self, webhook_seq: i64) -> Arc<Mutex<Breaker>> {
        self.breakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(webhook_seq)
            .or_default()
            .clone()
    }

    /// One step for every endpoint (in parallel, bounded), then settles messages nobody waits for.
    /// Call it until `did_work()` is false to drain everything that is due now.
    pub async fn run_once(self: &Arc<Self>) -> Result<Pass> {
        let endpoints = blocking(&self.app, |app| app.outbox_endpoints()).await?;
        let mut steps = JoinSet::new();
        for ep in endpoints {
            let me = self.clone();
            steps.spawn(async move { me.step(ep.webhook.seq).await });
        }
        let mut pass = Pass::default();
        while let Some(done) = steps.join_next().await {
            let step = done.map_err(|e| Error::Internal(format!("outbox step: {e}")))??;
            if let Step::Done { pass: p, .. } = step {
                pass.add(p);
            }
        }
        pass.advanced |= blocking(&self.app, |app| app.outbox_settle()).await?;
        Ok(pass)
    }

    /// One step for one endpoint: read, send, record.
    async fn step(self: &Arc<Self>, webhook_seq: i64) -> Result<Step> {
        let _turn = self
            .endpoints_at_once
            .acquire()
            .await
            .map_err(|_| Error::Internal("outbox semaphore closed".into()))?;
        let opts = self.app.outbox_options().clone();
        let breaker = self.breaker(webhook_seq);
        let now = self.app.now().millis();
        let gate = breaker.lock().unwrap_or_else(|p| p.into_inner()).gate(now);
        if let Gate::Open { until } = gate {
            return Ok(Step::Done {
                pass: Pass::default(),
                next: Some(until),
            });
        }
        // On trial, one message decides whether the endpoint is back.
        let limit = if gate == Gate::Trial { 1 } else { opts.batch };
        let Some(batch) =
            blocking(&self.app, move |app| app.outbox_batch(webhook_seq, limit)).await?
        else {
            self.breakers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&webhook_seq);
            return Ok(Step::Gone);
        };
        if !batch.endpoint.webhook.enabled {
            // Paused: nothing is sent and the cursor stays, so the messages wait for it.
            return Ok(Step::Done {
                pass: Pass::default(),
                next: None,
            });
        }
        if batch.is_empty() {
            let next = blocking(&self.app, move |app| app.outbox_next_due(webhook_seq)).await?;
            return Ok(Step::Done {
                pass: Pass::default(),
                next: next.map(Timestamp::millis),
            });
        }
        let (outcomes, mut pass) = self.deliver(&batch, &breaker, gate, &opts).await;
        let cursor = batch.cursor_to;
        pass.advanced = cursor > batch.endpoint.webhook.cursor;
        let recorded = blocking(&self.app, move |app| {
            app.outbox_record(webhook_seq, outcomes, cursor)
        })
        .await?;
        if !recorded {
            return Ok(Step::Gone);
        }
        Ok(Step::Done { pass, next: None })
    }

    /// Sends a batch: aggregates in parallel (bounded), each aggregate's messages in order, stopping
    /// at its first failure. Returns what happened to every message read.
    async fn deliver(
        self: &Arc<Self>,
        batch: &EndpointBatch,
        breaker: &Arc<Mutex<Breaker>>,
        gate: Gate,
        opts: &OutboxOptions,
    ) -> (Vec<Outcome>, Pass) {
        let now = self.app.now().millis();
        let mut outcomes = Vec::new();
        let mut pass = Pass::default();

        // Groups by aggregate, in order of their first message. Retries are the heads of aggregates
        // with a pending delivery, and fresh messages of those aggregates wait behind them, so no
        // group mixes the two.
        let mut groups: Vec<Vec<Message>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for m in &batch.retries {
            index.insert(&m.aggregate_id, groups.len());
            groups.push(vec![m.clone()]);
        }
        for (m, held) in &batch.fresh {
            if *held {
                pass.waiting += 1;
                outcomes.push(Outcome::Waiting {
                    outbox_seq: m.seq,
                    aggregate_id: m.aggregate_id.clone(),
                    at: now,
                });
                continue;
            }
            match index.get(m.aggregate_id.as_str()) {
                Some(&i) => groups[i].push(m.clone()),
                None => {
                    index.insert(&m.aggregate_id, groups.len());
                    groups.push(vec![m.clone()]);
                }
            }
        }
        if gate == Gate::Trial {
            // One trial message; everything else read waits for the verdict.
            for m in groups.iter().flatten().skip(1) {
                if !m.has_row {
                    pass.waiting += 1;
                    outcomes.push(Outcome::Waiting {
                        outbox_seq: m.seq,
                        aggregate_id: m.aggregate_id.clone(),
                        at: now,
                    });
                }
            }
            groups.truncate(1);
            if let Some(g) = groups.first_mut() {
                g.truncate(1);
            }
        }

        let endpoint = Arc::new(batch.endpoint.clone());
        let signer = Signer::from_secret(&endpoint.secret);
        let timeout = endpoint
            .webhook
            .timeout_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map_or(opts.timeout, Duration::from_millis);
        let lanes = Arc::new(Semaphore::new(opts.per_endpoint_concurrency.max(1)));
        let mut running = JoinSet::new();
        let mut in_flight: HashMap<tokio::task::Id, Vec<Message>> = HashMap::new();
        for group in groups {
            let copy = group.clone();
            let (me, endpoint, signer, breaker, lanes, opts) = (
                self.clone(),
                endpoint.clone(),
                signer.clone(),
                breaker.clone(),
                lanes.clone(),
                opts.clone(),
            );
            let task = running.spawn(async move {
                let _lane = lanes.acquire_owned().await;
                me.deliver_group(group, &endpoint, signer.as_ref(), timeout, &breaker, &opts)
                    .await
            });
            in_flight.insert(task.id(), copy);
        }
        while let Some(done) = running.join_next_with_id().await {
            match done {
                Ok((_, (group_outcomes, group_pass))) => {
                    outcomes.extend(group_outcomes);
                    pass.add(group_pass);
                }
                Err(e) => {
                    // The cursor moves past this group's fresh messages, so they must be recorded as
                    // waiting or they would never be sent; retries keep their rows as they are.
                    tracing::error!(error = %e, "a webhook delivery task failed");
                    for m in in_flight.remove(&e.id()).unwrap_or_default() {
                        if !m.has_row {
                            pass.waiting += 1;
                            outcomes.push(Outcome::Waiting {
                                outbox_seq: m.seq,
                                aggregate_id: m.aggregate_id.clone(),
                                at: now,
                            });
                        }
                    }
                }
            }
        }
        (outcomes, pass)
    }

    /// One aggregate's messages, in order, until the first failure; the rest wait behind it.
    async fn deliver_group(
        &self,
        group: Vec<Message>,
        endpoint: &crate::store::webhooks::Endpoint,
        signer: Option<&Signer>,
        timeout: Duration,
        breaker: &Mutex<Breaker>,
        opts: &OutboxOptions,
    ) -> (Vec<Outcome>, Pass) {
        let mut outcomes = Vec::with_capacity(group.len());
        let mut pass = Pass::default();
        let mut stopped = false;
        for m in group {
            let now = self.app.now().millis();
            let open = matches!(
                breaker.lock().unwrap_or_else(|p| p.into_inner()).gate(now),
                Gate::Open { .. }
            );
            if stopped || open {
                // Behind a failure of its aggregate, or the circuit opened meanwhile: not sent.
                if !m.has_row {
                    pass.waiting += 1;
                    outcomes.push(Outcome::Waiting {
                        outbox_seq: m.seq,
                        aggregate_id: m.aggregate_id.clone(),
                        at: now,
                    });
                }
                stopped = true;
                continue;
            }
            pass.attempted += 1;
            let started = Instant::now();
            let result = match signer {
                Some(signer) => {
                    let body = envelope(&m.kind, Timestamp::from_millis(m.created_at), &m.payload);
                    let timestamp = now.div_euclid(1000);
                    let signature = signer.sign(&m.id, timestamp, body.as_bytes());
                    self.client
                        .post(Request {
                            url: endpoint.webhook.url.clone(),
                            id: m.id.clone(),
                            timestamp,
                            signature,
                            body,
                            timeout,
                        })
                        .await
                }
                None => Err(Failure {
                    status: None,
                    error: "the subscription's secret is not in whsec_ form".into(),
                }),
            };
            let ok = result.is_ok();
            self.app.outbox_shared().stats.record_attempt(
                &endpoint.webhook.id,
                &endpoint.webhook.url,
                ok,
                started.elapsed(),
            );
            let after = self.app.now().millis();
            match result {
                Ok(status) => {
                    breaker.lock().unwrap_or_else(|p| p.into_inner()).success();
                    pass.delivered += 1;
                    outcomes.push(Outcome::Delivered {
                        outbox_seq: m.seq,
                        has_row: m.has_row,
                        status,
                    });
                }
                Err(failure) => {
                    breaker
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .failure(after, opts);
                    let attempts = m.attempts + 1;
                    let retry_at = (attempts < i64::from(opts.max_attempts))
                        .then(|| after.saturating_add(backoff_ms(opts, attempts)));
                    pass.failed += 1;
                    if retry_at.is_none() {
                        pass.dead += 1;
                        self.app.outbox_shared().stats.record_dead();
                    }
                    tracing::debug!(
                        webhook = %endpoint.webhook.id, message = %m.id, attempts,
                        error = %failure.error, "webhook delivery failed"
                    );
                    outcomes.push(Outcome::Failed {
                        outbox_seq: m.seq,
                        aggregate_id: m.aggregate_id.clone(),
                        has_row: m.has_row,
                        attempts,
                        error: failure.error,
                        status: failure.status,
                        retry_at,
                    });
                    stopped = true;
                }
            }
        }
        (outcomes, pass)
    }
}

/// One pass over every endpoint: the processor's single step, public so tests (and tools) can drain the
/// outbox deterministically: `while run_once(&p).await?.did_work() {}`.
pub async fn run_once(processor: &Arc<Processor>) -> Result<Pass> {
    processor.run_once().await
}

/// The running processor; `shutdown` stops it after the deliveries in flight are recorded.
#[derive(Debug)]
pub struct Handle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Stops taking new work and waits (up to `grace`) for the steps in flight to record their results;
    /// whatever is cut off is sent again after the next start (at least once).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            tracing::warn!(
                "outbox processor did not stop in time; unrecorded deliveries will be resent"
            );
            task.abort();
        }
    }
}

/// How often delivered messages past the retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Starts the processor on the current tokio runtime: a supervisor that keeps one worker task per
/// subscription, settles messages nobody subscribes to, and prunes old delivered messages.
pub fn spawn(processor: Arc<Processor>) -> Handle {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(supervise(processor, stopped));
    Handle { stop, task }
}

async fn supervise(p: Arc<Processor>, mut stop: watch::Receiver<bool>) {
    let mut wake = p.app.outbox_shared().subscribe();
    let gather =
        Duration::from_millis(u64::try_from(p.app.outbox_options().batch_wait_ms).unwrap_or(0));
    let mut workers: HashMap<i64, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut last_prune: Option<Instant> = None;
    loop {
        wake.borrow_and_update();
        match blocking(&p.app, |app| app.outbox_endpoints()).await {
            Ok(endpoints) => {
                workers.retain(|_, w| !w.is_finished());
                for ep in endpoints {
                    let seq = ep.webhook.seq;
                    workers
                        .entry(seq)
                        .or_insert_with(|| tokio::spawn(work(p.clone(), seq, stop.clone())));
                }
            }
            Err(e) => tracing::warn!(error = %e, "outbox: reading subscriptions failed"),
        }
        if let Err(e) = blocking(&p.app, |app| app.outbox_settle()).await {
            tracing::warn!(error = %e, "outbox: settling messages failed");
        }
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            match blocking(&p.app, |app| app.prune_outbox()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "outbox: pruned delivered messages"),
                Err(e) => tracing::warn!(error = %e, "outbox: pruning failed"),
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            changed = wake.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
        // Commits during a rush wake this loop constantly; settling once per gathering is enough.
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(gather) => {}
        }
    }
    for (_, w) in workers {
        let _ = w.await;
    }
}

/// How busy the writer is: commands committed per second since the last look.
struct Load {
    committed: u64,
    at: Instant,
    busy: bool,
}

impl Load {
    fn new(committed: u64) -> Self {
        Self {
            committed,
            at: Instant::now(),
            busy: false,
        }
    }

    /// True while more than `threshold` commands per second were committed since the last look
    /// (looks closer together than 20 ms keep the previous verdict). A threshold of 0 never yields.
    fn busy(&mut self, committed: u64, threshold: u64) -> bool {
        if threshold == 0 {
            return false;
        }
        let elapsed = self.at.elapsed();
        if elapsed >= Duration::from_millis(20) {
            let per_s = committed.saturating_sub(self.committed) as f64 / elapsed.as_secs_f64();
            self.busy = per_s > threshold as f64;
            self.committed = committed;
            self.at = Instant::now();
        }
        self.busy
    }
}

/// One endpoint's loop: steps while there is work, then sleeps until woken, a retry is due, or its
/// breaker's cooldown ends.
async fn work(p: Arc<Processor>, webhook_seq: i64, mut stop: watch::Receiver<bool>) {
    let mut wake = p.app.outbox_shared().subscribe();
    let opts = p.app.outbox_options().clone();
    let gather = Duration::from_millis(u64::try_from(opts.batch_wait_ms).unwrap_or(0));
    let yield_for = Duration::from_millis(u64::try_from(opts.busy_wait_ms).unwrap_or(0));
    let mut load = Load::new(p.app.outbox_shared().committed());
    let mut pause = false;
    loop {
        // Sales first: under a rush, one step per `busy_wait`; otherwise let messages gather into a
        // fuller batch after a wake-up or a partial one.
        let busy = load.busy(p.app.outbox_shared().committed(), opts.busy_writes_per_s);
        let wait = if busy && !yield_for.is_zero() {
            Some(yield_for)
        } else if pause && !gather.is_zero() {
            Some(gather)
        } else {
            None
        };
        if let Some(wait) = wait {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if *stop.borrow() {
            return;
        }
        wake.borrow_and_update();
        let next = match p.step(webhook_seq).await {
            Ok(Step::Gone) => return,
            Ok(Step::Done { pass, .. }) if pass.did_work() => {
                pause = pass.attempted + pass.waiting < opts.batch;
                continue;
            }
            Ok(Step::Done { next, .. }) => next,
            Err(e) => {
                tracing::warn!(webhook_seq, error = %e, "outbox step failed; retrying in a second");
                Some(p.app.now().millis() + 1000)
            }
        };
        let sleep = next.map(|at| {
            let ms = (at - p.app.now().millis()).max(0);
            Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        });
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            changed = wake.changed() => {
                if changed.is_err() { return }
                pause = true;
            }
            _ = async {
                match sleep {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
            } => pause = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_initial_delay_up_to_the_cap_with_jitter() {
        let opts = OutboxOptions::default();
        let nominal: Vec<i64> = (1..=12).map(|a| backoff_nominal_ms(&opts, a)).collect();
        assert_eq!(nominal[0], 5_000);
        assert_eq!(nominal[1], 10_000);
        assert_eq!(nominal[9], 2_560_000);
        assert_eq!(nominal[10], 3_600_000);
        assert_eq!(nominal[11], 3_600_000);
        for attempts in 1..=40 {
            let n = backoff_nominal_ms(&opts, attempts);
            let d = backoff_ms(&opts, attempts);
            assert!(
                d >= n / 2 && d <= n,
                "attempt {attempts}: {d} outside [{}, {n}]",
                n / 2
            );
        }
        // The default schedule: 11 waits between 12 attempts.
        let span: i64 = (1..12).map(|a| backoff_nominal_ms(&opts, a)).sum();
        assert_eq!(span, 8_715_000);
    }

    #[test]
    fn breaker_opens_after_the_threshold_and_a_trial_decides() {
        let opts = OutboxOptions {
            breaker_threshold: 3,
            breaker_cooldown_ms: 1000,
            ..OutboxOptions::default()
        };
        let mut b = Breaker::default();
        b.failure(0, &opts);
        b.failure(1, &opts);
        assert_eq!(b.gate(2), Gate::Closed);
        b.failure(2, &opts);
        assert_eq!(b.gate(3), Gate::Open { until: 1002 });
        assert_eq!(b.gate(1002), Gate::Trial);
        b.failure(1002, &opts);
        assert_eq!(b.gate(1003), Gate::Open { until: 2002 });
        b.success();
        assert_eq!(b.gate(1003), Gate::Closed);
    }
}

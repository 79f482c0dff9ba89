//! Webhook subscriptions and outbox operations: the use cases behind `/api/v1/admin/webhooks` and
//! `/api/v1/admin/outbox`, and the narrow reads and writes the outbox processor (`crate::outbox`)
//! needs. Every change goes through the single writer; the processor only reads through the pool
//! here and never sends HTTP from inside a transaction.
//!
//! The counters the processor keeps (deliveries, failures, dead, per-endpoint latency) live in
//! [`OutboxStats`], plain atomics, so `/metrics` can render them without touching the database.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;

use super::{
    decode_cursor, encode_cursor, internal, page, random_bytes, record_audit, Actor, App, Conflict,
    Error, Page, PageRequest, Result,
};
use crate::domain::{EventTypes, Timestamp, WebhookUrl};
use crate::store::webhooks::{self as store_wh, Endpoint, Message, Outcome};

/// Tunables of delivery, from `[outbox]` in the config.
#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// Run the processor in `serve` (tests drive `outbox::run_once` instead).
    pub enabled: bool,
    /// Timeout of one delivery, unless the subscription sets its own.
    pub timeout: Duration,
    /// Attempts per (message, endpoint) before the message is dead for that endpoint.
    pub max_attempts: u32,
    /// First retry delay; each further one doubles, up to `backoff_max_ms`, with jitter.
    pub backoff_initial_ms: i64,
    pub backoff_max_ms: i64,
    /// Consecutive failures that open an endpoint's circuit, and how long it stays open.
    pub breaker_threshold: u32,
    pub breaker_cooldown_ms: i64,
    /// Endpoints served at once, and deliveries in flight per endpoint (different aggregates only).
    pub parallel_endpoints: usize,
    pub per_endpoint_concurrency: usize,
    /// Messages read per endpoint per step.
    pub batch: usize,
    /// After a step that found less than a full batch (or a wake-up), wait this long before the next
    /// one, so a rush is delivered in larger batches with fewer reads and writer commands.
    pub batch_wait_ms: i64,
    /// While the writer commits more than this many commands per second (a rush), deliveries yield
    /// to sales: each endpoint takes at most one step per `busy_wait_ms`, and the backlog drains once
    /// the rush is over.
    pub busy_writes_per_s: u64,
    pub busy_wait_ms: i64,
    /// Delivered messages older than this are deleted.
    pub retention_ms: i64,
    /// `/health` fails when the oldest pending message is older than this.
    pub max_lag_ms: i64,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout: Duration::from_secs(10),
            max_attempts: 12,
            backoff_initial_ms: 5_000,
            backoff_max_ms: 3_600_000,
            breaker_threshold: 5,
            breaker_cooldown_ms: 30_000,
            parallel_endpoints: 8,
            per_endpoint_concurrency: 8,
            batch: 256,
            batch_wait_ms: 50,
            busy_writes_per_s: 1000,
            busy_wait_ms: 250,
            retention_ms: 7 * 24 * 3_600_000,
            max_lag_ms: 15 * 60_000,
        }
    }
}

/// What the app shares with the processor: the wake-up signal and the counters.
#[derive(Debug)]
pub struct OutboxShared {
    wake: tokio::sync::watch::Sender<u64>,
    /// Commands the writer has committed since start: how busy sales are.
    committed: AtomicU64,
    pub stats: OutboxStats,
}

impl Default for OutboxShared {
    fn default() -> Self {
        Self {
            wake: tokio::sync::watch::Sender::new(0),
            committed: AtomicU64::new(0),
            stats: OutboxStats::default(),
        }
    }
}

impl OutboxShared {
    /// Tells the processor there may be work. Cheap, never blocks; safe on the writer thread.
    pub fn wake(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// Called for every group commit, on the writer thread.
    pub fn note_commit(&self, commands: usize) {
        self.committed
            .fetch_add(u64::try_from(commands).unwrap_or(0), Ordering::Relaxed);
    }

    /// Commands committed since start.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }
}

/// Upper bounds (milliseconds) of the delivery latency buckets; one more counts everything slower.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000];

/// Counters the processor keeps since start.
#[derive(Debug, Default)]
pub struct OutboxStats {
    delivered: AtomicU64,
    failed: AtomicU64,
    dead: AtomicU64,
    endpoints: Mutex<BTreeMap<String, EndpointLatency>>,
}

#[derive(Debug, Clone, Default)]
struct EndpointLatency {
    url: String,
    attempts: u64,
    failures: u64,
    sum_ms: f64,
    max_ms: f64,
    last_ms: f64,
    buckets: [u64; LATENCY_BUCKETS_MS.len() + 1],
}

impl OutboxStats {
    /// One delivery attempt to an endpoint, with how long it took.
    pub fn record_attempt(&self, webhook_id: &str, url: &str, ok: bool, latency: Duration) {
        if ok {
            self.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let ms = latency.as_secs_f64() * 1000.0;
        let mut all = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let e = all.entry(webhook_id.to_string()).or_default();
        if e.url != url {
            e.url = url.to_string();
        }
        e.attempts += 1;
        if !ok {
            e.failures += 1;
        }
        e.sum_ms += ms;
        e.max_ms = e.max_ms.max(ms);
        e.last_ms = ms;
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|&le| ms <= le as f64)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        e.buckets[i] += 1;
    }

    pub fn record_dead(&self) {
        self.dead.fetch_add(1, Ordering::Relaxed);
    }

    pub fn delivered_total(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn dead_total(&self) -> u64 {
        self.dead.load(Ordering::Relaxed)
    }

    fn endpoint_views(&self) -> Vec<EndpointLatencyView> {
        let all = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .map(|(id, e)| EndpointLatencyView {
                webhook_id: id.clone(),
                url: e.url.clone(),
                attempts: e.attempts,
                failures: e.failures,
                mean_ms: if e.attempts > 0 {
                    e.sum_ms / e.attempts as f64
                } else {
                    0.0
                },
                max_ms: e.max_ms,
                last_ms: e.last_ms,
                sum_ms: e.sum_ms,
                buckets: LATENCY_BUCKETS_MS
                    .iter()
                    .map(|le| Some(*le))
                    .chain([None])
                    .zip(e.buckets)
                    .map(|(le_ms, count)| LatencyBucket { le_ms, count })
                    .collect(),
            })
            .collect()
    }
}

/// Outbox health and counters, for `/health`, the admin outbox list and (later) `/metrics`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutboxSnapshot {
    pub pending_count: i64,
    pub dead_count: i64,
    pub oldest_pending_age_seconds: f64,
    /// Successful deliveries (message x endpoint) since start.
    pub processed_total: u64,
    /// Failed delivery attempts since start.
    pub failed_total: u64,
    /// Deliveries given up (dead) since start.
    pub dead_total: u64,
    pub endpoints: Vec<EndpointLatencyView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EndpointLatencyView {
    pub webhook_id: String,
    /// Kept in process (the console, tests) and never serialized: this view is part of `/health`,
    /// which anyone may read, and a receiver's URL may carry its secret in the path or query.
    #[serde(skip)]
    #[schema(ignore)]
    pub url: String,
    pub attempts: u64,
    pub failures: u64,
    pub mean_ms: f64,
    pub max_ms: f64,
    pub last_ms: f64,
    pub sum_ms: f64,
    /// Cumulative-free histogram: attempts whose latency fell in (previous bound, `le_ms`].
    pub buckets: Vec<LatencyBucket>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LatencyBucket {
    /// Upper bound in milliseconds; `null` for the last, unbounded bucket.
    pub le_ms: Option<u64>,
    pub count: u64,
}

/// `/health`'s outbox check.
#[derive(Debug, Clone)]
pub struct OutboxHealth {
    pub ok: bool,
    pub snapshot: OutboxSnapshot,
    pub max_lag_seconds: f64,
}

// ----- subscriptions -----

/// A subscription in its API shape. The secret is never part of it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub event_types: EventTypes,
    pub description: String,
    pub enabled: bool,
    pub timeout_ms: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A subscription as created: the secret is shown this once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` + base64 of the HMAC key, the Standard Webhooks form.
    pub secret: String,
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: WebhookUrl,
    pub event_types: EventTypes,
    pub description: String,
    pub enabled: bool,
    pub timeout_ms: Option<i64>,
}

/// Changes to a subscription; `None` leaves a field as it is (`timeout_ms: Some(None)` clears it).
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<WebhookUrl>,
    pub event_types: Option<EventTypes>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub timeout_ms: Option<Option<i64>>,
}

fn view(w: store_wh::Webhook) -> Result<Webhook> {
    let event_types = EventTypes::from_stored(&w.event_types)
        .ok_or_else(|| internal(format!("stored event types {:?}", w.event_types)))?;
    Ok(Webhook {
        id: w.id,
        url: w.url,
        event_types,
        description: w.description,
        enabled: w.enabled,
        timeout_ms: w.timeout_ms,
        created_at: Timestamp::from_millis(w.created_at),
        updated_at: Timestamp::from_millis(w.updated_at),
    })
}

/// A fresh signing secret: 32 random bytes in the Standard Webhooks form.
fn new_secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>())
    )
}

// ----- outbox messages -----

/// Which messages the admin list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    Delivered,
    Dead,
}

impl OutboxState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }
}

/// An outbox message as operators see it: the summary columns and, where a delivery left the happy
/// path, one entry per endpoint.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutboxMessage {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub aggregate_id: String,
    pub state: String,
    pub created_at: Timestamp,
    /// Failed delivery attempts over all endpoints.
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub data: serde_json::Value,
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub webhook_id: String,
    pub url: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub last_status: Option<i64>,
    pub delivered_at: Option<Timestamp>,
}

/// A page of the admin outbox list, with the processor's counters beside it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutboxPage {
    pub items: Vec<OutboxMessage>,
    pub next: Option<String>,
    pub summary: OutboxSnapshot,
}

fn message_view(m: store_wh::ListedMessage) -> OutboxMessage {
    let data = serde_json::from_str(&m.payload).unwrap_or(serde_json::Value::Null);
    OutboxMessage {
        id: m.id,
        kind: m.kind,
        aggregate_id: m.aggregate_id,
        state: m.state.clone(),
        created_at: Timestamp::from_millis(m.created_at),
        attempts: m.attempts,
        next_attempt_at: m.next_attempt_at.map(Timestamp::from_millis),
        last_error: m.last_error,
        data,
        deliveries: m
            .deliveries
            .into_iter()
            .map(|d| Delivery {
                next_attempt_at: (d.state == "pending")
                    .then(|| Timestamp::from_millis(d.next_attempt_at)),
                webhook_id: d.webhook_id,
                url: d.url,
                state: d.state,
                attempts: d.attempts,
                last_error: d.last_error,
                last_status: d.last_status,
                delivered_at: d.delivered_at.map(Timestamp::from_millis),
            })
            .collect(),
    }
}

/// One endpoint's share of work for one processor step.
#[derive(Debug, Clone)]
pub struct EndpointBatch {
    pub endpoint: Endpoint,
    pub event_types: EventTypes,
    /// Pending deliveries that are due and first in line for their aggregate.
    pub retries: Vec<Message>,
    /// Messages past the cursor that the endpoint subscribes to, each with whether an earlier message
    /// of its aggregate is still pending for this endpoint (then it must wait).
    pub fresh: Vec<(Message, bool)>,
    /// The cursor once this batch is recorded: the last message read past it.
    pub cursor_to: i64,
}

impl EndpointBatch {
    pub fn is_empty(&self) -> bool {
        self.retries.is_empty()
            && self.fresh.is_empty()
            && self.cursor_to <= self.endpoint.webhook.cursor
    }
}

impl App {
    pub fn outbox_options(&self) -> &OutboxOptions {
        &self.opts.outbox
    }

    /// The processor's wake-up signal and counters.
    pub fn outbox_shared(&self) -> &OutboxShared {
        &self.outbox
    }

    // ----- subscriptions -----

    pub fn create_webhook(&self, actor: &Actor, new: NewWebhook) -> Result<CreatedWebhook> {
        let actor = actor.clone();
        let id = uuid::Builder::from_random_bytes(random_bytes())
            .into_uuid()
            .to_string();
        let secret = new_secret();
        let stored_secret = secret.clone();
        let now = self.now().millis();
        let webhook = self.store.write(move |tx| {
            let w = store_wh::insert(
                tx,
                &store_wh::NewWebhook {
                    id: &id,
                    url: new.url.as_str(),
                    event_types: &new.event_types.to_stored(),
                    secret: &stored_secret,
                    description: &new.description,
                    enabled: new.enabled,
                    timeout_ms: new.timeout_ms,
                },
                now,
            )?;
            record_audit(tx, &actor, "webhook.create", Some(&w.id), Some(&w.url), now)?;
            Ok::<_, Error>(w)
        })?;
        self.outbox.wake();
        Ok(CreatedWebhook {
            webhook: view(webhook)?,
            secret,
        })
    }

    pub fn list_webhooks(&self, req: &PageRequest) -> Result<Page<Webhook>> {
        let after = match &req.after {
            Some(c) => decode_cursor::<1>(c)?[0],
            None => 0,
        };
        let rows = self
            .store
            .read(|c| store_wh::list(c, after, req.limit + 1))?;
        let p = page(rows, req.limit, |w| encode_cursor(&[w.seq]));
        Ok(Page {
            items: p.items.into_iter().map(view).collect::<Result<_>>()?,
            next: p.next,
        })
    }

    pub fn get_webhook(&self, id: &str) -> Result<Webhook> {
        let w = self
            .store
            .read(|c| store_wh::get(c, id))?
            .ok_or(Error::NotFound("webhook"))?;
        view(w)
    }

    pub fn update_webhook(&self, actor: &Actor, id: &str, patch: WebhookPatch) -> Result<Webhook> {
        let actor = actor.clone();
        let id = id.to_string();
        let now = self.now().millis();
        let w = self.store.write(move |tx| {
            let mut w = store_wh::get(tx, &id)?.ok_or(Error::NotFound("webhook"))?;
            let mut changed = Vec::new();
            if let Some(url) = patch.url {
                if url.as_str() != w.url {
                    w.url = url.as_str().to_string();
                    changed.push("url");
                }
            }
            if let Some(types) = patch.event_types {
                let stored = types.to_stored();
                if stored != w.event_types {
                    w.event_types = stored;
                    changed.push("event_types");
                }
            }
            if let Some(d) = patch.description {
                if d != w.description {
                    w.description = d;
                    changed.push("description");
                }
            }
            if let Some(e) = patch.enabled {
                if e != w.enabled {
                    w.enabled = e;
                    changed.push("enabled");
                }
            }
            if let Some(t) = patch.timeout_ms {
                if t != w.timeout_ms {
                    w.timeout_ms = t;
                    changed.push("timeout_ms");
                }
            }
            if changed.is_empty() {
                return Ok(w);
            }
            w.updated_at = now;
            store_wh::save(tx, &w)?;
            let detail = changed.join(",");
            record_audit(
                tx,
                &actor,
                "webhook.update",
                Some(&w.id),
                Some(&detail),
                now,
            )?;
            Ok::<_, Error>(w)
        })?;
        self.outbox.wake();
        view(w)
    }

    /// Deletes a subscription; deliveries still pending for it are dropped, and messages that only
    /// waited for it are settled.
    pub fn delete_webhook(&self, actor: &Actor, id: &str) -> Result<()> {
        let actor = actor.clone();
        let id = id.to_string();
        let now = self.now().millis();
        self.store.write(move |tx| {
            let w = store_wh::get(tx, &id)?.ok_or(Error::NotFound("webhook"))?;
            store_wh::delete(tx, w.seq)?;
            record_audit(tx, &actor, "webhook.delete", Some(&w.id), Some(&w.url), now)?;
            Ok::<_, Error>(())
        })?;
        self.outbox.wake();
        Ok(())
    }

    // ----- the outbox, for operators -----

    pub fn list_outbox(&self, state: Option<OutboxState>, req: &PageRequest) -> Result<OutboxPage> {
        let after = match &req.after {
            Some(c) => decode_cursor::<1>(c)?[0],
            None => 0,
        };
        let rows = self.store.read(|c| {
            store_wh::list_messages(c, state.map(OutboxState::as_str), after, req.limit + 1)
        })?;
        let p = page(rows, req.limit, |m| encode_cursor(&[m.seq]));
        Ok(OutboxPage {
            items: p.items.into_iter().map(message_view).collect(),
            next: p.next,
            summary: self.outbox_stats()?,
        })
    }

    pub fn get_outbox_message(&self, id: &str) -> Result<OutboxMessage> {
        let m = self.store.read(|c| {
            let seq = store_wh::message_seq(c, id)?.ok_or(Error::NotFound("outbox message"))?;
            store_wh::get_message(c, seq)?.ok_or(Error::NotFound("outbox message"))
        })?;
        Ok(message_view(m))
    }

    /// Sends a dead message back to every endpoint that gave up on it, with fresh attempts.
    pub fn retry_outbox_message(&self, actor: &Actor, id: &str) -> Result<OutboxMessage> {
        let actor = actor.clone();
        let id = id.to_string();
        let now = self.now().millis();
        let m = self.store.write(move |tx| {
            let seq = store_wh::message_seq(tx, &id)?.ok_or(Error::NotFound("outbox message"))?;
            if !store_wh::retry_dead(tx, seq, now)? {
                return Err(Error::conflict(
                    Conflict::InvalidTransition,
                    "only a dead message can be retried",
                ));
            }
            record_audit(tx, &actor, "outbox.retry", Some(&id), None, now)?;
            store_wh::get_message(tx, seq)?.ok_or_else(|| internal("retried message vanished"))
        })?;
        self.outbox.wake();
        Ok(message_view(m))
    }

    /// Counters and the pending/dead figures, read now.
    pub fn outbox_stats(&self) -> Result<OutboxSnapshot> {
        let (pending, dead, oldest) = self.store.read(store_wh::counts)?;
        let now = self.now().millis();
        let s = &self.outbox.stats;
        Ok(OutboxSnapshot {
            pending_count: pending,
            dead_count: dead,
            oldest_pending_age_seconds: oldest
                .map(|t| (now - t).max(0) as f64 / 1000.0)
                .unwrap_or(0.0),
            processed_total: s.delivered_total(),
            failed_total: s.failed_total(),
            dead_total: s.dead_total(),
            endpoints: s.endpoint_views(),
        })
    }

    /// Fails when the oldest pending message is older than `outbox.max_lag`.
    pub fn outbox_health(&self) -> Result<OutboxHealth> {
        let snapshot = self.outbox_stats()?;
        let max_lag_seconds = self.opts.outbox.max_lag_ms as f64 / 1000.0;
        Ok(OutboxHealth {
            ok: snapshot.oldest_pending_age_seconds <= max_lag_seconds,
            snapshot,
            max_lag_seconds,
        })
    }

    /// Deletes delivered messages older than the retention, in chunks so the writer stays responsive.
    pub fn prune_outbox(&self) -> Result<usize> {
        self.prune_outbox_in_chunks(2000)
    }

    /// `prune_outbox`, reading at most `chunk` messages per write.
    pub fn prune_outbox_in_chunks(&self, chunk: usize) -> Result<usize> {
        let now = self.now().millis();
        let before = now - self.opts.outbox.retention_ms;
        let (mut total, mut after) = (0, 0);
        loop {
            let (n, more) = self.store.write(move |tx| {
                Ok::<_, Error>(store_wh::prune_delivered(
                    tx,
                    before,
                    now,
                    after,
                    chunk.max(1),
                )?)
            })?;
            total += n;
            match more {
                Some(seq) => after = seq,
                None => return Ok(total),
            }
        }
    }

    // ----- the outbox, for the processor -----

    /// Every subscription with its secret.
    pub fn outbox_endpoints(&self) -> Result<Vec<Endpoint>> {
        Ok(self.store.read(store_wh::endpoints)?)
    }

    /// Reads one endpoint's next step: due retries and up to `limit` messages past its cursor. `None`
    /// when the subscription is gone.
    pub fn outbox_batch(&self, webhook_seq: i64, limit: usize) -> Result<Option<EndpointBatch>> {
        let now = self.now().millis();
        self.store.read(|c| {
            let Some(endpoint) = store_wh::endpoint(c, webhook_seq)? else {
                return Ok(None);
            };
            let event_types = EventTypes::from_stored(&endpoint.webhook.event_types)
                .ok_or_else(|| internal("stored event types"))?;
            let retries = store_wh::due_heads(c, webhook_seq, now, limit)?;
            let read = store_wh::after_cursor(c, endpoint.webhook.cursor, limit)?;
            let cursor_to = read.last().map_or(endpoint.webhook.cursor, |m| m.seq);
            let mut fresh = Vec::with_capacity(read.len());
            let any_pending = !retries.is_empty() || store_wh::any_pending(c, webhook_seq)?;
            for m in read {
                if !event_types.matches(&m.kind) {
                    continue;
                }
                let held =
                    any_pending && store_wh::aggregate_held(c, webhook_seq, &m.aggregate_id)?;
                fresh.push((m, held));
            }
            Ok(Some(EndpointBatch {
                endpoint,
                event_types,
                retries,
                fresh,
                cursor_to,
            }))
        })
    }

    /// Records what a step did for one endpoint. False when the subscription was deleted meanwhile.
    pub fn outbox_record(
        &self,
        webhook_seq: i64,
        outcomes: Vec<Outcome>,
        cursor: i64,
    ) -> Result<bool> {
        let now = self.now().millis();
        self.store
            .write(move |tx| Ok(store_wh::record(tx, webhook_seq, &outcomes, cursor, now)?))
    }

    /// Settles messages every endpoint has passed; writes only when there is something to settle.
    pub fn outbox_settle(&self) -> Result<bool> {
        let (done, point) = self.store.read(store_wh::summary_lag)?;
        if point <= done {
            return Ok(false);
        }
        self.store
            .write(|tx| Ok::<_, Error>(store_wh::summarise(tx)?))?;
        Ok(true)
    }

    /// When the endpoint next has a retry due, if any delivery is pending for it.
    pub fn outbox_next_due(&self, webhook_seq: i64) -> Result<Option<Timestamp>> {
        Ok(self
            .store
            .read(|c| store_wh::next_due(c, webhook_seq))?
            .map(Timestamp::from_millis))
    }
}

//! `App`: one method per use case, and the only place that sequences store, outbox and audit.
//!
//! Every state change runs as one closure on the store's writer thread, so the seat decision, the rows
//! it changes, the domain events it records (I5) and the audit row commit together or not at all. The
//! decisions themselves are the domain's (`admit`, `seats_to_promote`); this module applies them.
//! Methods block (on the writer's group commit or a pooled read) and are called from the HTTP layer's
//! blocking pool, the CLI, or the console.

mod audit_log;
mod door;
mod error;
mod idempotency;
mod personal;
mod reads;
mod stats;
mod webhooks;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub use audit_log::{AuditEntry, AuditFilter};
pub use door::{spawn_offer_timer, CheckIn, EventAtDoor, Person, WalkUpSale};

pub use error::{Conflict, Error, Result};
pub use idempotency::{AboutAttendee, Idem, IdemGuard, IdemKey, IdemStart, Replay};
pub use personal::{AttendeeExport, Erasure, ExportedMessage, StoredResponse};
pub use reads::{EventStats, HourlySales};
pub use stats::{BoxStats, OutboxCounts};
pub use webhooks::{
    CreatedWebhook, Delivery, EndpointBatch, EndpointLatencyView, LatencyBucket, NewWebhook,
    OutboxHealth, OutboxMessage, OutboxOptions, OutboxPage, OutboxShared, OutboxSnapshot,
    OutboxState, OutboxStats, Webhook, WebhookPatch, LATENCY_BUCKETS_MS,
};

use crate::domain::{
    admit, seats_to_promote, Admission, Attendee, AttendeeId, DomainEventType, Event, EventId,
    EventPatch, EventPatchError, EventStatus, NewAttendee, NewEvent, Promotion, RegStatus,
    Registration, RegistrationId, Role, TicketCode, Timestamp, TokenId,
};
use crate::store::check::CheckReport;
use crate::store::events::EventCursor;
use crate::store::tokens::Token;
use crate::store::{
    self, attendees, audit, events, outbox, registrations, tokens, Store, StoreOptions, Tx,
};

/// Where the app reads the time. Tests drive a `ManualClock`; the domain only ever sees values.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;

    /// A reading for measuring intervals (the HTTP rate limits): it never goes back when someone
    /// sets the wall clock, as `now` may. Only differences between readings mean anything.
    fn monotonic(&self) -> std::time::Duration {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed()
    }
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_millis(ms)
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        Self(AtomicI64::new(at.millis()))
    }

    pub fn advance_millis(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }

    /// Moves with `now`, only when told to.
    fn monotonic(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::try_from(self.0.load(Ordering::SeqCst)).unwrap_or(0))
    }
}

#[derive(Debug, Clone)]
pub struct AppOptions {
    pub store: StoreOptions,
    pub idempotency_ttl_ms: i64,
    pub outbox: OutboxOptions,
    pub cache: crate::cache::CacheOptions,
    /// `/health` fails its disk check below this much free space on the data directory.
    pub min_free_bytes: u64,
}

/// The default of `store.min_free_bytes`: room for a night's sales and the WAL at its largest.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            store: StoreOptions::default(),
            idempotency_ttl_ms: 24 * 3600 * 1000,
            outbox: OutboxOptions::default(),
            cache: crate::cache::CacheOptions::default(),
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
        }
    }
}

/// Who is acting: for permission checks at the edge and for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    pub token_seq: Option<i64>,
    pub remote_addr: Option<String>,
    pub request_id: Option<String>,
}

impl Actor {
    /// The local command line (`boxoffice token create`, demo data).
    pub fn local(name: &str) -> Self {
        Self {
            name: name.to_string(),
            role: Role::Admin,
            token_seq: None,
            remote_addr: None,
            request_id: None,
        }
    }
}

/// The health checks of the box.
#[derive(Debug, Clone)]
pub struct Health {
    /// Reads answer and a write reaches the disk (see `Store::probe_write`).
    pub database: std::result::Result<(), String>,
    /// Reads answer (the database check may still fail on writes, as on a full disk).
    pub reads_ok: bool,
    pub writer: std::result::Result<(), String>,
    /// The data directory's file system is writable and has at least `min_free_bytes` free.
    pub disk: std::result::Result<(), String>,
    pub disk_free_bytes: Option<u64>,
    pub writer_queue: usize,
}

impl Health {
    pub fn ok(&self) -> bool {
        self.database.is_ok() && self.writer.is_ok() && self.disk.is_ok()
    }
}

/// How long one write probe's answer stands: `/health` is anonymous, and a flood of it must not
/// turn into a flood of commits.
const WRITE_PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// How long the probe waits for the writer before it calls the writer stalled.
const WRITE_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the write probes found: a write committed to the database, a file created in the data dir.
#[derive(Debug, Clone)]
struct Probed {
    database: std::result::Result<(), String>,
    dir: std::result::Result<(), DirProbeError>,
}

#[derive(Debug, Clone)]
struct DirProbeError {
    read_only: bool,
    message: String,
}

/// The last write probe and when it ran; the mutex around it lets one caller probe at a time.
#[derive(Default)]
struct WriteProbe {
    last: Mutex<Option<(std::time::Instant, Probed)>>,
    running: Mutex<()>,
}

/// A page of a keyset-paginated list; `next` is the opaque cursor of the following page.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor of the next page (`?after=`), `null` on the last page.
    #[schema(required)]
    pub next: Option<String>,
}

/// Which page to read. `limit` is already bounded by the caller (1..=500).
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: usize,
}

/// Which events a caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Anonymous callers and kiosks: published events only.
    Public,
    /// Operators and admins: every event.
    Staff,
}

/// `GET /registrations/{id}/position`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PositionView {
    #[schema(value_type = crate::domain::RegStatus)]
    pub status: &'static str,
    /// 1-based rank while waitlisted, else `null`.
    #[schema(required, minimum = 1)]
    pub position: Option<i64>,
    #[schema(minimum = 0)]
    pub waitlist_length: i64,
}

/// A registration with a summary of its event, for an attendee's tickets.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Ticket {
    #[serde(flatten)]
    pub registration: Registration,
    pub event: EventSummary,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct EventSummary {
    pub id: EventId,
    pub name: String,
    pub venue: String,
    pub starts_at: Timestamp,
    #[schema(value_type = crate::domain::EventStatus)]
    pub status: &'static str,
}

/// A token as created: the secret is shown this once and never stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewToken {
    #[serde(flatten)]
    pub token: Token,
    pub secret: String,
}

pub struct App {
    store: Store,
    clock: Arc<dyn Clock>,
    opts: AppOptions,
    inflight: Arc<Mutex<HashSet<(i64, String)>>>,
    /// Notified after writes that may make or end offers (see `door`), to re-arm the expiry timer.
    offers_changed: Arc<tokio::sync::Notify>,
    /// Tokens `authenticate` found recently, by secret hash (see `recently_authenticated`).
    token_cache: Mutex<TokenCache>,
    /// Event details, attendees, event statistics and waitlist positions (see `reads`).
    cache: Arc<reads::ReadCache>,
    outbox: Arc<OutboxShared>,
    /// When the database was opened, by the app's clock: the start of the uptime.
    opened_at: Timestamp,
    /// The series of `/metrics`: requests (recorded by the HTTP layer), commits and business counters
    /// (recorded on the writer thread after each group commit).
    metrics: Arc<crate::metrics::Metrics>,
    write_probe: WriteProbe,
}

/// How long a token found in the database is trusted without looking again. Bounds how long a
/// revocation made by another process (`boxoffice token revoke`) takes to reach this one.
const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Recently authenticated tokens. `generation` moves with every revocation through this process:
/// a lookup that read the tokens table before a revocation committed must not put its (now stale)
/// answer into the cache after the revocation emptied it, or the revoked token would go on working
/// on the hot path for up to `TOKEN_CACHE_TTL`.
#[derive(Default)]
struct TokenCache {
    /// Keyed by the secret's SHA-256 as bytes: no hex string to build on every request.
    by_hash: std::collections::HashMap<[u8; 32], (Token, std::time::Instant)>,
    generation: u64,
}

/// Refuses to leave the box without an active admin token: nobody could then manage it over the
/// API or create tokens there (the command line on the box itself could, but a box behind the
/// counter may have nobody at a shell).
fn keep_an_admin(tx: &Tx<'_>, token: &Token) -> Result<()> {
    if token.role == Role::Admin && tokens::count_active_admins(tx)? <= 1 {
        return Err(Error::conflict(
            Conflict::LastAdminToken,
            "this is the last active admin token; create another admin token first",
        ));
    }
    Ok(())
}

/// Revokes an active token, never the last admin one, with its audit row.
fn revoke_one(tx: &Tx<'_>, actor: &Actor, mut token: Token, now: i64) -> Result<Token> {
    keep_an_admin(tx, &token)?;
    tokens::revoke(tx, token.seq, now)?;
    token.revoked_at = Some(Timestamp::from_millis(now));
    let detail = format!("role {}, id {}", token.role, token.id);
    record_audit(
        tx,
        actor,
        "token.revoke",
        Some(&token.name),
        Some(&detail),
        now,
    )?;
    Ok(token)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

/// SHA-256 of a token secret.
fn digest_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A fresh API token secret: `bo_` and 160 random bits in lower-case base32.
pub fn new_token_secret() -> String {
    format!(
        "bo_{}",
        data_encoding::BASE32_NOPAD
            .encode(&random_bytes::<20>())
            .to_lowercase()
    )
}

/// SHA-256 of a token secret, hex: what the tokens table stores and looks up.
fn hash_secret(secret: &str) -> String {
    stored_hash(&digest_secret(secret))
}

/// A secret's digest as the tokens table stores it.
fn stored_hash(digest: &[u8; 32]) -> String {
    data_encoding::HEXLOWER.encode(digest)
}

/// Records a domain event in the outbox, in the caller's transaction (I5). Returns the payload's
/// JSON, which a sale also answers its caller with.
fn emit<T: serde::Serialize>(
    tx: &Tx<'_>,
    kind: DomainEventType,
    aggregate: impl std::fmt::Display,
    payload: &T,
    now: i64,
) -> Result<String> {
    let json = serde_json::to_string(payload).map_err(internal)?;
    // Time-ordered (v7), like registration ids: outbox rows append to the end of their id index.
    let ms = u64::try_from(now).unwrap_or(0);
    let mut buf = uuid::Uuid::encode_buffer();
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &random_bytes())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buf);
    outbox::record(tx, id, kind, &aggregate.to_string(), &json, now)?;
    Ok(json)
}

fn record_audit(
    tx: &Tx<'_>,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    detail: Option<&str>,
    now: i64,
) -> Result<()> {
    let entry = audit::Entry {
        actor: &actor.name,
        action,
        target,
        remote_addr: actor.remote_addr.as_deref(),
        request_id: actor.request_id.as_deref(),
        detail,
    };
    audit::record(tx, &entry, now)?;
    Ok(())
}

/// Loads the registration as it now stands, with its live position, for answers and outbox payloads.
fn reload_registration(conn: &rusqlite::Connection, seq: i64) -> Result<Registration> {
    let row =
        registrations::get_by_seq(conn, seq)?.ok_or_else(|| internal("registration vanished"))?;
    Ok(registrations::with_position(conn, row)?)
}

/// Cancels one registration and records the domain event; returns it as it now stands. The event's
/// counters are the caller's to adjust.
fn cancel_one(tx: &Tx<'_>, seq: i64, now: i64) -> Result<Registration> {
    registrations::cancel(tx, seq, now)?;
    let reg = reload_registration(tx, seq)?;
    emit(
        tx,
        DomainEventType::RegistrationCancelled,
        reg.id,
        &reg,
        now,
    )?;
    Ok(reg)
}

/// Confirms as many heads of the waitlist as there are free seats (I3, I4), recording each promotion.
fn promote(tx: &Tx<'_>, event: &mut Event, now: i64) -> Result<()> {
    let n = seats_to_promote(event.occupancy());
    if n == 0 {
        return Ok(());
    }
    for seq in registrations::waitlist_heads(tx, event.seq, n)? {
        match event.promotion {
            Promotion::Direct => {
                let code = TicketCode::from_time_and_random(now, random_bytes());
                registrations::confirm(tx, seq, &code, now)?;
                event.confirmed += 1;
                event.promotions += 1;
            }
            // The seat is held, counted against capacity (I1), until accepted, declined or expired.
            Promotion::Offer => {
                registrations::offer(tx, seq, now + event.offer_minutes.millis(), now)?;
                event.offered += 1;
            }
        }
        event.waitlisted -= 1;
        let reg = reload_registration(tx, seq)?;
        emit(tx, DomainEventType::RegistrationPromoted, reg.id, &reg, now)?;
    }
    Ok(())
}

/// The registration command, run by the writer with the commit time.
fn register_command(
    event_id: EventId,
    attendee_id: AttendeeId,
) -> impl FnOnce(&Tx<'_>, i64) -> Result<Sale> + Send + 'static {
    move |tx, now| {
        let code = TicketCode::from_time_and_random(now, random_bytes());
        let reg_id = RegistrationId::from_time_and_random(now, random_bytes());
        let event = events::for_sale(tx, event_id)?.ok_or(Error::NotFound("event"))?;
        if !event.status.accepts_registrations() {
            return Err(Error::conflict(
                Conflict::EventNotOpen,
                format!(
                    "the event is {}, not open for registration",
                    event.status.as_str()
                ),
            ));
        }
        let attendee_seq =
            attendees::buyer_seq(tx, attendee_id)?.ok_or(Error::NotFound("attendee"))?;
        let already = || {
            Error::conflict(
                Conflict::AlreadyRegistered,
                "the attendee already holds an active registration for this event",
            )
        };
        let (status, ticket, kind) = match admit(event.occupancy) {
            Admission::Confirm => (
                RegStatus::Confirmed,
                Some(&code),
                DomainEventType::RegistrationConfirmed,
            ),
            Admission::Waitlist => (
                RegStatus::Waitlisted,
                None,
                DomainEventType::RegistrationWaitlisted,
            ),
            Admission::SoldOut => {
                // One who holds a seat already hears that rather than "sold out".
                if registrations::has_active(tx, event.seq, attendee_seq)? {
                    return Err(already());
                }
                return Err(Error::conflict(
                    Conflict::SoldOut,
                    "every seat is taken and the event has no waitlist",
                ));
            }
        };
        let new = registrations::NewRegistration {
            id: reg_id,
            event_seq: event.seq,
            attendee_seq,
            status,
            ticket_code: ticket,
            seated_by_override: false,
            now,
        };
        // A second active registration is refused by the file itself (`registrations_one_active`),
        // which checks it on every insert anyway: no separate lookup before it (about 5% of a sale's
        // instructions). The refused insert changes nothing, so the sale still refuses before writing.
        let seq = registrations::insert(tx, &new).map_err(|e| {
            if registrations::is_second_active(&e) {
                already()
            } else {
                Error::from(e)
            }
        })?;
        // A newcomer joins at the end of the waitlist, so its position is the new length: no count
        // over the waitlist on the writer's hot path.
        let position = match status {
            RegStatus::Confirmed => {
                events::add_sold(tx, event.seq, 1, 0)?;
                None
            }
            _ => {
                events::add_sold(tx, event.seq, 0, 1)?;
                Some(event.occupancy.waitlisted + 1)
            }
        };
        let at = Timestamp::from_millis(now);
        let reg = Registration {
            seq,
            id: reg_id,
            event_id,
            attendee_id,
            status,
            position,
            offer_expires_at: None,
            ticket_code: ticket.cloned(),
            checked_in_at: None,
            created_at: at,
            updated_at: at,
            cancelled_at: None,
        };
        let json = emit(tx, kind, reg.id, &reg, now)?;
        Ok(Sale {
            registration: reg,
            json,
        })
    }
}

/// A registration just made, with its JSON: the outbox payload, which is also the answer to the sale
/// (the same value serialized the same way), so the IO thread does not serialize it again.
#[derive(Debug)]
pub struct Sale {
    pub registration: Registration,
    pub json: String,
}

/// A registration with a summary of its event.
fn ticket(conn: &rusqlite::Connection, registration: Registration) -> Result<Ticket> {
    let e = events::get(conn, registration.event_id)?
        .ok_or_else(|| internal("event of a registration vanished"))?;
    Ok(Ticket {
        registration,
        event: EventSummary {
            id: e.id,
            name: e.name,
            venue: e.venue,
            starts_at: e.starts_at,
            status: e.status.as_str(),
        },
    })
}

/// Cursor of keyset pages: opaque to callers, base64url of the keys of the last item.
fn encode_cursor(parts: &[i64]) -> String {
    let text = parts
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode_cursor<const N: usize>(cursor: &str) -> Result<[i64; N]> {
    let bad = || Error::invalid("after", "is not a cursor this API handed out");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let nums: Vec<i64> = text
        .split('.')
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad())?;
    nums.try_into().map_err(|_| bad())
}

/// Builds a page from `limit + 1` fetched rows: the extra row only says there is a next page.
fn page<T>(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Page<T> {
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(key)
    } else {
        None
    };
    Page { items, next }
}

impl App {
    /// Opens the database file (creating it and its schema when new) with the system clock.
    pub fn open(db: &Path, opts: AppOptions) -> Result<Self> {
        Self::open_with_clock(db, opts, Arc::new(SystemClock))
    }

    pub fn open_with_clock(db: &Path, opts: AppOptions, clock: Arc<dyn Clock>) -> Result<Self> {
        let store = Store::open(db, &opts.store).map_err(|e| match e {
            store::StoreError::SchemaTooNew { .. } => Error::Internal(e.to_string()),
            other => Error::from(other),
        })?;
        // A commit that recorded domain events wakes the outbox processor: no polling while idle. The
        // count of committed commands tells it when sales are rushing, so deliveries can yield.
        let outbox: Arc<OutboxShared> = Arc::default();
        let wake = outbox.clone();
        let cache = Arc::new(reads::ReadCache::new(&opts.cache));
        let clear = cache.clone();
        let metrics: Arc<crate::metrics::Metrics> = Arc::default();
        let observe = metrics.clone();
        store.on_commit(Arc::new(move |report: &store::CommitReport, conn| {
            // Runs before the group's callers are answered: nobody reads their own write stale.
            clear.after_commit(report, conn);
            wake.note_commit(report.commands);
            if report.outbox_rows > 0 {
                wake.wake();
            }
            // On the writer thread, once per group: its size, its duration, and what it committed.
            // (A report of another process's commit, seen while idle, is not a group of ours.)
            if report.commands > 0 {
                observe.record_commit(report);
            }
        }));
        Ok(Self {
            opened_at: clock.now(),
            store,
            clock,
            opts,
            inflight: Arc::default(),
            offers_changed: Arc::default(),
            token_cache: Mutex::default(),
            outbox,
            cache,
            metrics,
            write_probe: WriteProbe::default(),
        })
    }

    /// Passes a result through, first waking the offer-expiry timer when the write succeeded: seats it
    /// freed may have been offered, offers it ended no longer expire.
    fn after_seat_change<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_ok() {
            self.offers_changed.notify_one();
        }
        r
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The clock's monotonic reading (see `Clock::monotonic`).
    pub fn monotonic(&self) -> std::time::Duration {
        self.clock.monotonic()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The in-memory series of `/metrics`.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The series, for a part that outlives a borrow of the app (the HTTP accept loop).
    pub fn shared_metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.metrics.clone()
    }

    /// Commits what is queued and stops writing (graceful shutdown).
    pub fn shutdown(&self) {
        self.store.shutdown();
    }

    /// Runs a write for an async caller: the answer arrives on a future, no thread waits for it.
    async fn write_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tx<'_>, i64) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let now = self.now().millis();
        self.store
            .write_async(store::Guard::RefusesBeforeWriting, move |tx| f(tx, now))
            .await
    }

    /// Runs a creating write; with `idem`, its first response is stored in the same transaction.
    fn write_idempotent<T: Send + 'static>(
        &self,
        idem: Option<Idem<T>>,
        f: impl FnOnce(&Tx<'_>, i64) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let now = self.now().millis();
        match idem {
            None => self.store.write(move |tx| f(tx, now)),
            Some(Idem {
                guard,
                render,
                about,
            }) => {
                let key = guard.key.clone();
                let result = self.store.write(move |tx| {
                    let result = tx.savepoint(|tx| f(tx, now));
                    idempotency::store_first_response(tx, &key, render, about, &result, now)?;
                    Ok::<_, Error>(result)
                });
                // The guard lives until the commit has been answered: only then may a retry run.
                drop(guard);
                result?
            }
        }
    }

    // ----- events -----

    pub fn create_event(&self, actor: &Actor, new: NewEvent) -> Result<Event> {
        let actor = actor.clone();
        let id = EventId::from_random(random_bytes());
        self.write_idempotent(None, move |tx, now| {
            let event = events::insert(tx, id, &new, now)?;
            emit(tx, DomainEventType::EventCreated, event.id, &event, now)?;
            record_audit(
                tx,
                &actor,
                "event.create",
                Some(&event.id.to_string()),
                Some(&event.name),
                now,
            )?;
            Ok(event)
        })
    }

    /// Events in date order. Public callers see published events only, whatever they ask for.
    pub fn list_events(
        &self,
        vis: Visibility,
        status: Option<EventStatus>,
        req: &PageRequest,
    ) -> Result<Page<Event>> {
        let statuses: Vec<EventStatus> = match (vis, status) {
            // A filter over what a public caller may see: anything but `published` is empty.
            (Visibility::Public, Some(s)) if s != EventStatus::Published => {
                return Ok(Page {
                    items: vec![],
                    next: None,
                })
            }
            (Visibility::Public, _) => vec![EventStatus::Published],
            (Visibility::Staff, Some(s)) => vec![s],
            (Visibility::Staff, None) => vec![],
        };
        let after = match &req.after {
            Some(c) => {
                let [starts_at, seq] = decode_cursor::<2>(c)?;
                Some(EventCursor { starts_at, seq })
            }
            None => None,
        };
        let rows = self
            .store
            .read(|c| events::list(c, &statuses, after, req.limit + 1))?;
        Ok(page(rows, req.limit, |e| {
            encode_cursor(&[e.starts_at.millis(), e.seq])
        }))
    }

    pub fn update_event(&self, actor: &Actor, id: EventId, patch: EventPatch) -> Result<Event> {
        let actor = actor.clone();
        let r = self.write_idempotent(None, move |tx, now| {
            let mut event = events::get(tx, id)?.ok_or(Error::NotFound("event"))?;
            let capacity_before = event.capacity.get();
            let changed = event.apply(&patch).map_err(|e| match e {
                EventPatchError::Closed(why) => Error::conflict(Conflict::InvalidTransition, why),
                EventPatchError::CapacityBelowConfirmed { confirmed } => Error::conflict(
                    Conflict::CapacityBelowConfirmed,
                    format!("{confirmed} seats are taken; capacity cannot go below that"),
                ),

                EventPatchError::Invalid(f) => Error::Invalid(vec![f]),
            })?;
            if changed.is_empty() {
                return Ok(event);
            }
            event.updated_at = Timestamp::from_millis(now);
            // Raising capacity frees seats: the waitlist takes them in the same transaction (I4).
            promote(tx, &mut event, now)?;
            events::save(tx, &event)?;
            emit(tx, DomainEventType::EventUpdated, event.id, &event, now)?;
            // A change of capacity is the change people ask about later ("who sold the standing
            // room?"): it gets its own action, with both figures; the other fields changed with it
            // are listed after them. Still one row per request.
            let (action, detail) = if changed.contains(&"capacity") {
                let others: Vec<&str> = changed
                    .iter()
                    .copied()
                    .filter(|f| *f != "capacity")
                    .collect();
                let mut d = format!("capacity {} -> {}", capacity_before, event.capacity.get());
                if !others.is_empty() {
                    d.push_str(&format!("; also {}", others.join(",")));
                }
                ("event.capacity", d)
            } else {
                ("event.update", changed.join(","))
            };
            record_audit(
                tx,
                &actor,
                action,
                Some(&event.id.to_string()),
                Some(&detail),
                now,
            )?;
            Ok(event)
        });
        self.after_seat_change(r)
    }

    pub fn publish_event(&self, actor: &Actor, id: EventId) -> Result<Event> {
        let actor = actor.clone();
        self.write_idempotent(None, move |tx, now| {
            let mut event = events::get(tx, id)?.ok_or(Error::NotFound("event"))?;
            let changes = event
                .status
                .publish()
                .map_err(|why| Error::conflict(Conflict::InvalidTransition, why))?;
            if !changes {
                return Ok(event);
            }
            event.status = EventStatus::Published;
            event.updated_at = Timestamp::from_millis(now);
            events::save(tx, &event)?;
            emit(tx, DomainEventType::EventPublished, event.id, &event, now)?;
            record_audit(
                tx,
                &actor,
                "event.publish",
                Some(&event.id.to_string()),
                None,
                now,
            )?;
            Ok(event)
        })
    }

    /// Cancels the event and every active registration of it, in one transaction.
    pub fn cancel_event(&self, actor: &Actor, id: EventId) -> Result<Event> {
        let actor = actor.clone();
        let r = self.write_idempotent(None, move |tx, now| {
            let mut event = events::get(tx, id)?.ok_or(Error::NotFound("event"))?;
            let changes = event
                .status
                .cancel()
                .map_err(|why| Error::conflict(Conflict::InvalidTransition, why))?;
            if !changes {
                return Ok(event);
            }
            let active = registrations::active_of_event(tx, event.seq)?;
            for (seq, _) in &active {
                cancel_one(tx, *seq, now)?;
            }
            event.status = EventStatus::Cancelled;
            event.confirmed = 0;
            event.offered = 0;
            event.waitlisted = 0;
            event.checked_in = 0;
            event.updated_at = Timestamp::from_millis(now);
            events::save(tx, &event)?;
            emit(tx, DomainEventType::EventCancelled, event.id, &event, now)?;
            let detail = format!("{} registrations cancelled", active.len());
            record_audit(
                tx,
                &actor,
                "event.cancel",
                Some(&event.id.to_string()),
                Some(&detail),
                now,
            )?;
            Ok(event)
        });
        self.after_seat_change(r)
    }

    // ----- attendees -----

    pub fn create_attendee(
        &self,
        new: NewAttendee,
        idem: Option<Idem<Attendee>>,
    ) -> Result<Attendee> {
        self.write_idempotent(idem, move |tx, now| {
            let id = AttendeeId::from_time_and_random(now, random_bytes());
            if let Some(email) = &new.email {
                if attendees::email_taken(tx, &email.key())? {
                    return Err(Error::conflict(
                        Conflict::EmailTaken,
                        "an attendee with this email exists",
                    ));
                }
            }
            Ok(attendees::insert(tx, id, &new, now)?)
        })
    }

    /// The attendee's registrations, in the order they were made, with event summaries.
    pub fn attendee_tickets(&self, id: AttendeeId, req: &PageRequest) -> Result<Page<Ticket>> {
        let after = match &req.after {
            Some(c) => decode_cursor::<1>(c)?[0],
            None => 0,
        };
        self.store.read(|c| {
            let attendee = attendees::get(c, id)?.ok_or(Error::NotFound("attendee"))?;
            let regs = registrations::list_for_attendee(c, attendee.seq, after, req.limit + 1)?;
            let mut tickets = Vec::with_capacity(regs.len());
            for r in regs {
                tickets.push(ticket(c, r)?);
            }
            Ok(page(tickets, req.limit, |t| {
                encode_cursor(&[t.registration.seq])
            }))
        })
    }

    // ----- registrations -----

    /// Registers an attendee: a confirmed seat while seats are free and nobody waits, otherwise a place
    /// at the end of the waitlist, or `sold_out` when the event has no waitlist.
    pub fn register(
        &self,
        event_id: EventId,
        attendee_id: AttendeeId,
        idem: Option<Idem<Registration>>,
    ) -> Result<Registration> {
        let sale = register_command(event_id, attendee_id);
        self.write_idempotent(idem, move |tx, now| sale(tx, now).map(|s| s.registration))
    }

    /// `register` for async callers without an `Idempotency-Key`: waits for the writer on a future,
    /// without a thread of the blocking pool.
    pub async fn register_async(&self, event_id: EventId, attendee_id: AttendeeId) -> Result<Sale> {
        self.write_async(register_command(event_id, attendee_id))
            .await
    }

    /// Cancels a registration; a freed seat goes to the head of the waitlist in the same transaction.
    /// Cancelling a cancelled registration succeeds and changes nothing. A cancellation by staff (an
    /// operator or admin token, the console) is audited; a kiosk's is the attendee leaving, a sale
    /// undone, and is not (see `audit_log`).
    pub fn cancel_registration(&self, actor: &Actor, id: RegistrationId) -> Result<Registration> {
        let audited = actor.role.allows(Role::Operator).then(|| actor.clone());
        let r = self.write_idempotent(None, move |tx, now| {
            let row = registrations::get(tx, id)?.ok_or(Error::NotFound("registration"))?;
            let status = row.reg.status;
            if status == RegStatus::Cancelled {
                return Ok(row.reg);
            }
            let mut event =
                events::get_by_seq(tx, row.event_seq)?.ok_or_else(|| internal("event vanished"))?;
            let reg = cancel_one(tx, row.reg.seq, now)?;
            match status {
                RegStatus::Confirmed => {
                    event.confirmed -= 1;
                    if row.reg.checked_in_at.is_some() {
                        event.checked_in -= 1;
                    }
                }
                RegStatus::Offered => event.offered -= 1,
                RegStatus::Waitlisted => event.waitlisted -= 1,
                RegStatus::Cancelled => {}
            }
            promote(tx, &mut event, now)?;
            events::save_counts(tx, &event)?;
            if let Some(actor) = &audited {
                let detail = format!("was {}", status.as_str());
                record_audit(
                    tx,
                    actor,
                    "registration.cancel",
                    Some(&reg.id.to_string()),
                    Some(&detail),
                    now,
                )?;
            }
            Ok(reg)
        });
        self.after_seat_change(r)
    }

    /// The event's registrations in join order, optionally of one status.
    pub fn event_registrations(
        &self,
        event_id: EventId,
        status: Option<RegStatus>,
        req: &PageRequest,
    ) -> Result<Page<Registration>> {
        let after = match &req.after {
            Some(c) => decode_cursor::<1>(c)?[0],
            None => 0,
        };
        self.store.read(|c| {
            let event = events::get(c, event_id)?.ok_or(Error::NotFound("event"))?;
            let rows = registrations::list_for_event(c, event.seq, status, after, req.limit + 1)?;
            Ok(page(rows, req.limit, |r| encode_cursor(&[r.seq])))
        })
    }

    /// The waitlist in order, with positions.
    pub fn waitlist(&self, event_id: EventId, req: &PageRequest) -> Result<Page<Registration>> {
        self.event_registrations(event_id, Some(RegStatus::Waitlisted), req)
    }

    // ----- tokens and auth -----

    /// The principal a bearer secret stands for, if it is an active token.
    pub fn authenticate(&self, secret: &str) -> Result<Option<Token>> {
        let digest = digest_secret(secret);
        let hash = stored_hash(&digest);
        let generation = self.token_cache().generation;
        let found = self.store.read(|c| tokens::find_active(c, &hash))?;
        let mut cache = self.token_cache();
        match &found {
            // Only known tokens are remembered, so random guesses cannot grow the map; and only
            // when no revocation ran since the read (see `TokenCache`).
            Some(token) if cache.generation == generation => {
                cache
                    .by_hash
                    .insert(digest, (token.clone(), std::time::Instant::now()));
            }
            Some(_) => {}
            None => {
                cache.by_hash.remove(&digest);
            }
        }
        Ok(found)
    }

    fn token_cache(&self) -> std::sync::MutexGuard<'_, TokenCache> {
        self.token_cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets every remembered token, so a revocation takes effect on the very next request.
    fn forget_tokens(&self) {
        let mut cache = self.token_cache();
        cache.generation += 1;
        cache.by_hash.clear();
    }

    /// The token for `secret` if `authenticate` found it within the last `TOKEN_CACHE_TTL`: a lookup
    /// in memory, for callers that must not block. `None` means "ask `authenticate`".
    pub fn recently_authenticated(&self, secret: &str) -> Option<Token> {
        let digest = digest_secret(secret);
        let cache = self.token_cache();
        cache
            .by_hash
            .get(&digest)
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(t, _)| t.clone())
    }

    pub fn create_token(&self, actor: &Actor, role: Role, name: &str) -> Result<NewToken> {
        self.create_token_with_secret(actor, role, name, new_token_secret())
    }

    /// `create_token` with a secret made beforehand (`new_token_secret`), so the first start can put
    /// it on disk before the token exists: a token whose secret never reached its file would be an
    /// admin nobody can act as.
    pub fn create_token_with_secret(
        &self,
        actor: &Actor,
        role: Role,
        name: &str,
        secret: String,
    ) -> Result<NewToken> {
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "must be 1 to 100 printable characters",
            ));
        }
        let hash = hash_secret(&secret);
        let id = TokenId::from_random(random_bytes());
        let actor = actor.clone();
        let token = self.write_idempotent(None, move |tx, now| {
            let token = tokens::insert(tx, id, &name, role, &hash, now).map_err(|e| {
                if e.is_unique_violation() {
                    Error::conflict(Conflict::TokenNameTaken, "an active token has this name")
                } else {
                    e.into()
                }
            })?;
            let detail = format!("role {role}, id {}", token.id);
            record_audit(
                tx,
                &actor,
                "token.create",
                Some(&token.name),
                Some(&detail),
                now,
            )?;
            Ok(token)
        })?;
        Ok(NewToken { token, secret })
    }

    pub fn list_tokens(&self) -> Result<Vec<Token>> {
        Ok(self.store.read(tokens::list)?)
    }

    /// Tokens in the order they were made, never their secrets; `revoked` picks active
    /// (`Some(false)`) or revoked (`Some(true)`) ones.
    pub fn tokens_page(&self, revoked: Option<bool>, req: &PageRequest) -> Result<Page<Token>> {
        let after = match &req.after {
            Some(c) => decode_cursor::<1>(c)?[0],
            None => 0,
        };
        let rows = self
            .store
            .read(|c| tokens::list_page(c, revoked, after, req.limit + 1))?;
        Ok(page(rows, req.limit, |t| encode_cursor(&[t.seq])))
    }

    /// Revokes the active token with this name or id (the command line).
    pub fn revoke_token(&self, actor: &Actor, name_or_id: &str) -> Result<Token> {
        let actor = actor.clone();
        let target = name_or_id.to_string();
        self.revoking(move |tx, now| {
            let token =
                tokens::find_active_by_name_or_id(tx, &target)?.ok_or(Error::NotFound("token"))?;
            revoke_one(tx, &actor, token, now)
        })
    }

    /// Revokes the token with this id (the admin API). Revoking a revoked token changes nothing and
    /// answers it as it is.
    pub fn revoke_token_id(&self, actor: &Actor, id: TokenId) -> Result<Token> {
        let actor = actor.clone();
        self.revoking(move |tx, now| {
            let token = tokens::get(tx, id)?.ok_or(Error::NotFound("token"))?;
            if token.revoked_at.is_some() {
                return Ok(token);
            }
            revoke_one(tx, &actor, token, now)
        })
    }

    /// Runs a revocation; once it has committed, the token cache is emptied before the caller is
    /// answered, so the revoked token fails on its very next request, hot path included.
    fn revoking(
        &self,
        f: impl FnOnce(&Tx<'_>, i64) -> Result<Token> + Send + 'static,
    ) -> Result<Token> {
        let r = self.write_idempotent(None, f);
        self.forget_tokens();
        r
    }

    // ----- maintenance -----

    /// Forgets idempotency records older than their 24 hours.
    pub fn prune_idempotency(&self) -> Result<usize> {
        let before = self.now().millis() - self.opts.idempotency_ttl_ms;
        self.store
            .write(move |tx| Ok(store::idempotency::prune(tx, before)?))
    }

    /// What `/health` reports: each check is `Ok` or says why it fails.
    pub fn health(&self) -> Health {
        let reads = self
            .store
            .read(store::ping)
            .map_err(|e: store::StoreError| format!("reads fail: {e}"));
        let probed = self.write_check();
        let dir_probe = probed.dir;
        let reads_ok = reads.is_ok();
        let database = match (reads, probed.database) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(r), Ok(())) => Err(r),
            (Ok(()), Err(w)) => Err(w),
            (Err(r), Err(w)) => Err(format!("{r}; {w}")),
        };
        let writer = if self.store.writer_alive() {
            Ok(())
        } else {
            Err("the writer thread has stopped; writes fail until restart".to_string())
        };
        let min = self.opts.min_free_bytes;
        let (disk, disk_free_bytes) = match (self.store.disk_space(), dir_probe) {
            (Err(e), _) => (Err(format!("cannot read the free space: {e}")), None),
            (Ok(d), dir) if d.read_only || dir.as_ref().is_err_and(|e| e.read_only) => (
                Err("the file system of the data directory is read-only".to_string()),
                Some(d.free_bytes),
            ),
            (Ok(d), Err(e)) => (
                Err(format!(
                    "cannot create a file in the data directory: {}",
                    e.message
                )),
                Some(d.free_bytes),
            ),
            (Ok(d), Ok(())) if d.free_bytes < min => (
                Err(format!(
                    "{} bytes free on the data directory, under the minimum of {min}",
                    d.free_bytes
                )),
                Some(d.free_bytes),
            ),
            (Ok(d), Ok(())) => (Ok(()), Some(d.free_bytes)),
        };
        Health {
            database,
            reads_ok,
            writer,
            disk,
            disk_free_bytes,
            writer_queue: self.store.writer_queue(),
        }
    }

    /// Whether a write reaches the database and a file can be created beside it, probed at most
    /// once a second; callers that arrive while a probe runs take the previous answer (or wait for
    /// this one if there is none yet).
    fn write_check(&self) -> Probed {
        let last = || {
            self.write_probe
                .last
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        };
        let fresh = |l: &Option<(std::time::Instant, Probed)>| match l {
            Some((at, p)) if at.elapsed() < WRITE_PROBE_EVERY => Some(p.clone()),
            _ => None,
        };
        let known = last();
        if let Some(p) = fresh(&known) {
            return p;
        }
        let _probing = match (self.write_probe.running.try_lock(), known) {
            (Ok(guard), _) => guard,
            (Err(_), Some((_, p))) => return p,
            (Err(_), None) => self
                .write_probe
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        };
        // Someone may have probed while this caller waited for the lock.
        if let Some(p) = fresh(&last()) {
            return p;
        }
        let database = match self.store.probe_write(WRITE_PROBE_TIMEOUT) {
            Ok(()) => Ok(()),
            // A queue full of sales is a busy writer, not a broken one, as long as it commits.
            Err(store::StoreError::Busy)
                if self
                    .store
                    .since_last_commit()
                    .is_some_and(|d| d < WRITE_PROBE_TIMEOUT) =>
            {
                Ok(())
            }
            Err(e) => Err(format!("writes fail: {e}")),
        };
        let dir = self.store.probe_dir().map_err(|e| DirProbeError {
            read_only: e.kind() == std::io::ErrorKind::ReadOnlyFilesystem,
            message: e.to_string(),
        });
        let probed = Probed { database, dir };
        *self
            .write_probe
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), probed.clone()));
        probed
    }

    /// Integrity and invariants I1-I4 over the whole file.
    pub fn check(&self) -> Result<CheckReport> {
        Ok(self.store.read(store::check::run)?)
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.store.read(events::count)? == 0)
    }

    /// Every outbox message about one aggregate (registration, event), oldest first.
    pub fn outbox_for(&self, aggregate_id: &str) -> Result<Vec<outbox::Message>> {
        Ok(self
            .store
            .read(|c| outbox::for_aggregate(c, aggregate_id))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_foreign_text() {
        let c = encode_cursor(&[1_800_000_000_000, 42]);
        assert_eq!(decode_cursor::<2>(&c).ok(), Some([1_800_000_000_000, 42]));
        assert!(decode_cursor::<1>(&c).is_err());
        assert!(decode_cursor::<1>("!!").is_err());
        assert!(decode_cursor::<1>("").is_err());
    }
}

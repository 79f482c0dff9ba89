//! What the console knows of the box: the trait it needs ([`Backend`]: queries in, snapshots out;
//! actions in, outcomes out) and plain data types. Nothing here knows SQL, HTTP or the box's own
//! types: `boxoffice` implements [`Backend`] twice (in-process and remote) and converts at its edge.
//!
//! Times are milliseconds since the Unix epoch, UTC. A figure the box cannot provide yet is `None`,
//! and the screens say "n/a": the console never invents a number.

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Where the console is attached and who it acts as, for the header line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// The name the audit log records for this console's actions (`console`, or the token's name).
    pub actor: String,
    /// `in-process`, or the URL of the remote box.
    pub place: String,
}

/// The box-wide figures of the dashboard, sampled once a second.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dashboard {
    /// When the box took this sample (its clock).
    pub at: Millis,
    /// The box's request and cache counters now; the console turns successive samples into
    /// requests per second, latency percentiles and the cache hit rate of the last seconds.
    pub traffic: Option<Traffic>,
    /// Registrations ever made (online, walk-up, waitlisted): a counter that only grows. The console
    /// turns successive samples into registrations per minute.
    pub registrations_total: Option<u64>,
    /// People checked in across all events now. Reverts and cancellations lower it.
    pub checked_in_total: Option<u64>,
    pub outbox: Option<OutboxFigures>,
    pub db_bytes: Option<u64>,
    pub uptime_secs: Option<u64>,
    /// Published events, soonest first, for the at-a-glance table.
    pub on_sale: Vec<EventRow>,
}

/// The box's cumulative request and cache counters at one moment (they start at zero with the box
/// and only grow), leaving out the requests this console made itself. Two samples give what
/// happened between them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Traffic {
    /// When the box started, and with it these counters: a different value means a restarted box.
    pub since: Millis,
    /// Requests answered, over every route and status.
    pub requests: u64,
    /// The latency histogram over every route: (upper bound in milliseconds, requests that took at
    /// most that long), cumulative, bounds ascending, the last one `f64::INFINITY`.
    pub latency_buckets: Vec<(f64, u64)>,
    /// Reads answered from the read cache, and reads it could not answer, over every kind.
    pub cache_hits: u64,
    pub cache_misses: u64,
}

/// Request latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// The webhook outbox: what waits, what failed, what gave up.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OutboxFigures {
    pub pending: u64,
    pub dead: u64,
    pub oldest_pending_age_secs: f64,
    /// Since the box started.
    pub delivered_total: u64,
    pub failed_total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventState {
    #[default]
    Draft,
    Published,
    Cancelled,
    Completed,
}

impl EventState {
    pub fn label(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Published => "on sale",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
        }
    }
}

/// An event with its live counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventRow {
    pub id: String,
    pub name: String,
    pub venue: String,
    pub starts_at: Millis,
    pub status: EventState,
    pub capacity: i64,
    pub confirmed: i64,
    pub offered: i64,
    pub waitlisted: i64,
    pub checked_in: i64,
    pub waitlist_enabled: bool,
}

impl EventRow {
    /// Registrations that cancelling the event would cancel.
    pub fn active(&self) -> i64 {
        self.confirmed + self.offered + self.waitlisted
    }

    pub fn free(&self) -> i64 {
        (self.capacity - self.confirmed - self.offered).max(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeatState {
    #[default]
    Confirmed,
    Offered,
    Waitlisted,
    Cancelled,
}

impl SeatState {
    pub fn label(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Offered => "offered",
            Self::Waitlisted => "waiting",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One registration with its attendee's name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seat {
    pub id: String,
    pub attendee: String,
    pub status: SeatState,
    /// Live 1-based rank while waitlisted.
    pub position: Option<i64>,
    pub ticket_code: Option<String>,
    pub checked_in_at: Option<Millis>,
    pub offer_expires_at: Option<Millis>,
    pub created_at: Millis,
}

/// One event with its seat holders (confirmed and offered, in join order) and its waitlist in order.
/// Long lists are cut at the adapter's page size; the event's counts say how many there are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventDetail {
    pub event: EventRow,
    pub seated: Vec<Seat>,
    pub waitlist: Vec<Seat>,
}

/// An outbox message that has not been delivered everywhere yet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub id: String,
    pub kind: String,
    pub aggregate_id: String,
    /// `pending` or `dead`.
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<Millis>,
    pub created_at: Millis,
}

/// The deliveries screen: dead messages first (they need a person), then pending ones.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Deliveries {
    pub figures: OutboxFigures,
    pub dead: Vec<Message>,
    pub pending: Vec<Message>,
}

/// One audit row: who did what, when, from where.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditRow {
    pub seq: i64,
    pub at: Millis,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub remote_addr: Option<String>,
}

/// Server-side filter of the audit log: an exact actor, an action or its dotted prefix (`event`
/// matches `event.cancel`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
}

/// What a screen asks the box for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Dashboard,
    Events,
    EventDetail { id: String },
    Deliveries,
    Audit(AuditFilter),
}

/// What the box answers to a [`Query`].
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Dashboard(Dashboard),
    Events(Vec<EventRow>),
    EventDetail(EventDetail),
    Deliveries(Deliveries),
    Audit(Vec<AuditRow>),
}

/// The fields of the event form, as typed. The box validates them exactly as it validates the API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventFields {
    pub name: String,
    pub venue: String,
    /// RFC 3339, e.g. `2026-12-31T20:00:00Z`.
    pub starts_at: String,
    pub capacity: i64,
}

/// What an edit of an event changes: only the fields whose value differs from what the form showed
/// when it opened, so a change made elsewhere meanwhile (seats added at another desk) is not put back
/// by a save that did not touch it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventChanges {
    pub name: Option<String>,
    pub venue: Option<String>,
    /// RFC 3339.
    pub starts_at: Option<String>,
    pub capacity: Option<i64>,
}

impl EventChanges {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Everything the console can change. Each maps to one of the box's use cases, which writes the
/// same audit rows as the API does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CreateEvent(EventFields),
    EditEvent {
        id: String,
        changes: EventChanges,
    },
    SetCapacity {
        id: String,
        capacity: i64,
    },
    Publish {
        id: String,
    },
    CancelEvent {
        id: String,
    },
    CancelRegistration {
        id: String,
    },
    WalkUp {
        event_id: String,
        name: Option<String>,
        override_waitlist: bool,
    },
    CheckIn {
        code: String,
    },
    Retry {
        id: String,
    },
    RetryAllDead,
}

/// What the door shows for a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoorResult {
    Admitted {
        name: String,
        event: String,
        checked_in: i64,
        confirmed: i64,
    },
    AlreadyCheckedIn {
        at: Option<Millis>,
    },
    Cancelled,
    Unknown,
    /// The event is not open (draft, cancelled, over): nobody is admitted.
    NotOpen {
        detail: String,
    },
}

/// How an action ended, when the box accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Event(EventRow),
    RegistrationCancelled { id: String },
    Sold { name: String, ticket_code: String },
    Door(DoorResult),
    Retried { count: u64 },
}

/// Why a query or an action failed: the box's machine code (or `unreachable` and the like) and a
/// sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The box as the console sees it. Calls block; the console makes them on its own worker thread,
/// never on the thread that draws.
pub trait Backend: Send {
    fn origin(&self) -> Origin;
    fn load(&mut self, query: &Query) -> Result<Data, Failure>;
    fn act(&mut self, action: &Action) -> Result<Done, Failure>;
}

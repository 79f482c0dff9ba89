//! The console's way into the box: `boxoffice` implements the `tui` crate's [`tui::Backend`] here,
//! twice, over one [`Transport`] trait:
//!
//! - [`InProcess`] calls [`App`] directly (on the console's worker thread), acting as `console`;
//! - [`Http`] calls the JSON API of a running box with a bearer token, acting as the token's name.
//!
//! Both answer in the API's JSON shape (the in-process side serializes the same read models the
//! handlers do), and one [`Adapter`] turns that shape into the console's data types, so the local
//! and the remote console cannot drift apart: same figures, same actions, same use cases, same audit
//! rows. The request and cache counters come from the `/metrics` text on both sides (in-process,
//! the same function renders it that answers `GET /metrics`), read by one parser (`scrape`); the
//! console turns successive samples into figures over its window.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tui::{
    Action, AuditFilter, AuditRow, Backend, Dashboard, Data, Deliveries, Done, DoorResult,
    EventChanges, EventDetail, EventFields, EventRow, EventState, Failure, Message, Millis, Origin,
    OutboxFigures, Query, Seat, SeatState,
};

use crate::app::{self, Actor, App, OutboxState, PageRequest, Visibility};
use crate::domain::{
    AttendeeId, EventId, EventPatch, EventStatus, FieldError, NewAttendee, NewEvent, RegStatus,
    RegistrationId, Timestamp,
};

mod scrape;

/// Rows a list screen loads: the first page of an event's seat holders or waitlist, of the
/// outbox, of the audit log. The event's counts say how many there are in all.
pub const LIST_LIMIT: usize = 200;
/// Events the events screen loads, in pages of the API's maximum.
const EVENTS_MAX_PAGES: usize = 10;
/// Attendee names kept; a venue's night fits, and the cache is simply emptied past it.
const NAMES_MAX: usize = 50_000;

/// A refusal from the box, in the API's terms: its machine code, its sentence, and for a second
/// scan at the door when the first one was.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: String,
    pub detail: String,
    pub checked_in_at: Option<Millis>,
}

impl Refusal {
    fn new(code: &str, detail: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            detail: detail.into(),
            checked_in_at: None,
        }
    }

    fn failure(self) -> Failure {
        Failure::new(self.code, self.detail)
    }
}

/// What the console asks of the box: a subset of the API, one variant per request.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Stats,
    Events {
        status: Option<&'static str>,
        after: Option<String>,
    },
    Event {
        id: String,
    },
    Registrations {
        event: String,
        status: &'static str,
    },
    Waitlist {
        event: String,
    },
    Attendee {
        id: String,
    },
    Outbox {
        state: &'static str,
    },
    Audit(AuditFilter),
    CreateEvent(EventFields),
    UpdateEvent {
        id: String,
        changes: EventChanges,
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
        event: String,
        name: Option<String>,
        override_waitlist: bool,
    },
    CheckIn {
        code: String,
    },
    Retry {
        id: String,
    },
}

/// How calls reach the box. Answers are the API's JSON.
pub trait Transport: Send {
    fn origin(&self) -> Origin;
    fn call(&mut self, call: Call) -> Result<Value, Refusal>;
    /// The text of `GET /metrics`.
    fn metrics(&mut self) -> Result<String, Refusal>;
}

// ----- in-process -----

/// Calls `App` in this process, as the actor `console`.
pub struct InProcess {
    app: Arc<App>,
    actor: Actor,
}

impl InProcess {
    pub fn new(app: Arc<App>) -> Self {
        Self {
            app,
            actor: Actor::local("console"),
        }
    }
}

fn invalid(errors: Vec<FieldError>) -> Refusal {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    Refusal::new("validation_failed", detail)
}

/// The same codes and sentences the API's problem documents carry (see `http::problem`).
fn refusal(e: app::Error) -> Refusal {
    match e {
        app::Error::Invalid(errors) => invalid(errors),
        app::Error::NotFound("ticket") => Refusal::new(
            "unknown_ticket",
            "no ticket has this code; check it was read correctly",
        ),
        app::Error::NotFound(what) => Refusal::new("not_found", format!("{what} not found")),
        app::Error::Conflict {
            kind,
            detail,
            checked_in_at,
        } => Refusal {
            code: kind.code().to_string(),
            detail,
            checked_in_at: checked_in_at.map(Timestamp::millis),
        },
        app::Error::Unavailable(d) => Refusal::new("storage_unavailable", d),
        app::Error::Internal(d) => Refusal::new("internal", d),
    }
}

fn to_json<T: serde::Serialize>(v: app::Result<T>) -> Result<Value, Refusal> {
    let v = v.map_err(refusal)?;
    serde_json::to_value(v).map_err(|e| Refusal::new("internal", e.to_string()))
}

fn event_id(s: &str) -> Result<EventId, Refusal> {
    EventId::parse(s).ok_or_else(|| Refusal::new("not_found", "event not found"))
}

fn registration_id(s: &str) -> Result<RegistrationId, Refusal> {
    RegistrationId::parse(s).ok_or_else(|| Refusal::new("not_found", "registration not found"))
}

fn page(limit: usize, after: Option<String>) -> PageRequest {
    PageRequest { after, limit }
}

impl Transport for InProcess {
    fn origin(&self) -> Origin {
        Origin {
            actor: self.actor.name.clone(),
            place: "in-process".into(),
        }
    }

    fn call(&mut self, call: Call) -> Result<Value, Refusal> {
        let app = &self.app;
        let actor = &self.actor;
        match call {
            Call::Stats => to_json(app.box_stats()),
            Call::Events { status, after } => {
                let status = status.and_then(EventStatus::parse);
                to_json(app.list_events(Visibility::Staff, status, &page(500, after)))
            }
            Call::Event { id } => to_json(app.get_event(event_id(&id)?, Visibility::Staff)),
            Call::Registrations { event, status } => to_json(app.event_registrations(
                event_id(&event)?,
                RegStatus::parse(status),
                &page(LIST_LIMIT, None),
            )),
            Call::Waitlist { event } => {
                to_json(app.waitlist(event_id(&event)?, &page(LIST_LIMIT, None)))
            }
            Call::Attendee { id } => {
                let id = AttendeeId::parse(&id)
                    .ok_or_else(|| Refusal::new("not_found", "attendee not found"))?;
                to_json(app.get_attendee(id))
            }
            Call::Outbox { state } => {
                to_json(app.list_outbox(OutboxState::parse(state), &page(LIST_LIMIT, None)))
            }
            Call::Audit(f) => {
                let filter = app::AuditFilter::parse(f.actor.as_deref(), f.action.as_deref())
                    .map_err(refusal)?;
                to_json(app.audit_page(&filter, &page(LIST_LIMIT, None)))
            }
            Call::CreateEvent(f) => {
                let new = NewEvent::parse(
                    &f.name,
                    &f.venue,
                    None,
                    &f.starts_at,
                    None,
                    f.capacity,
                    None,
                    None,
                    None,
                )
                .map_err(invalid)?;
                to_json(app.create_event(actor, new))
            }
            Call::UpdateEvent { id, changes: c } => {
                let patch = EventPatch::parse(
                    c.name.as_deref(),
                    c.venue.as_deref(),
                    None,
                    c.starts_at.as_deref(),
                    None,
                    c.capacity,
                    None,
                    None,
                    None,
                )
                .map_err(invalid)?;
                to_json(app.update_event(actor, event_id(&id)?, patch))
            }
            Call::Publish { id } => to_json(app.publish_event(actor, event_id(&id)?)),
            Call::CancelEvent { id } => to_json(app.cancel_event(actor, event_id(&id)?)),
            Call::CancelRegistration { id } => {
                to_json(app.cancel_registration(actor, registration_id(&id)?))
            }
            Call::WalkUp {
                event,
                name,
                override_waitlist,
            } => {
                let name = name.unwrap_or_else(|| "Walk-up guest".into());
                let person = NewAttendee::parse(&name, None, None, false).map_err(invalid)?;
                to_json(app.walk_up(actor, event_id(&event)?, person, override_waitlist, None))
            }
            Call::CheckIn { code } => to_json(app.check_in(actor, &code, None)),
            Call::Retry { id } => to_json(app.retry_outbox_message(actor, &id)),
        }
    }

    fn metrics(&mut self) -> Result<String, Refusal> {
        crate::metrics::exposition(&self.app).map_err(refusal)
    }
}

// ----- remote -----

/// Calls the JSON API of a running box with a bearer token; the audit log names the token.
pub struct Http {
    base: String,
    token: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
    actor: String,
}

/// A remote request gets this long before the console says the box does not answer.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(5);

impl Http {
    /// Connects and asks who the token is (`GET /api/v1/stats`, which needs an operator token), so
    /// a wrong URL or token is reported before the console takes the terminal.
    pub fn connect(base: &str, token: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(base)
            .map_err(|e| anyhow::anyhow!("--url {base:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            anyhow::bail!("--url must be http://HOST:PORT or https://HOST:PORT");
        }
        // The user agent tells the box which requests are the console's, so the figures it shows
        // can leave out its own polling (see `metrics::CONSOLE_USER_AGENT`).
        let client = reqwest::Client::builder()
            .user_agent(format!(
                "{}{}",
                crate::metrics::CONSOLE_USER_AGENT,
                env!("CARGO_PKG_VERSION")
            ))
            .timeout(REMOTE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut http = Self {
            base: base.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
            client,
            rt,
            actor: String::new(),
        };
        let stats = http
            .call(Call::Stats)
            .map_err(|r| anyhow::anyhow!("{base}: {} ({})", r.detail, r.code))?;
        http.actor = text(&stats["caller"], "name");
        Ok(http)
    }

    fn request(&self, call: Call) -> (reqwest::Method, String, Option<Value>) {
        use reqwest::Method;
        let q = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        match call {
            Call::Stats => (Method::GET, "/api/v1/stats".into(), None),
            Call::Events { status, after } => {
                let mut path = "/api/v1/events?limit=500".to_string();
                if let Some(s) = status {
                    path.push_str(&format!("&status={s}"));
                }
                if let Some(a) = after {
                    path.push_str(&format!("&after={}", q(&a)));
                }
                (Method::GET, path, None)
            }
            Call::Event { id } => (Method::GET, format!("/api/v1/events/{}", q(&id)), None),
            Call::Registrations { event, status } => (
                Method::GET,
                format!(
                    "/api/v1/events/{}/registrations?status={status}&limit={LIST_LIMIT}",
                    q(&event)
                ),
                None,
            ),
            Call::Waitlist { event } => (
                Method::GET,
                format!("/api/v1/events/{}/waitlist?limit={LIST_LIMIT}", q(&event)),
                None,
            ),
            Call::Attendee { id } => (Method::GET, format!("/api/v1/attendees/{}", q(&id)), None),
            Call::Outbox { state } => (
                Method::GET,
                format!("/api/v1/admin/outbox?state={state}&limit={LIST_LIMIT}"),
                None,
            ),
            Call::Audit(f) => {
                let mut path = format!("/api/v1/admin/audit?limit={LIST_LIMIT}");
                if let Some(a) = f.actor {
                    path.push_str(&format!("&actor={}", q(&a)));
                }
                if let Some(a) = f.action {
                    path.push_str(&format!("&action={}", q(&a)));
                }
                (Method::GET, path, None)
            }
            Call::CreateEvent(f) => (
                Method::POST,
                "/api/v1/events".into(),
                Some(
                    json!({"name": f.name, "venue": f.venue, "starts_at": f.starts_at, "capacity": f.capacity}),
                ),
            ),
            Call::UpdateEvent { id, changes: c } => {
                // Only what changed: a field left out is left as it stands.
                let mut body = serde_json::Map::new();
                let fields = [
                    ("name", c.name.map(Value::from)),
                    ("venue", c.venue.map(Value::from)),
                    ("starts_at", c.starts_at.map(Value::from)),
                    ("capacity", c.capacity.map(Value::from)),
                ];
                for (key, value) in fields {
                    if let Some(v) = value {
                        body.insert(key.into(), v);
                    }
                }
                let body = Value::Object(body);
                (
                    Method::PATCH,
                    format!("/api/v1/events/{}", q(&id)),
                    Some(body),
                )
            }
            Call::Publish { id } => (
                Method::POST,
                format!("/api/v1/events/{}/publish", q(&id)),
                None,
            ),
            Call::CancelEvent { id } => (
                Method::POST,
                format!("/api/v1/events/{}/cancel", q(&id)),
                None,
            ),
            Call::CancelRegistration { id } => (
                Method::POST,
                format!("/api/v1/registrations/{}/cancel", q(&id)),
                None,
            ),
            Call::WalkUp {
                event,
                name,
                override_waitlist,
            } => (
                Method::POST,
                format!("/api/v1/events/{}/walkups", q(&event)),
                Some(json!({"name": name, "override_waitlist": override_waitlist})),
            ),
            Call::CheckIn { code } => (
                Method::POST,
                "/api/v1/checkins".into(),
                Some(json!({ "ticket_code": code })),
            ),
            Call::Retry { id } => (
                Method::POST,
                format!("/api/v1/admin/outbox/{}/retry", q(&id)),
                None,
            ),
        }
    }
}

impl Http {
    /// Sends one request and reads the whole answer.
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), Refusal> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let unreachable =
            |e: reqwest::Error| Refusal::new("unreachable", format!("{}: {e}", self.base));
        self.rt.block_on(async {
            let resp = req.send().await.map_err(unreachable)?;
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(unreachable)?;
            Ok::<_, Refusal>((status, bytes.to_vec()))
        })
    }
}

impl Transport for Http {
    fn origin(&self) -> Origin {
        Origin {
            actor: self.actor.clone(),
            place: self.base.clone(),
        }
    }

    fn metrics(&mut self) -> Result<String, Refusal> {
        let (status, bytes) = self.send(reqwest::Method::GET, "/metrics", None)?;
        if !status.is_success() {
            return Err(Refusal::new(
                "bad_answer",
                format!("GET /metrics: {status}"),
            ));
        }
        String::from_utf8(bytes).map_err(|_| Refusal::new("bad_answer", "GET /metrics: not UTF-8"))
    }

    fn call(&mut self, call: Call) -> Result<Value, Refusal> {
        let (method, path, body) = self.request(call);
        let (status, bytes) = self.send(method, &path, body)?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| Refusal::new("bad_answer", format!("{status}: not JSON ({e})")))?
        };
        if status.is_success() {
            return Ok(value);
        }
        let detail = value["detail"]
            .as_str()
            .or(value["title"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| status.to_string());
        Err(Refusal {
            code: value["code"].as_str().unwrap_or("http_error").to_string(),
            detail,
            checked_in_at: time(&value, "checked_in_at"),
        })
    }
}

// ----- the API's JSON -> the console's data -----

fn text(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

fn opt_text(v: &Value, k: &str) -> Option<String> {
    v[k].as_str().map(str::to_string)
}

fn int(v: &Value, k: &str) -> i64 {
    v[k].as_i64().unwrap_or(0)
}

fn time(v: &Value, k: &str) -> Option<Millis> {
    v[k].as_str()
        .and_then(Timestamp::parse)
        .map(Timestamp::millis)
}

fn items(v: &Value) -> &[Value] {
    v["items"].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn event_row(v: &Value) -> EventRow {
    EventRow {
        id: text(v, "id"),
        name: text(v, "name"),
        venue: text(v, "venue"),
        starts_at: time(v, "starts_at").unwrap_or(0),
        status: match v["status"].as_str() {
            Some("published") => EventState::Published,
            Some("cancelled") => EventState::Cancelled,
            Some("completed") => EventState::Completed,
            _ => EventState::Draft,
        },
        capacity: int(v, "capacity"),
        confirmed: int(v, "confirmed"),
        offered: int(v, "offered"),
        waitlisted: int(v, "waitlisted"),
        checked_in: int(v, "checked_in"),
        waitlist_enabled: v["waitlist_enabled"].as_bool().unwrap_or(false),
    }
}

fn outbox_figures(v: &Value) -> OutboxFigures {
    let u = |k: &str| v[k].as_u64().unwrap_or(0);
    OutboxFigures {
        pending: u("pending_count"),
        dead: u("dead_count"),
        oldest_pending_age_secs: v["oldest_pending_age_seconds"].as_f64().unwrap_or(0.0),
        delivered_total: u("processed_total"),
        failed_total: u("failed_total"),
    }
}

fn message(v: &Value) -> Message {
    Message {
        id: text(v, "id"),
        kind: text(v, "type"),
        aggregate_id: text(v, "aggregate_id"),
        state: text(v, "state"),
        attempts: int(v, "attempts"),
        last_error: opt_text(v, "last_error"),
        next_attempt_at: time(v, "next_attempt_at"),
        created_at: time(v, "created_at").unwrap_or(0),
    }
}

fn audit_row(v: &Value) -> AuditRow {
    AuditRow {
        seq: int(v, "seq"),
        at: time(v, "at").unwrap_or(0),
        actor: text(v, "actor"),
        action: text(v, "action"),
        target: opt_text(v, "target"),
        detail: opt_text(v, "detail"),
        remote_addr: opt_text(v, "remote_addr"),
    }
}

/// The console's [`Backend`] over either transport.
pub struct Adapter<T: Transport> {
    transport: T,
    /// Attendee names by id: a registration list carries ids only, and names change only when an
    /// attendee is erased, so a remote console asks for each name once, not every second.
    names: HashMap<String, String>,
    /// Why the last dashboard had no request figures, if it had none.
    traffic_error: Option<String>,
}

/// The in-process console's backend.
pub type Local = Adapter<InProcess>;
/// The remote console's backend.
pub type Remote = Adapter<Http>;

impl Local {
    pub fn local(app: Arc<App>) -> Self {
        Adapter::new(InProcess::new(app))
    }
}

impl Remote {
    pub fn remote(url: &str, token: &str) -> anyhow::Result<Self> {
        Ok(Adapter::new(Http::connect(url, token)?))
    }
}

impl<T: Transport> Adapter<T> {
    pub fn new(transport: T) -> Self {
        Self {
            transport,
            names: HashMap::new(),
            traffic_error: None,
        }
    }

    fn call(&mut self, call: Call) -> Result<Value, Failure> {
        self.transport.call(call).map_err(Refusal::failure)
    }

    fn name(&mut self, attendee: &str) -> Result<String, Failure> {
        if let Some(n) = self.names.get(attendee) {
            return Ok(n.clone());
        }
        let a = self.call(Call::Attendee {
            id: attendee.to_string(),
        })?;
        if self.names.len() >= NAMES_MAX {
            self.names.clear();
        }
        let name = text(&a, "name");
        self.names.insert(attendee.to_string(), name.clone());
        Ok(name)
    }

    fn seat(&mut self, v: &Value) -> Result<Seat, Failure> {
        Ok(Seat {
            id: text(v, "id"),
            attendee: self.name(&text(v, "attendee_id"))?,
            status: match v["status"].as_str() {
                Some("offered") => SeatState::Offered,
                Some("waitlisted") => SeatState::Waitlisted,
                Some("cancelled") => SeatState::Cancelled,
                _ => SeatState::Confirmed,
            },
            position: v["position"].as_i64(),
            ticket_code: opt_text(v, "ticket_code"),
            checked_in_at: time(v, "checked_in_at"),
            offer_expires_at: time(v, "offer_expires_at"),
            created_at: time(v, "created_at").unwrap_or(0),
        })
    }

    fn dashboard(&mut self) -> Result<Dashboard, Failure> {
        let stats = self.call(Call::Stats)?;
        let on_sale = self.call(Call::Events {
            status: Some("published"),
            after: None,
        })?;
        // Without its counters the dashboard still shows the rest, and "n/a" for the request
        // figures: a box that cannot be read is no reason to hide its outbox.
        let traffic = self
            .transport
            .metrics()
            .map_err(|r| r.detail)
            .and_then(|text| scrape::traffic(&text, time(&stats, "started_at").unwrap_or(0)));
        // Said once in the log (the in-process console's file), not every second.
        let error = traffic.as_ref().err().cloned();
        if error.is_some() && error != self.traffic_error {
            tracing::warn!(error = error.as_deref(), "the console cannot read /metrics");
        }
        self.traffic_error = error;
        Ok(Dashboard {
            at: time(&stats, "at").unwrap_or(0),
            traffic: traffic.ok(),
            registrations_total: stats["registrations_total"].as_u64(),
            checked_in_total: stats["checked_in_total"].as_u64(),
            outbox: Some(outbox_figures(&stats["outbox"])),
            db_bytes: stats["db_bytes"].as_u64(),
            uptime_secs: stats["uptime_seconds"].as_u64(),
            on_sale: items(&on_sale).iter().map(event_row).collect(),
        })
    }

    fn events(&mut self) -> Result<Vec<EventRow>, Failure> {
        let mut out = Vec::new();
        let mut after = None;
        for _ in 0..EVENTS_MAX_PAGES {
            let page = self.call(Call::Events {
                status: None,
                after: after.take(),
            })?;
            out.extend(items(&page).iter().map(event_row));
            match page["next"].as_str() {
                Some(n) => after = Some(n.to_string()),
                None => break,
            }
        }
        Ok(out)
    }

    fn detail(&mut self, id: &str) -> Result<EventDetail, Failure> {
        let event = event_row(&self.call(Call::Event { id: id.to_string() })?);
        let mut seated = Vec::new();
        for status in ["confirmed", "offered"] {
            let page = self.call(Call::Registrations {
                event: id.to_string(),
                status,
            })?;
            for v in items(&page) {
                seated.push(self.seat(v)?);
            }
        }
        // Join order across both statuses. Each list comes in join order already, and the sort is
        // stable: registrations made in the same millisecond keep that order (a tie-break on the
        // random id would shuffle them).
        seated.sort_by_key(|s| s.created_at);
        let page = self.call(Call::Waitlist {
            event: id.to_string(),
        })?;
        let mut waitlist = Vec::new();
        for v in items(&page) {
            waitlist.push(self.seat(v)?);
        }
        Ok(EventDetail {
            event,
            seated,
            waitlist,
        })
    }

    fn deliveries(&mut self) -> Result<Deliveries, Failure> {
        let dead = self.call(Call::Outbox { state: "dead" })?;
        let pending = self.call(Call::Outbox { state: "pending" })?;
        Ok(Deliveries {
            figures: outbox_figures(&pending["summary"]),
            dead: items(&dead).iter().map(message).collect(),
            pending: items(&pending).iter().map(message).collect(),
        })
    }

    fn check_in(&mut self, code: &str) -> Result<Done, Failure> {
        let r = self.transport.call(Call::CheckIn {
            code: code.to_string(),
        });
        let result = match r {
            Ok(v) => DoorResult::Admitted {
                name: text(&v["attendee"], "name"),
                event: text(&v["event"], "name"),
                checked_in: int(&v["event"], "checked_in"),
                confirmed: int(&v["event"], "confirmed"),
            },
            Err(r) => match r.code.as_str() {
                "already_checked_in" => DoorResult::AlreadyCheckedIn {
                    at: r.checked_in_at,
                },
                "registration_cancelled" => DoorResult::Cancelled,
                "unknown_ticket" => DoorResult::Unknown,
                "event_not_open" => DoorResult::NotOpen { detail: r.detail },
                _ => return Err(r.failure()),
            },
        };
        Ok(Done::Door(result))
    }

    /// Sends every dead message back to pending, page by page, until none is left. A message that
    /// someone else retried meanwhile (`invalid_transition`) is skipped.
    fn retry_all(&mut self) -> Result<Done, Failure> {
        let mut count = 0;
        for _ in 0..100 {
            let page = self.call(Call::Outbox { state: "dead" })?;
            let ids: Vec<String> = items(&page).iter().map(|m| text(m, "id")).collect();
            if ids.is_empty() {
                break;
            }
            let mut moved = 0;
            for id in ids {
                match self.transport.call(Call::Retry { id }) {
                    Ok(_) => moved += 1,
                    Err(r) if r.code == "invalid_transition" => {}
                    Err(r) => return Err(r.failure()),
                }
            }
            count += moved;
            if moved == 0 {
                break;
            }
        }
        Ok(Done::Retried { count })
    }
}

impl<T: Transport> Backend for Adapter<T> {
    fn origin(&self) -> Origin {
        self.transport.origin()
    }

    fn load(&mut self, query: &Query) -> Result<Data, Failure> {
        Ok(match query {
            Query::Dashboard => Data::Dashboard(self.dashboard()?),
            Query::Events => Data::Events(self.events()?),
            Query::EventDetail { id } => Data::EventDetail(self.detail(id)?),
            Query::Deliveries => Data::Deliveries(self.deliveries()?),
            Query::Audit(f) => {
                let page = self.call(Call::Audit(f.clone()))?;
                Data::Audit(items(&page).iter().map(audit_row).collect())
            }
        })
    }

    fn act(&mut self, action: &Action) -> Result<Done, Failure> {
        let event = |v: Value| Done::Event(event_row(&v));
        match action.clone() {
            Action::CreateEvent(f) => self.call(Call::CreateEvent(f)).map(event),
            Action::EditEvent { id, changes } => {
                self.call(Call::UpdateEvent { id, changes }).map(event)
            }
            Action::SetCapacity { id, capacity } => self
                .call(Call::UpdateEvent {
                    id,
                    changes: EventChanges {
                        capacity: Some(capacity),
                        ..EventChanges::default()
                    },
                })
                .map(event),
            Action::Publish { id } => self.call(Call::Publish { id }).map(event),
            Action::CancelEvent { id } => self.call(Call::CancelEvent { id }).map(event),
            Action::CancelRegistration { id } => {
                let v = self.call(Call::CancelRegistration { id })?;
                Ok(Done::RegistrationCancelled { id: text(&v, "id") })
            }
            Action::WalkUp {
                event_id,
                name,
                override_waitlist,
            } => {
                let v = self.call(Call::WalkUp {
                    event: event_id,
                    name,
                    override_waitlist,
                })?;
                Ok(Done::Sold {
                    name: text(&v["attendee"], "name"),
                    ticket_code: text(&v["registration"], "ticket_code"),
                })
            }
            Action::CheckIn { code } => self.check_in(&code),
            Action::Retry { id } => {
                self.call(Call::Retry { id })?;
                Ok(Done::Retried { count: 1 })
            }
            Action::RetryAllDead => self.retry_all(),
        }
    }
}

//! Thin handlers: wire -> domain, one `App` call on the blocking pool, domain -> wire. Authentication
//! happens in that same blocking call (it reads the tokens table), then the route's role is checked.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::openapi::{
    AttendeePath, AuditParams, EventPath, EventStatusParam, IdempotencyKey, PageParams,
    RegStatusParam, RegistrationPath,
};
use super::problem::Problem;
use super::wire::{self, ListQuery};
use super::RequestId;
use crate::app::{
    self, AboutAttendee, Actor, App, CheckIn, Idem, IdemKey, IdemStart, Page, PositionView, Replay,
    Ticket, Visibility, WalkUpSale,
};
use crate::domain::{
    Attendee, AttendeeId, Event, EventId, EventStatus, RegStatus, Registration, RegistrationId,
    Role,
};

/// Shared state of every handler.
#[derive(Clone)]
pub struct Ctx {
    pub app: Arc<App>,
    /// The OpenAPI document, rendered once at start.
    pub openapi: Bytes,
    /// How long a whole request body may take to arrive (`http.body_read_timeout_secs`).
    pub body_deadline: std::time::Duration,
}

/// The caller as the request presents it, before the token is checked.
pub struct Caller {
    auth: Auth,
    remote: Option<SocketAddr>,
    request_id: String,
    /// The token the rate limiter found for this request's bearer secret, from memory or the
    /// database within the last second: the hot path takes it instead of looking again.
    resolved: Option<crate::store::tokens::Token>,
}

/// A token the rate limiter resolved for the request (see `Caller::resolved`).
#[derive(Debug, Clone)]
pub(super) struct ResolvedToken(pub(super) crate::store::tokens::Token);

enum Auth {
    Anonymous,
    Bearer(String),
    Malformed,
}

/// The bearer secret of a well-formed `Authorization` header: `None` without one, `Some(Err(()))`
/// for a malformed one. The rate limiter reads the header the same way as the handlers.
pub(super) fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let v = headers.get(header::AUTHORIZATION)?;
    // The scheme name is case-insensitive (RFC 9110 section 11.1).
    let token = v
        .to_str()
        .ok()
        .and_then(|s| s.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty() && t.len() <= 256);
    Some(token.ok_or(()))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let auth = match bearer(&parts.headers) {
            None => Auth::Anonymous,
            Some(Ok(t)) => Auth::Bearer(t.to_string()),
            Some(Err(())) => Auth::Malformed,
        };
        let remote = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let resolved = parts.extensions.remove::<ResolvedToken>().map(|t| t.0);
        Ok(Self {
            auth,
            remote,
            request_id,
            resolved,
        })
    }
}

impl Caller {
    /// The caller's role, when that is known without the database: `Some(None)` for an anonymous
    /// caller, `Some(Some(role))` for a token authenticated within the last second, `None` otherwise
    /// (the caller then goes through `call`, which reads the tokens table or answers 401). The
    /// answers from the read cache need nothing else of the actor.
    fn known_role(&self, app: &App) -> Option<Option<Role>> {
        match (&self.auth, &self.resolved) {
            (Auth::Anonymous, _) => Some(None),
            (Auth::Bearer(_), Some(token)) => Some(Some(token.role)),
            (Auth::Bearer(secret), None) => {
                app.recently_authenticated(secret).map(|t| Some(t.role))
            }
            (Auth::Malformed, _) => None,
        }
    }

    /// The actor, when the token was authenticated recently (memory only, never blocks).
    fn recent_actor(&self, app: &App) -> Option<Actor> {
        let Auth::Bearer(secret) = &self.auth else {
            return None;
        };
        let token = match &self.resolved {
            Some(t) => t.clone(),
            None => app.recently_authenticated(secret)?,
        };
        Some(self.actor_for(token))
    }

    fn actor_for(&self, token: crate::store::tokens::Token) -> Actor {
        Actor {
            name: token.name,
            role: token.role,
            token_seq: Some(token.seq),
            remote_addr: self.remote.map(|a| a.to_string()),
            request_id: Some(self.request_id.clone()),
        }
    }

    /// Resolves the token (a read of the tokens table: call it on the blocking pool).
    fn actor(&self, app: &App) -> Result<Option<Actor>, Problem> {
        let token = match &self.auth {
            Auth::Anonymous => return Ok(None),
            Auth::Malformed => {
                return Err(Problem::unauthorized(
                    "the Authorization header must be `Bearer <token>`",
                ))
            }
            Auth::Bearer(secret) => app.authenticate(secret)?,
        };
        let token =
            token.ok_or_else(|| Problem::unauthorized("the token is unknown or revoked"))?;
        Ok(Some(self.actor_for(token)))
    }
}

/// Runs `f` on the blocking pool once the caller is authenticated and holds at least `need`.
pub(super) async fn call<T: Send + 'static>(
    ctx: &Ctx,
    caller: Caller,
    need: Option<Role>,
    f: impl FnOnce(&App, Option<Actor>) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let app = ctx.app.clone();
    let job = tokio::task::spawn_blocking(move || {
        let actor = caller.actor(&app)?;
        if let Some(role) = need {
            match &actor {
                None => return Err(Problem::unauthorized("this route needs a bearer token")),
                Some(a) if !a.role.allows(role) => {
                    return Err(Problem::forbidden(format!(
                        "this route needs the {role} role; the token is {}",
                        a.role
                    )))
                }
                Some(_) => {}
            }
        }
        f(&app, actor)
    });
    match job.await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "a blocking task failed");
            Err(Problem::for_status(StatusCode::INTERNAL_SERVER_ERROR))
        }
    }
}

fn staff(actor: &Option<Actor>) -> Visibility {
    visibility(actor.as_ref().map(|a| a.role))
}

fn visibility(role: Option<Role>) -> Visibility {
    match role {
        Some(r) if r.allows(Role::Operator) => Visibility::Staff,
        _ => Visibility::Public,
    }
}

/// The actor of a route that required a role (`call` has checked there is one).
pub(super) fn must(actor: Option<Actor>) -> Result<Actor, Problem> {
    actor.ok_or_else(|| Problem::unauthorized("this route needs a bearer token"))
}

/// A JSON body serialized already.
fn json_body(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_body(status, body),
        Err(e) => {
            tracing::error!(error = %e, "response did not serialize");
            Problem::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
        }
    }
}

pub(super) fn respond<T: Serialize>(status: StatusCode, r: Result<T, Problem>) -> Response {
    match r {
        Ok(v) => json(status, &v),
        Err(p) => p.into_response(),
    }
}

fn event_id(s: &str) -> Result<EventId, Problem> {
    EventId::parse(s).ok_or_else(|| Problem::not_found("event"))
}
fn attendee_id(s: &str) -> Result<AttendeeId, Problem> {
    AttendeeId::parse(s).ok_or_else(|| Problem::not_found("attendee"))
}
fn registration_id(s: &str) -> Result<RegistrationId, Problem> {
    RegistrationId::parse(s).ok_or_else(|| Problem::not_found("registration"))
}

/// A query string that does not fit its route's parameters: 422, naming what was wrong.
pub(super) fn query_problem(e: axum::extract::rejection::QueryRejection) -> Problem {
    Problem::invalid(vec![crate::domain::FieldError::new("query", e.body_text())])
}

fn list_query(
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<ListQuery, Problem> {
    q.map(|Query(q)| q).map_err(query_problem)
}

/// `?status=` of a registration list.
fn reg_status(s: &str) -> Result<RegStatus, Problem> {
    RegStatus::parse(s).ok_or_else(|| {
        Problem::invalid(vec![crate::domain::FieldError::new(
            "status",
            "must be confirmed, waitlisted, offered or cancelled",
        )])
    })
}

// ----- idempotency -----

/// The `Idempotency-Key` header, if sent: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(s) if (1..=255).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(s.to_string()))
        }
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "Invalid Idempotency-Key",
            "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// What a request asks for, so a reused key with a different request is caught.
fn fingerprint(method: &str, uri: &Uri, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(uri.path().as_bytes());
    h.update([0]);
    h.update(body);
    data_encoding::HEXLOWER.encode(&h.finalize())
}

/// Renders a creating write's outcome exactly as it goes on the wire (and is stored for replay).
fn render<T: Serialize, const STATUS: u16>(r: &app::Result<T>) -> Replay {
    match r {
        Ok(v) => Replay {
            status: STATUS,
            content_type: "application/json".into(),
            body: serde_json::to_vec(v).unwrap_or_default(),
        },
        Err(e) => {
            let p = Problem::from_app(e);
            Replay {
                status: p.status,
                content_type: super::problem::CONTENT_TYPE.into(),
                body: p.to_bytes(),
            }
        }
    }
}

fn replay_response(r: Replay, replayed: bool) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let ct = HeaderValue::from_str(&r.content_type)
        .unwrap_or(HeaderValue::from_static("application/json"));
    let mut resp = (status, [(header::CONTENT_TYPE, ct)], r.body).into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// Runs a creating write under its `Idempotency-Key`, if the request has one.
fn idempotent<T: Serialize + AboutAttendee, const STATUS: u16>(
    app: &App,
    actor: &Actor,
    key: Option<String>,
    fingerprint: String,
    op: impl FnOnce(Option<Idem<T>>) -> app::Result<T>,
) -> Result<Response, Problem> {
    let render = render::<T, STATUS>;
    let (Some(key), Some(token_seq)) = (key, actor.token_seq) else {
        let r = op(None)?;
        return Ok(replay_response(render(&Ok(r)), false));
    };
    match app.idem_begin(IdemKey {
        token_seq,
        key,
        fingerprint,
    })? {
        IdemStart::Replay(r) => Ok(replay_response(r, true)),
        IdemStart::Erased => Err(key_erased()),
        IdemStart::Mismatch => Err(key_reused()),
        IdemStart::Fresh(guard) => {
            let r = op(Some(Idem {
                guard,
                render,
                about: T::about_attendee,
            }))?;
            Ok(replay_response(render(&Ok(r)), false))
        }
    }
}

fn key_erased() -> Problem {
    Problem::new(
        StatusCode::GONE,
        "attendee_erased",
        "Attendee erased",
        "the attendee this request was about has been erased; its stored response is gone",
    )
}

fn key_reused() -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "Idempotency-Key reused",
        "this Idempotency-Key was used for a different request",
    )
}

/// A body that does not parse, sent under a key: if the key already answered another request, the
/// fault is the reused key (422 `idempotency_key_reused`, or 410 when that answer was erased), not the
/// input; otherwise the parse error stands. Nothing is stored either way.
fn unparsed_under_key(
    app: &App,
    actor: &Actor,
    key: Option<String>,
    fingerprint: String,
    problem: Problem,
) -> Problem {
    let (Some(key), Some(token_seq)) = (key, actor.token_seq) else {
        return problem;
    };
    let stored = app.idem_stored(&IdemKey {
        token_seq,
        key,
        fingerprint,
    });
    match stored {
        Ok(Some(IdemStart::Mismatch)) => key_reused(),
        Ok(Some(IdemStart::Erased)) => key_erased(),
        // The same bytes never parsed, so they were never stored; a lookup that fails leaves the
        // parse error as the answer.
        _ => problem,
    }
}

/// The body of a request, read whole within the limits; a failure is a problem document: 408 when the
/// body did not arrive whole within `http.body_read_timeout_secs` (a stalled body included), 413 over
/// the limit, 400 otherwise. The deadline is for the whole body, not for each chunk: a body trickling
/// in a byte at a time must not hold its connection until the request timeout's 503.
pub struct Body(pub Bytes);

impl axum::extract::FromRequest<Ctx> for Body {
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &Ctx) -> Result<Self, Problem> {
        let read = Bytes::from_request(req, state);
        match tokio::time::timeout(state.body_deadline, read).await {
            Err(_) => Err(Problem::for_status(StatusCode::REQUEST_TIMEOUT)),
            Ok(Ok(b)) => Ok(Body(b)),
            Ok(Err(rejection)) => Err(Problem::for_status(rejection.status())),
        }
    }
}

/// The hot path of the door and the on-sale: a token authenticated within the last second that holds
/// `need`, and no `Idempotency-Key`. Such a write goes from the IO thread straight to the writer and
/// waits on a future, without a thread of the blocking pool; everything else takes `create`.
fn hot_path(ctx: &Ctx, caller: &Caller, headers: &HeaderMap, need: Role) -> Option<Actor> {
    if headers.contains_key("idempotency-key") {
        return None;
    }
    caller
        .recent_actor(&ctx.app)
        .filter(|a| a.role.allows(need))
}

/// A creating write (`POST` of a sale, an attendee, a scan): the caller is authenticated and holds
/// `need`, then the `Idempotency-Key` is read, then the body is parsed, then `run` goes under the key.
#[allow(clippy::too_many_arguments)]
async fn create<I, T, const STATUS: u16>(
    ctx: &Ctx,
    caller: Caller,
    need: Role,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    parse: impl FnOnce(&Bytes) -> Result<I, Problem> + Send + 'static,
    run: impl FnOnce(&App, &Actor, I, Option<Idem<T>>) -> app::Result<T> + Send + 'static,
) -> Response
where
    I: Send + 'static,
    T: Serialize + AboutAttendee + Send + 'static,
{
    let key = idempotency_key(headers);
    let fp = fingerprint("POST", uri, &body);
    let r = call(ctx, caller, Some(need), move |app, actor| {
        let actor = must(actor)?;
        let key = key?;
        let input = match parse(&body) {
            Ok(input) => input,
            Err(problem) => return Err(unparsed_under_key(app, &actor, key, fp, problem)),
        };
        idempotent::<T, STATUS>(app, &actor, key, fp, |idem| run(app, &actor, input, idem))
    })
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

// ----- system -----

/// Each health check: `ok`, or what is wrong.
#[derive(Serialize, ToSchema)]
pub struct HealthChecks {
    database: String,
    writer: String,
    /// `not checked` when the database cannot be read.
    outbox: String,
    /// Free space on the data dir (at least `store.min_free_bytes`) and a writable file system.
    disk: String,
}

/// `/health` when every check passes.
#[derive(Serialize, ToSchema)]
pub struct Healthy {
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
    checks: HealthChecks,
    /// Commands waiting for the writer.
    writer_queue: usize,
    /// Free bytes on the data dir's file system (`null` when it cannot be read).
    #[schema(required)]
    disk_free_bytes: Option<u64>,
    #[schema(required)]
    outbox: Option<app::OutboxSnapshot>,
}

/// `/health` when a check fails: a problem document (`unhealthy`) with the checks beside it.
#[derive(Serialize, ToSchema)]
pub struct Unhealthy {
    #[serde(flatten)]
    problem: super::problem::Doc,
    checks: HealthChecks,
    writer_queue: usize,
    #[schema(required)]
    disk_free_bytes: Option<u64>,
    /// `null` when the outbox could not be read.
    #[schema(required)]
    outbox: Option<app::OutboxSnapshot>,
}

/// Health of the box
///
/// The checks: the database is readable and a write commits, the writer thread runs, the oldest
/// pending outbox message is younger than `outbox.max_lag_secs`, and the data dir's disk is
/// writable with at least `store.min_free_bytes` free.
#[utoipa::path(get, path = "/health", tag = "system",
    responses(
        (status = 200, description = "Every check passes", body = Healthy),
        (status = 503, description = "A check fails; `detail` names it", body = Unhealthy,
            content_type = "application/problem+json"),
    ),
    extensions(("x-required-role" = json!("anyone"))))]
pub async fn health(State(ctx): State<Ctx>) -> Response {
    let app = ctx.app.clone();
    let Ok((h, outbox)) = tokio::task::spawn_blocking(move || {
        let h = app.health();
        // The outbox check reads the database; when reads fail, it says so once, under `database`.
        // On a full disk reads go on, and so does the outbox check.
        let outbox = h.reads_ok.then(|| app.outbox_health());
        (h, outbox)
    })
    .await
    else {
        return Problem::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response();
    };
    let show = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    let (outbox_check, outbox_ok, snapshot) = match outbox {
        None => ("not checked".to_string(), true, None),
        Some(Err(e)) => (e.to_string(), false, None),
        Some(Ok(o)) if o.ok => ("ok".to_string(), true, Some(o.snapshot)),
        Some(Ok(o)) => (
            format!(
                "the oldest pending message is {:.0} s old, over the {:.0} s limit",
                o.snapshot.oldest_pending_age_seconds, o.max_lag_seconds
            ),
            false,
            Some(o.snapshot),
        ),
    };
    let checks = HealthChecks {
        database: show(&h.database),
        writer: show(&h.writer),
        outbox: outbox_check,
        disk: show(&h.disk),
    };
    if h.ok() && outbox_ok {
        return json(
            StatusCode::OK,
            &Healthy {
                status: "ok",
                checks,
                writer_queue: h.writer_queue,
                disk_free_bytes: h.disk_free_bytes,
                outbox: snapshot,
            },
        );
    }
    let failing: Vec<String> = [
        ("database", h.database.is_err(), &checks.database),
        ("writer", h.writer.is_err(), &checks.writer),
        ("outbox", !outbox_ok, &checks.outbox),
        ("disk", h.disk.is_err(), &checks.disk),
    ]
    .iter()
    .filter(|(_, bad, _)| *bad)
    .map(|(name, _, why)| format!("{name}: {why}"))
    .collect();
    // A problem document, like every error answer, with the checks beside it.
    let body = Unhealthy {
        problem: (*Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            "Unhealthy",
            failing.join("; "),
        ))
        .clone(),
        checks,
        writer_queue: h.writer_queue,
        disk_free_bytes: h.disk_free_bytes,
        outbox: snapshot,
    };
    let mut resp = json(StatusCode::SERVICE_UNAVAILABLE, &body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::problem::CONTENT_TYPE),
    );
    resp
}

/// This document
///
/// The OpenAPI 3.1 description of every route, generated from the code.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI document", body = Object)),
    extensions(("x-required-role" = json!("anyone"))))]
pub async fn openapi_json(State(ctx): State<Ctx>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        ctx.openapi.clone(),
    )
        .into_response()
}

pub async fn fallback() -> Response {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "Not found",
        "no such route",
    )
    .into_response()
}

// ----- events -----

/// List events
///
/// By start time. Anonymous callers and kiosks see published events only; operators and admins see
/// every event and may filter by `status`.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventStatusParam, PageParams),
    responses((status = 200, description = "A page of events", body = Page<Event>)),
    security((), ("bearer" = [])), extensions(("x-required-role" = json!("anyone"))))]
pub async fn list_events(
    State(ctx): State<Ctx>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let r = call(&ctx, caller, None, move |app, actor| {
        let q = list_query(q)?;
        let page = q.page()?;
        let status = match &q.status {
            None => None,
            Some(s) => Some(EventStatus::parse(s).ok_or_else(|| {
                Problem::invalid(vec![crate::domain::FieldError::new(
                    "status",
                    "must be draft, published, cancelled or completed",
                )])
            })?),
        };
        Ok(app.list_events(staff(&actor), status, &page)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// A cached read answered on the IO thread: the caller is known without the database, holds `need`
/// (if any), and `lookup` finds a fresh value in the cache. `None` sends the request the slow way.
fn from_cache<T: Serialize>(
    ctx: &Ctx,
    caller: &Caller,
    need: Option<Role>,
    lookup: impl FnOnce(&App, Visibility) -> Option<Result<T, Problem>>,
) -> Option<Response> {
    let role = caller.known_role(&ctx.app)?;
    if let Some(need) = need {
        if !role.is_some_and(|r| r.allows(need)) {
            return None;
        }
    }
    lookup(&ctx.app, visibility(role)).map(|r| respond(StatusCode::OK, r))
}

/// One event with its live counts
///
/// Anonymous callers and kiosks get 404 for an event that is not published.
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events", params(EventPath),
    responses((status = 200, description = "The event", body = Event)),
    security((), ("bearer" = [])), extensions(("x-required-role" = json!("anyone"))))]
pub async fn get_event(State(ctx): State<Ctx>, caller: Caller, Path(id): Path<String>) -> Response {
    let hit = from_cache(&ctx, &caller, None, |app, vis| {
        let id = EventId::parse(&id)?;
        Some(app.get_event_cached(id, vis)?.map_err(Problem::from))
    });
    if let Some(resp) = hit {
        return resp;
    }
    let r = call(&ctx, caller, None, move |app, actor| {
        Ok(app.get_event(event_id(&id)?, staff(&actor))?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Create an event
///
/// Created as a draft: publish it to open registrations.
#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = wire::CreateEvent,
    responses((status = 201, description = "Created", body = Event,
        links(("publish_event" = (operation_id = "publish_event", parameters(("id" = "$response.body#/id")))), ("get_event" = (operation_id = "get_event", parameters(("id" = "$response.body#/id")))), ("update_event" = (operation_id = "update_event", parameters(("id" = "$response.body#/id")))), ("cancel_event" = (operation_id = "cancel_event", parameters(("id" = "$response.body#/id")))), ("event_registrations" = (operation_id = "event_registrations", parameters(("id" = "$response.body#/id")))), ("waitlist" = (operation_id = "waitlist", parameters(("id" = "$response.body#/id")))), ("walk_up" = (operation_id = "walk_up", parameters(("id" = "$response.body#/id")))), ("register" = (operation_id = "register", parameters(("id" = "$response.body#/id"))))))),
    extensions(("x-required-role" = json!("admin"))))]
pub async fn create_event(State(ctx): State<Ctx>, caller: Caller, Body(body): Body) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        let new = wire::parse::<wire::CreateEvent>(&body)?.into_domain()?;
        Ok(app.create_event(&must(actor)?, new)?)
    })
    .await;
    respond(StatusCode::CREATED, r)
}

/// Change an event
///
/// Raising the capacity or reopening the waitlist promotes from the waitlist in the same transaction.
#[utoipa::path(patch, path = "/api/v1/events/{id}", tag = "events", params(EventPath),
    request_body = wire::PatchEvent,
    responses((status = 200, description = "The event as changed", body = Event)),
    extensions(("x-required-role" = json!("admin")), ("x-problem-codes" = json!(["invalid_transition", "capacity_below_confirmed"]))))]
pub async fn update_event(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        let id = event_id(&id)?;
        let patch = wire::parse::<wire::PatchEvent>(&body)?.into_domain()?;
        Ok(app.update_event(&must(actor)?, id, patch)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Publish an event
///
/// Opens registrations; publishing a published event changes nothing.
#[utoipa::path(post, path = "/api/v1/events/{id}/publish", tag = "events", params(EventPath),
    responses((status = 200, description = "The published event", body = Event)),
    extensions(("x-required-role" = json!("admin")), ("x-problem-codes" = json!(["invalid_transition"]))))]
pub async fn publish_event(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        Ok(app.publish_event(&must(actor)?, event_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Cancel an event
///
/// Cancels the event and all its active registrations in one transaction; cancelling again changes
/// nothing.
#[utoipa::path(post, path = "/api/v1/events/{id}/cancel", tag = "events", params(EventPath),
    responses((status = 200, description = "The cancelled event", body = Event)),
    extensions(("x-required-role" = json!("admin")), ("x-problem-codes" = json!(["invalid_transition"]))))]
pub async fn cancel_event(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        Ok(app.cancel_event(&must(actor)?, event_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// An event's registrations
///
/// In join order, optionally of one status.
#[utoipa::path(get, path = "/api/v1/events/{id}/registrations", tag = "registrations",
    params(EventPath, RegStatusParam, PageParams),
    responses((status = 200, description = "A page of registrations", body = Page<Registration>)),
    extensions(("x-required-role" = json!("operator"))))]
pub async fn event_registrations(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Operator), move |app, _| {
        let q = list_query(q)?;
        let page = q.page()?;
        let status = match &q.status {
            None => None,
            Some(s) => Some(reg_status(s)?),
        };
        Ok(app.event_registrations(event_id(&id)?, status, &page)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// An event's waitlist
///
/// Waitlisted registrations in order, with their positions.
#[utoipa::path(get, path = "/api/v1/events/{id}/waitlist", tag = "registrations",
    params(EventPath, PageParams),
    responses((status = 200, description = "A page of the waitlist", body = Page<Registration>)),
    extensions(("x-required-role" = json!("operator"))))]
pub async fn waitlist(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Operator), move |app, _| {
        let q = list_query(q)?;
        if q.status.is_some() {
            return Err(Problem::invalid(vec![crate::domain::FieldError::new(
                "status",
                "the waitlist has no status filter",
            )]));
        }
        Ok(app.waitlist(event_id(&id)?, &q.page()?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Register an attendee for an event
///
/// A free seat nobody waits for is confirmed with a ticket code; otherwise the attendee joins the
/// waitlist (when it is enabled) with a position.
#[utoipa::path(post, path = "/api/v1/events/{id}/registrations", tag = "registrations",
    params(EventPath, IdempotencyKey), request_body = wire::CreateRegistration,
    responses((status = 201, description = "Confirmed, or waitlisted", body = Registration,
        links(("get_registration" = (operation_id = "get_registration", parameters(("id" = "$response.body#/id")))), ("position" = (operation_id = "position", parameters(("id" = "$response.body#/id")))), ("cancel_registration" = (operation_id = "cancel_registration", parameters(("id" = "$response.body#/id")))), ("accept_offer" = (operation_id = "accept_offer", parameters(("id" = "$response.body#/id")))), ("decline_offer" = (operation_id = "decline_offer", parameters(("id" = "$response.body#/id")))), ("revert_check_in" = (operation_id = "revert_check_in", parameters(("id" = "$response.body#/id"))))))),
    extensions(("x-required-role" = json!("kiosk")), ("x-problem-codes" = json!(["event_not_open", "already_registered", "sold_out"]))))]
pub async fn register(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    Body(body): Body,
) -> Response {
    let parse = move |b: &Bytes| {
        Ok((
            event_id(&id)?,
            wire::parse::<wire::CreateRegistration>(b)?.attendee_id()?,
        ))
    };
    if hot_path(&ctx, &caller, &headers, Role::Kiosk).is_some() {
        let r = async {
            let (event, attendee) = parse(&body)?;
            Ok::<_, Problem>(ctx.app.register_async(event, attendee).await?)
        }
        .await;
        return match r {
            Ok(sale) => json_body(StatusCode::CREATED, sale.json.into_bytes()),
            Err(p) => p.into_response(),
        };
    }
    create::<_, _, 201>(
        &ctx,
        caller,
        Role::Kiosk,
        &uri,
        &headers,
        body,
        parse,
        |app, _, (event, attendee), idem| app.register(event, attendee, idem),
    )
    .await
}

/// Create an attendee
#[utoipa::path(post, path = "/api/v1/attendees", tag = "attendees", params(IdempotencyKey),
    request_body = wire::CreateAttendee,
    responses((status = 201, description = "Created", body = Attendee,
        links(("get_attendee" = (operation_id = "get_attendee", parameters(("id" = "$response.body#/id")))), ("attendee_tickets" = (operation_id = "attendee_tickets", parameters(("id" = "$response.body#/id"))))))),
    extensions(("x-required-role" = json!("kiosk")), ("x-problem-codes" = json!(["email_taken"]))))]
pub async fn create_attendee(
    State(ctx): State<Ctx>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
    Body(body): Body,
) -> Response {
    let parse = |b: &Bytes| wire::parse::<wire::CreateAttendee>(b)?.into_domain();
    create::<_, _, 201>(
        &ctx,
        caller,
        Role::Kiosk,
        &uri,
        &headers,
        body,
        parse,
        |app, _, new, idem| app.create_attendee(new, idem),
    )
    .await
}

/// An erased attendee is gone as a resource (410): what remains is anonymous history, reachable
/// through the events and registrations, not a person to read, list tickets of or export.
fn not_erased(a: Attendee) -> Result<Attendee, Problem> {
    match a.erased_at {
        None => Ok(a),
        Some(at) => Err(Problem::new(
            StatusCode::GONE,
            "attendee_erased",
            "Attendee erased",
            format!("this attendee's personal data was erased at {at}"),
        )),
    }
}

/// One attendee
///
/// 410 `attendee_erased` once the attendee has been erased.
#[utoipa::path(get, path = "/api/v1/attendees/{id}", tag = "attendees", params(AttendeePath),
    responses((status = 200, description = "The attendee", body = Attendee)),
    extensions(("x-required-role" = json!("kiosk")), ("x-problem-codes" = json!(["attendee_erased"]))))]
pub async fn get_attendee(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let hit = from_cache(&ctx, &caller, Some(Role::Kiosk), |app, _| {
        Some(not_erased(
            app.get_attendee_cached(AttendeeId::parse(&id)?)?,
        ))
    });
    if let Some(resp) = hit {
        return resp;
    }
    let r = call(&ctx, caller, Some(Role::Kiosk), move |app, _| {
        not_erased(app.get_attendee(attendee_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// An attendee's tickets
///
/// Their registrations, each with a summary of its event.
#[utoipa::path(get, path = "/api/v1/attendees/{id}/tickets", tag = "attendees",
    params(AttendeePath, PageParams),
    responses((status = 200, description = "A page of tickets", body = Page<Ticket>)),
    extensions(("x-required-role" = json!("kiosk")), ("x-problem-codes" = json!(["attendee_erased"]))))]
pub async fn attendee_tickets(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Kiosk), move |app, _| {
        let q = list_query(q)?;
        if q.status.is_some() {
            return Err(Problem::invalid(vec![crate::domain::FieldError::new(
                "status",
                "tickets have no status filter",
            )]));
        }
        let id = attendee_id(&id)?;
        not_erased(app.get_attendee(id)?)?;
        Ok(app.attendee_tickets(id, &q.page()?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// An event's figures
///
/// Counts by status, promotions, the waitlist-to-confirmed conversion, the check-in rate and sales per
/// hour (UTC).
#[utoipa::path(get, path = "/api/v1/events/{id}/stats", tag = "events", params(EventPath),
    responses((status = 200, description = "The event's figures", body = app::EventStats)),
    extensions(("x-required-role" = json!("operator"))))]
pub async fn event_stats(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Operator), move |app, _| {
        Ok(app.event_stats(event_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// `?status=` of the door list: one registration status, `confirmed` unless asked.
#[derive(Debug, serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DoorListQuery {
    status: Option<String>,
}

/// Rows per read while streaming the door list: memory stays at one page whatever the event's size.
const DOOR_LIST_PAGE: i64 = 500;

/// The door list as CSV
///
/// The event's registrations of one status (`confirmed` unless asked) in join order, with the
/// attendees' names, emails and phones, streamed: columns `registration_id, status, ticket_code,
/// name, email, phone, checked_in_at, registered_at`. Cells that a spreadsheet would run as a formula
/// start with `'`. Each export is written to the audit log; a `HEAD` sends no rows and writes none.
#[utoipa::path(get, path = "/api/v1/events/{id}/attendees.csv", tag = "events",
    params(EventPath, RegStatusParam),
    responses((status = 200, description = "The door list", body = String,
        content_type = "text/csv; charset=utf-8")),
    extensions(("x-required-role" = json!("operator"))))]
// Streamed page by page: a page is read only when the client has taken the previous one, so a slow
// client costs one page of memory, and no read transaction stays open between pages.
pub async fn attendees_csv(
    State(ctx): State<Ctx>,
    method: axum::http::Method,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<DoorListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // axum answers HEAD with the GET route and drops the body: the headers are the same, but
    // nothing is exported, so nothing is audited and no page is read.
    let head = method == axum::http::Method::HEAD;
    let started = call(&ctx, caller, Some(Role::Operator), move |app, actor| {
        let actor = must(actor)?;
        let Query(q) = q.map_err(query_problem)?;
        let status = match q.status.as_deref() {
            None => RegStatus::Confirmed,
            Some(s) => reg_status(s)?,
        };
        let event = event_id(&id)?;
        let seq = if head {
            app.door_list_event(event)?
        } else {
            app.start_door_list(&actor, event, status)?
        };
        Ok((event, seq, status))
    })
    .await;
    let (event, seq, status) = match started {
        Ok(v) => v,
        Err(p) => return p.into_response(),
    };
    let app = ctx.app.clone();
    // State of the stream: the last registration written, or `None` before the header row.
    let pages = futures_util::stream::unfold(Some(None::<i64>), move |state| {
        let app = app.clone();
        async move {
            let after = state?;
            let Some(after) = after else {
                return Some((wire::door_list_header(), Some(Some(0))));
            };
            let page = tokio::task::spawn_blocking(move || {
                app.door_list_page(seq, status, after, DOOR_LIST_PAGE)
            })
            .await;
            match page {
                Ok(Ok(lines)) if lines.is_empty() => None,
                Ok(Ok(lines)) => {
                    let last = lines.last().map_or(after, |l| l.seq);
                    let next = (i64::try_from(lines.len()).unwrap_or(0) == DOOR_LIST_PAGE)
                        .then_some(Some(last));
                    Some((wire::door_list_rows(&lines), next))
                }
                // The status line is gone: a broken body is how the client learns the list is
                // incomplete.
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "door list read failed mid-stream");
                    Some((Err(std::io::Error::other("door list read failed")), None))
                }
                Err(e) => {
                    tracing::error!(error = %e, "door list task failed mid-stream");
                    Some((Err(std::io::Error::other("door list task failed")), None))
                }
            }
        }
    });
    let disposition = format!("attachment; filename=\"attendees-{event}.csv\"");
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        // Fused: a body may be polled again after its end (the compression layer does), and an
        // `unfold` must not be.
        axum::body::Body::from_stream(futures_util::StreamExt::fuse(pages)),
    )
        .into_response()
}

/// Is the API up
///
/// Answers `{"ok": true}` without touching the database or the cache: the benchmark's baseline.
/// `/health` is the route that checks the box.
#[utoipa::path(get, path = "/api/v1/ping", tag = "system",
    responses((status = 200, description = "Up", body = Object, example = json!({"ok": true}))),
    extensions(("x-required-role" = json!("anyone"))))]
pub async fn ping() -> Response {
    json(StatusCode::OK, &serde_json::json!({"ok": true}))
}

/// Everything stored about an attendee
///
/// The attendee, every registration (with event summaries, ticket codes and check-in times), the
/// audit rows and outbox messages about them, and their stored idempotent responses: one document
/// for a data subject access request. The export is written to the audit log; a `HEAD` exports
/// nothing and writes none.
#[utoipa::path(get, path = "/api/v1/attendees/{id}/export", tag = "attendees",
    params(AttendeePath),
    responses((status = 200, description = "Everything stored about the attendee", body = app::AttendeeExport)),
    extensions(("x-required-role" = json!("admin")), ("x-problem-codes" = json!(["attendee_erased"]))))]
pub async fn export_attendee(
    State(ctx): State<Ctx>,
    method: axum::http::Method,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    // axum answers HEAD with this GET route and drops the body: the same checks and status, but
    // nothing leaves the box, so nothing is exported or audited.
    let head = method == axum::http::Method::HEAD;
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        let id = attendee_id(&id)?;
        not_erased(app.get_attendee(id)?)?;
        let actor = must(actor)?;
        if head {
            return Ok(None);
        }
        Ok(Some(app.export_attendee(&actor, id)?))
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Erase an attendee
///
/// Replaces name, email and phone with a tombstone and cancels their active registrations, promoting
/// the waitlist for every seat freed; counts and history stay. Answers the tombstone and what was
/// cancelled; erasing again answers the same with nothing cancelled.
#[utoipa::path(delete, path = "/api/v1/attendees/{id}", tag = "attendees",
    params(AttendeePath),
    responses((status = 200, description = "The tombstone and the cancelled registrations", body = app::Erasure)),
    extensions(("x-required-role" = json!("admin"))))]
pub async fn erase_attendee(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        Ok(app.erase_attendee(&must(actor)?, attendee_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

// ----- registrations -----

/// One registration
///
/// With its live `position` while waitlisted.
#[utoipa::path(get, path = "/api/v1/registrations/{id}", tag = "registrations",
    params(RegistrationPath),
    responses((status = 200, description = "The registration", body = Registration)),
    extensions(("x-required-role" = json!("kiosk"))))]
pub async fn get_registration(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Kiosk), move |app, _| {
        Ok(app.get_registration(registration_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Where a registration stands
#[utoipa::path(get, path = "/api/v1/registrations/{id}/position", tag = "registrations",
    params(RegistrationPath),
    responses((status = 200, description = "Its status, position and the waitlist's length", body = PositionView)),
    extensions(("x-required-role" = json!("kiosk"))))]
pub async fn position(State(ctx): State<Ctx>, caller: Caller, Path(id): Path<String>) -> Response {
    let hit = from_cache(&ctx, &caller, Some(Role::Kiosk), |app, _| {
        Some(Ok(app.position_cached(RegistrationId::parse(&id)?)?))
    });
    if let Some(resp) = hit {
        return resp;
    }
    let r = call(&ctx, caller, Some(Role::Kiosk), move |app, _| {
        Ok(app.position(registration_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Cancel a registration
///
/// Also how one leaves the waitlist. A freed seat goes to the head of the waitlist in the same
/// transaction. Cancelling a cancelled registration changes nothing.
#[utoipa::path(post, path = "/api/v1/registrations/{id}/cancel", tag = "registrations",
    params(RegistrationPath),
    responses((status = 200, description = "The cancelled registration", body = Registration)),
    extensions(("x-required-role" = json!("kiosk"))))]
pub async fn cancel_registration(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Kiosk), move |app, actor| {
        Ok(app.cancel_registration(&must(actor)?, registration_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

// ----- the door and the counter -----

/// Check a ticket in at the door
///
/// Admits a confirmed registration of a published event, once: a second scan is 409
/// `already_checked_in` with `checked_in_at`, and changes nothing.
#[utoipa::path(post, path = "/api/v1/checkins", tag = "door", params(IdempotencyKey),
    request_body = wire::CheckInBody,
    responses((status = 200, description = "Admitted", body = CheckIn)),
    extensions(("x-required-role" = json!("operator")), ("x-problem-codes" = json!(["unknown_ticket", "event_not_open", "registration_cancelled", "already_checked_in"]))))]
pub async fn check_in(
    State(ctx): State<Ctx>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
    Body(body): Body,
) -> Response {
    let parse = |b: &Bytes| Ok(wire::parse::<wire::CheckInBody>(b)?.ticket_code);
    if let Some(actor) = hot_path(&ctx, &caller, &headers, Role::Operator) {
        let r = async {
            let code = parse(&body)?;
            Ok::<_, Problem>(ctx.app.check_in_async(&actor, &code).await?)
        }
        .await;
        return respond(StatusCode::OK, r);
    }
    create::<_, _, 200>(
        &ctx,
        caller,
        Role::Operator,
        &uri,
        &headers,
        body,
        parse,
        |app, actor, code, idem| app.check_in(actor, &code, idem),
    )
    .await
}

/// Undo a mistaken check-in
#[utoipa::path(post, path = "/api/v1/checkins/{id}/revert", tag = "door",
    params(("id" = String, Path, format = Uuid, description = "The registration's id.")),
    responses((status = 200, description = "The registration, no longer checked in", body = Registration)),
    extensions(("x-required-role" = json!("operator")), ("x-problem-codes" = json!(["registration_cancelled", "not_checked_in"]))))]
pub async fn revert_check_in(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Operator), move |app, actor| {
        Ok(app.revert_check_in(&must(actor)?, registration_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Sell a seat at the counter
///
/// Makes an attendee without an email and a confirmed registration. Never jumps the waitlist unless
/// `override_waitlist` is set.
#[utoipa::path(post, path = "/api/v1/events/{id}/walkups", tag = "door",
    params(EventPath, IdempotencyKey), request_body(content = Option<wire::WalkUpBody>),
    responses((status = 201, description = "Sold", body = WalkUpSale)),
    extensions(("x-required-role" = json!("operator")), ("x-problem-codes" = json!(["event_not_open", "waitlist_first", "sold_out"]))))]
pub async fn walk_up(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    Body(body): Body,
) -> Response {
    let parse = move |b: &Bytes| {
        // A counter sale may come with no body at all: an anonymous guest, no override.
        let input = if b.is_empty() {
            wire::WalkUpBody {
                name: None,
                phone: None,
                override_waitlist: false,
            }
        } else {
            wire::parse::<wire::WalkUpBody>(b)?
        };
        Ok((event_id(&id)?, input.person()?, input.override_waitlist))
    };
    create::<_, _, 201>(
        &ctx,
        caller,
        Role::Operator,
        &uri,
        &headers,
        body,
        parse,
        |app, actor, sale, idem| {
            let (event, person, override_waitlist) = sale;
            app.walk_up(actor, event, person, override_waitlist, idem)
        },
    )
    .await
}

/// Accept a waitlist offer
///
/// The held seat becomes a confirmed one with a ticket; accepting twice answers the confirmed
/// registration.
#[utoipa::path(post, path = "/api/v1/registrations/{id}/accept", tag = "registrations",
    params(RegistrationPath),
    responses((status = 200, description = "Confirmed", body = Registration)),
    extensions(("x-required-role" = json!("kiosk")), ("x-problem-codes" = json!(["no_offer", "offer_expired"]))))]
pub async fn accept_offer(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Kiosk), move |app, _| {
        Ok(app.accept_offer(registration_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Decline a waitlist offer
///
/// The registration is cancelled and the seat passes to the next in line; declining again changes
/// nothing.
#[utoipa::path(post, path = "/api/v1/registrations/{id}/decline", tag = "registrations",
    params(RegistrationPath),
    responses((status = 200, description = "Cancelled", body = Registration)),
    extensions(("x-required-role" = json!("kiosk")), ("x-problem-codes" = json!(["no_offer"]))))]
pub async fn decline_offer(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Kiosk), move |app, _| {
        Ok(app.decline_offer(registration_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

// ----- metrics -----

/// Prometheus metrics
///
/// The text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")),
    extensions(("x-required-role" = json!("anyone"))))]
pub async fn metrics(State(ctx): State<Ctx>) -> Response {
    let app = ctx.app.clone();
    let rendered = tokio::task::spawn_blocking(move || crate::metrics::exposition(&app)).await;
    match rendered {
        Ok(Ok(text)) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Ok(Err(e)) => Problem::from(e).into_response(),
        Err(_) => Problem::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response(),
    }
}

// ----- the audit log and the box's figures (read by the console, local or remote) -----

/// `?actor=&action=&target=&since=&until=&limit=&after=` of the audit log.
#[derive(Debug, serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

/// The audit log
///
/// Who did what, when, from where; newest first (by time, then commit order). `actor` and `target`
/// match exactly, `action` is one action (`event.capacity`) or a noun (`event`, all its actions),
/// `since`/`until` are RFC 3339 with both ends included.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(AuditParams, PageParams),
    responses((status = 200, description = "A page of audit rows", body = Page<app::AuditEntry>)),
    extensions(("x-required-role" = json!("admin"))))]
pub async fn audit_log(
    State(ctx): State<Ctx>,
    caller: Caller,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, _| {
        let Query(q) = q.map_err(query_problem)?;
        let filter = app::AuditFilter::parse(q.actor.as_deref(), q.action.as_deref())?.with(
            q.target.as_deref(),
            q.since.as_deref(),
            q.until.as_deref(),
        )?;
        let page = ListQuery {
            limit: q.limit,
            after: q.after,
            status: None,
        }
        .page()?;
        Ok(app.audit_page(&filter, &page)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// The box's figures, and who is asking (the console shows it and knows what it may do).
#[derive(Serialize, ToSchema)]
pub struct StatsView {
    #[serde(flatten)]
    stats: app::BoxStats,
    caller: CallerView,
}

/// The token that asked.
#[derive(Serialize, ToSchema)]
pub struct CallerView {
    name: String,
    #[schema(value_type = crate::domain::Role)]
    role: &'static str,
}

/// The box's figures
///
/// What the console's dashboard shows: registrations and check-ins, outbox counts, database size,
/// uptime, and who is asking.
#[utoipa::path(get, path = "/api/v1/stats", tag = "system",
    responses((status = 200, description = "The figures", body = StatsView)),
    extensions(("x-required-role" = json!("operator"))))]
pub async fn box_stats(State(ctx): State<Ctx>, caller: Caller) -> Response {
    let r = call(&ctx, caller, Some(Role::Operator), move |app, actor| {
        let actor = must(actor)?;
        Ok(StatsView {
            stats: app.box_stats()?,
            caller: CallerView {
                name: actor.name,
                role: actor.role.as_str(),
            },
        })
    })
    .await;
    respond(StatusCode::OK, r)
}

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

use super::problem::Problem;
use super::wire::{self, ListQuery};
use super::RequestId;
use crate::app::{self, Actor, App, Idem, IdemKey, IdemStart, Replay, Visibility};
use crate::domain::{AttendeeId, EventId, EventStatus, RegStatus, RegistrationId, Role};

/// Shared state of every handler.
#[derive(Clone)]
pub struct Ctx {
    pub app: Arc<App>,
}

/// The caller as the request presents it, before the token is checked.
pub struct Caller {
    auth: Auth,
    remote: Option<SocketAddr>,
    request_id: String,
}

enum Auth {
    Anonymous,
    Bearer(String),
    Malformed,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let auth = match parts.headers.get(header::AUTHORIZATION) {
            None => Auth::Anonymous,
            // The scheme name is case-insensitive (RFC 9110 section 11.1).
            Some(v) => match v
                .to_str()
                .ok()
                .and_then(|s| s.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token)
            {
                Some(t) if !t.trim().is_empty() && t.len() <= 256 => {
                    Auth::Bearer(t.trim().to_string())
                }
                _ => Auth::Malformed,
            },
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
        Ok(Self {
            auth,
            remote,
            request_id,
        })
    }
}

impl Caller {
    /// The actor, when the token was authenticated recently (memory only, never blocks).
    fn recent_actor(&self, app: &App) -> Option<Actor> {
        let Auth::Bearer(secret) = &self.auth else {
            return None;
        };
        let token = app.recently_authenticated(secret)?;
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
    match actor {
        Some(a) if a.role.allows(Role::Operator) => Visibility::Staff,
        _ => Visibility::Public,
    }
}

/// The actor of a route that required a role (`call` has checked there is one).
pub(super) fn must(actor: Option<Actor>) -> Result<Actor, Problem> {
    actor.ok_or_else(|| Problem::unauthorized("this route needs a bearer token"))
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
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

fn list_query(
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<ListQuery, Problem> {
    q.map(|Query(q)| q)
        .map_err(|e| Problem::invalid(vec![crate::domain::FieldError::new("query", e.body_text())]))
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
fn idempotent<T: Serialize, const STATUS: u16>(
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
        IdemStart::Mismatch => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "Idempotency-Key reused",
            "this Idempotency-Key was used for a different request",
        )),
        IdemStart::Fresh(guard) => {
            let r = op(Some(Idem { guard, render }))?;
            Ok(replay_response(render(&Ok(r)), false))
        }
    }
}

/// The body of a request, read whole within the limits; a failure is a problem document: 408 when the
/// client stopped sending, 413 over the limit, 400 otherwise.
pub struct Body(pub Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Problem> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Body(b)),
            Err(rejection) => {
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
                while let Some(e) = source {
                    if e.is::<tower_http::timeout::TimeoutError>() {
                        return Err(Problem::for_status(StatusCode::REQUEST_TIMEOUT));
                    }
                    source = e.source();
                }
                Err(Problem::for_status(rejection.status()))
            }
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
    T: Serialize + Send + 'static,
{
    let key = idempotency_key(headers);
    let fp = fingerprint("POST", uri, &body);
    let r = call(ctx, caller, Some(need), move |app, actor| {
        let actor = must(actor)?;
        let key = key?;
        let input = parse(&body)?;
        idempotent::<T, STATUS>(app, &actor, key, fp, |idem| run(app, &actor, input, idem))
    })
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

// ----- system -----

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
    let checks = serde_json::json!({
        "database": show(&h.database),
        "writer": show(&h.writer),
        "outbox": outbox_check,
        "disk": show(&h.disk),
    });
    if h.ok() && outbox_ok {
        return json(
            StatusCode::OK,
            &serde_json::json!({
                "status": "ok",
                "checks": checks,
                "writer_queue": h.writer_queue,
                "disk_free_bytes": h.disk_free_bytes,
                "outbox": snapshot,
            }),
        );
    }
    let failing: Vec<String> = [
        ("database", h.database.is_err()),
        ("writer", h.writer.is_err()),
        ("outbox", !outbox_ok),
        ("disk", h.disk.is_err()),
    ]
    .iter()
    .filter(|(_, bad)| *bad)
    .map(|(name, _)| format!("{name}: {}", checks[*name].as_str().unwrap_or("failing")))
    .collect();
    // A problem document, like every error answer, with the checks beside it.
    let body = serde_json::json!({
        "type": "urn:boxoffice:problem:unhealthy",
        "title": "Unhealthy",
        "status": 503,
        "detail": failing.join("; "),
        "code": "unhealthy",
        "checks": checks,
        "writer_queue": h.writer_queue,
        "disk_free_bytes": h.disk_free_bytes,
        "outbox": snapshot,
    });
    let mut resp = json(StatusCode::SERVICE_UNAVAILABLE, &body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::problem::CONTENT_TYPE),
    );
    resp
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

pub async fn get_event(State(ctx): State<Ctx>, caller: Caller, Path(id): Path<String>) -> Response {
    let r = call(&ctx, caller, None, move |app, actor| {
        Ok(app.get_event(event_id(&id)?, staff(&actor))?)
    })
    .await;
    respond(StatusCode::OK, r)
}

pub async fn create_event(State(ctx): State<Ctx>, caller: Caller, Body(body): Body) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        let new = wire::parse::<wire::CreateEvent>(&body)?.into_domain()?;
        Ok(app.create_event(&must(actor)?, new)?)
    })
    .await;
    respond(StatusCode::CREATED, r)
}

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
            Some(s) => Some(RegStatus::parse(s).ok_or_else(|| {
                Problem::invalid(vec![crate::domain::FieldError::new(
                    "status",
                    "must be confirmed, waitlisted, offered or cancelled",
                )])
            })?),
        };
        Ok(app.event_registrations(event_id(&id)?, status, &page)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

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
        return respond(StatusCode::CREATED, r);
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

pub async fn get_attendee(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Kiosk), move |app, _| {
        Ok(app.get_attendee(attendee_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

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
        Ok(app.attendee_tickets(attendee_id(&id)?, &q.page()?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

// ----- registrations -----

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

pub async fn position(State(ctx): State<Ctx>, caller: Caller, Path(id): Path<String>) -> Response {
    let r = call(&ctx, caller, Some(Role::Kiosk), move |app, _| {
        Ok(app.position(registration_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

pub async fn cancel_registration(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Kiosk), move |app, _| {
        Ok(app.cancel_registration(registration_id(&id)?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

// ----- the door and the counter -----

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

pub async fn metrics(State(ctx): State<Ctx>) -> Response {
    let app = ctx.app.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        app.outbox_stats()
            .map(|o| crate::metrics::render(&o, app.store().writer_queue()))
    })
    .await;
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

/// `?actor=&action=&limit=&after=` of the audit log.
#[derive(Debug, serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

/// `GET /api/v1/admin/audit`: newest first; `actor` exact, `action` exact or a dotted prefix.
pub async fn audit_log(
    State(ctx): State<Ctx>,
    caller: Caller,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, _| {
        let Query(q) = q.map_err(|e| {
            Problem::invalid(vec![crate::domain::FieldError::new("query", e.body_text())])
        })?;
        let filter = app::AuditFilter::parse(q.actor.as_deref(), q.action.as_deref())?;
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
#[derive(Serialize)]
struct StatsView {
    #[serde(flatten)]
    stats: app::BoxStats,
    caller: CallerView,
}

#[derive(Serialize)]
struct CallerView {
    name: String,
    role: &'static str,
}

/// `GET /api/v1/stats` (operator): counters, outbox counts, database size, uptime.
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

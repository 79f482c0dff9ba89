//! The HTTP JSON API (DESIGN.md section 3): the route table, the middleware list, and the server loop.
//!
//! Hardening lives here and in `server`: body and header limits, read and request timeouts, a cap on
//! open connections, security headers, no server banner, JSON-only writes, a Host allowlist and an
//! Origin check (`hosts`), rate limits (`ratelimit`), and a problem document for every error,
//! including those the framework answers on its own (405, 408, 413, 415).

mod admin;
mod bans;
mod handlers;
pub mod hosts;
mod openapi;
pub mod problem;
mod ratelimit;
mod server;
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use handlers::Ctx;
pub use hosts::allow_listen_address;
pub use server::{serve, ServeError};

use crate::app::App;
use crate::config::HttpConfig;
use problem::Problem;

/// Every answer's `Content-Security-Policy`: an API serves no page, so nothing may load or frame it.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// The request id of one request: taken from a sane `x-request-id` header or made up, returned in the
/// response's `x-request-id`, and written to the audit log.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The API's table of contents, and the source of its OpenAPI document.
///
/// Every route is added through utoipa-axum's `routes!`, which takes the method and path from the
/// handler's `#[utoipa::path]` attribute and adds the operation to the document in the same step, so
/// the router and the document are one table: there is no second list to keep in step. To add a
/// route, write the handler with its `#[utoipa::path(...)]` (see `openapi.rs` for what `finish`
/// derives and what the attribute must say) and add one `.routes(routes!(...))` line here; handlers
/// of one path share a line. A route added with plain axum routing would be served undocumented:
/// `tests/it/openapi.rs` fails on one.
fn table() -> OpenApiRouter<Ctx> {
    use handlers::*;
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(ping))
        .routes(routes!(list_events, create_event))
        .routes(routes!(get_event, update_event))
        .routes(routes!(publish_event))
        .routes(routes!(cancel_event))
        .routes(routes!(event_registrations, register))
        .routes(routes!(waitlist))
        .routes(routes!(event_stats))
        .routes(routes!(attendees_csv))
        .routes(routes!(walk_up))
        .routes(routes!(create_attendee))
        .routes(routes!(get_attendee, erase_attendee))
        .routes(routes!(attendee_tickets))
        .routes(routes!(export_attendee))
        .routes(routes!(get_registration))
        .routes(routes!(position))
        .routes(routes!(cancel_registration))
        .routes(routes!(accept_offer))
        .routes(routes!(decline_offer))
        .routes(routes!(check_in))
        .routes(routes!(revert_check_in))
        // Webhooks, the outbox and the audit log (admin), and the box's figures (the console reads
        // these, local or remote).
        .routes(routes!(admin::list_webhooks, admin::create_webhook))
        .routes(routes!(
            admin::get_webhook,
            admin::update_webhook,
            admin::delete_webhook
        ))
        .routes(routes!(admin::list_outbox))
        .routes(routes!(admin::get_outbox_message))
        .routes(routes!(admin::retry_outbox_message))
        // API tokens (admin): the secret is shown once, at creation.
        .routes(routes!(admin::list_tokens, admin::create_token))
        .routes(routes!(admin::revoke_token))
        .routes(routes!(audit_log))
        .routes(routes!(box_stats))
}

/// The OpenAPI document of the router, as served at `/api/v1/openapi.json`.
pub fn openapi_document() -> serde_json::Value {
    let (_, doc) = table().split_for_parts();
    let mut doc = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
    openapi::finish(&mut doc);
    doc
}

/// The router: the table, its state and the middleware list.
pub fn router(app: Arc<App>, cfg: &HttpConfig) -> Router {
    let (routes, _) = table().split_for_parts();
    let document = openapi_document();
    // `/metrics` gets a slot per route template before the first request: the document's paths are
    // the router's (one table).
    if let Some(paths) = document["paths"].as_object() {
        app.metrics()
            .register_routes(paths.keys().map(String::as_str));
    }
    let document = serde_json::to_vec(&document).expect("the document serializes");
    let edge_state = Arc::new(Edge {
        frame: Frame {
            app: app.clone(),
            slow: Duration::from_millis(cfg.slow_request_ms),
        },
        hosts: hosts::Hosts::new(cfg),
        limits: Arc::new(ratelimit::RateLimits::new(app.clone(), &cfg.rate_limit)),
        bodies: Limits {
            max_body: cfg.max_body_bytes,
        },
    });
    let routes = routes.fallback(handlers::fallback).with_state(Ctx {
        app,
        openapi: document.into(),
        body_deadline: Duration::from_secs(cfg.body_read_timeout_secs),
    });

    // Listed innermost first: each `.layer` wraps everything above it.
    routes
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        // Time inside the box: a write still queued for the writer may commit after this answer, so
        // it is a 503 "outcome unknown", never a 4xx that would claim nothing changed.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(cfg.request_timeout_secs),
        ))
        // `frame`, the Host check, the rate limits and the body checks (see `edge`); outside the
        // timeout, so that every answer of a limited caller carries the rate-limit headers, a
        // timeout's 503 included.
        .layer(middleware::from_fn_with_state(edge_state, edge))
        .layer(
            // Quality 4 for both: brotli's default (11) costs tens of times gzip's CPU for a few
            // percent, and every answer is compressed afresh; at 4 brotli still beats gzip's size.
            CompressionLayer::new()
                .gzip(cfg.gzip)
                .br(cfg.brotli)
                .no_deflate()
                .no_zstd()
                .quality(tower_http::CompressionLevel::Precise(4)),
        )
        .layer(CatchPanicLayer::custom(|_| {
            Problem::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
        }))
}

struct Limits {
    max_body: usize,
}

/// Refuses bodies that are too large (by their announced length, before reading a byte) and bodies
/// that are not JSON on writes; `None` lets the request pass.
fn refused_body(limits: &Limits, req: &Request) -> Option<Response> {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.max_body as u64) {
        return Some(Problem::payload_too_large(limits.max_body).into_response());
    }
    let has_body =
        announced.is_some_and(|n| n > 0) || req.headers().contains_key(header::TRANSFER_ENCODING);
    let is_write = matches!(
        *req.method(),
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    );
    if is_write && has_body {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Some(
                Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "Unsupported media type",
                    "send the request body as Content-Type: application/json",
                )
                .into_response(),
            );
        }
    }
    None
}

fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        // 64 random bits from the thread's generator: unique enough to find a request in the logs,
        // and no system call per request.
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()))
}

/// What a request meets on its way in, outermost first: `frame` (request id, security headers,
/// problem documents, metrics, the log line), the Host and Origin check (a foreign Host or a
/// cross-site write goes no further: no quota spent, no token looked up), the rate limits, and the
/// body's announced size and type (`refused_body`).
struct Edge {
    frame: Frame,
    hosts: hosts::Hosts,
    limits: Arc<ratelimit::RateLimits>,
    bodies: Limits,
}

/// The parts of `Edge` as one middleware rather than four: every `from_fn` layer clones and boxes
/// the whole stack below it on each request, and three such layers were about a tenth of an IO
/// thread's instructions in a rush (callgrind).
async fn edge(State(edge): State<Arc<Edge>>, req: Request, next: Next) -> Response {
    frame(&edge.frame, req, |req| async {
        if let Some(refused) = hosts::refusal(&edge.hosts, &req) {
            return refused;
        }
        ratelimit::limit(&edge.limits, req, |req| async {
            match refused_body(&edge.bodies, &req) {
                Some(refused) => refused,
                None => next.run(req).await,
            }
        })
        .await
    })
    .await
}

/// What `frame` needs besides the request.
struct Frame {
    /// The app, for its metrics.
    app: Arc<App>,
    /// Requests that take at least this long are logged as slow (`http.slow_request_ms`).
    slow: Duration,
}

/// Around every request: request id in, security headers out, a problem document for every error
/// response that lacks one, the request's series in `/metrics` (and the console's, for a request of
/// the remote console), and one log line.
///
/// The log line carries the request id, method, route template, status and latency, and nothing
/// from the request itself: not the raw path or query, not a header, not a byte of the body. That
/// is what keeps emails, phone numbers, tokens and ticket codes out of the logs (a test greps the
/// log of a whole on-sale for them).
async fn frame<F, Fut>(frame_state: &Frame, mut req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    // A clone of the matched path shares its string: no allocation per request for the log line.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let from_console = req.headers().get(header::USER_AGENT).is_some_and(|v| {
        v.as_bytes()
            .starts_with(crate::metrics::CONSOLE_USER_AGENT.as_bytes())
    });
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = inner(req).await;

    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(problem::CONTENT_TYPE.as_bytes()));
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        let mut fresh = Problem::for_status(status).into_response();
        for name in [
            &header::ALLOW,
            &header::RETRY_AFTER,
            &ratelimit::RATELIMIT,
            &ratelimit::RATELIMIT_POLICY,
        ] {
            if let Some(v) = resp.headers().get(name) {
                fresh.headers_mut().insert(name.clone(), v.clone());
            }
        }
        resp = fresh;
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-request-id", v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.remove(header::SERVER);

    let elapsed = started.elapsed();
    let route = route.as_ref().map(MatchedPath::as_str);
    let metrics = frame_state.app.metrics();
    metrics.record_request(route, status.as_u16(), elapsed);
    if from_console {
        metrics.record_console_request(elapsed);
    }
    // Milliseconds with microsecond precision, and the route unquoted: a line a person can read.
    let ms = elapsed.as_secs_f64() * 1000.0;
    let latency_ms = format_args!("{ms:.3}");
    let route = route.unwrap_or(crate::metrics::UNMATCHED);
    let status = status.as_u16();
    if status >= 500 {
        let slow = elapsed >= frame_state.slow;
        tracing::warn!(request_id = %id, %method, %route, status, latency_ms, slow, "request failed");
    } else if elapsed >= frame_state.slow {
        tracing::warn!(request_id = %id, %method, %route, status, latency_ms, slow = true, "slow request");
    } else {
        tracing::info!(request_id = %id, %method, %route, status, latency_ms, "request");
    }
    resp
}

//! The HTTP JSON API (DESIGN.md section 3): the route table, the middleware list, and the server loop.
//!
//! Hardening lives here and in `server`: body and header limits, read and request timeouts, a cap on
//! open connections, security headers, no server banner, JSON-only writes, a Host allowlist and an
//! Origin check (`hosts`), rate limits (`ratelimit`), and a problem document for every error,
//! including those the framework answers on its own (405, 408, 413, 415).

mod admin;
mod handlers;
pub mod hosts;
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
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

pub use handlers::Ctx;
pub use hosts::allow_listen_address;
pub use server::{serve, ServeError};

use crate::app::App;
use crate::config::HttpConfig;
use problem::Problem;

/// The request id of one request: taken from a sane `x-request-id` header or made up, returned in the
/// response's `x-request-id`, and written to the audit log.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The route table as it is built: the router, and every path in it, so `/metrics` has a slot per
/// route template before the first request.
struct Table {
    router: Router<Ctx>,
    paths: Vec<&'static str>,
}

impl Table {
    fn new() -> Self {
        Self {
            router: Router::new(),
            paths: Vec::new(),
        }
    }

    fn route(mut self, path: &'static str, methods: MethodRouter<Ctx>) -> Self {
        self.paths.push(path);
        self.router = self.router.route(path, methods);
        self
    }
}

/// The API's table of contents.
pub fn router(app: Arc<App>, cfg: &HttpConfig) -> Router {
    use handlers::*;
    let table = Table::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/events", get(list_events).post(create_event))
        .route("/api/v1/events/{id}", get(get_event).patch(update_event))
        .route("/api/v1/events/{id}/publish", post(publish_event))
        .route("/api/v1/events/{id}/cancel", post(cancel_event))
        .route(
            "/api/v1/events/{id}/registrations",
            get(event_registrations).post(register),
        )
        .route("/api/v1/events/{id}/waitlist", get(waitlist))
        .route("/api/v1/attendees", post(create_attendee))
        .route("/api/v1/attendees/{id}", get(get_attendee))
        .route("/api/v1/attendees/{id}/tickets", get(attendee_tickets))
        .route("/api/v1/registrations/{id}", get(get_registration))
        .route("/api/v1/registrations/{id}/position", get(position))
        .route(
            "/api/v1/registrations/{id}/cancel",
            post(cancel_registration),
        )
        .route("/api/v1/registrations/{id}/accept", post(accept_offer))
        .route("/api/v1/registrations/{id}/decline", post(decline_offer))
        .route("/api/v1/events/{id}/walkups", post(walk_up))
        .route("/api/v1/checkins", post(check_in))
        .route("/api/v1/checkins/{id}/revert", post(revert_check_in))
        // Webhooks and the outbox (admin).
        .route(
            "/api/v1/admin/webhooks",
            get(admin::list_webhooks).post(admin::create_webhook),
        )
        .route(
            "/api/v1/admin/webhooks/{id}",
            get(admin::get_webhook)
                .patch(admin::update_webhook)
                .delete(admin::delete_webhook),
        )
        .route("/api/v1/admin/outbox", get(admin::list_outbox))
        .route("/api/v1/admin/outbox/{id}", get(admin::get_outbox_message))
        .route(
            "/api/v1/admin/outbox/{id}/retry",
            post(admin::retry_outbox_message),
        )
        // The audit log and the box's figures (the console reads these, local or remote).
        .route("/api/v1/admin/audit", get(audit_log))
        .route("/api/v1/stats", get(box_stats));
    app.metrics().register_routes(table.paths.iter().copied());
    let frame_state = Arc::new(Frame {
        app: app.clone(),
        slow: Duration::from_millis(cfg.slow_request_ms),
    });
    let rate_limits = Arc::new(ratelimit::RateLimits::new(app.clone(), &cfg.rate_limit));
    let hosts = Arc::new(hosts::Hosts::new(cfg));
    let routes = table.router.fallback(fallback).with_state(Ctx { app });

    // Listed innermost first: each `.layer` wraps everything above it.
    let limits = Arc::new(Limits {
        max_body: cfg.max_body_bytes,
    });
    routes
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(limits, guard_body))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
            cfg.body_read_timeout_secs,
        )))
        // Time inside the box: a write still queued for the writer may commit after this answer, so
        // it is a 503 "outcome unknown", never a 4xx that would claim nothing changed.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(cfg.request_timeout_secs),
        ))
        // Outside the timeout, so that every answer of a limited caller carries the headers, a
        // timeout's 503 included.
        .layer(middleware::from_fn_with_state(
            rate_limits,
            ratelimit::limit,
        ))
        // A foreign Host or a cross-site write goes no further: no quota spent, no token looked up.
        .layer(middleware::from_fn_with_state(hosts, hosts::guard))
        .layer(middleware::from_fn_with_state(frame_state, frame))
        .layer(
            CompressionLayer::new()
                .gzip(cfg.gzip)
                .no_br()
                .no_deflate()
                .no_zstd(),
        )
        .layer(CatchPanicLayer::custom(|_| {
            Problem::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
        }))
}

struct Limits {
    max_body: usize,
}

/// Refuses bodies that are too large (by their announced length, before reading a byte) and bodies
/// that are not JSON on writes.
async fn guard_body(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.max_body as u64) {
        return Problem::payload_too_large(limits.max_body).into_response();
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
            return Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "send the request body as Content-Type: application/json",
            )
            .into_response();
        }
    }
    next.run(req).await
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

/// What `frame` needs besides the request.
struct Frame {
    /// The app, for its metrics.
    app: Arc<App>,
    /// Requests that take at least this long are logged as slow (`http.slow_request_ms`).
    slow: Duration,
}

/// Around every request: request id in, security headers out, a problem document for every error
/// response that lacks one, the request's series in `/metrics`, and one log line.
///
/// The log line carries the request id, method, route template, status and latency, and nothing
/// from the request itself: not the raw path or query, not a header, not a byte of the body. That
/// is what keeps emails, phone numbers, tokens and ticket codes out of the logs (a test greps the
/// log of a whole on-sale for them).
async fn frame(State(frame_state): State<Arc<Frame>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    // A clone of the matched path shares its string: no allocation per request for the log line.
    let route = req.extensions().get::<MatchedPath>().cloned();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;

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
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.remove(header::SERVER);

    let elapsed = started.elapsed();
    let route = route.as_ref().map(MatchedPath::as_str);
    frame_state
        .app
        .metrics()
        .record_request(route, status.as_u16(), elapsed);
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

//! RFC 9457 problem documents. Every error the API answers is one of these, with a stable machine
//! `code` beside `title`, `status` and `detail`; `from_app` is the one place app errors become statuses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::{Conflict, Error};
use crate::domain::{FieldError, Timestamp};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// Every problem `code` the API answers besides the conflicts (409, see `catalogue`): its status
/// and when it comes. The OpenAPI document lists on each error response the codes it can carry,
/// with these meanings.
const CODES: &[(&str, u16, &str)] = &[
    ("bad_request", 400, "the request could not be read"),
    (
        "malformed_json",
        400,
        "the body is not JSON, or is empty where JSON is needed",
    ),
    (
        "invalid_idempotency_key",
        400,
        "the Idempotency-Key header is not 1 to 255 visible ASCII characters",
    ),
    (
        "unauthorized",
        401,
        "no token, a malformed Authorization header, or an unknown or revoked token",
    ),
    (
        "forbidden",
        403,
        "the token's role is below the one the route needs",
    ),
    (
        "not_found",
        404,
        "no such resource (an id that is not one of ours is not found either)",
    ),
    ("unknown_ticket", 404, "no ticket has this code"),
    (
        "method_not_allowed",
        405,
        "the path exists but not with this method",
    ),
    ("request_timeout", 408, "the body stopped arriving"),
    (
        "payload_too_large",
        413,
        "the body is over `http.max_body_bytes`",
    ),
    (
        "unsupported_media_type",
        415,
        "a write with a body that is not `application/json`",
    ),
    (
        "validation_failed",
        422,
        "well-formed input that breaks a rule; `errors` names each field",
    ),
    (
        "idempotency_key_reused",
        422,
        "this Idempotency-Key was used by this token for a different request",
    ),
    (
        "forbidden_origin",
        403,
        "a write from a web page of another origin (the `Origin` header is not an allowed one)",
    ),
    (
        "host_not_allowed",
        421,
        "the `Host` is not one this box answers for (`http.allowed_hosts`): DNS-rebinding defence",
    ),
    (
        "attendee_erased",
        410,
        "this Idempotency-Key's first answer held personal data of an attendee since erased; it is \
         not replayed",
    ),
    (
        "rate_limited",
        429,
        "over the rate limit of the token or client; see Retry-After",
    ),
    (
        "headers_too_large",
        431,
        "the request head is over the header limits",
    ),
    (
        "internal",
        500,
        "a failure inside boxoffice; it has been logged",
    ),
    (
        "outcome_unknown",
        503,
        "not answered within `http.request_timeout_secs`; a write may still take effect, so retry \
         it (with the same Idempotency-Key) to learn the outcome",
    ),
    (
        "storage_unavailable",
        503,
        "the database cannot take writes (disk full or read-only); nothing changed",
    ),
    (
        "too_many_connections",
        503,
        "the box serves as many connections as configured; retry shortly",
    ),
    ("unhealthy", 503, "a health check fails; `detail` names it"),
];

/// The catalogue of problem codes: (code, status, when it comes), the conflicts included.
pub fn catalogue() -> Vec<(&'static str, u16, &'static str)> {
    let mut all = CODES.to_vec();
    all.extend(Conflict::ALL.map(|c| (c.code(), 409, c.title())));
    all
}

/// A problem document; boxed, so the `Err` side of handler results stays one pointer wide.
#[derive(Debug, Clone)]
pub struct Problem(Box<Doc>);

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct Doc {
    /// `urn:boxoffice:problem:` followed by the code.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    pub detail: String,
    /// The stable machine code; each response of the document lists the codes it can carry.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// With `validation_failed`: each invalid field and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// With `already_checked_in`: when the first scan admitted the ticket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_in_at: Option<Timestamp>,
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &str,
        detail: impl Into<String>,
    ) -> Self {
        Self(Box::new(Doc {
            kind: format!("urn:boxoffice:problem:{code}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            errors: Vec::new(),
            checked_in_at: None,
            retry_after: None,
        }))
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Invalid input",
            detail,
        );
        p.errors = errors;
        p
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not found",
            format!("no such {what}"),
        )
    }

    pub fn unauthorized(detail: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed for this token",
            detail,
        )
    }

    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "Malformed JSON",
            detail,
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Request body too large",
            format!("request bodies are limited to {limit} bytes"),
        )
    }

    /// A status answered by the framework or a layer (405, 408, ...), given a document after the fact.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, title, detail) = match status.as_u16() {
            400 => (
                "bad_request",
                "Bad request",
                "the request could not be understood",
            ),
            404 => ("not_found", "Not found", "no such resource"),
            405 => (
                "method_not_allowed",
                "Method not allowed",
                "this resource does not support this method",
            ),
            408 => (
                "request_timeout",
                "Request timeout",
                "the request took too long to arrive or to answer",
            ),
            413 => (
                "payload_too_large",
                "Request body too large",
                "the request body is over the limit",
            ),
            415 => (
                "unsupported_media_type",
                "Unsupported media type",
                "send the body as application/json",
            ),
            431 => (
                "headers_too_large",
                "Request headers too large",
                "the request headers are over the limit",
            ),
            // Only the request timeout answers a bare 503: the request may still complete inside.
            503 => (
                "outcome_unknown",
                "Request took too long",
                "the request was not answered in time and may still take effect; retry it, with the same \
                 Idempotency-Key for a creating write, to learn the outcome",
            ),

            s if s >= 500 => (
                "internal",
                "Internal error",
                "the request failed inside boxoffice; it has been logged",
            ),
            _ => ("error", "Error", "the request failed"),
        };
        Self::new(status, code, title, detail)
    }

    pub fn from_app(e: &Error) -> Self {
        match e {
            Error::Invalid(errors) => Self::invalid(errors.clone()),
            Error::NotFound("ticket") => Self::new(
                StatusCode::NOT_FOUND,
                "unknown_ticket",
                "Unknown ticket",
                "no ticket has this code; check it was read correctly",
            ),
            Error::NotFound(what) => Self::not_found(what),
            Error::Conflict {
                kind,
                detail,
                checked_in_at,
            } => {
                let mut p = Self::new(
                    StatusCode::CONFLICT,
                    kind.code(),
                    kind.title(),
                    detail.clone(),
                );
                p.checked_in_at = *checked_in_at;
                p
            }

            Error::Unavailable(_) => {
                let mut p = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "Storage unavailable",
                    "the database cannot take writes right now (disk full or read-only?); nothing was changed",
                );
                p.retry_after = Some(5);
                p
            }
            Error::Internal(_) => Self::for_status(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.0).expect("a problem document always serializes")
    }
}

impl std::ops::Deref for Problem {
    type Target = Doc;
    fn deref(&self) -> &Doc {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut Doc {
        &mut self.0
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), self.to_bytes()).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if self.status == 401 {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        if let Error::Internal(detail) = &e {
            tracing::error!(error = %detail, "internal error");
        }
        Self::from_app(&e)
    }
}

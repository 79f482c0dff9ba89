//! The OpenAPI 3.1 document of the API, served at `GET /api/v1/openapi.json`, generated from the code.
//!
//! Each handler carries a `#[utoipa::path]` attribute: method, path, parameters, request and success
//! bodies, the problem codes only it can give (`x-problem-codes`) and the role it needs
//! (`x-required-role`). `mod.rs` registers the handlers with utoipa-axum's `routes!`, which adds the
//! route to the axum router and the operation to the document in one step, so the router and the
//! document come from the same table. `finish` then adds what operations of a kind share, from the
//! operation's own shape, so no handler repeats it: the bearer security requirement and 401/403 of a
//! role, 404 of a path id, 422 of a query, 400/408/413/415/422 of a JSON body, the Idempotency-Key
//! answers, and the 429/431/500/503 any request can get. Every error response but 431 (hyper's own,
//! bodiless) is a problem document whose `code` is one of the codes listed for it, with their
//! meanings from `problem::catalogue`.
//!
//! The response types that serialize themselves by hand (`Event`, `Registration`, ids, times) get
//! their schemas here; `tests` checks each against a serialized value, so the two cannot drift.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{json, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::problem;
use crate::domain::{self, DomainEventType};

/// The name of the bearer security scheme.
pub const BEARER: &str = "bearer";

/// What the document says before the operations are added.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "boxoffice",
        description = "The HTTP JSON API of boxoffice, a venue's box office in one binary: events \
            with a hard capacity, a FIFO waitlist, door check-in, signed webhooks.\n\n\
            Authentication: `Authorization: Bearer <token>`. Roles nest: admin > operator > kiosk; \
            each operation names the least role it needs (`x-required-role`). Errors are RFC 9457 \
            problem documents (`application/problem+json`) with a stable machine `code`; each error \
            response lists the codes it can carry. Lists are keyset-paginated: `?limit=` (1 to 500, \
            default 50) and `?after=<cursor>`, answering `{\"items\": [...], \"next\": <cursor or null>}`.",
        license(name = "MIT")
    ),
    // Schemas with hand-written `ToSchema` that parameters refer to by name.
    components(schemas(
        domain::EventId,
        domain::AttendeeId,
        domain::RegistrationId,
        domain::Timestamp,
        domain::EventStatus,
        domain::RegStatus,
        domain::Promotion,
        domain::Role,
        domain::EventTypes,
        crate::app::OutboxState
    )),
    tags(
        (name = "system", description = "Health, metrics and this document"),
        (name = "events", description = "Events and their seats"),
        (name = "attendees", description = "The people who hold tickets"),
        (name = "registrations", description = "Tickets and the waitlist"),
        (name = "door", description = "Check-in and the counter"),
        (name = "admin", description = "Webhooks, the outbox and the audit log")
    )
)]
pub struct ApiDoc;

// ----- schemas of types that serialize by hand -----

/// A string schema with a format, e.g. ids (`uuid`) and times (`date-time`).
fn string_with_format(format: utoipa::openapi::KnownFormat, description: &str) -> Schema {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(format)))
        .description(Some(description))
        .into()
}

/// A string schema with a closed set of values.
fn string_enum(values: &[&str], description: &str) -> Schema {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .into()
}

/// Implements `ToSchema` for a type by a named schema built in a function.
macro_rules! named_schema {
    ($ty:ty, $name:literal, $build:expr) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                RefOr::T($build)
            }
        }
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

named_schema!(
    domain::TokenId,
    "TokenId",
    string_with_format(
        utoipa::openapi::KnownFormat::Uuid,
        "The public id of an API token (never its secret)."
    )
);
named_schema!(
    domain::EventId,
    "EventId",
    string_with_format(
        utoipa::openapi::KnownFormat::Uuid,
        "The public id of an event."
    )
);
named_schema!(
    domain::AttendeeId,
    "AttendeeId",
    string_with_format(
        utoipa::openapi::KnownFormat::Uuid,
        "The public id of an attendee."
    )
);
named_schema!(
    domain::RegistrationId,
    "RegistrationId",
    string_with_format(
        utoipa::openapi::KnownFormat::Uuid,
        "The public id of a registration."
    )
);
named_schema!(
    domain::Timestamp,
    "Timestamp",
    string_with_format(
        utoipa::openapi::KnownFormat::DateTime,
        "An instant in UTC, RFC 3339 with milliseconds, e.g. 2026-12-31T20:00:00.000Z."
    )
);

/// The values of the enums the API shows as strings; `tests` checks each parses back.
const EVENT_STATUSES: [&str; 4] = ["draft", "published", "cancelled", "completed"];
const REG_STATUSES: [&str; 4] = ["confirmed", "waitlisted", "offered", "cancelled"];
const PROMOTIONS: [&str; 2] = ["direct", "offer"];
const OUTBOX_STATES: [&str; 3] = ["pending", "delivered", "dead"];
const ROLES: [&str; 3] = ["kiosk", "operator", "admin"];

named_schema!(
    domain::EventStatus,
    "EventStatus",
    string_enum(
        &EVENT_STATUSES,
        "draft -> published -> cancelled | completed; only a published event sells."
    )
);
named_schema!(
    domain::RegStatus,
    "RegistrationStatus",
    string_enum(
        &REG_STATUSES,
        "Confirmed holds a seat and a ticket; waitlisted waits at `position`; offered holds a seat \
         until `offer_expires_at`; cancelled is final."
    )
);
named_schema!(
    domain::Promotion,
    "Promotion",
    string_enum(
        &PROMOTIONS,
        "How a freed seat reaches the head of the waitlist: confirmed at once (direct) or offered \
         for `offer_minutes` (offer)."
    )
);
named_schema!(
    domain::Role,
    "Role",
    string_enum(
        &ROLES,
        "A token's role; roles nest: admin > operator > kiosk."
    )
);
named_schema!(
    crate::app::OutboxState,
    "OutboxState",
    string_enum(
        &OUTBOX_STATES,
        "Where an outbox message is in its delivery."
    )
);

/// `["*"]` or the domain event types a subscription receives.
fn event_types_schema() -> Schema {
    let mut names = vec!["*"];
    names.extend(DomainEventType::ALL.map(DomainEventType::as_str));
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(RefOr::T(string_enum(
            &names,
            "A domain event type, or `*` for all.",
        )))
        .min_items(Some(1))
        .description(Some(
            "The domain event types a subscription receives: `[\"*\"]` for every type.",
        ))
        .into()
}
named_schema!(domain::EventTypes, "EventTypes", event_types_schema());

// `domain::Event` as it serializes (see its `Serialize`); `tests` holds them together.
/// An event with its live counts.
#[derive(ToSchema)]
#[allow(dead_code)]
struct EventSchema {
    id: domain::EventId,
    name: String,
    venue: String,
    description: String,
    starts_at: domain::Timestamp,
    #[schema(required)]
    ends_at: Option<domain::Timestamp>,
    #[schema(minimum = 0, maximum = 1_000_000)]
    capacity: i64,
    status: domain::EventStatus,
    waitlist_enabled: bool,
    promotion: domain::Promotion,
    /// How long an offered seat is held.
    #[schema(minimum = 1, maximum = 43_200)]
    offer_minutes: i64,
    #[schema(minimum = 0)]
    confirmed: i64,
    #[schema(minimum = 0)]
    offered: i64,
    #[schema(minimum = 0)]
    waitlisted: i64,
    #[schema(minimum = 0)]
    checked_in: i64,
    /// Seats neither confirmed nor held by an offer.
    #[schema(minimum = 0)]
    available: i64,
    created_at: domain::Timestamp,
    updated_at: domain::Timestamp,
}

impl PartialSchema for domain::Event {
    fn schema() -> RefOr<Schema> {
        EventSchema::schema()
    }
}
impl ToSchema for domain::Event {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Event")
    }
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        EventSchema::schemas(out);
    }
}

// `domain::Registration` as it serializes (see its `Serialize`); `tests` holds them together.
/// A registration: a seat (confirmed, with a ticket), a place on the waitlist, or an offered seat.
#[derive(ToSchema)]
#[allow(dead_code)]
struct RegistrationSchema {
    id: domain::RegistrationId,
    event_id: domain::EventId,
    attendee_id: domain::AttendeeId,
    status: domain::RegStatus,
    /// The live 1-based waitlist rank while waitlisted, else `null`.
    #[schema(required, minimum = 1)]
    position: Option<i64>,
    /// While offered: when the held seat passes on.
    #[schema(required)]
    offer_expires_at: Option<domain::Timestamp>,
    /// Once confirmed: 28 base32 characters in groups of four.
    #[schema(required, pattern = r"^[A-Z2-7]{4}(-[A-Z2-7]{4}){6}$")]
    ticket_code: Option<String>,
    #[schema(required)]
    checked_in_at: Option<domain::Timestamp>,
    created_at: domain::Timestamp,
    updated_at: domain::Timestamp,
    #[schema(required)]
    cancelled_at: Option<domain::Timestamp>,
}

impl PartialSchema for domain::Registration {
    fn schema() -> RefOr<Schema> {
        RegistrationSchema::schema()
    }
}
impl ToSchema for domain::Registration {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Registration")
    }
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        RegistrationSchema::schemas(out);
    }
}

// ----- parameters -----

/// `{id}` of an event.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct EventPath {
    /// The event's id.
    #[param(format = Uuid)]
    id: String,
}

/// `{id}` of an attendee.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct AttendeePath {
    /// The attendee's id.
    #[param(format = Uuid)]
    id: String,
}

/// `{id}` of a registration.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct RegistrationPath {
    /// The registration's id.
    #[param(format = Uuid)]
    id: String,
}

/// `{id}` of a webhook subscription.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct WebhookPath {
    /// The subscription's id.
    #[param(format = Uuid)]
    id: String,
}

/// `{id}` of an outbox message.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct OutboxPath {
    /// The message's id (also its `webhook-id`).
    #[param(format = Uuid)]
    id: String,
}

/// `?limit=&after=` of every list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Items per page.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<u32>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
}

/// `?status=` of the event list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct EventStatusParam {
    /// Only events in this state (operators and admins; others see published events only).
    status: Option<domain::EventStatus>,
}

/// `?status=` of an event's registrations.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RegStatusParam {
    /// Only registrations in this state.
    status: Option<domain::RegStatus>,
}

/// `?state=` of the outbox list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct OutboxStateParam {
    /// Only messages in this state.
    state: Option<crate::app::OutboxState>,
}

/// `?actor=&action=` of the audit log.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuditParams {
    /// Rows by this actor (a token name, or `console`), exactly.
    #[param(max_length = 200)]
    actor: Option<String>,
    /// Rows of this action (`event.capacity`), or of every action of a noun (`event`).
    #[param(max_length = 200)]
    action: Option<String>,
    /// Rows about this target (an event, registration, attendee, token or webhook id), exactly.
    #[param(max_length = 200)]
    target: Option<String>,
    /// Rows at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Rows at or before this time (RFC 3339); not before `since`.
    #[param(format = DateTime)]
    until: Option<String>,
}

/// `{id}` of an API token.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct TokenPath {
    /// The token's id (never its secret).
    #[param(format = Uuid)]
    id: String,
}

/// `?status=` of the token list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TokenStatusParam {
    /// Only active or only revoked tokens.
    #[param(pattern = "^(active|revoked)$")]
    status: Option<String>,
}

/// The `Idempotency-Key` header of a creating write.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKey {
    /// Makes a retry safe: the first answer is stored for `idempotency.ttl_hours` per (token, key)
    /// and replayed byte for byte, with `Idempotent-Replayed: true`; the same key with another
    /// request is 422 `idempotency_key_reused`, a repeat while the first runs is 409
    /// `idempotency_key_in_flight`.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = r"^[\x21-\x7E]+$"
    )]
    idempotency_key: Option<String>,
}

// ----- finishing the document -----

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Adds to each operation what its shape implies (see the module comment), the security scheme, and
/// checks that each operation names its role. Panics on a handler whose attribute is incomplete:
/// the router is built at start and by every test, so such a handler never ships.
pub fn finish(doc: &mut Value) {
    let catalogue = problem::catalogue();
    let status_of: BTreeMap<&str, u16> = catalogue.iter().map(|(c, s, _)| (*c, *s)).collect();
    let meaning: BTreeMap<&str, &str> = catalogue.iter().map(|(c, _, m)| (*c, *m)).collect();

    let paths = doc["paths"]
        .as_object_mut()
        .expect("the document has paths");
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            let name = format!("{} {path}", method.to_uppercase());
            let role = op
                .get("x-required-role")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{name}: the handler must set x-required-role"))
                .to_string();
            let own: Vec<String> = match op.remove("x-problem-codes") {
                None => Vec::new(),
                Some(v) => serde_json::from_value(v)
                    .unwrap_or_else(|e| panic!("{name}: x-problem-codes: {e}")),
            };
            let params: Vec<(String, String)> = op
                .get("parameters")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            (
                                p["in"].as_str().unwrap_or("").to_string(),
                                p["name"].as_str().unwrap_or("").to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let has = |place: &str| params.iter().any(|(i, _)| i == place);
            let idempotent = params
                .iter()
                .any(|(i, n)| i == "header" && n == "Idempotency-Key");
            let body = op.contains_key("requestBody");
            let write = method != "get";
            let authenticates = role != "anyone"
                || op
                    .get("security")
                    .is_some_and(|s| s.to_string().contains(BEARER));

            let mut codes: Vec<&str> = vec![
                "rate_limited",
                "headers_too_large",
                "internal",
                "outcome_unknown",
                "storage_unavailable",
                "too_many_connections",
                "host_not_allowed",
            ];
            if authenticates {
                codes.push("unauthorized");
            }
            if role != "anyone" {
                codes.push("forbidden");
                op.insert("security".into(), json!([{ BEARER: [] }]));
            }
            if has("path") {
                codes.push("not_found");
            }
            if has("query") {
                codes.push("validation_failed");
            }
            if write {
                codes.extend([
                    "payload_too_large",
                    "unsupported_media_type",
                    "forbidden_origin",
                ]);
            }
            if body {
                codes.extend([
                    "bad_request",
                    "malformed_json",
                    "request_timeout",
                    "validation_failed",
                ]);
            }
            if idempotent {
                codes.extend([
                    "invalid_idempotency_key",
                    "idempotency_key_in_flight",
                    "idempotency_key_reused",
                    "attendee_erased",
                ]);
            }
            let own_refs: Vec<&str> = own.iter().map(String::as_str).collect();
            codes.extend(own_refs);

            let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
            for code in codes {
                let status = *status_of
                    .get(code)
                    .unwrap_or_else(|| panic!("{name}: {code} is not in problem::catalogue"));
                let list = by_status.entry(status).or_default();
                if !list.contains(&code) {
                    list.push(code);
                }
            }

            let responses = op
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses is an object");
            for (status, codes) in by_status {
                let generated = problem_response(status, &codes, &meaning);
                let key = status.to_string();
                match responses.get_mut(&key) {
                    // A handler that declares its own problem body for a status (e.g. /health's
                    // 503 with the checks) keeps it, beside the generic problems of that status.
                    Some(declared) => merge_problem(declared, &generated),
                    None => {
                        responses.insert(key, generated);
                    }
                }
            }
            for (status, response) in responses.iter_mut() {
                add_headers(response, status, idempotent);
            }

            let description = op
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let who = match role.as_str() {
                "anyone" => "Role: anyone, no token needed.".to_string(),
                r => format!(
                    "Role: `{r}` or above (roles nest: admin > operator > kiosk); without a token \
                     401, with a lesser role 403."
                ),
            };
            let description = if description.is_empty() {
                who
            } else {
                format!("{description}\n\n{who}")
            };
            op.insert("description".into(), Value::String(description));
        }
    }

    let components = doc
        .as_object_mut()
        .expect("the document is an object")
        .entry("components")
        .or_insert_with(|| json!({}));
    components["securitySchemes"] = json!({
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token: `boxoffice token create --role admin|operator|kiosk --name N`, \
                or the admin token written to `<data-dir>/admin.token` on the first start."
        }
    });
}

/// A problem response of `status` that carries one of `codes`.
fn problem_response(status: u16, codes: &[&str], meaning: &BTreeMap<&str, &str>) -> Value {
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let list = codes
        .iter()
        .map(|c| format!("- `{c}`: {}", meaning.get(c).copied().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("\n");
    // hyper answers an oversized head itself, before the router: no body, no request id.
    if status == 431 {
        return json!({
            "description": format!(
                "{reason}. Answered by the HTTP layer before the router, with no body: the request \
                 head is over `http.max_header_bytes` or `http.max_headers`."
            ),
        });
    }
    json!({
        "description": format!("{reason}. The problem `code` is one of:\n{list}"),
        "content": {
            problem::CONTENT_TYPE: { "schema": problem_schema(status, codes) }
        },
    })
}

fn problem_schema(status: u16, codes: &[&str]) -> Value {
    json!({
        "allOf": [
            { "$ref": "#/components/schemas/Problem" },
            {
                "type": "object",
                "properties": {
                    "status": { "const": status },
                    "code": { "type": "string", "enum": codes }
                }
            }
        ]
    })
}

/// Joins a handler's own problem body for a status with the generated one for that status.
fn merge_problem(declared: &mut Value, generated: &Value) {
    let Some(theirs) = generated["content"][problem::CONTENT_TYPE]["schema"].as_object() else {
        return;
    };
    let Some(content) = declared
        .get_mut("content")
        .and_then(|c| c.get_mut(problem::CONTENT_TYPE))
    else {
        return;
    };
    let own = content["schema"].take();
    content["schema"] = json!({ "anyOf": [own, Value::Object(theirs.clone())] });
    let extra = generated["description"].as_str().unwrap_or("");
    if let Some(d) = declared.get_mut("description") {
        *d = Value::String(format!("{}\n\n{extra}", d.as_str().unwrap_or("")));
    }
}

/// The headers every response carries, and those of particular answers.
fn add_headers(response: &mut Value, status: &str, idempotent: bool) {
    let Some(response) = response.as_object_mut() else {
        return;
    };
    let headers = response
        .entry("headers")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("headers is an object");
    let string = |description: &str, required: bool| json!({ "description": description, "required": required, "schema": { "type": "string" } });
    match status {
        "431" => {}
        // A connection over the cap is answered before a request exists: no request id then.
        "503" => {
            headers.insert(
                "x-request-id".into(),
                string("The request id, also in the logs and the audit log.", false),
            );
            headers.insert(
                "Retry-After".into(),
                json!({ "description": "Seconds to wait before retrying.", "required": false,
                        "schema": { "type": "integer", "minimum": 0 } }),
            );
        }
        _ => {
            headers.insert(
                "x-request-id".into(),
                string(
                    "The request id (the client's `x-request-id` if sane, else a fresh one), \
                     also in the logs and the audit log.",
                    true,
                ),
            );
        }
    }
    match status {
        "401" => {
            headers.insert(
                "WWW-Authenticate".into(),
                string("`Bearer`: the scheme to authenticate with.", true),
            );
        }
        "429" => {
            headers.insert(
                "Retry-After".into(),
                json!({ "description": "Seconds until a request will be admitted.", "required": true,
                        "schema": { "type": "integer", "minimum": 0 } }),
            );
            headers.insert(
                "RateLimit".into(),
                string("The remaining quota (IETF RateLimit header fields).", true),
            );
            headers.insert(
                "RateLimit-Policy".into(),
                string("The quota policy of this token or client.", true),
            );
        }
        s if idempotent && s.starts_with('2') => {
            headers.insert(
                "Idempotent-Replayed".into(),
                json!({ "description": "`true` when this is the stored answer to an earlier \
                                        request with the same Idempotency-Key.",
                        "required": false, "schema": { "type": "string", "enum": ["true"] } }),
            );
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Capacity, Event, EventId, EventStatus, OfferMinutes, Promotion, RegStatus, Registration,
        RegistrationId, TicketCode, Timestamp,
    };

    /// The property names and required names of a schema, against the keys a value serializes to.
    fn assert_shape<T: ToSchema + serde::Serialize>(value: &T) {
        let schema = serde_json::to_value(T::schema()).expect("schema");
        let keys: Vec<String> = serde_json::to_value(value)
            .expect("value")
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        let mut props: Vec<String> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .cloned()
            .collect();
        let mut required: Vec<String> =
            serde_json::from_value(schema["required"].clone()).expect("required");
        let mut keys_sorted = keys.clone();
        keys_sorted.sort();
        props.sort();
        required.sort();
        assert_eq!(props, keys_sorted, "{} properties", T::name());
        assert_eq!(required, keys_sorted, "{} required", T::name());
    }

    #[test]
    fn hand_written_schemas_match_what_serializes() {
        let t = Timestamp::from_millis(1_800_000_000_000);
        let event = Event {
            seq: 1,
            id: EventId::from_random([1; 16]),
            name: "Gala".into(),
            venue: "Hall".into(),
            description: String::new(),
            starts_at: t,
            ends_at: None,
            capacity: Capacity::parse(10).expect("valid"),
            status: EventStatus::Published,
            waitlist_enabled: true,
            promotion: Promotion::Direct,
            offer_minutes: OfferMinutes::DEFAULT,
            confirmed: 1,
            offered: 0,
            waitlisted: 0,
            checked_in: 0,
            promotions: 0,
            created_at: t,
            updated_at: t,
        };
        assert_shape(&event);
        let registration = Registration {
            seq: 1,
            id: RegistrationId::from_random([2; 16]),
            event_id: event.id,
            attendee_id: crate::domain::AttendeeId::from_random([3; 16]),
            status: RegStatus::Confirmed,
            position: None,
            offer_expires_at: None,
            ticket_code: Some(TicketCode::from_time_and_random(
                t.millis(),
                [4; TicketCode::RANDOM_BYTES],
            )),
            checked_in_at: None,
            created_at: t,
            updated_at: t,
            cancelled_at: None,
        };
        assert_shape(&registration);
        // The ticket code's pattern matches the display form.
        let shown = serde_json::to_value(&registration).expect("value")["ticket_code"]
            .as_str()
            .expect("code")
            .to_string();
        let ok = shown.len() == 34
            && shown.split('-').all(|g| {
                g.len() == 4
                    && g.bytes()
                        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
            });
        assert!(ok, "{shown}");
    }

    #[test]
    fn every_problem_code_has_one_status() {
        let all = problem::catalogue();
        let mut codes: Vec<&str> = all.iter().map(|(c, _, _)| *c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len(), "a code listed twice");
    }

    #[test]
    fn enum_values_parse_back() {
        for s in EVENT_STATUSES {
            assert_eq!(domain::EventStatus::parse(s).map(|v| v.as_str()), Some(s));
        }
        for s in REG_STATUSES {
            assert_eq!(domain::RegStatus::parse(s).map(|v| v.as_str()), Some(s));
        }
        for s in PROMOTIONS {
            assert_eq!(domain::Promotion::parse(s).map(|v| v.as_str()), Some(s));
        }
        for s in ROLES {
            assert_eq!(domain::Role::parse(s).map(|v| v.as_str()), Some(s));
        }
        for s in OUTBOX_STATES {
            assert_eq!(
                crate::app::OutboxState::parse(s).map(|v| v.as_str()),
                Some(s)
            );
        }
    }
}

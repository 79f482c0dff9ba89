//! Admin handlers for webhook subscriptions, the outbox and API tokens: `/api/v1/admin/webhooks[/{id}]`,
//! `/api/v1/admin/outbox[/{id}]`, `/api/v1/admin/outbox/{id}/retry`, `/api/v1/admin/tokens[/{id}]`.
//! Thin like the others: wire -> domain, one `App` call on the blocking pool, domain -> wire. Every
//! change is audited by the app.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::handlers::{call, must, query_problem, respond, Body, Caller, Ctx};
use super::openapi::{
    OutboxPath, OutboxStateParam, PageParams, TokenPath, TokenStatusParam, WebhookPath,
};
use super::problem::Problem;
use super::wire::{self, not_null, ListQuery, Whole};
use crate::app::{
    CreatedWebhook, NewWebhook, OutboxMessage, OutboxPage, OutboxState, Page, Webhook, WebhookPatch,
};
use crate::domain::{self, EventTypes, FieldError, Role, Timestamp, TokenId, WebhookUrl};

/// Distinguishes a field that is absent (leave it) from one that is `null` (clear it).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A new subscription. A missing or `null` optional field takes its default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// An `http` or `https` URL with a host, without credentials or a fragment.
    #[schema(format = Uri, max_length = 2048)]
    url: String,
    /// Default every type.
    #[serde(default)]
    #[schema(value_type = Option<domain::EventTypes>)]
    event_types: Option<Vec<String>>,
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    description: Option<String>,
    /// Default true; a disabled subscription's messages wait.
    #[serde(default)]
    enabled: Option<bool>,
    /// This subscription's delivery timeout, instead of `outbox.timeout_ms`.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 100, maximum = 60_000)]
    timeout_ms: Option<Whole>,
}

impl CreateWebhook {
    fn into_domain(self) -> Result<NewWebhook, Problem> {
        let mut errors = Vec::new();
        let url = WebhookUrl::parse(&self.url)
            .map_err(|e| errors.push(e))
            .ok();
        let event_types = EventTypes::parse(self.event_types.as_deref())
            .map_err(|e| errors.push(e))
            .ok();
        let description = domain::parse_description(self.description.as_deref().unwrap_or(""))
            .map_err(|e| errors.push(e))
            .ok();
        let timeout_ms = match self.timeout_ms {
            None => Some(None),
            Some(Whole(ms)) => domain::parse_timeout_ms(ms)
                .map(Some)
                .map_err(|e| errors.push(e))
                .ok(),
        };
        match (url, event_types, description, timeout_ms) {
            (Some(url), Some(event_types), Some(description), Some(timeout_ms)) => Ok(NewWebhook {
                url,
                event_types,
                description,
                enabled: self.enabled.unwrap_or(true),
                timeout_ms,
            }),
            _ => Err(Problem::invalid(errors)),
        }
    }
}

/// Changes to a subscription; `timeout_ms: null` returns it to `outbox.timeout_ms`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhook {
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, required = false, format = Uri, max_length = 2048)]
    url: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = domain::EventTypes, required = false)]
    event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, required = false, max_length = 500, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    description: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = bool, required = false)]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, required = false, minimum = 100, maximum = 60_000)]
    timeout_ms: Option<Option<Whole>>,
}

impl PatchWebhook {
    fn into_domain(self) -> Result<WebhookPatch, Problem> {
        let mut errors: Vec<FieldError> = Vec::new();
        let mut patch = WebhookPatch {
            enabled: self.enabled,
            ..WebhookPatch::default()
        };
        if let Some(u) = &self.url {
            match WebhookUrl::parse(u) {
                Ok(u) => patch.url = Some(u),
                Err(e) => errors.push(e),
            }
        }
        if let Some(t) = &self.event_types {
            match EventTypes::parse(Some(t)) {
                Ok(t) => patch.event_types = Some(t),
                Err(e) => errors.push(e),
            }
        }
        if let Some(d) = &self.description {
            match domain::parse_description(d) {
                Ok(d) => patch.description = Some(d),
                Err(e) => errors.push(e),
            }
        }
        match self.timeout_ms {
            None => {}
            Some(None) => patch.timeout_ms = Some(None),
            Some(Some(Whole(ms))) => match domain::parse_timeout_ms(ms) {
                Ok(ms) => patch.timeout_ms = Some(Some(ms)),
                Err(e) => errors.push(e),
            },
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(Problem::invalid(errors))
        }
    }
}

/// `?limit=&after=&state=` of the outbox list.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    limit: Option<String>,
    after: Option<String>,
    state: Option<String>,
}

/// Webhook and outbox ids are UUIDs; anything else cannot name one.
fn uuid_id(s: &str, what: &str) -> Result<String, Problem> {
    match uuid::Uuid::try_parse(s) {
        Ok(u) if s.len() == 36 => Ok(u.as_hyphenated().to_string()),
        _ => Err(Problem::not_found(what)),
    }
}

type Q<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// List webhook subscriptions
///
/// In creation order, never with their secrets.
#[utoipa::path(get, path = "/api/v1/admin/webhooks", tag = "admin", params(PageParams),
    responses((status = 200, description = "A page of subscriptions", body = Page<Webhook>)),
    extensions(("x-required-role" = json!("admin"))))]
pub async fn list_webhooks(State(ctx): State<Ctx>, caller: Caller, q: Q<ListQuery>) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, _| {
        let Query(q) = q.map_err(query_problem)?;
        if q.status.is_some() {
            return Err(Problem::invalid(vec![FieldError::new(
                "status",
                "webhooks have no status filter",
            )]));
        }
        Ok(app.list_webhooks(&q.page()?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Create a webhook subscription
///
/// It receives what is recorded from now on. The answer carries the signing `secret`, shown this once.
#[utoipa::path(post, path = "/api/v1/admin/webhooks", tag = "admin", request_body = CreateWebhook,
    responses((status = 201, description = "Created, with its secret", body = CreatedWebhook,
        links(("get_webhook" = (operation_id = "get_webhook", parameters(("id" = "$response.body#/id")))), ("update_webhook" = (operation_id = "update_webhook", parameters(("id" = "$response.body#/id")))), ("delete_webhook" = (operation_id = "delete_webhook", parameters(("id" = "$response.body#/id"))))))),
    extensions(("x-required-role" = json!("admin"))))]
pub async fn create_webhook(State(ctx): State<Ctx>, caller: Caller, Body(body): Body) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        let new = wire::parse::<CreateWebhook>(&body)?.into_domain()?;
        Ok(app.create_webhook(&must(actor)?, new)?)
    })
    .await;
    respond(StatusCode::CREATED, r)
}

/// One webhook subscription
#[utoipa::path(get, path = "/api/v1/admin/webhooks/{id}", tag = "admin", params(WebhookPath),
    responses((status = 200, description = "The subscription, without its secret", body = Webhook)),
    extensions(("x-required-role" = json!("admin"))))]
pub async fn get_webhook(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, _| {
        Ok(app.get_webhook(&uuid_id(&id, "webhook")?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Change a webhook subscription
#[utoipa::path(patch, path = "/api/v1/admin/webhooks/{id}", tag = "admin", params(WebhookPath),
    request_body = PatchWebhook,
    responses((status = 200, description = "The subscription as changed", body = Webhook)),
    extensions(("x-required-role" = json!("admin"))))]
pub async fn update_webhook(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        let id = uuid_id(&id, "webhook")?;
        let patch = wire::parse::<PatchWebhook>(&body)?.into_domain()?;
        Ok(app.update_webhook(&must(actor)?, &id, patch)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Delete a webhook subscription
///
/// What was still pending for it is dropped.
#[utoipa::path(delete, path = "/api/v1/admin/webhooks/{id}", tag = "admin", params(WebhookPath),
    responses((status = 204, description = "Deleted")),
    extensions(("x-required-role" = json!("admin"))))]
pub async fn delete_webhook(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        let id = uuid_id(&id, "webhook")?;
        Ok(app.delete_webhook(&must(actor)?, &id)?)
    })
    .await;
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(p) => p.into_response(),
    }
}

/// List outbox messages
///
/// In outbox order, with attempts, the last error and per-endpoint deliveries, and a `summary` of
/// the processor's counters.
#[utoipa::path(get, path = "/api/v1/admin/outbox", tag = "admin", params(OutboxStateParam, PageParams),
    responses((status = 200, description = "A page of messages", body = OutboxPage)),
    extensions(("x-required-role" = json!("admin"))))]
pub async fn list_outbox(State(ctx): State<Ctx>, caller: Caller, q: Q<OutboxQuery>) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, _| {
        let Query(q) = q.map_err(query_problem)?;
        let state = match &q.state {
            None => None,
            Some(s) => Some(OutboxState::parse(s).ok_or_else(|| {
                Problem::invalid(vec![FieldError::new(
                    "state",
                    "must be pending, delivered or dead",
                )])
            })?),
        };
        let page = ListQuery {
            limit: q.limit,
            after: q.after,
            status: None,
        }
        .page()?;
        Ok(app.list_outbox(state, &page)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// One outbox message
#[utoipa::path(get, path = "/api/v1/admin/outbox/{id}", tag = "admin", params(OutboxPath),
    responses((status = 200, description = "The message", body = OutboxMessage)),
    extensions(("x-required-role" = json!("admin"))))]
pub async fn get_outbox_message(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, _| {
        Ok(app.get_outbox_message(&uuid_id(&id, "outbox message")?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Retry a dead outbox message
///
/// Sends a dead message back to pending for the endpoints that gave up on it.
#[utoipa::path(post, path = "/api/v1/admin/outbox/{id}/retry", tag = "admin", params(OutboxPath),
    responses((status = 200, description = "The message, pending again", body = OutboxMessage)),
    extensions(("x-required-role" = json!("admin")), ("x-problem-codes" = json!(["invalid_transition"]))))]
pub async fn retry_outbox_message(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        let id = uuid_id(&id, "outbox message")?;
        Ok(app.retry_outbox_message(&must(actor)?, &id)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

// ----- tokens -----

/// `POST /api/v1/admin/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A name for people and the audit log, unique among active tokens.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[schema(value_type = Role)]
    role: String,
}

/// A token as created: its secret, `token`, is in this answer and nowhere else, ever.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    id: TokenId,
    name: String,
    role: Role,
    created_at: Timestamp,
    token: String,
}

/// List API tokens
///
/// In the order they were made, never a secret.
#[utoipa::path(get, path = "/api/v1/admin/tokens", tag = "admin", params(TokenStatusParam, PageParams),
    responses((status = 200, description = "A page of tokens", body = Page<crate::store::tokens::Token>)),
    extensions(("x-required-role" = json!("admin"))))]
pub async fn list_tokens(State(ctx): State<Ctx>, caller: Caller, q: Q<ListQuery>) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, _| {
        let Query(q) = q.map_err(query_problem)?;
        let revoked = match q.status.as_deref() {
            None => None,
            Some("active") => Some(false),
            Some("revoked") => Some(true),
            Some(_) => {
                return Err(Problem::invalid(vec![FieldError::new(
                    "status",
                    "must be active or revoked",
                )]))
            }
        };
        Ok(app.tokens_page(revoked, &q.page()?)?)
    })
    .await;
    respond(StatusCode::OK, r)
}

/// Create an API token
///
/// The answer carries the secret, `token`, this once; the box keeps only its hash.
#[utoipa::path(post, path = "/api/v1/admin/tokens", tag = "admin", request_body = CreateToken,
    responses((status = 201, description = "Created, with its secret", body = CreatedToken,
        links(("revoke_token" = (operation_id = "revoke_token", parameters(("id" = "$response.body#/id"))))))),
    extensions(("x-required-role" = json!("admin")), ("x-problem-codes" = json!(["token_name_taken"]))))]
pub async fn create_token(State(ctx): State<Ctx>, caller: Caller, Body(body): Body) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        let req = wire::parse::<CreateToken>(&body)?;
        let role = Role::parse(&req.role).ok_or_else(|| {
            Problem::invalid(vec![FieldError::new(
                "role",
                "must be admin, operator or kiosk",
            )])
        })?;
        let made = app.create_token(&must(actor)?, role, &req.name)?;
        Ok(CreatedToken {
            id: made.token.id,
            name: made.token.name,
            role: made.token.role,
            created_at: made.token.created_at,
            token: made.secret,
        })
    })
    .await;
    respond(StatusCode::CREATED, r)
}

/// Revoke an API token
///
/// Refused from the very next request on; a token already revoked answers 204 again. The last active
/// admin token cannot be revoked (409 `last_admin_token`), so the box cannot lock itself out.
#[utoipa::path(delete, path = "/api/v1/admin/tokens/{id}", tag = "admin", params(TokenPath),
    responses((status = 204, description = "Revoked")),
    extensions(("x-required-role" = json!("admin")), ("x-problem-codes" = json!(["last_admin_token"]))))]
pub async fn revoke_token(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        let id = TokenId::parse(&id).ok_or_else(|| Problem::not_found("token"))?;
        app.revoke_token_id(&must(actor)?, id)?;
        Ok(())
    })
    .await;
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(p) => p.into_response(),
    }
}

//! Admin handlers for webhook subscriptions, the outbox and API tokens: `/api/v1/admin/webhooks[/{id}]`,
//! `/api/v1/admin/outbox[/{id}]`, `/api/v1/admin/outbox/{id}/retry`, `/api/v1/admin/tokens[/{id}]`.
//! Thin like the others: wire -> domain, one `App` call on the blocking pool, domain -> wire. Every
//! change is audited by the app.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::handlers::{call, must, respond, Body, Caller, Ctx};
use super::problem::Problem;
use super::wire::{self, ListQuery};
use crate::app::{NewWebhook, OutboxState, WebhookPatch};
use crate::domain::{self, EventTypes, FieldError, Role, Timestamp, TokenId, WebhookUrl};

/// Distinguishes a field that is absent (leave it) from one that is `null` (clear it).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWebhook {
    url: String,
    #[serde(default)]
    event_types: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    timeout_ms: Option<i64>,
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
            Some(ms) => domain::parse_timeout_ms(ms)
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchWebhook {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    event_types: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    timeout_ms: Option<Option<i64>>,
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
            Some(Some(ms)) => match domain::parse_timeout_ms(ms) {
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

fn query_problem(e: axum::extract::rejection::QueryRejection) -> Problem {
    Problem::invalid(vec![FieldError::new("query", e.body_text())])
}

type Q<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

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

pub async fn create_webhook(State(ctx): State<Ctx>, caller: Caller, Body(body): Body) -> Response {
    let r = call(&ctx, caller, Some(Role::Admin), move |app, actor| {
        let new = wire::parse::<CreateWebhook>(&body)?.into_domain()?;
        Ok(app.create_webhook(&must(actor)?, new)?)
    })
    .await;
    respond(StatusCode::CREATED, r)
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    role: String,
}

/// A token as created: its secret, `token`, is in this answer and nowhere else, ever.
#[derive(Serialize)]
struct CreatedToken {
    id: TokenId,
    name: String,
    role: Role,
    created_at: Timestamp,
    token: String,
}

/// `GET /api/v1/admin/tokens?status=active|revoked&limit=&after=`: in the order they were made,
/// never a secret.
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

/// `POST /api/v1/admin/tokens` `{"name", "role"}` -> 201 with the secret, shown this once.
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

/// `DELETE /api/v1/admin/tokens/{id}`: revokes at once (204), also for a token already revoked;
/// 404 for an unknown id; 409 `last_admin_token` for the only active admin token.
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

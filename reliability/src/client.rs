//! A small JSON client for the box's API over reqwest, and the setup steps every item shares
//! (events, attendees, a webhook subscription). Transport failures (refused, reset, timed out) are
//! `Err`; any HTTP answer is `Ok` with its status, so callers decide what an answer means.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// One HTTP answer: status, content type and the body parsed as JSON (`Null` when it is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A problem document (RFC 9457) with this status, as every error answer must be.
    pub fn is_problem(&self, status: u16) -> bool {
        self.status == status
            && self.content_type == "application/problem+json"
            && self.body["code"].is_string()
    }

    pub fn str(&self, key: &str) -> Option<String> {
        self.body[key].as_str().map(str::to_string)
    }
}

/// The API of one server, with a bearer token.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// A client with its own connection pool and a per-request timeout.
    pub fn new(base: &str, token: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .build()
            .context("build the HTTP client")?;
        Ok(Self {
            client,
            base: base.to_string(),
            token: token.to_string(),
        })
    }

    /// The same API with this process-wide pool but a different base (a restarted server).
    pub fn with_base(&self, base: &str) -> Self {
        Self {
            base: base.to_string(),
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        read(r).await
    }

    /// An anonymous GET (no token), as monitoring calls `/health`.
    pub async fn get_anonymous(&self, path: &str) -> anyhow::Result<Answer> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await?;
        read(r).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Answer> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        read(r).await
    }

    /// Creates and publishes an event of this capacity; returns its id.
    pub async fn published_event(&self, name: &str, capacity: u64) -> anyhow::Result<String> {
        let a = self
            .post(
                "/api/v1/events",
                json!({"name": name, "venue": "Reliability Hall", "starts_at": "2030-01-01T20:00:00Z", "capacity": capacity}),
            )
            .await?;
        if a.status != 201 {
            bail!("create event: {} {}", a.status, a.body);
        }
        let id = a.str("id").context("event id")?;
        let p = self
            .post(&format!("/api/v1/events/{id}/publish"), json!({}))
            .await?;
        if p.status != 200 {
            bail!("publish event: {} {}", p.status, p.body);
        }
        Ok(id)
    }

    /// Creates an attendee with a unique email; returns the answer (201 with its id on success).
    pub async fn new_attendee(&self, tag: &str, n: u64) -> anyhow::Result<Answer> {
        self.post(
            "/api/v1/attendees",
            json!({"name": format!("{tag} {n}"), "email": format!("{tag}-{n}@reliability.example")}),
        )
        .await
    }

    pub async fn register(&self, event: &str, attendee: &str) -> anyhow::Result<Answer> {
        self.post(
            &format!("/api/v1/events/{event}/registrations"),
            json!({"attendee_id": attendee}),
        )
        .await
    }

    pub async fn cancel(&self, registration: &str) -> anyhow::Result<Answer> {
        self.post(
            &format!("/api/v1/registrations/{registration}/cancel"),
            json!({}),
        )
        .await
    }

    pub async fn check_in(&self, ticket_code: &str) -> anyhow::Result<Answer> {
        self.post("/api/v1/checkins", json!({"ticket_code": ticket_code}))
            .await
    }

    /// Subscribes `url` to every event type; returns the subscription id.
    pub async fn subscribe(&self, url: &str) -> anyhow::Result<String> {
        let a = self
            .post("/api/v1/admin/webhooks", json!({"url": url}))
            .await?;
        if a.status != 201 {
            bail!("create webhook: {} {}", a.status, a.body);
        }
        a.str("id").context("webhook id")
    }

    /// Every outbox message, in outbox order, as (id, aggregate_id, type, state).
    pub async fn outbox(&self) -> anyhow::Result<Vec<OutboxRow>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(c) => format!("/api/v1/admin/outbox?limit=500&after={c}"),
                None => "/api/v1/admin/outbox?limit=500".to_string(),
            };
            let a = self.get(&path).await?;
            if a.status != 200 {
                bail!("outbox list: {} {}", a.status, a.body);
            }
            for m in a.body["items"].as_array().context("outbox items")? {
                out.push(OutboxRow {
                    id: m["id"].as_str().unwrap_or_default().to_string(),
                    aggregate_id: m["aggregate_id"].as_str().unwrap_or_default().to_string(),
                    kind: m["type"].as_str().unwrap_or_default().to_string(),
                    state: m["state"].as_str().unwrap_or_default().to_string(),
                });
            }
            match a.body["next"].as_str() {
                Some(c) => after = Some(c.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// Pending outbox messages, from `/health`'s outbox snapshot.
    pub async fn outbox_pending(&self) -> anyhow::Result<u64> {
        let a = self.get_anonymous("/health").await?;
        a.body["outbox"]["pending_count"]
            .as_u64()
            .with_context(|| format!("no outbox.pending_count in /health: {}", a.body))
    }

    /// Waits until the outbox has nothing pending, up to `limit`; returns whether it drained.
    pub async fn wait_outbox_drained(&self, limit: Duration) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Ok(0) = self.outbox_pending().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }
}

/// One outbox message as the admin list shows it.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    pub aggregate_id: String,
    pub kind: String,
    pub state: String,
}

async fn read(r: reqwest::Response) -> anyhow::Result<Answer> {
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = r.bytes().await?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

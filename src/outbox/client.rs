//! The HTTP side of a delivery, behind a small trait so the loop does not care how bytes travel.
//! `HttpClient` is the real one: reqwest over rustls (no system OpenSSL), no redirects followed, a
//! timeout per request, keep-alive connections pooled per endpoint.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// One signed delivery, ready to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub url: String,
    /// `webhook-id`: the outbox message id, the same on every attempt.
    pub id: String,
    /// `webhook-timestamp`: unix seconds when this attempt was signed.
    pub timestamp: i64,
    pub signature: String,
    pub body: String,
    pub timeout: Duration,
}

/// Why a delivery did not count as received: the receiver's status (non-2xx) or a transport error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: Option<u16>,
    pub error: String,
}

pub type Sent<'a> = Pin<Box<dyn Future<Output = Result<u16, Failure>> + Send + 'a>>;

/// Sends one delivery; `Ok(status)` only for a 2xx answer.
pub trait WebhookClient: Send + Sync {
    fn post(&self, req: Request) -> Sent<'_>;
}

/// Bytes of a failing receiver's answer kept in `last_error`, enough to see what it said.
const ERROR_BODY_BYTES: usize = 300;

#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    pub fn new() -> Result<Self, String> {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("boxoffice-webhooks/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("building the webhook HTTP client: {e}"))?;
        Ok(Self { inner })
    }
}

/// An error and its causes on one line: reqwest's own message rarely says "connection refused".
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl WebhookClient for HttpClient {
    fn post(&self, req: Request) -> Sent<'_> {
        Box::pin(async move {
            let timeout = req.timeout;
            let sent = self
                .inner
                .post(&req.url)
                .timeout(timeout)
                .header("content-type", "application/json")
                .header("webhook-id", &req.id)
                .header("webhook-timestamp", req.timestamp.to_string())
                .header("webhook-signature", &req.signature)
                .body(req.body)
                .send()
                .await;
            let mut resp = match sent {
                Ok(r) => r,
                Err(e) if e.is_timeout() => {
                    return Err(Failure {
                        status: None,
                        error: format!("timed out after {} ms", timeout.as_millis()),
                    })
                }
                Err(e) => {
                    return Err(Failure {
                        status: None,
                        error: chain(&e),
                    })
                }
            };
            let status = resp.status().as_u16();
            // Read a little of the answer: all of a small one keeps the connection reusable, and a
            // failing receiver's words go into last_error.
            let mut said = Vec::new();
            while said.len() < ERROR_BODY_BYTES {
                match resp.chunk().await {
                    Ok(Some(c)) => said.extend_from_slice(&c),
                    _ => break,
                }
            }
            if resp.status().is_success() {
                return Ok(status);
            }
            said.truncate(ERROR_BODY_BYTES);
            let said = String::from_utf8_lossy(&said);
            let said = said.trim();
            Err(Failure {
                status: Some(status),
                error: if said.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {said}")
                },
            })
        })
    }
}

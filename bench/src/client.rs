//! One keep-alive HTTP/1.1 connection to the server under test, driven with hyper's low-level client.
//!
//! The benchmark uses bare connections rather than a pooled client so that the number of open
//! connections is exactly what the user asked for, and so nothing between the clock and the socket
//! (pool checkout, retries, redirects) is measured as server latency.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the server listens and how to authenticate; cheap to clone into every connection task.
#[derive(Clone)]
pub struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    bearer: Option<HeaderValue>,
}

impl Target {
    /// A target without credentials, as an anonymous caller sees the server.
    pub fn anonymous(addr: SocketAddr) -> anyhow::Result<Self> {
        let host =
            HeaderValue::from_str(&addr.to_string()).context("socket address as Host header")?;
        Ok(Self {
            addr,
            host,
            bearer: None,
        })
    }

    /// The same target, sending `Authorization: Bearer TOKEN` on every request.
    pub fn with_token(&self, token: &str) -> anyhow::Result<Self> {
        let mut bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("token is not a valid header value")?;
        // Keeps the secret out of any debug output hyper might produce.
        bearer.set_sensitive(true);
        Ok(Self {
            bearer: Some(bearer),
            ..self.clone()
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens one connection with Nagle's algorithm off: requests are small and each is sent whole,
    /// so delaying them for coalescing would only add latency.
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connect to {}", self.addr))?;
        stream.set_nodelay(true).context("set TCP_NODELAY")?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        // The connection future does the actual socket IO; it ends when `sender` is dropped or the
        // server closes the connection, and a failure then surfaces on the next `send`.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn {
            target: self.clone(),
            sender,
        })
    }
}

/// A request to send: built before the clock starts, so the benchmark measures the server.
#[derive(Clone)]
pub struct Call {
    pub method: Method,
    pub path: Arc<str>,
    /// A JSON body; sent with `Content-Type: application/json`, as the server requires on writes.
    pub body: Option<Bytes>,
    /// The status this call must get when it differs from its phase's (a mixed phase sends reads
    /// answered 200 and sales answered 201).
    pub expect: Option<StatusCode>,
}

impl Call {
    pub fn get(path: impl Into<Arc<str>>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            body: None,
            expect: None,
        }
    }

    pub fn post(path: impl Into<Arc<str>>, body: Option<Bytes>) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            body,
            expect: None,
        }
    }

    /// The same call, counted as a success only when answered `status`.
    pub fn expecting(self, status: StatusCode) -> Self {
        Self {
            expect: Some(status),
            ..self
        }
    }
}

/// A complete response: the status and the whole body, read to the end.
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// The body as text for error messages, cut short so one huge page cannot flood the terminal.
    pub fn body_text(&self) -> String {
        const LIMIT: usize = 500;
        let text = String::from_utf8_lossy(&self.body);
        match text.char_indices().nth(LIMIT) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text.into_owned(),
        }
    }

    /// Parses the body as JSON into `T`, naming the status in the error.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("parse {} response body: {}", self.status, self.body_text()))
    }

    /// Fails unless the status is `want`, showing what the server said instead.
    pub fn expect(self, want: StatusCode, what: &str) -> anyhow::Result<Self> {
        if self.status == want {
            Ok(self)
        } else {
            anyhow::bail!(
                "{what}: expected {want}, got {}: {}",
                self.status,
                self.body_text()
            )
        }
    }
}

/// One open connection; requests on it are sent one after another, never pipelined.
pub struct Conn {
    target: Target,
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Sends `call` and reads the whole response body.
    pub async fn send(&mut self, call: &Call) -> anyhow::Result<Reply> {
        let mut req = Request::builder()
            .method(call.method.clone())
            .uri(&*call.path);
        let headers = req
            .headers_mut()
            .context("request builder rejected the method or path")?;
        // HTTP/1.1 requires Host; hyper's low-level client does not add it.
        headers.insert(HOST, self.target.host.clone());
        if let Some(bearer) = &self.target.bearer {
            headers.insert(AUTHORIZATION, bearer.clone());
        }
        if call.body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let req = req
            .body(Full::new(call.body.clone().unwrap_or_default()))
            .with_context(|| format!("build request {} {}", call.method, call.path))?;

        self.sender.ready().await.context("connection closed")?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .context("send request")?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("read response body")?
            .to_bytes();
        Ok(Reply { status, body })
    }
}

//! The accept loop: hyper's HTTP/1 connection driver under our own limits. axum's `serve` hides the
//! knobs a box on a venue's network needs: a cap on open connections (one over the cap is answered 503
//! and closed, so the accept queue keeps moving), a bound on the request head (431), a header read
//! timeout that also closes idle keep-alive connections (slowloris), and an accept loop that survives
//! running out of file descriptors instead of stopping for good. A write that makes no progress for
//! `http.write_timeout_secs` closes the connection, so clients that never read cannot hold slots.
//! An address that keeps sending what has to be refused is banned for a while (see `bans`), and no
//! address may hold more than its share of the slots (`http.max_connections_per_address`): one
//! client opening connections and leaving them idle cannot shut out the others.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use super::bans::{is_strike, Bans};
use crate::app::App;
use crate::config::HttpConfig;
use crate::metrics::Refused;
use axum::http::HeaderValue;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// The answer to a connection over a cap, written raw: the connection never reaches hyper.
fn over_capacity_response(detail: &str) -> Vec<u8> {
    let body = super::problem::Problem::new(
        hyper::StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "Too many connections",
        detail,
    )
    .to_bytes();
    let mut out = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\nx-content-type-options: nosniff\r\n\
         cache-control: no-store\r\ncontent-security-policy: {}\r\nx-frame-options: DENY\r\n\r\n",
        body.len(),
        super::CONTENT_SECURITY_POLICY,
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The connections each client address holds, against the cap for one address. Addresses are
/// counted as the rate limits and bans count them (IPv6 per /64).
struct AddressSlots {
    held: Mutex<HashMap<IpAddr, usize>>,
    cap: usize,
}

/// One connection counted against its address; the count goes down when it is dropped.
struct AddressSlot {
    slots: Arc<AddressSlots>,
    ip: IpAddr,
}

impl AddressSlots {
    /// A slot for one more connection from `ip`, or `None` when it holds `cap` already.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            // Addresses come and go: only those holding a connection stay in the map.
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// Refused connections answered at once, at most: each holds its descriptor for up to two seconds
/// while its 503 is written and the request drained, so a client reconnecting as fast as it can
/// must not turn refusals into a way to use up the process's open files. Beyond them a refused
/// connection is closed unanswered.
const MAX_REFUSING: usize = 64;

/// Answers `stream` with `response` (a 503) on a task of its own when fewer than `MAX_REFUSING`
/// are being answered; otherwise closes it at once.
fn refuse_within(
    refusing: &Arc<Semaphore>,
    stream: tokio::net::TcpStream,
    response: &Arc<Vec<u8>>,
) {
    let Ok(turn) = refusing.clone().try_acquire_owned() else {
        drop(stream);
        return;
    };
    let response = response.clone();
    tokio::spawn(async move {
        refuse(stream, response).await;
        drop(turn);
    });
}

/// Answers 503 and closes without waiting on the client: the request is drained briefly first, so
/// the close does not reset the connection before the client has read the answer.
async fn refuse(mut stream: tokio::net::TcpStream, response: Arc<Vec<u8>>) {
    use tokio::io::AsyncReadExt;
    let bounded = Duration::from_secs(1);
    let _ = tokio::time::timeout(bounded, stream.write_all(&response)).await;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(bounded, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish (up to the grace period) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    router: Router,
    cfg: &HttpConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let metrics = app.shared_metrics();
    let bans = Arc::new(Bans::new(app, cfg));
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(cfg.header_read_timeout_secs))
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .max_headers(cfg.max_headers)
        .keep_alive(true);
    let http = Arc::new(http);
    let over_capacity = Arc::new(over_capacity_response(
        "the box is serving as many connections as it is configured for; retry shortly",
    ));
    let address_full = Arc::new(over_capacity_response(
        "this address holds as many open connections as one address may \
         (http.max_connections_per_address); close idle ones or retry shortly",
    ));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let per_address = Arc::new(AddressSlots {
        held: Mutex::default(),
        cap: cfg.per_address_cap(),
    });
    let write_timeout = Duration::from_secs(cfg.write_timeout_secs);
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE/ENFILE and friends: wait for descriptors to free up, keep accepting.
                    tracing::warn!(error = %e, "accept failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if bans.banned(peer.ip()) {
            // Closed unread: the cheapest answer to an address that kept breaking the protocol.
            drop(stream);
            metrics.record_refused_connection(Refused::Banned);
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.record_refused_connection(Refused::OverCapacity);
            refuse_within(&refusing, stream, &over_capacity);
            continue;
        };
        // There is room, but not for this address: it holds its share already.
        let Some(address_slot) = per_address.take(super::ratelimit::ip_key(peer.ip())) else {
            drop(permit);
            metrics.record_refused_connection(Refused::AddressFull);
            refuse_within(&refusing, stream, &address_full);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let http = http.clone();
        let mut stop = stop_rx.clone();
        let bans = bans.clone();
        tokio::spawn(async move {
            let strikes = bans.clone();
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                let answer = router.clone().oneshot(req);
                let strikes = strikes.clone();
                async move {
                    let mut resp = answer.await?;
                    // Banned now, by this answer's strike or one on another of the address's
                    // connections: this answer is the last on this connection.
                    let banned = if is_strike(&resp) {
                        strikes.strike(peer.ip())
                    } else {
                        strikes.banned(peer.ip())
                    };
                    if banned {
                        resp.headers_mut()
                            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            // A client that stops reading its responses would hold its slot for good: a write that
            // makes no progress for `write_timeout` ends the connection.
            let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
            stream.set_write_timeout(Some(write_timeout));
            let conn = http.serve_connection(TokioIo::new(Box::pin(stream)), service);
            tokio::pin!(conn);
            tokio::select! {
                ended = conn.as_mut() => {
                    // A head hyper refused (over the bounds, or not HTTP): it answered 431 or 400.
                    if ended.is_err_and(|e| e.is_parse() || e.is_parse_too_large()) {
                        bans.strike(peer.ip());
                    }
                }
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop((permit, address_slot));
        });
    }

    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(cfg.max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(
        Duration::from_secs(cfg.shutdown_grace_secs),
        slots.acquire_many(all),
    )
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown grace period over; closing the remaining connections");
    }
    Ok(())
}

//! A real webhook receiver on loopback: hyper on 127.0.0.1, recording every delivery's `webhook-id`
//! in arrival order. It can go down and come back on the same port, two ways: answering 503 to
//! every delivery, or not listening at all (connections refused, open ones closed).
//!
//! `verify` compares what arrived with the box's outbox (read through the admin API after the
//! fact): every message arrived (none lost), and per aggregate the first arrivals came in outbox
//! order (repeats of an earlier message are allowed: delivery is at least once).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::client::OutboxRow;

#[derive(Default)]
struct Log {
    /// Every accepted delivery's id, in arrival order (repeats included).
    arrivals: Vec<String>,
}

/// The receiver; `Drop` stops it.
pub struct Receiver {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    failing: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    accept: Option<tokio::task::JoinHandle<()>>,
    /// Tells open connections to close when the receiver stops listening.
    close: watch::Sender<u64>,
}

/// What the comparison with the outbox found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    pub outbox_messages: usize,
    pub deliveries: usize,
    pub distinct_delivered: usize,
    /// Outbox messages that never arrived.
    pub lost: usize,
    /// Aggregates whose messages first arrived out of outbox order.
    pub out_of_order: usize,
    /// Aggregates with two messages or more: the ones whose order could break.
    pub multi_message_aggregates: usize,
    pub examples: Vec<String>,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the webhook receiver")?;
        let addr = listener.local_addr()?;
        let (close, _) = watch::channel(0u64);
        let mut r = Self {
            addr,
            log: Arc::default(),
            failing: Arc::default(),
            refused: Arc::default(),
            accept: None,
            close,
        };
        r.spawn_accept(listener);
        Ok(r)
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers 503 to every delivery while `failing` (the connection stays up).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Stops listening: new connections are refused, open ones are closed.
    pub fn stop_listening(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
        }
        self.close.send_modify(|n| *n += 1);
    }

    /// Listens again on the same port.
    pub async fn resume_listening(&mut self) -> anyhow::Result<()> {
        if self.accept.is_some() {
            return Ok(());
        }
        // The aborted accept task drops its listener asynchronously: retry the bind briefly.
        let mut last = None;
        for _ in 0..100 {
            match TcpListener::bind(self.addr).await {
                Ok(l) => {
                    self.spawn_accept(l);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Err(last
            .map(anyhow::Error::from)
            .unwrap_or_else(|| anyhow::anyhow!("cannot listen on {} again", self.addr)))
    }

    /// Deliveries answered 503 while failing.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn arrivals(&self) -> Vec<String> {
        self.log
            .lock()
            .map(|l| l.arrivals.clone())
            .unwrap_or_default()
    }

    fn spawn_accept(&mut self, listener: TcpListener) {
        let (log, failing, refused) =
            (self.log.clone(), self.failing.clone(), self.refused.clone());
        let close = self.close.subscribe();
        self.accept = Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let (log, failing, refused) = (log.clone(), failing.clone(), refused.clone());
                let mut close = close.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (log, failing, refused) =
                                (log.clone(), failing.clone(), refused.clone());
                            async move {
                                let id = req
                                    .headers()
                                    .get("webhook-id")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_string();
                                // The whole body is read before answering, as a real receiver would.
                                let _ = req.into_body().collect().await;
                                let status = if failing.load(Ordering::SeqCst) {
                                    refused.fetch_add(1, Ordering::Relaxed);
                                    StatusCode::SERVICE_UNAVAILABLE
                                } else {
                                    if let Ok(mut l) = log.lock() {
                                        l.arrivals.push(id);
                                    }
                                    StatusCode::OK
                                };
                                let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                                *resp.status_mut() = status;
                                Ok::<_, Infallible>(resp)
                            }
                        });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = close.changed() => {}
                    }
                });
            }
        }));
    }

    /// Compares the arrivals with `outbox` (every message the box recorded since the subscription,
    /// in outbox order).
    pub fn verify(&self, outbox: &[OutboxRow]) -> Verdict {
        compare(&self.arrivals(), outbox)
    }
}

/// Every outbox message must be among `arrivals`, and per aggregate the first arrivals must follow
/// outbox order.
pub fn compare(arrivals: &[String], outbox: &[OutboxRow]) -> Verdict {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, id) in arrivals.iter().enumerate() {
        first.entry(id.as_str()).or_insert(i);
    }
    let mut v = Verdict {
        outbox_messages: outbox.len(),
        deliveries: arrivals.len(),
        distinct_delivered: first.len(),
        ..Verdict::default()
    };
    let mut per_aggregate: HashMap<&str, usize> = HashMap::new();
    for m in outbox {
        *per_aggregate.entry(m.aggregate_id.as_str()).or_default() += 1;
    }
    v.multi_message_aggregates = per_aggregate.values().filter(|n| **n > 1).count();
    let mut last_per_aggregate: HashMap<&str, usize> = HashMap::new();
    let mut disordered: HashSet<&str> = HashSet::new();
    for m in outbox {
        match first.get(m.id.as_str()) {
            None => {
                v.lost += 1;
                if v.examples.len() < 5 {
                    v.examples
                        .push(format!("lost {} {} of {}", m.kind, m.id, m.aggregate_id));
                }
            }
            Some(&at) => {
                let prev = last_per_aggregate.get(m.aggregate_id.as_str()).copied();
                if let Some(prev) = prev {
                    if at < prev && disordered.insert(m.aggregate_id.as_str()) {
                        v.out_of_order += 1;
                        if v.examples.len() < 5 {
                            v.examples.push(format!(
                                "{} of {} arrived before an earlier message of it",
                                m.kind, m.aggregate_id
                            ));
                        }
                    }
                }
                let latest = prev.map_or(at, |p| p.max(at));
                last_per_aggregate.insert(m.aggregate_id.as_str(), latest);
            }
        }
    }
    v
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop_listening();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, aggregate: &str) -> OutboxRow {
        OutboxRow {
            id: id.to_string(),
            aggregate_id: aggregate.to_string(),
            kind: "registration.confirmed".to_string(),
            state: "delivered".to_string(),
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_lost_and_reordered_messages_and_forgives_repeats() {
        let outbox = [row("1", "a"), row("2", "b"), row("3", "a"), row("4", "a")];
        let fine = compare(&ids(&["2", "1", "3", "1", "4"]), &outbox);
        assert_eq!((fine.lost, fine.out_of_order), (0, 0));
        assert_eq!(fine.multi_message_aggregates, 1);
        let lost = compare(&ids(&["1", "2", "4"]), &outbox);
        assert_eq!((lost.lost, lost.out_of_order), (1, 0));
        let reordered = compare(&ids(&["1", "4", "3", "2"]), &outbox);
        assert_eq!((reordered.lost, reordered.out_of_order), (0, 1));
    }
}

//! The outbox under a rush: what one healthy webhook subscriber costs the on-sale, and how fast the
//! deliveries follow.
//!
//! Two events, the same attendees. First a rush on event A with no subscription (the baseline), then a
//! subscription to a receiver inside this process, then the same rush on event B. The headline is the
//! rush with the subscriber; the figures compare its rate with the baseline, count deliveries that
//! arrived while it ran, and time how long the backlog takes to drain once it is over. Checks: every
//! registration of B arrives exactly once (by `webhook-id`), the rate keeps at least 80% of the
//! baseline, and the backlog drains within 10 seconds.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;

use super::{Check, Outcome, Params};
use crate::client::{Call, Target};
use crate::load::{self, Phase};
use crate::server::Server;

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// Rate the rush with a subscriber must keep, as a share of the baseline (issue 3's target).
const KEEP_AT_LEAST: f64 = 0.8;
/// How long the backlog may take to drain after the rush.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// How long to wait for the backlog at all before giving up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(180);

/// A webhook receiver in this process: answers 200 to everything and counts distinct `webhook-id`s.
struct Receiver {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    ids: Arc<Mutex<HashSet<String>>>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the receiver")?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicUsize::new(0));
        let ids: Arc<Mutex<HashSet<String>>> = Arc::default();
        let (r, i) = (requests.clone(), ids.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let (r, i) = (r.clone(), i.clone());
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (r, i) = (r.clone(), i.clone());
                            async move {
                                let id = req
                                    .headers()
                                    .get("webhook-id")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_string();
                                // Read the whole body, as a real receiver would before answering.
                                let _ = req.into_body().collect().await;
                                r.fetch_add(1, Ordering::Relaxed);
                                if let Ok(mut ids) = i.lock() {
                                    ids.insert(id);
                                }
                                Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                    Bytes::from_static(b"ok"),
                                )))
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            requests,
            ids,
        })
    }

    fn distinct(&self) -> usize {
        self.ids.lock().map(|s| s.len()).unwrap_or(0)
    }
}

async fn create_event(admin: &Target, name: &str, capacity: usize) -> anyhow::Result<String> {
    let mut conn = admin.connect().await?;
    let body = json!({
        "name": name,
        "venue": "Bench Hall",
        "starts_at": "2030-01-01T20:00:00Z",
        "capacity": capacity,
    });
    let event: Created = conn
        .send(&Call::post("/api/v1/events", Some(body.to_string().into())))
        .await?
        .expect(StatusCode::CREATED, "create event")?
        .json()?;
    conn.send(&Call::post(
        format!("/api/v1/events/{}/publish", event.id),
        None,
    ))
    .await?
    .expect(StatusCode::OK, "publish event")?;
    Ok(event.id)
}

async fn rush(
    name: &str,
    admin: &Target,
    p: &Params,
    event: &str,
    bodies: &Arc<Vec<Bytes>>,
) -> anyhow::Result<Phase> {
    let path: Arc<str> = format!("/api/v1/events/{event}/registrations").into();
    let bodies = bodies.clone();
    load::run(
        name,
        admin,
        p.connections,
        bodies.len(),
        StatusCode::CREATED,
        move |i| Call::post(path.clone(), Some(bodies[i].clone())),
        |_, _| {},
    )
    .await
}

pub async fn outbox(server: &Server, p: &Params) -> anyhow::Result<Outcome> {
    let admin = server.admin();
    let n = p.registrations;
    let mut setup = Vec::new();

    let started = Instant::now();
    let baseline_event = create_event(admin, "Rush without webhooks", p.capacity).await?;
    let webhook_event = create_event(admin, "Rush with a subscriber", p.capacity).await?;
    let mut none = Vec::new();
    setup.push(Phase::sequential(
        "setup: two events",
        &mut none,
        started.elapsed(),
    ));

    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..n)
            .map(|i| {
                json!({"name": format!("Bench {i}"), "email": format!("bench-{i}@example.org")})
                    .to_string()
                    .into()
            })
            .collect(),
    );
    let ids: Arc<Vec<OnceLock<String>>> = Arc::new((0..n).map(|_| OnceLock::new()).collect());
    let path: Arc<str> = "/api/v1/attendees".into();
    let phase = load::run(
        "setup: attendees",
        admin,
        p.connections,
        n,
        StatusCode::CREATED,
        move |i| Call::post(path.clone(), Some(bodies[i].clone())),
        {
            let ids = ids.clone();
            move |i, body| {
                if let Ok(created) = serde_json::from_slice::<Created>(body) {
                    let _ = ids[i].set(created.id);
                }
            }
        },
    )
    .await?;
    if phase.error_count > 0 {
        bail!(
            "creating attendees failed for {}: {:?}",
            phase.error_count,
            phase.error_samples
        );
    }
    setup.push(phase);
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        ids.iter()
            .map(|id| {
                id.get()
                    .map(|id| json!({"attendee_id": id}).to_string().into())
                    .context("an attendee response had no id")
            })
            .collect::<anyhow::Result<_>>()?,
    );

    // The baseline: nobody subscribes, so every message is settled at once.
    let baseline = rush(
        "rush without webhooks (baseline)",
        admin,
        p,
        &baseline_event,
        &bodies,
    )
    .await?;

    let receiver = Receiver::start().await?;
    let mut conn = admin.connect().await?;
    let url = format!("http://{}/hook", receiver.addr);
    conn.send(&Call::post(
        "/api/v1/admin/webhooks",
        Some(
            json!({"url": url, "description": "bench receiver"})
                .to_string()
                .into(),
        ),
    ))
    .await?
    .expect(StatusCode::CREATED, "subscribe the receiver")?;
    drop(conn);

    let headline = rush(
        "rush with one subscriber",
        admin,
        p,
        &webhook_event,
        &bodies,
    )
    .await?;
    let rush_end = Instant::now();
    let during = receiver.distinct();
    let expected = n - headline.error_count.min(n);
    while receiver.distinct() < expected && rush_end.elapsed() < DRAIN_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain = rush_end.elapsed();
    let delivered = receiver.distinct();
    let requests = receiver.requests.load(Ordering::Relaxed);
    setup.push(baseline.clone());

    let kept = if baseline.rps > 0.0 {
        headline.rps / baseline.rps
    } else {
        0.0
    };
    let total_secs = headline.seconds + drain.as_secs_f64();
    let checks = vec![
        Check::new(
            "every registration delivered once",
            delivered == expected,
            format!(
                "{delivered} distinct webhook-ids of {expected} registrations; {requests} requests"
            ),
        ),
        Check::new(
            "rush keeps 80% of its rate",
            kept >= KEEP_AT_LEAST,
            format!(
                "{:.0} reg/s with a subscriber vs {:.0} without: {:.0}%",
                headline.rps,
                baseline.rps,
                kept * 100.0
            ),
        ),
        Check::new(
            "backlog drains within 10 s",
            drain <= DRAIN_LIMIT && delivered == expected,
            format!(
                "{:.2} s after the rush ({} of {expected} had arrived when it ended)",
                drain.as_secs_f64(),
                during
            ),
        ),
    ];
    let values = BTreeMap::from([
        ("registrations", json!(n)),
        ("baseline_registrations_per_s", json!(baseline.rps)),
        ("with_subscriber_registrations_per_s", json!(headline.rps)),
        ("rate_kept", json!(kept)),
        ("delivered_during_rush", json!(during)),
        (
            "deliveries_per_s_during_rush",
            json!(during as f64 / headline.seconds.max(1e-9)),
        ),
        ("drain_seconds_after_rush", json!(drain.as_secs_f64())),
        (
            "deliveries_per_s_overall",
            json!(delivered as f64 / total_secs.max(1e-9)),
        ),
        ("delivery_requests", json!(requests)),
        ("distinct_deliveries", json!(delivered)),
    ]);
    Ok(Outcome {
        headline,
        setup,
        values,
        checks,
    })
}

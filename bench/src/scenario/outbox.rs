//! The outbox under a rush: what one healthy webhook subscriber costs the on-sale, and how fast the
//! deliveries follow.
//!
//! Four rushes of the same attendees on four events, in the order A B B A: A without any
//! subscription, B with one subscription to a receiver inside this process (created before the rush,
//! deleted after its backlog has drained). The file grows with every rush and later rushes run a little
//! slower, so the symmetric order keeps that trend out of the comparison: the baseline is the mean of
//! the two A rushes, the subscriber's figure the mean of the two B rushes. For each B rush the scenario
//! counts deliveries that arrived while it ran and times how long the backlog takes to drain after it.
//! It also reads the server's CPU time (Linux /proc) around every rush.
//!
//! Checks: every registration of a B rush arrives (by `webhook-id`, each exactly once), the B rate
//! keeps at least 80% of the A rate, and each backlog drains within 10 seconds.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;

use super::rush::create_attendees;
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

pub(super) async fn create_event(
    admin: &Target,
    name: &str,
    capacity: usize,
) -> anyhow::Result<String> {
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

pub(super) async fn rush(
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

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`; `None` elsewhere.
pub(super) fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Some((utime + stime) / 100.0)
}

/// One rush and what it cost.
struct Measured {
    phase: Phase,
    server_cpu_s: Option<f64>,
    bench_cpu_s: Option<f64>,
    /// With a subscriber: deliveries that had arrived when the rush ended, and the drain.
    delivered_during: usize,
    drain: Duration,
    delivered: usize,
    requests: usize,
    expected: usize,
}

async fn measured_rush(
    server: &Server,
    p: &Params,
    name: &str,
    event: &str,
    bodies: &Arc<Vec<Bytes>>,
    subscriber: bool,
) -> anyhow::Result<Measured> {
    let admin = server.admin();
    let receiver = if subscriber {
        Some(Receiver::start().await?)
    } else {
        None
    };
    let mut webhook = None;
    if let Some(r) = &receiver {
        let mut conn = admin.connect().await?;
        let url = format!("http://{}/hook", r.addr);
        let created: Created = conn
            .send(&Call::post(
                "/api/v1/admin/webhooks",
                Some(
                    json!({"url": url, "description": "bench receiver"})
                        .to_string()
                        .into(),
                ),
            ))
            .await?
            .expect(StatusCode::CREATED, "subscribe the receiver")?
            .json()?;
        webhook = Some(created.id);
    }
    let pid = server.pid().map(|p| p.to_string());
    let server_cpu = || pid.as_deref().and_then(cpu_seconds);
    let (s0, b0) = (server_cpu(), cpu_seconds("self"));
    let phase = rush(name, admin, p, event, bodies).await?;
    let (s1, b1) = (server_cpu(), cpu_seconds("self"));
    let expected = bodies.len() - phase.error_count.min(bodies.len());
    let mut m = Measured {
        server_cpu_s: s0.zip(s1).map(|(a, b)| b - a),
        bench_cpu_s: b0.zip(b1).map(|(a, b)| b - a),
        phase,
        delivered_during: 0,
        drain: Duration::ZERO,
        delivered: 0,
        requests: 0,
        expected,
    };
    if let Some(r) = &receiver {
        let rush_end = Instant::now();
        m.delivered_during = r.distinct();
        while r.distinct() < expected && rush_end.elapsed() < DRAIN_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        m.drain = rush_end.elapsed();
        m.delivered = r.distinct();
        m.requests = r.requests.load(Ordering::Relaxed);
    }
    if let Some(id) = webhook {
        let mut conn = admin.connect().await?;
        let mut call = Call::post(format!("/api/v1/admin/webhooks/{id}"), None);
        call.method = hyper::Method::DELETE;
        conn.send(&call)
            .await?
            .expect(StatusCode::NO_CONTENT, "delete the subscription")?;
    }
    Ok(m)
}

pub async fn outbox(server: &Server, p: &Params) -> anyhow::Result<Outcome> {
    let admin = server.admin();
    let n = p.registrations;
    let mut setup = Vec::new();

    let started = Instant::now();
    let mut events = Vec::new();
    for name in [
        "A1 (no webhooks)",
        "B1 (one subscriber)",
        "B2 (one subscriber)",
        "A2 (no webhooks)",
    ] {
        events.push(create_event(admin, &format!("Rush {name}"), p.capacity).await?);
    }
    let mut none = Vec::new();
    setup.push(Phase::sequential(
        "setup: four events",
        &mut none,
        started.elapsed(),
    ));

    let (ids, phase) = create_attendees(admin, p).await?;
    setup.push(phase);
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        ids.iter()
            .map(|id| json!({"attendee_id": id}).to_string().into())
            .collect(),
    );

    let a1 = measured_rush(
        server,
        p,
        "rush A1, no webhooks",
        &events[0],
        &bodies,
        false,
    )
    .await?;
    let b1 = measured_rush(
        server,
        p,
        "rush B1, one subscriber",
        &events[1],
        &bodies,
        true,
    )
    .await?;
    let b2 = measured_rush(
        server,
        p,
        "rush B2, one subscriber",
        &events[2],
        &bodies,
        true,
    )
    .await?;
    let a2 = measured_rush(
        server,
        p,
        "rush A2, no webhooks",
        &events[3],
        &bodies,
        false,
    )
    .await?;

    let mean = |x: f64, y: f64| (x + y) / 2.0;
    let baseline_rps = mean(a1.phase.rps, a2.phase.rps);
    let subscriber_rps = mean(b1.phase.rps, b2.phase.rps);
    let kept = if baseline_rps > 0.0 {
        subscriber_rps / baseline_rps
    } else {
        0.0
    };
    let per_reg_us = |m: &Measured| {
        m.server_cpu_s
            .map(|s| s * 1e6 / (m.phase.requests.max(1) as f64))
    };
    let bench_per_reg_us = |m: &Measured| {
        m.bench_cpu_s
            .map(|s| s * 1e6 / (m.phase.requests.max(1) as f64))
    };
    let mut checks = Vec::new();
    for b in [&b1, &b2] {
        checks.push(Check::new(
            &format!("{}: every registration delivered once", b.phase.phase),
            b.delivered == b.expected,
            format!(
                "{} distinct webhook-ids of {} registrations; {} requests",
                b.delivered, b.expected, b.requests
            ),
        ));
        checks.push(Check::new(
            &format!("{}: backlog drains within 10 s", b.phase.phase),
            b.drain <= DRAIN_LIMIT && b.delivered == b.expected,
            format!(
                "{:.2} s after the rush ({} of {} had arrived when it ended)",
                b.drain.as_secs_f64(),
                b.delivered_during,
                b.expected
            ),
        ));
    }
    checks.push(Check::new(
        "rush keeps 80% of its rate with a subscriber",
        kept >= KEEP_AT_LEAST,
        format!(
            "B1 {:.0}, B2 {:.0} reg/s with a subscriber vs A1 {:.0}, A2 {:.0} without: {:.0}%",
            b1.phase.rps,
            b2.phase.rps,
            a1.phase.rps,
            a2.phase.rps,
            kept * 100.0
        ),
    ));
    let mut values = BTreeMap::from([
        ("registrations_per_rush", json!(n)),
        ("baseline_registrations_per_s", json!(baseline_rps)),
        ("with_subscriber_registrations_per_s", json!(subscriber_rps)),
        ("rate_kept", json!(kept)),
    ]);
    for (key, m) in [("a1", &a1), ("b1", &b1), ("b2", &b2), ("a2", &a2)] {
        values.insert(
            key,
            json!({
                "registrations_per_s": m.phase.rps,
                "seconds": m.phase.seconds,
                "server_cpu_us_per_registration": per_reg_us(m),
                "bench_cpu_us_per_registration": bench_per_reg_us(m),
                "delivered_during_rush": m.delivered_during,
                "deliveries_per_s_during_rush": m.delivered_during as f64 / m.phase.seconds.max(1e-9),
                "drain_seconds_after_rush": m.drain.as_secs_f64(),
                "deliveries_per_s_overall":
                    m.delivered as f64 / (m.phase.seconds + m.drain.as_secs_f64()).max(1e-9),
                "delivery_requests": m.requests,
            }),
        );
    }
    setup.push(a1.phase.clone());
    setup.push(b2.phase.clone());
    setup.push(a2.phase.clone());
    Ok(Outcome {
        headline: b1.phase,
        setup,
        values,
        checks,
        figures: Vec::new(),
    })
}

//! The on-sale rush: one published event, more attendees than seats, all registering at once.
//!
//! This is the workload the product promises to survive (DESIGN section 1): thousands of seats per
//! second with no seat sold twice. The checks read the event back and require that exactly
//! `min(capacity, successes)` are confirmed, the rest waitlisted, and nothing oversold.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Check, Outcome, Params};
use crate::client::{Call, Conn, Target};
use crate::load::{self, Phase, Slice};
use crate::metrics::Commits;
use crate::reference;
use crate::server::Server;
use crate::targets::{Figure, Unit, MEAN_COMMIT, MEAN_GROUP, RAW_SQLITE, VS_RAW_SQLITE};

#[derive(Deserialize)]
pub(super) struct Created {
    pub(super) id: String,
}

#[derive(Deserialize)]
struct Registration {
    status: String,
}

/// The live counts of an event, as `GET /api/v1/events/{id}` reports them.
#[derive(Deserialize)]
pub(super) struct EventCounts {
    pub(super) capacity: i64,
    pub(super) confirmed: i64,
    pub(super) offered: i64,
    pub(super) waitlisted: i64,
    pub(super) checked_in: i64,
}

/// The rush, after its same-run reference: the rush's sales as the sale's SQL alone in a loop on
/// the same disk ([`reference`]), for the figures `raw SQLite` and `rush x raw SQLite` (no targets:
/// they say how fast the machine was just before the rush). Should the loop fail, the rush runs
/// anyway, with the error in the JSON (`raw_sqlite`) instead of the two figures.
pub async fn rush(server: &Server, p: &Params) -> anyhow::Result<Outcome> {
    let dir = server.data_dir().join("reference");
    let (sales, capacity) = (p.registrations, p.capacity);
    let raw = tokio::task::spawn_blocking(move || reference::sales(&dir, sales, capacity))
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r);
    let mut outcome = rush_as(server, p, "rush", "bench").await?;
    match raw {
        Ok(raw) => {
            outcome
                .figures
                .push(Figure::new(RAW_SQLITE, raw.rate, Unit::PerSecond));
            outcome.figures.push(Figure::new(
                VS_RAW_SQLITE,
                outcome.headline.rps / raw.rate,
                Unit::Ratio,
            ));
            outcome.values.insert("raw_sqlite", json!(raw));
        }
        Err(e) => {
            eprintln!("boxoffice-bench: the raw SQLite reference failed: {e:#}");
            outcome
                .values
                .insert("raw_sqlite", json!({ "error": format!("{e:#}") }));
        }
    }
    Ok(outcome)
}

/// The rush as its own phase `label`, with attendees whose emails start with `prefix` (a second rush
/// on the same server needs people of its own).
pub(super) async fn rush_as(
    server: &Server,
    p: &Params,
    label: &str,
    prefix: &str,
) -> anyhow::Result<Outcome> {
    let rush = Prepared::new(server, p, prefix).await?;
    let before = Commits::read(server.admin()).await?;
    let headline = rush
        .slice(server.admin(), p.connections)
        .send(label, 0, rush.registrations)
        .await?
        .into_phase(label);
    let commits = Commits::read(server.admin()).await?.since(&before);
    let mut outcome = rush.verify(server.admin(), headline).await?;
    outcome.values.insert("commits", json!(commits));
    if let (Some(group), Some(ms)) = (commits.mean_commands, commits.mean_commit_ms) {
        outcome
            .figures
            .push(Figure::new(MEAN_GROUP, group, Unit::Count));
        outcome.figures.push(Figure::new(MEAN_COMMIT, ms, Unit::Ms));
    }
    Ok(outcome)
}

/// A rush made ready: its event on sale and its attendees created, each attendee's registration
/// request prepared. It is sent whole ([`rush_as`]) or in slices that take turns with another
/// server's rush (`scale`), and then verified against the event's counts.
pub(super) struct Prepared {
    event_id: String,
    pub(super) registrations: usize,
    bodies: Arc<Vec<Bytes>>,
    path: Arc<str>,
    seen: Arc<Seen>,
    setup: Vec<Phase>,
}

impl Prepared {
    pub(super) async fn new(server: &Server, p: &Params, prefix: &str) -> anyhow::Result<Self> {
        let (event, ids, setup) = on_sale_as(server, p, p.capacity, prefix).await?;
        // Every attendee registers once. Bodies are prepared here so the loop only sends.
        let bodies: Arc<Vec<Bytes>> = Arc::new(
            ids.iter()
                .map(|id| json!({"attendee_id": id}).to_string().into())
                .collect(),
        );
        Ok(Self {
            path: format!("/api/v1/events/{}/registrations", event.id).into(),
            event_id: event.id,
            registrations: ids.len(),
            bodies,
            seen: Arc::default(),
            setup,
        })
    }

    /// The registrations as a phase to send over `connections` connections to `admin`; request `i`
    /// is attendee `i`'s registration, and each `201` is tallied for [`Prepared::verify`].
    pub(super) fn slice<'a>(
        &self,
        admin: &'a Target,
        connections: usize,
    ) -> Slice<
        'a,
        impl Fn(usize) -> Call + Send + Sync + 'static,
        impl Fn(usize, &Bytes) + Send + Sync + 'static,
    > {
        let (bodies, path, seen) = (self.bodies.clone(), self.path.clone(), self.seen.clone());
        Slice {
            target: admin,
            connections,
            expect: StatusCode::CREATED,
            request: Arc::new(move |i: usize| Call::post(path.clone(), Some(bodies[i].clone()))),
            on_success: Arc::new(move |_: usize, body: &Bytes| seen.record(body)),
        }
    }

    /// Reads the event back and compares it with what the responses said: every registration that
    /// succeeded is counted, exactly `min(capacity, successes)` are confirmed, nothing is oversold.
    pub(super) async fn verify(self, admin: &Target, headline: Phase) -> anyhow::Result<Outcome> {
        let n = self.registrations;
        // If the server is gone by now, the rush's own errors are the evidence, so they go into the
        // message.
        let counts = read_counts(admin, &self.event_id).await.with_context(|| {
            format!(
                "verify after the rush ({} of {n} registrations failed: {:?}; first errors: {:?})",
                headline.error_count, headline.errors, headline.error_samples
            )
        })?;
        let successes =
            i64::try_from(n - headline.error_count.min(n)).context("registration count")?;
        let oversold = (counts.confirmed + counts.offered - counts.capacity).max(0);
        let expected_confirmed = counts.capacity.min(successes);
        let (said_confirmed, said_waitlisted, said_other) = self.seen.totals();
        let checks = vec![
            // A refusal (a 503 with the writer's queue full, say) is no sale: it must not be there
            // at all, let alone count toward the rate.
            super::every_request_answered(&headline),
            Check::new(
                "not oversold",
                oversold == 0,
                format!(
                    "oversold {oversold}: confirmed {} + offered {} vs capacity {}",
                    counts.confirmed, counts.offered, counts.capacity
                ),
            ),
            Check::new(
                "seats filled",
                counts.confirmed == expected_confirmed,
                format!("confirmed {} == min(capacity {}, successes {successes})", counts.confirmed, counts.capacity),
            ),
            Check::new(
                "every success counted",
                counts.confirmed + counts.waitlisted == successes,
                format!("confirmed {} + waitlisted {} == successes {successes}", counts.confirmed, counts.waitlisted),
            ),
            Check::new(
                "responses agree with counts",
                said_confirmed == counts.confirmed && said_waitlisted == counts.waitlisted && said_other == 0,
                format!(
                    "201 responses said confirmed {said_confirmed}, waitlisted {said_waitlisted}, other {said_other}; \
                     event says confirmed {}, waitlisted {}",
                    counts.confirmed, counts.waitlisted
                ),
            ),
        ];
        let values = BTreeMap::from([
            ("capacity", json!(counts.capacity)),
            ("successes", json!(successes)),
            ("confirmed", json!(counts.confirmed)),
            ("offered", json!(counts.offered)),
            ("waitlisted", json!(counts.waitlisted)),
            ("oversold", json!(oversold)),
        ]);
        Ok(Outcome {
            headline,
            setup: self.setup,
            values,
            checks,
            figures: Vec::new(),
        })
    }
}

/// Setup shared by the scenarios that need an on-sale: one published event of `capacity` seats and
/// `p.registrations` attendees, created over the connections the headline will use. Returns the event
/// id, the attendee ids in order, and the timed setup phases.
pub(super) async fn on_sale(
    server: &Server,
    p: &Params,
    capacity: usize,
) -> anyhow::Result<(Created, Vec<String>, Vec<Phase>)> {
    on_sale_as(server, p, capacity, "bench").await
}

/// `on_sale` with attendees `{prefix}-{i}@example.org`.
pub(super) async fn on_sale_as(
    server: &Server,
    p: &Params,
    capacity: usize,
    prefix: &str,
) -> anyhow::Result<(Created, Vec<String>, Vec<Phase>)> {
    let admin = server.admin();
    let mut setup = Vec::new();

    // Setup 1: the event, created and published on one connection.
    let mut conn = admin.connect().await.context("connect for setup")?;
    let started = Instant::now();
    let mut latencies = Vec::new();
    let body = json!({
        "name": "Rush",
        "venue": "Bench Hall",
        "starts_at": "2030-01-01T20:00:00Z",
        "capacity": capacity,
    });
    let event: Created = timed(
        &mut conn,
        &mut latencies,
        Call::post("/api/v1/events", Some(body.to_string().into())),
    )
    .await?
    .expect(StatusCode::CREATED, "create event")?
    .json()?;
    timed(
        &mut conn,
        &mut latencies,
        Call::post(format!("/api/v1/events/{}/publish", event.id), None),
    )
    .await?
    .expect(StatusCode::OK, "publish event")?;
    setup.push(Phase::sequential(
        "setup: event",
        &mut latencies,
        started.elapsed(),
    ));
    drop(conn);

    // Setup 2: the attendees, over the same connections the rush will use.
    let (ids, phase) = create_attendees_as(server.admin(), p, prefix).await?;
    setup.push(phase);
    Ok((event, ids, setup))
}

/// Creates `p.registrations` attendees (`bench-{i}@example.org`) over `p.connections` connections;
/// returns their ids in order and the timed phase. Any failure ends the benchmark.
pub(super) async fn create_attendees(
    admin: &Target,
    p: &Params,
) -> anyhow::Result<(Vec<String>, Phase)> {
    create_attendees_as(admin, p, "bench").await
}

/// `create_attendees` with emails `{prefix}-{i}@example.org`.
pub(super) async fn create_attendees_as(
    admin: &Target,
    p: &Params,
    prefix: &str,
) -> anyhow::Result<(Vec<String>, Phase)> {
    let n = p.registrations;
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..n)
            .map(|i| {
                json!({"name": format!("Bench {i}"), "email": format!("{prefix}-{i}@example.org")})
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
            "creating attendees failed for {} of {n}: {:?}; first errors:\n{}",
            phase.error_count,
            phase.errors,
            phase.error_samples.join("\n")
        );
    }
    let ids: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            id.get()
                .cloned()
                .with_context(|| format!("attendee {i} was created but its response had no id"))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((ids, phase))
}

pub(super) async fn read_counts(admin: &Target, event_id: &str) -> anyhow::Result<EventCounts> {
    let mut conn = admin.connect().await?;
    conn.send(&Call::get(format!("/api/v1/events/{event_id}")))
        .await?
        .expect(StatusCode::OK, "read event")?
        .json()
}

/// Sends one setup request, recording its latency.
pub(super) async fn timed(
    conn: &mut Conn,
    latencies: &mut Vec<std::time::Duration>,
    call: Call,
) -> anyhow::Result<crate::client::Reply> {
    let t0 = Instant::now();
    let reply = conn
        .send(&call)
        .await
        .with_context(|| format!("{} {}", call.method, call.path))?;
    latencies.push(t0.elapsed());
    Ok(reply)
}

/// Tallies the `status` of every successful registration response, to compare with the event's counts.
#[derive(Default)]
struct Seen {
    confirmed: AtomicUsize,
    waitlisted: AtomicUsize,
    other: AtomicUsize,
}

impl Seen {
    fn record(&self, body: &Bytes) {
        let counter = match serde_json::from_slice::<Registration>(body) {
            Ok(r) if r.status == "confirmed" => &self.confirmed,
            Ok(r) if r.status == "waitlisted" => &self.waitlisted,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn totals(&self) -> (i64, i64, i64) {
        let get = |c: &AtomicUsize| i64::try_from(c.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        (
            get(&self.confirmed),
            get(&self.waitlisted),
            get(&self.other),
        )
    }
}

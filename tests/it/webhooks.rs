//! Webhook delivery (DESIGN.md section 4, issue 3): real receivers on 127.0.0.1, the real processor
//! and HTTP client, real SQLite files. Most tests drain with `Processor::run_once` and a manual clock,
//! so retries happen when the test moves time, not after sleeps; the ones about independence and
//! crashes run the background processor (or the real binary) and wait with bounded deadlines.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use boxoffice::app::{AppOptions, Clock, ManualClock, OutboxOptions, SystemClock};
use boxoffice::config::HttpConfig;
use boxoffice::domain::Role;
use boxoffice::outbox::Processor;
use serde_json::{json, Value};

use crate::support::{free_port, sample, scrape, spawn_app, spawn_app_opts, Server, TestApp};

// ----- a receiver -----

/// One request a receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    /// What the receiver answered.
    status: u16,
    /// Milliseconds since the epoch when it arrived.
    at_ms: i64,
}

impl Captured {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("delivery body is JSON")
    }
}

#[derive(Default)]
struct Behaviour {
    /// Calls still to be answered 500.
    fail_next: AtomicUsize,
    /// Answer 500 to everything while set.
    broken: AtomicBool,
    /// Milliseconds to take over each answer: a slow receiver.
    delay_ms: AtomicUsize,
}

/// A webhook receiver: an axum server on 127.0.0.1 that records every request.
pub(crate) struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Captured>>>,
    behaviour: Arc<Behaviour>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis(),
    )
    .expect("millis fit")
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        Self::start_on(0).await
    }

    async fn start_on(port: u16) -> Receiver {
        let got: Arc<Mutex<Vec<Captured>>> = Arc::default();
        let behaviour: Arc<Behaviour> = Arc::default();
        let (g, b) = (got.clone(), behaviour.clone());
        let hook = move |headers: HeaderMap, body: String| {
            let (g, b) = (g.clone(), b.clone());
            async move {
                let delay = b.delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay as u64)).await;
                }
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let failing = b.broken.load(Ordering::SeqCst)
                    || b.fail_next
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                let status = if failing { 500 } else { 200 };
                g.lock().expect("captures").push(Captured {
                    id: h("webhook-id"),
                    timestamp: h("webhook-timestamp"),
                    signature: h("webhook-signature"),
                    body,
                    status,
                    at_ms: now_ms(),
                });
                if failing {
                    (StatusCode::INTERNAL_SERVER_ERROR, "receiver broken")
                } else {
                    (StatusCode::OK, "ok")
                }
            }
        };
        let router = axum::Router::new().route("/hook", axum::routing::post(hook));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Receiver {
            addr,
            got,
            behaviour,
            stop: Some(stop),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub(crate) fn captured(&self) -> Vec<Captured> {
        self.got.lock().expect("captures").clone()
    }

    /// The ids it acknowledged with 200, in arrival order.
    fn acked(&self) -> Vec<String> {
        self.captured()
            .into_iter()
            .filter(|c| c.status == 200)
            .map(|c| c.id)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

// ----- helpers -----

/// A clock at the real time that moves only when told: timestamps stay plausible for verifiers.
fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(SystemClock.now()))
}

fn quick_outbox() -> OutboxOptions {
    OutboxOptions {
        backoff_initial_ms: 1_000,
        backoff_max_ms: 4_000,
        breaker_threshold: 1_000,
        timeout: Duration::from_secs(5),
        ..OutboxOptions::default()
    }
}

fn app_with(outbox: OutboxOptions, clock: Arc<dyn Clock>) -> TestApp {
    spawn_app_opts(
        HttpConfig::default(),
        AppOptions {
            outbox,
            ..AppOptions::default()
        },
        clock,
    )
}

/// Runs the processor until a pass finds nothing more to do now.
pub(crate) async fn drain(p: &Arc<Processor>) {
    for _ in 0..1000 {
        if !boxoffice::outbox::run_once(p)
            .await
            .expect("run_once")
            .did_work()
        {
            return;
        }
    }
    panic!("the outbox did not drain in 1000 passes");
}

pub(crate) async fn subscribe(t: &TestApp, url: &str, types: Option<&[&str]>) -> Value {
    let mut body = json!({"url": url, "description": "test receiver"});
    if let Some(types) = types {
        body["event_types"] = json!(types);
    }
    let r = t.post("/api/v1/admin/webhooks", Some(&t.admin), body).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.bytes));
    r.json()
}

/// (seq, id, aggregate_id, type, state) of every outbox row, in order.
fn outbox_rows(t: &TestApp) -> Vec<(i64, String, String, String, String)> {
    outbox_rows_at(&t.dir.path().join("boxoffice.db"))
}

fn outbox_rows_at(db: &std::path::Path) -> Vec<(i64, String, String, String, String)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
    let mut st = conn
        .prepare("SELECT seq, id, aggregate_id, type, state FROM outbox ORDER BY seq")
        .expect("prepare");
    st.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// Asserts that, per aggregate, everything the receiver got (attempts included) came in outbox order:
/// no message of an aggregate arrived before an earlier message of that aggregate was acknowledged.
fn assert_aggregate_order(got: &[Captured], rows: &[(i64, String, String, String, String)]) {
    let seq_of: HashMap<&str, (i64, &str)> = rows
        .iter()
        .map(|(seq, id, agg, _, _)| (id.as_str(), (*seq, agg.as_str())))
        .collect();
    let mut acked_upto: HashMap<&str, i64> = HashMap::new();
    for c in got {
        let (seq, agg) = *seq_of
            .get(c.id.as_str())
            .unwrap_or_else(|| panic!("delivery {} is no outbox message", c.id));
        if let Some(&upto) = acked_upto.get(agg) {
            assert!(
                seq >= upto,
                "aggregate {agg}: message seq {seq} arrived after seq {upto} was acknowledged"
            );
        }
        // Every earlier message of the aggregate must have been acknowledged before this one arrived.
        for (s, id, a, _, _) in rows {
            if a == agg && *s < seq {
                assert!(
                    acked_upto.get(agg).is_some_and(|&u| u >= *s),
                    "aggregate {agg}: seq {seq} ({}) arrived before earlier seq {s} ({id}) was acknowledged",
                    c.id
                );
            }
        }
        if c.status == 200 {
            let e = acked_upto.entry(agg).or_insert(seq);
            *e = (*e).max(seq);
        }
    }
}

/// Creates `n` attendees and registers them for `event`.
async fn register_many(t: &TestApp, event: &str, from: usize, n: usize) -> Vec<Value> {
    let mut regs = Vec::new();
    for i in from..from + n {
        let a = t.attendee(i).await;
        let r = t.register(event, &a).await;
        assert_eq!(r.status, 201);
        regs.push(r.json());
    }
    regs
}

/// An on-sale touching every kind of change: publish, confirm, waitlist, cancel, promote, update,
/// cancel the event.
async fn scripted_onsale(t: &TestApp) {
    let event = t.published_event(2).await;
    let regs = register_many(t, &event, 0, 4).await;
    assert_eq!(regs[2]["status"], "waitlisted");
    let first = regs[0]["id"].as_str().expect("id");
    let r = t
        .post(
            &format!("/api/v1/registrations/{first}/cancel"),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = t
        .send(
            "PATCH",
            &format!("/api/v1/events/{event}"),
            Some(&t.admin),
            Some(json!({"capacity": 3})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = t
        .post(
            &format!("/api/v1/events/{event}/cancel"),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
}

// ----- the tests -----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_change_of_an_onsale_arrives_once_in_aggregate_order() {
    let t = spawn_app();
    let rx = Receiver::start().await;
    subscribe(&t, &rx.url(), None).await;
    scripted_onsale(&t).await;
    let p = Processor::with_http(t.app.clone()).expect("processor");
    drain(&p).await;

    let rows = outbox_rows(&t);
    let kinds: HashSet<&str> = rows.iter().map(|r| r.3.as_str()).collect();
    for k in [
        "event.created",
        "event.published",
        "registration.confirmed",
        "registration.waitlisted",
        "registration.cancelled",
        "registration.promoted",
        "event.updated",
        "event.cancelled",
    ] {
        assert!(kinds.contains(k), "the script recorded no {k}");
    }
    let got = rx.captured();
    assert!(got.iter().all(|c| c.status == 200));
    let ids: Vec<&str> = got.iter().map(|c| c.id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a message arrived twice");
    let expected: HashSet<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(unique, expected, "every change arrives");
    assert_aggregate_order(&got, &rows);
    assert!(rows.iter().all(|r| r.4 == "delivered"), "{rows:?}");

    // The body is the envelope around the stored payload, which is the resource in its API shape.
    for c in &got {
        let body = c.json();
        let stored = t.app.get_outbox_message(&c.id).expect("message");
        assert_eq!(body["type"], stored.kind);
        assert_eq!(body["data"], stored.data);
        assert_eq!(
            body["timestamp"].as_str(),
            Some(stored.created_at.to_rfc3339().as_str())
        );
        assert!(c.signature.starts_with("v1,") && c.timestamp.parse::<i64>().is_ok());
    }
    let pending = t
        .get("/api/v1/admin/outbox?state=pending", Some(&t.admin))
        .await;
    assert_eq!(pending.json()["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_failing_its_first_calls_gets_everything_in_order_with_the_same_ids() {
    let clock = manual_clock();
    let t = app_with(quick_outbox(), clock.clone());
    let rx = Receiver::start().await;
    rx.behaviour.fail_next.store(4, Ordering::SeqCst);
    subscribe(&t, &rx.url(), None).await;
    scripted_onsale(&t).await;
    let p = Processor::with_http(t.app.clone()).expect("processor");

    let rows = outbox_rows(&t);
    for _ in 0..20 {
        drain(&p).await;
        if rx.acked().len() >= rows.len() {
            break;
        }
        clock.advance_millis(5_000);
    }
    let got = rx.captured();
    let failed: Vec<&Captured> = got.iter().filter(|c| c.status == 500).collect();
    assert_eq!(failed.len(), 4, "the first four calls failed");
    let acked: HashSet<String> = rx.acked().into_iter().collect();
    let all: HashSet<String> = outbox_rows(&t).into_iter().map(|r| r.1).collect();
    assert_eq!(acked, all, "everything arrives in the end");
    for f in &failed {
        let later = got
            .iter()
            .filter(|c| c.id == f.id && c.status == 200)
            .count();
        assert_eq!(
            later, 1,
            "message {} was retried under the same webhook-id",
            f.id
        );
    }
    assert_aggregate_order(&got, &outbox_rows(&t));
    assert!(outbox_rows(&t).iter().all(|r| r.4 == "delivered"));
    // The failures left a trail: attempts and the receiver's words.
    let first_failed = t.app.get_outbox_message(&failed[0].id).expect("message");
    assert_eq!(first_failed.attempts, 1);
    assert!(first_failed.deliveries[0]
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("HTTP 500")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_failing_every_attempt_ends_dead_and_an_admin_retry_delivers_it() {
    let clock = manual_clock();
    let t = app_with(
        OutboxOptions {
            max_attempts: 3,
            ..quick_outbox()
        },
        clock.clone(),
    );
    let rx = Receiver::start().await;
    rx.behaviour.broken.store(true, Ordering::SeqCst);
    subscribe(&t, &rx.url(), None).await;
    let r = t
        .post(
            "/api/v1/events",
            Some(&t.admin),
            json!({"name": "Doomed", "venue": "Hall", "starts_at": "2030-01-01T20:00:00Z", "capacity": 5}),
        )
        .await;
    assert_eq!(r.status, 201);
    let p = Processor::with_http(t.app.clone()).expect("processor");
    for _ in 0..5 {
        drain(&p).await;
        clock.advance_millis(5_000);
    }
    assert_eq!(rx.captured().len(), 3, "exactly max_attempts attempts");

    let dead = t
        .get("/api/v1/admin/outbox?state=dead", Some(&t.admin))
        .await;
    assert_eq!(dead.status, 200);
    let items = dead.json()["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1);
    let m = &items[0];
    assert_eq!(m["type"], "event.created");
    assert_eq!(m["attempts"], 3);
    assert_eq!(m["state"], "dead");
    let err = m["last_error"].as_str().expect("last_error");
    assert!(
        err.contains("HTTP 500") && err.contains("receiver broken"),
        "{err}"
    );
    assert_eq!(m["deliveries"][0]["state"], "dead");
    assert_eq!(dead.json()["summary"]["dead_count"], 1);
    // Dead is not pending: it does not hold /health down.
    assert_eq!(t.get("/health", None).await.status, 200);

    let id = m["id"].as_str().expect("id").to_string();
    rx.behaviour.broken.store(false, Ordering::SeqCst);
    let retried = t
        .post(
            &format!("/api/v1/admin/outbox/{id}/retry"),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(retried.status, 200);
    assert_eq!(retried.json()["state"], "pending");
    t.post(
        &format!("/api/v1/admin/outbox/{id}/retry"),
        Some(&t.admin),
        json!({}),
    )
    .await
    .assert_problem(409, "invalid_transition");
    drain(&p).await;
    assert_eq!(rx.acked(), vec![id.clone()], "the retry delivered it once");
    let after = t
        .get(&format!("/api/v1/admin/outbox/{id}"), Some(&t.admin))
        .await;
    assert_eq!(after.json()["state"], "delivered");

    let audit = crate::support::snapshot(&t.dir.path().join("boxoffice.db"));
    assert!(audit.contains("\"outbox.retry\""), "retry is audited");
    t.post(
        "/api/v1/admin/outbox/00000000-0000-4000-8000-000000000000/retry",
        Some(&t.admin),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_held_behind_a_failing_one_leaves_its_endpoint_asleep_until_the_retry() {
    let clock = manual_clock();
    let t = app_with(quick_outbox(), clock.clone());
    let rx = Receiver::start().await;
    rx.behaviour.broken.store(true, Ordering::SeqCst);
    subscribe(&t, &rx.url(), None).await;
    let created = t
        .post(
            "/api/v1/events",
            Some(&t.admin),
            json!({"name": "Held", "venue": "Hall", "starts_at": "2030-01-01T20:00:00Z", "capacity": 5}),
        )
        .await;
    assert_eq!(created.status, 201);
    let event = created.json()["id"].as_str().expect("id").to_string();
    let p = Processor::with_http(t.app.clone()).expect("processor");
    drain(&p).await; // event.created fails and waits for its retry
    let published = t
        .post(
            &format!("/api/v1/events/{event}/publish"),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(published.status, 200);
    drain(&p).await; // event.published is held behind it, stored waiting with the time it was seen

    let db = rusqlite::Connection::open(t.dir.path().join("boxoffice.db")).expect("open");
    let webhook_seq: i64 = db
        .query_row("SELECT seq FROM webhooks", [], |r| r.get(0))
        .expect("one subscription");
    let at = |kind: &str| -> i64 {
        db.query_row(
            "SELECT d.next_attempt_at FROM deliveries d JOIN outbox o ON o.seq = d.outbox_seq \
             WHERE o.type = ?1 AND d.state = 'pending'",
            [kind],
            |r| r.get(0),
        )
        .expect("a pending delivery")
    };
    let now = clock.now().millis();
    let (head, held) = (at("event.created"), at("event.published"));
    assert!(head > now, "the failed head waits for its retry");
    assert!(held <= now, "the held message's own time has passed");
    let due = t
        .app
        .outbox_next_due(webhook_seq)
        .expect("next due")
        .expect("deliveries are pending");
    assert_eq!(
        due.millis(),
        head,
        "the endpoint is next due at its head's retry, not at the held message's time (which would wake its worker at once, again and again)"
    );

    rx.behaviour.broken.store(false, Ordering::SeqCst);
    clock.advance_millis(5_000);
    drain(&p).await;
    let types: Vec<String> = rx
        .captured()
        .into_iter()
        .filter(|c| c.status == 200)
        .map(|c| c.json()["type"].as_str().expect("type").to_string())
        .collect();
    assert_eq!(types, ["event.created", "event.published"]);
    assert_eq!(t.app.outbox_next_due(webhook_seq).expect("next due"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_that_is_down_loses_nothing_and_never_slows_a_healthy_one() {
    let t = Arc::new(app_with(
        OutboxOptions {
            backoff_initial_ms: 50,
            backoff_max_ms: 400,
            max_attempts: 1000,
            breaker_threshold: 3,
            breaker_cooldown_ms: 200,
            timeout: Duration::from_secs(2),
            ..OutboxOptions::default()
        },
        Arc::new(SystemClock),
    ));
    let down_port = free_port();
    let healthy = Receiver::start().await;
    subscribe(&t, &format!("http://127.0.0.1:{down_port}/hook"), None).await;
    subscribe(&t, &healthy.url(), None).await;
    let handle = boxoffice::outbox::spawn(Processor::with_http(t.app.clone()).expect("processor"));

    // Traffic spread over about two seconds while one receiver is down.
    let event = t.published_event(30).await;
    for i in 0..40 {
        let a = t.attendee(i).await;
        assert_eq!(t.register(&event, &a).await.status, 201);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let total = outbox_rows(&t).len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while healthy.acked().len() < total {
        assert!(
            Instant::now() < deadline,
            "healthy receiver got {} of {total}",
            healthy.acked().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The receiver comes back on its port.
    let back = Receiver::start_on(down_port).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while back.acked().len() < total || outbox_rows(&t).iter().any(|r| r.4 != "delivered") {
        assert!(
            Instant::now() < deadline,
            "returning receiver got {} of {total}",
            back.acked().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.shutdown(Duration::from_secs(5)).await;

    let rows = outbox_rows(&t);
    let all: HashSet<String> = rows.iter().map(|r| r.1.clone()).collect();
    assert_eq!(
        back.acked().into_iter().collect::<HashSet<_>>(),
        all,
        "nothing lost"
    );
    assert_aggregate_order(&back.captured(), &rows);
    assert_aggregate_order(&healthy.captured(), &rows);

    // The healthy receiver's lag (arrival minus the time the change was recorded) stayed low throughout.
    let created: HashMap<String, i64> = rows
        .iter()
        .map(|r| {
            let m = t.app.get_outbox_message(&r.1).expect("message");
            (r.1.clone(), m.created_at.millis())
        })
        .collect();
    let mut lags: Vec<i64> = healthy
        .captured()
        .iter()
        .map(|c| c.at_ms - created[&c.id])
        .collect();
    lags.sort_unstable();
    let worst = *lags.last().expect("deliveries");
    assert!(
        worst < 1_000,
        "healthy receiver lag: median {} ms, worst {worst} ms",
        lags[lags.len() / 2]
    );
    let stats = t.app.outbox_stats().expect("stats");
    let healthy_stats = stats
        .endpoints
        .iter()
        .find(|e| e.url == healthy.url())
        .expect("healthy endpoint stats");
    assert_eq!(healthy_stats.failures, 0);
    assert!(healthy_stats.max_ms < 1_000.0, "{healthy_stats:?}");
    // Anyone may read /health: it names endpoints by id, never by URL (which may hold a secret).
    let health = t.get("/health", None).await;
    let body = String::from_utf8_lossy(&health.bytes).to_string();
    assert!(
        body.contains(&healthy_stats.webhook_id),
        "the endpoint is listed: {body}"
    );
    assert!(
        !body.contains(&healthy.url()) && !body.contains("\"url\""),
        "no URL in /health: {body}"
    );
    assert!(
        stats.failed_total > 0,
        "the down receiver's failures counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_deliveries_loses_nothing_and_duplicates_keep_their_id() {
    let dir = tempfile::tempdir().expect("dir");
    let rx = Receiver::start().await;
    rx.behaviour.delay_ms.store(20, Ordering::SeqCst);
    let mut server = Server::start(dir.path()).await;
    let admin = server.admin_token();
    let client = reqwest::Client::new();
    let addr = server.addr;
    let post = |path: &str, body: Value| {
        client
            .post(format!("http://{addr}{path}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let r = post("/api/v1/admin/webhooks", json!({"url": rx.url()}))
        .await
        .expect("subscribe");
    assert_eq!(r.status(), 201);
    let event: Value = post(
        "/api/v1/events",
        json!({"name": "Crash", "venue": "Hall", "starts_at": "2030-01-01T20:00:00Z", "capacity": 100}),
    )
    .await
    .expect("event")
    .json()
    .await
    .expect("json");
    let event = event["id"].as_str().expect("id").to_string();
    post(&format!("/api/v1/events/{event}/publish"), json!({}))
        .await
        .expect("publish");
    let mut attendees = Vec::new();
    for i in 0..150 {
        let a: Value = post(
            "/api/v1/attendees",
            json!({"name": format!("P{i}"), "email": format!("p{i}@example.org")}),
        )
        .await
        .expect("attendee")
        .json()
        .await
        .expect("json");
        attendees.push(a["id"].as_str().expect("id").to_string());
    }
    // 150 sales at once: the slow receiver takes a while to get all of them.
    let mut sales = tokio::task::JoinSet::new();
    for a in attendees {
        let (client, admin, event) = (client.clone(), admin.clone(), event.clone());
        sales.spawn(async move {
            client
                .post(format!("http://{addr}/api/v1/events/{event}/registrations"))
                .bearer_auth(&admin)
                .json(&json!({"attendee_id": a}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
    }
    while let Some(done) = sales.join_next().await {
        assert_eq!(done.expect("task").expect("sale"), 201);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while rx.captured().len() < 20 {
        assert!(Instant::now() < deadline, "deliveries did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed_at = rx.captured().len();
    server.kill9();
    rx.behaviour.delay_ms.store(0, Ordering::SeqCst);
    let server = Server::start(dir.path()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = outbox_rows_at(&dir.path().join("boxoffice.db"));
        let acked: HashSet<String> = rx.acked().into_iter().collect();
        if rows
            .iter()
            .all(|r| r.4 == "delivered" && acked.contains(&r.1))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after restart {} of {} delivered",
            acked.len(),
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(server);
    let rows = outbox_rows_at(&dir.path().join("boxoffice.db"));
    // Duplicates only ever repeat a webhook-id: one body, one id.
    let mut id_of_body: HashMap<String, HashSet<String>> = HashMap::new();
    for c in rx.captured() {
        id_of_body.entry(c.body).or_default().insert(c.id);
    }
    assert!(id_of_body.values().all(|ids| ids.len() == 1));
    assert_eq!(
        id_of_body.len(),
        rows.len(),
        "one distinct body per message"
    );
    let got = rx.captured();
    assert_aggregate_order(&got, &rows);
    eprintln!(
        "killed after {} deliveries; {} deliveries for {} messages after restart",
        killed_at,
        got.len(),
        rows.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signatures_verify_with_the_standardwebhooks_reference_library() {
    let t = spawn_app();
    let rx = Receiver::start().await;
    let created = subscribe(&t, &rx.url(), None).await;
    let secret = created["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("whsec_"));
    let other = Receiver::start().await;
    let other_secret = subscribe(&t, &other.url(), Some(&["registration.confirmed"])).await
        ["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert_ne!(secret, other_secret);
    scripted_onsale(&t).await;
    let p = Processor::with_http(t.app.clone()).expect("processor");
    drain(&p).await;

    let mut deliveries = Vec::new();
    for (rx, secret) in [(&rx, &secret), (&other, &other_secret)] {
        for c in rx.captured() {
            deliveries.push(json!({
                "secret": secret,
                "headers": {
                    "webhook-id": c.id,
                    "webhook-timestamp": c.timestamp,
                    "webhook-signature": c.signature,
                },
                "body": c.body,
            }));
        }
    }
    assert!(other.captured().len() >= 2 && rx.captured().len() > other.captured().len());
    let file = t.dir.path().join("deliveries.json");
    std::fs::write(&file, serde_json::to_vec(&deliveries).expect("json")).expect("write");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verify_webhooks.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3 must be installed to verify signatures (see .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "standardwebhooks rejected a delivery (is `standardwebhooks` installed? .ci/run installs it):\n{}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("verified {}", deliveries.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_get_only_their_types_from_their_creation_and_unsubscribed_messages_are_done_at_once(
) {
    let t = spawn_app();
    let p = Processor::with_http(t.app.clone()).expect("processor");
    let before = t.published_event(1).await;
    drain(&p).await;
    assert!(
        outbox_rows(&t).iter().all(|r| r.4 == "delivered"),
        "nobody subscribes: done at once"
    );

    let rx = Receiver::start().await;
    subscribe(
        &t,
        &rx.url(),
        Some(&["registration.confirmed", "registration.waitlisted"]),
    )
    .await;
    register_many(&t, &before, 10, 3).await;
    let r = t
        .send(
            "PATCH",
            &format!("/api/v1/events/{before}"),
            Some(&t.admin),
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(r.status, 200);
    drain(&p).await;
    let mut kinds: Vec<String> = rx
        .captured()
        .iter()
        .map(|c| c.json()["type"].as_str().expect("type").to_string())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            "registration.confirmed",
            "registration.waitlisted",
            "registration.waitlisted"
        ]
    );
    assert!(outbox_rows(&t).iter().all(|r| r.4 == "delivered"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_fails_when_the_oldest_pending_message_is_too_old() {
    let clock = manual_clock();
    let t = app_with(
        OutboxOptions {
            max_lag_ms: 60_000,
            ..quick_outbox()
        },
        clock.clone(),
    );
    let hook = subscribe(&t, &format!("http://127.0.0.1:{}/hook", free_port()), None).await;
    t.published_event(5).await;
    let p = Processor::with_http(t.app.clone()).expect("processor");
    drain(&p).await;
    let ok = t.get("/health", None).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["checks"]["outbox"], "ok");
    assert_eq!(ok.json()["outbox"]["pending_count"], 2);

    clock.advance_millis(61_000);
    let failing = t.get("/health", None).await;
    assert_eq!(failing.status, 503);
    let body = failing.json();
    assert_eq!(failing.content_type(), "application/problem+json");
    assert_eq!(body["code"], "unhealthy");
    assert_eq!(body["checks"]["database"], "ok");
    assert!(
        body["checks"]["outbox"]
            .as_str()
            .is_some_and(|s| s.contains("oldest pending")),
        "{body}"
    );
    assert!(body["outbox"]["oldest_pending_age_seconds"].as_f64() > Some(60.0));

    // Dropping the only subscriber settles its messages, and health recovers.
    let id = hook["id"].as_str().expect("id");
    let r = t
        .send(
            "DELETE",
            &format!("/api/v1/admin/webhooks/{id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(t.get("/health", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivered_messages_past_the_retention_are_pruned_and_others_kept() {
    let clock = manual_clock();
    let t = app_with(
        OutboxOptions {
            max_attempts: 1,
            retention_ms: 3_600_000,
            ..quick_outbox()
        },
        clock.clone(),
    );
    let p = Processor::with_http(t.app.clone()).expect("processor");
    t.published_event(3).await;
    drain(&p).await;
    let rx = Receiver::start().await;
    rx.behaviour.broken.store(true, Ordering::SeqCst);
    subscribe(&t, &rx.url(), None).await;
    t.published_event(3).await;
    drain(&p).await;
    let states: BTreeMap<String, usize> =
        outbox_rows(&t)
            .into_iter()
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r.4).or_default() += 1;
                m
            });
    assert_eq!(
        states,
        BTreeMap::from([("dead".to_string(), 2), ("delivered".to_string(), 2)])
    );

    assert_eq!(t.app.prune_outbox().expect("prune"), 0, "nothing old yet");
    clock.advance_millis(2 * 3_600_000);
    assert_eq!(t.app.prune_outbox().expect("prune"), 2);
    let left: Vec<String> = outbox_rows(&t).into_iter().map(|r| r.4).collect();
    assert_eq!(left, vec!["dead", "dead"]);
}

/// The outbox's rows as (seq, state), in order, read straight from the file.
fn outbox_states(app: &boxoffice::app::App) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(app.store().path()).expect("db");
    let mut st = conn
        .prepare("SELECT seq, state FROM outbox ORDER BY seq")
        .expect("select");
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("rows");
    rows
}

/// A new file, and a way to put outbox messages into it: (seq, created_at, state).
fn outbox_file(messages: &[(i64, i64, &'static str)]) -> (tempfile::TempDir, boxoffice::app::App) {
    let dir = tempfile::tempdir().expect("dir");
    let app =
        boxoffice::app::App::open(&dir.path().join("p.db"), AppOptions::default()).expect("open");
    let messages = messages.to_vec();
    app.store()
        .write(move |tx| {
            for (seq, at, state) in messages {
                tx.execute(
                    "INSERT INTO outbox (seq, id, type, aggregate_id, payload, created_at, state) \
                     VALUES (?1, 'm' || ?1, 'event.updated', 'e', '{}', ?2, ?3)",
                    rusqlite::params![seq, at, state],
                )?;
            }
            Ok::<_, boxoffice::store::StoreError>(())
        })
        .expect("messages");
    (dir, app)
}

#[test]
fn pruning_walks_the_outbox_in_steps_keeps_pending_and_dead_and_stops_at_the_first_young_message() {
    use boxoffice::store::webhooks::prune_delivered;
    // Ten messages recorded at times 1..=10; the third is dead, the fifth still pending. The fourth
    // was recorded while the clock ran ahead (time 500, after now = 100): stepped over and kept. The
    // ninth was recorded at time 2 after the clock was set back: it comes after a young one, so it
    // stays.
    let messages: Vec<(i64, i64, &str)> = (1..=10)
        .map(|seq| {
            let state = match seq {
                3 => "dead",
                5 => "pending",
                _ => "delivered",
            };
            let at = match seq {
                4 => 500,
                9 => 2,
                _ => seq,
            };
            (seq, at, state)
        })
        .collect();
    let (_dir, app) = outbox_file(&messages);
    let step = |after: i64| {
        app.store()
            .write(move |tx| prune_delivered(tx, 8, 100, after, 3))
            .expect("prune")
    };
    // Older than 8: three at a time: 1, 2 (3 is dead); 6 (4 is from the future, 5 pending); then 7,
    // and 8 is young: done.
    assert_eq!(step(0), (2, Some(3)));
    assert_eq!(step(3), (1, Some(6)));
    assert_eq!(step(6), (1, None));
    let left = outbox_states(&app);
    let left: Vec<(i64, &str)> = left.iter().map(|(s, st)| (*s, st.as_str())).collect();
    assert_eq!(
        left,
        [
            (3, "dead"),
            (4, "delivered"),
            (5, "pending"),
            (8, "delivered"),
            (9, "delivered"),
            (10, "delivered")
        ]
    );
}

#[test]
fn pruning_in_chunks_keeps_the_newest_message_so_seqs_never_start_again() {
    // Ten delivered messages from 1970, far past any retention: the app prunes them three at a time.
    let messages: Vec<(i64, i64, &str)> = (1..=10).map(|seq| (seq, seq, "delivered")).collect();
    let (_dir, app) = outbox_file(&messages);
    assert_eq!(app.prune_outbox_in_chunks(3).expect("prune"), 9);
    assert_eq!(outbox_states(&app), [(10, "delivered".to_string())]);
    // The next message follows the newest one: a subscription's cursor (a seq) never passes it
    // unseen, as it would if the emptied table had numbered it 1 again.
    app.store()
        .write(|tx| {
            boxoffice::store::outbox::record(
                tx,
                "m-next",
                boxoffice::domain::DomainEventType::EventUpdated,
                "e",
                "{}",
                11,
            )
        })
        .expect("record");
    assert_eq!(outbox_states(&app).last().map(|m| m.0), Some(11));
}

#[test]
fn a_message_is_stored_delivered_while_nobody_subscribes_and_pending_once_someone_does() {
    let (_dir, app) = outbox_file(&[]);
    let record = |id: &'static str| {
        app.store()
            .write(move |tx| {
                boxoffice::store::outbox::record(
                    tx,
                    id,
                    boxoffice::domain::DomainEventType::EventUpdated,
                    "e",
                    "{}",
                    1,
                )
            })
            .expect("record")
    };
    record("nobody");
    // A subscription, paused: its messages wait for it all the same.
    app.store()
        .write(|tx| {
            tx.execute(
                "INSERT INTO webhooks (id, url, event_types, secret, enabled, cursor, created_at, \
                 updated_at) VALUES ('w', 'http://127.0.0.1:9/', '*', 's', 0, 1, 1, 1)",
                [],
            )?;
            Ok::<_, boxoffice::store::StoreError>(())
        })
        .expect("webhook");
    record("someone");
    assert_eq!(
        outbox_states(&app),
        [(1, "delivered".to_string()), (2, "pending".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_webhook_routes_check_roles_refuse_bad_input_hide_the_secret_and_audit() {
    let t = spawn_app();
    let kiosk = t.token(Role::Kiosk, "kiosk");
    let operator = t.token(Role::Operator, "door");
    t.get("/api/v1/admin/webhooks", None)
        .await
        .assert_problem(401, "unauthorized");
    t.get("/api/v1/admin/webhooks", Some(&kiosk))
        .await
        .assert_problem(403, "forbidden");
    t.get("/api/v1/admin/outbox", Some(&operator))
        .await
        .assert_problem(403, "forbidden");

    let before = t.snapshot();
    let u = "http://127.0.0.1:9/hook";
    for (body, code, status) in [
        (
            json!({"url": "ftp://example.org/x"}),
            "validation_failed",
            422,
        ),
        (json!({"url": "not a url"}), "validation_failed", 422),
        (
            json!({"url": "http://user:pw@example.org/"}),
            "validation_failed",
            422,
        ),
        (
            json!({"url": u, "event_types": ["event.exploded"]}),
            "validation_failed",
            422,
        ),
        (
            json!({"url": u, "event_types": "event.created"}),
            "validation_failed",
            422,
        ),
        (json!({"url": u, "timeout_ms": 5}), "validation_failed", 422),
        (json!({"url": u, "bogus": true}), "validation_failed", 422),
        (json!({"event_types": ["*"]}), "validation_failed", 422),
        // Hosts no resolver finds and port 0 would only fail at every delivery; an empty type
        // list asks for nothing.
        (
            json!({"url": "https://*.example.org/"}),
            "validation_failed",
            422,
        ),
        (json!({"url": "http://x..org/"}), "validation_failed", 422),
        (
            json!({"url": "http://127.0.0.1:0/hook"}),
            "validation_failed",
            422,
        ),
        (
            json!({"url": u, "event_types": []}),
            "validation_failed",
            422,
        ),
    ] {
        t.post("/api/v1/admin/webhooks", Some(&t.admin), body.clone())
            .await
            .assert_problem(status, code);
    }
    let raw = t
        .client
        .post(t.url("/api/v1/admin/webhooks"))
        .bearer_auth(&t.admin)
        .header("content-type", "application/json")
        .body("{\"url\": ")
        .send()
        .await
        .expect("send");
    assert_eq!(raw.status(), 400);
    for path in [
        "/api/v1/admin/webhooks/nope",
        "/api/v1/admin/webhooks/00000000-0000-4000-8000-000000000000",
        "/api/v1/admin/outbox/nope",
    ] {
        t.get(path, Some(&t.admin))
            .await
            .assert_problem(404, "not_found");
    }
    t.send(
        "DELETE",
        "/api/v1/admin/webhooks/00000000-0000-4000-8000-000000000000",
        Some(&t.admin),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    t.get("/api/v1/admin/outbox?state=lost", Some(&t.admin))
        .await
        .assert_problem(422, "validation_failed");
    t.get("/api/v1/admin/outbox?limit=0", Some(&t.admin))
        .await
        .assert_problem(422, "validation_failed");
    t.get("/api/v1/admin/outbox?after=zzz", Some(&t.admin))
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(t.snapshot(), before, "refused requests change nothing");

    let created = subscribe(&t, u, Some(&["event.created"])).await;
    let id = created["id"].as_str().expect("id").to_string();
    assert!(created["secret"].as_str().is_some_and(|s| s.len() > 40));
    assert_eq!(created["event_types"], json!(["event.created"]));
    assert_eq!(created["enabled"], true);
    let read = t
        .get(&format!("/api/v1/admin/webhooks/{id}"), Some(&t.admin))
        .await;
    assert_eq!(read.status, 200);
    assert!(
        read.json().get("secret").is_none(),
        "the secret is shown once"
    );
    let list = t.get("/api/v1/admin/webhooks", Some(&t.admin)).await.json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert!(list["items"][0].get("secret").is_none());

    let before = t.snapshot();
    t.send(
        "PATCH",
        &format!("/api/v1/admin/webhooks/{id}"),
        Some(&t.admin),
        Some(json!({"url": "gopher://x"})),
    )
    .await
    .assert_problem(422, "validation_failed");
    assert_eq!(t.snapshot(), before);
    let patched = t
        .send(
            "PATCH",
            &format!("/api/v1/admin/webhooks/{id}"),
            Some(&t.admin),
            Some(json!({"enabled": false, "event_types": ["*"], "timeout_ms": 2000})),
        )
        .await;
    assert_eq!(patched.status, 200);
    let patched = patched.json();
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["event_types"], json!(["*"]));
    assert_eq!(patched["timeout_ms"], 2000);
    let deleted = t
        .send(
            "DELETE",
            &format!("/api/v1/admin/webhooks/{id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    t.get(&format!("/api/v1/admin/webhooks/{id}"), Some(&t.admin))
        .await
        .assert_problem(404, "not_found");

    let conn = rusqlite::Connection::open(t.dir.path().join("boxoffice.db")).expect("db");
    let actions: Vec<(String, String, String)> = conn
        .prepare(
            "SELECT actor, action, target FROM audit WHERE action LIKE 'webhook.%' ORDER BY seq",
        )
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let expect: Vec<(String, String, String)> =
        ["webhook.create", "webhook.update", "webhook.delete"]
            .into_iter()
            .map(|a| ("admin".to_string(), a.to_string(), id.clone()))
            .collect();
    assert_eq!(actions, expect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disabled_subscription_pauses_and_resumes_where_it_left_off() {
    let t = spawn_app();
    let rx = Receiver::start().await;
    let hook = subscribe(&t, &rx.url(), None).await;
    let id = hook["id"].as_str().expect("id").to_string();
    let p = Processor::with_http(t.app.clone()).expect("processor");
    let r = t
        .send(
            "PATCH",
            &format!("/api/v1/admin/webhooks/{id}"),
            Some(&t.admin),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(r.status, 200);
    t.published_event(2).await;
    drain(&p).await;
    assert!(rx.captured().is_empty(), "nothing is sent while paused");
    assert!(
        outbox_rows(&t).iter().all(|r| r.4 == "pending"),
        "messages wait for the paused subscription"
    );
    let r = t
        .send(
            "PATCH",
            &format!("/api/v1/admin/webhooks/{id}"),
            Some(&t.admin),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(r.status, 200);
    drain(&p).await;
    let kinds: Vec<String> = rx
        .captured()
        .iter()
        .map(|c| c.json()["type"].as_str().expect("type").to_string())
        .collect();
    assert_eq!(kinds, vec!["event.created", "event.published"]);
    assert!(outbox_rows(&t).iter().all(|r| r.4 == "delivered"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscription_timeout_cuts_a_hanging_receiver_short() {
    let clock = manual_clock();
    let t = app_with(quick_outbox(), clock.clone());
    let rx = Receiver::start().await;
    rx.behaviour.delay_ms.store(3_000, Ordering::SeqCst);
    let r = t
        .post(
            "/api/v1/admin/webhooks",
            Some(&t.admin),
            json!({"url": rx.url(), "timeout_ms": 200}),
        )
        .await;
    assert_eq!(r.status, 201);
    t.published_event(2).await;
    let p = Processor::with_http(t.app.clone()).expect("processor");
    let started = Instant::now();
    drain(&p).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the 200 ms timeout, not the receiver's 3 s, bounds the attempt: {:?}",
        started.elapsed()
    );
    let pending = t
        .get("/api/v1/admin/outbox?state=pending", Some(&t.admin))
        .await
        .json();
    let first = &pending["items"][0];
    assert_eq!(first["type"], "event.created");
    assert_eq!(first["last_error"], "timed out after 200 ms");
    // The later message of the same event waits behind it, unattempted.
    assert_eq!(pending["items"][1]["type"], "event.published");
    assert_eq!(pending["items"][1]["deliveries"][0]["attempts"], 0);
}

/// Tidy: the outbox keeps to its layer. The processor holds no SQL and no rusqlite (it goes through
/// `App`), and the store's webhook SQL knows nothing of HTTP or the async runtime.
#[test]
fn the_outbox_layers_keep_their_boundaries() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect("source file");
    for file in [
        "src/outbox/mod.rs",
        "src/outbox/client.rs",
        "src/outbox/sign.rs",
    ] {
        let text = read(file);
        for banned in ["rusqlite", "SELECT ", "UPDATE ", "INSERT ", "DELETE FROM"] {
            assert!(
                !text.contains(banned),
                "{file} mentions {banned:?}: SQL belongs in src/store"
            );
        }
    }
    for file in ["src/store/webhooks.rs", "src/app/webhooks.rs"] {
        let text = read(file);
        for banned in ["reqwest", "hyper", "axum"] {
            assert!(
                !text.contains(banned),
                "{file} mentions {banned:?}: HTTP belongs in http/ and outbox/"
            );
        }
    }
    assert!(
        !read("src/app/webhooks.rs").contains("prepare_cached"),
        "app/webhooks.rs runs SQL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_the_outbox_series_and_they_move_with_deliveries() {
    let clock = manual_clock();
    let t = app_with(quick_outbox(), clock.clone());
    let rx = Receiver::start().await;
    let hook = subscribe(&t, &rx.url(), None).await;
    let hook_id = hook["id"].as_str().expect("id").to_string();
    let event = t.published_event(1).await;
    let a = t.attendee(1).await;
    assert_eq!(t.register(&event, &a).await.status, 201);

    let before = scrape(&t).await;
    let pending = sample(&before, "outbox_pending_count", &[]).expect("pending");
    assert!(
        pending >= 3.0,
        "created, published, confirmed wait: {pending}"
    );
    assert_eq!(sample(&before, "outbox_processed_total", &[]), Some(0.0));
    assert!(sample(&before, "outbox_oldest_pending_age_seconds", &[]).is_some());
    assert_eq!(sample(&before, "outbox_dead_count", &[]), Some(0.0));
    assert_eq!(sample(&before, "outbox_failed_total", &[]), Some(0.0));

    let p = Processor::with_http(t.app.clone()).expect("processor");
    drain(&p).await;
    let delivered = rx.captured().len() as f64;
    assert!(delivered >= pending);

    let after = scrape(&t).await;
    assert_eq!(sample(&after, "outbox_pending_count", &[]), Some(0.0));
    assert_eq!(
        sample(&after, "outbox_processed_total", &[]),
        Some(delivered)
    );
    let label = [("webhook_id", hook_id.as_str())];
    assert_eq!(
        sample(&after, "outbox_delivery_duration_seconds_count", &label),
        Some(delivered)
    );
    assert_eq!(
        sample(
            &after,
            "outbox_delivery_duration_seconds_bucket",
            &[("webhook_id", hook_id.as_str()), ("le", "+Inf")]
        ),
        Some(delivered)
    );
    assert!(
        sample(&after, "outbox_delivery_duration_seconds_sum", &label).is_some_and(|s| s > 0.0)
    );
}

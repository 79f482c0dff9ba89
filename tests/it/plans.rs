//! Query plans: a whole night's workload runs over HTTP (on-sale, waitlist, offers, door, counter,
//! reads, lists, exports, webhooks with a live and a dead receiver, operators' outbox lookups, a personal
//! export, audit, figures) against a store that
//! reports every statement it starts; then `EXPLAIN QUERY PLAN` runs on each distinct statement, and any
//! full table scan fails the test. New statements are covered as soon as the workload runs them.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use boxoffice::app::{AppOptions, ManualClock, SystemClock};
use boxoffice::config::HttpConfig;
use boxoffice::domain::Role;
use boxoffice::outbox::Processor;
use boxoffice::store::StoreOptions;
use serde_json::{json, Value};

use crate::support::{spawn_app_opts, TestApp};
use crate::webhooks::{drain, subscribe, Receiver};

static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn record(sql: &str) {
    SEEN.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(sql.trim().to_string());
}

/// Statements allowed to scan a whole table, each with the reason it stays cheap.
const SMALL_TABLES: &[(&str, &str)] = &[
    // A venue has a handful of subscriptions; the processor reads them all each pass.
    ("webhooks", "a handful of subscriptions"),
];

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

async fn night(t: &TestApp) {
    let admin = t.admin.clone();
    let kiosk = t.token(Role::Kiosk, "kiosk");
    let door = t.token(Role::Operator, "door");
    let rx = Receiver::start().await;
    subscribe(t, &rx.url(), None).await;
    // A receiver that is never there: failures, backoff and the breaker run too.
    subscribe(t, "http://127.0.0.1:9/hook", None).await;

    let event = t.published_event(3).await;
    let patch = t
        .send(
            "PATCH",
            &format!("/api/v1/events/{event}"),
            Some(&admin),
            Some(json!({"capacity": 2, "description": "tonight"})),
        )
        .await;
    assert_eq!(patch.status, 200);
    let mut regs = Vec::new();
    for n in 0..5 {
        let a = t.attendee(n).await;
        let r = t
            .post(
                &format!("/api/v1/events/{event}/registrations"),
                Some(&kiosk),
                json!({"attendee_id": a}),
            )
            .await;
        assert_eq!(r.status, 201);
        regs.push((a, r.json()));
    }
    // An idempotent sale, then its replay.
    let a = t.attendee(10).await;
    for _ in 0..2 {
        let r = t
            .client
            .post(t.url(&format!("/api/v1/events/{event}/registrations")))
            .bearer_auth(&kiosk)
            .header("Idempotency-Key", "sale-10")
            .json(&json!({"attendee_id": a}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 201);
    }
    let (attendee0, reg0) = &regs[0];
    let code = reg0["ticket_code"].as_str().expect("code").to_string();
    let waiting = id(&regs[4].1);
    for path in [
        format!("/api/v1/events/{event}"),
        "/api/v1/events".to_string(),
        "/api/v1/events?status=draft".to_string(),
        format!("/api/v1/events/{event}/registrations?limit=2"),
        format!("/api/v1/events/{event}/registrations?status=confirmed"),
        format!("/api/v1/events/{event}/waitlist"),
        format!("/api/v1/events/{event}/stats"),
        format!("/api/v1/events/{event}/attendees.csv"),
        format!("/api/v1/attendees/{attendee0}"),
        format!("/api/v1/attendees/{attendee0}/tickets"),
        format!("/api/v1/registrations/{waiting}"),
        format!("/api/v1/registrations/{waiting}/position"),
        "/api/v1/admin/audit?actor=door".to_string(),
        "/api/v1/admin/audit?action=event".to_string(),
        "/api/v1/admin/outbox?state=pending".to_string(),
        "/api/v1/admin/webhooks".to_string(),
        "/api/v1/stats".to_string(),
        "/health".to_string(),
        "/metrics".to_string(),
    ] {
        let r = t.get(&path, Some(&admin)).await;
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.bytes)
        );
    }
    // A page after a cursor.
    let first = t
        .get(
            &format!("/api/v1/events/{event}/registrations?limit=2"),
            Some(&admin),
        )
        .await
        .json();
    let next = first["next"].as_str().expect("next");
    let r = t
        .get(
            &format!("/api/v1/events/{event}/registrations?limit=2&after={next}"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, 200);

    // The door: admit, admit again, revert; a cancellation promotes the head of the waitlist.
    let scan = |code: String| {
        let door = door.clone();
        async move {
            t.post(
                "/api/v1/checkins",
                Some(&door),
                json!({"ticket_code": code}),
            )
            .await
        }
    };
    assert_eq!(scan(code.clone()).await.status, 200);
    assert_eq!(scan(code.clone()).await.status, 409);
    assert_eq!(
        scan("AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA".into())
            .await
            .status,
        404
    );
    let revert = t
        .post(
            &format!("/api/v1/checkins/{}/revert", id(reg0)),
            Some(&door),
            json!({}),
        )
        .await;
    assert_eq!(revert.status, 200);
    let cancel = t
        .post(
            &format!("/api/v1/registrations/{}/cancel", id(&regs[1].1)),
            Some(&kiosk),
            json!({}),
        )
        .await;
    assert_eq!(cancel.status, 200);
    // Close the waitlist and sell the freed seat at the counter over it.
    t.send(
        "PATCH",
        &format!("/api/v1/events/{event}"),
        Some(&admin),
        Some(json!({"waitlist_enabled": false, "capacity": 4})),
    )
    .await;
    let walk = t
        .post(
            &format!("/api/v1/events/{event}/walkups"),
            Some(&door),
            json!({"name": "Walk In", "override_waitlist": true}),
        )
        .await;
    assert_eq!(walk.status, 201, "{}", String::from_utf8_lossy(&walk.bytes));

    // Offers: a seat freed on an offer event is held for the head, who accepts; the next declines.
    let r = t
        .post(
            "/api/v1/events",
            Some(&admin),
            json!({"name": "Offers", "venue": "Hall", "starts_at": "2030-01-01T20:00:00Z",
                   "capacity": 1, "promotion": "offer", "offer_minutes": 5}),
        )
        .await;
    let offers = id(&r.json());
    t.post(
        &format!("/api/v1/events/{offers}/publish"),
        Some(&admin),
        json!({}),
    )
    .await;
    let mut o = Vec::new();
    for n in 20..24 {
        let a = t.attendee(n).await;
        o.push(t.register(&offers, &a).await.json());
    }
    for (i, action) in [(0, "cancel"), (1, "accept"), (1, "cancel"), (2, "decline")] {
        let r = t
            .post(
                &format!("/api/v1/registrations/{}/{action}", id(&o[i])),
                Some(&kiosk),
                json!({}),
            )
            .await;
        assert_eq!(
            r.status,
            200,
            "{action}: {}",
            String::from_utf8_lossy(&r.bytes)
        );
    }
    t.app.expire_offers().expect("expire offers");
    t.app.next_offer_expiry().expect("next expiry");
    t.app.prune_idempotency().expect("prune");

    // Deliver: one receiver takes everything, the other fails every time.
    let p = Processor::with_http(t.app.clone()).expect("processor");
    drain(&p).await;
    for path in [
        "/api/v1/admin/outbox?state=dead",
        "/api/v1/admin/outbox?state=delivered",
        "/api/v1/admin/outbox",
    ] {
        assert_eq!(t.get(path, Some(&admin)).await.status, 200);
    }
    // One message by its id, and a retry of it (409 unless it is dead: the lookup runs either way).
    let listed = t.get("/api/v1/admin/outbox", Some(&admin)).await.json();
    let message = listed["items"][0]["id"]
        .as_str()
        .expect("a message")
        .to_string();
    let path = format!("/api/v1/admin/outbox/{message}");
    assert_eq!(t.get(&path, Some(&admin)).await.status, 200);
    let retry = t
        .post(&format!("{path}/retry"), Some(&admin), json!({}))
        .await;
    assert!([200, 409].contains(&retry.status), "{}", retry.status);
    // Everything stored about one attendee: their messages are found by aggregate.
    let export = t
        .get(
            &format!("/api/v1/attendees/{}/export", regs[0].0),
            Some(&admin),
        )
        .await;
    assert_eq!(export.status, 200);
    assert!(!export.json()["outbox"]
        .as_array()
        .expect("outbox")
        .is_empty());

    // The event is cancelled with everyone on it.
    let c = t
        .post(
            &format!("/api/v1/events/{event}/cancel"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(c.status, 200);
}

/// (statement, plan lines) of every statement that scans a whole table.
fn full_scans(db: &std::path::Path, statements: &BTreeSet<String>) -> Vec<(String, Vec<String>)> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut bad = Vec::new();
    for sql in statements {
        let head = sql
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if !["SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "REPLACE"].contains(&head.as_str()) {
            continue; // BEGIN, COMMIT, SAVEPOINT, PRAGMA, schema
        }
        let mut st = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap_or_else(|e| panic!("EXPLAIN {sql}: {e}"));
        // The plan is made at prepare time, with the parameters unknown; NULLs only fill them in.
        let nulls = vec![rusqlite::types::Null; st.parameter_count()];
        let plan: Vec<String> = st
            .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        let scans_a_table = |line: &String| {
            let Some(rest) = line.strip_prefix("SCAN ") else {
                return false;
            };
            let table = rest.split_whitespace().next().unwrap_or("");
            !rest.contains(" USING ")
                && table != "CONSTANT"
                && !SMALL_TABLES.iter().any(|(t, _)| *t == table)
        };
        if plan.iter().any(scans_a_table) {
            bad.push((sql.clone(), plan));
        }
    }
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_statement_of_a_night_scans_a_whole_table() {
    let t = spawn_app_opts(
        HttpConfig::default(),
        AppOptions {
            store: StoreOptions {
                sql_trace: Some(record),
                ..StoreOptions::default()
            },
            ..AppOptions::default()
        },
        Arc::new(ManualClock::new(boxoffice::app::Clock::now(&SystemClock))),
    );
    night(&t).await;
    let statements = SEEN.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        statements.len() > 40,
        "the workload ran too few statements to prove anything: {}",
        statements.len()
    );
    let bad = full_scans(&t.dir.path().join("boxoffice.db"), &statements);
    assert!(
        bad.is_empty(),
        "full table scans:\n{}",
        bad.iter()
            .map(|(sql, plan)| format!("{sql}\n    {}", plan.join("\n    ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_scan_check_catches_a_scan() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("boxoffice.db");
    boxoffice::store::Store::open(&db, &StoreOptions::default()).expect("open");
    let mut s = BTreeSet::new();
    s.insert("SELECT * FROM registrations WHERE created_at > ?1".to_string());
    s.insert("SELECT * FROM registrations WHERE id = ?1".to_string());
    let bad = full_scans(&db, &s);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].0.contains("created_at"));
}

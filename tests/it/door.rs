//! The night: check-in at the door (I7), walk-up sales at the counter, and waitlist offers with an
//! injectable clock (no sleeping), including expiry across a restart and a chain of expiries.

use std::sync::Arc;

use boxoffice::app::{Actor, App, AppOptions, ManualClock};
use boxoffice::config::HttpConfig;
use boxoffice::domain::{Role, Timestamp};
use serde_json::{json, Value};

use crate::support::{spawn_app, spawn_app_full, Resp, TestApp};

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

async fn confirmed_ticket(t: &TestApp, event: &str, n: usize) -> Value {
    let a = t.attendee(n).await;
    let r = t.register(event, &a).await;
    assert_eq!(r.status, 201);
    let reg = r.json();
    assert_eq!(reg["status"], "confirmed");
    reg
}

async fn scan(t: &TestApp, token: &str, code: &str) -> Resp {
    t.post(
        "/api/v1/checkins",
        Some(token),
        json!({"ticket_code": code}),
    )
    .await
}

#[tokio::test]
async fn check_in_answers_every_outcome() {
    let t = spawn_app();
    let door = t.token(Role::Operator, "door");
    let event = t.published_event(5).await;
    let reg = confirmed_ticket(&t, &event, 1).await;
    let code = reg["ticket_code"].as_str().expect("code").to_string();
    assert_eq!(code.len(), 34, "28 base32 characters in groups of four");

    // Admitted, with the name to greet.
    let r = scan(&t, &door, &code).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.bytes));
    let ok = r.json();
    assert_eq!(ok["attendee"]["name"], "Person 1");
    assert_eq!(ok["registration"]["id"], reg["id"]);
    let first = ok["registration"]["checked_in_at"]
        .as_str()
        .expect("time")
        .to_string();
    assert_eq!(ok["event"]["checked_in"], 1);

    // The second scan changes nothing and says when the first was.
    let before = t.snapshot();
    let again = scan(&t, &door, &code).await;
    again.assert_problem(409, "already_checked_in");
    assert_eq!(again.json()["checked_in_at"], first.as_str());
    assert_eq!(t.snapshot(), before);

    // Read out loud or typed: case and separators do not matter.
    let other = confirmed_ticket(&t, &event, 2).await;
    let typed = other["ticket_code"]
        .as_str()
        .expect("code")
        .to_lowercase()
        .replace('-', " ");
    assert_eq!(scan(&t, &door, &typed).await.status, 200);

    // Unknown codes, well-formed or not.
    let before = t.snapshot();
    scan(&t, &door, "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA")
        .await
        .assert_problem(404, "unknown_ticket");
    scan(&t, &door, "not a ticket")
        .await
        .assert_problem(404, "unknown_ticket");
    scan(&t, &door, "")
        .await
        .assert_problem(404, "unknown_ticket");
    t.post("/api/v1/checkins", Some(&door), json!({"code": "x"}))
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(t.snapshot(), before);

    // A cancelled ticket.
    let gone = confirmed_ticket(&t, &event, 3).await;
    t.post(
        &format!("/api/v1/registrations/{}/cancel", id(&gone)),
        Some(&t.admin),
        json!({}),
    )
    .await;
    scan(&t, &door, gone["ticket_code"].as_str().expect("code"))
        .await
        .assert_problem(409, "registration_cancelled");

    // Only operators scan.
    let kiosk = t.token(Role::Kiosk, "kiosk");
    scan(&t, &kiosk, &code)
        .await
        .assert_problem(403, "forbidden");

    // Revert, then the ticket scans again; reverting twice is refused.
    let revert = format!("/api/v1/checkins/{}/revert", id(&reg));
    let r = t.post(&revert, Some(&door), json!({})).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["checked_in_at"].is_null());
    t.post(&revert, Some(&door), json!({}))
        .await
        .assert_problem(409, "not_checked_in");
    assert_eq!(scan(&t, &door, &code).await.status, 200);
    let kinds: Vec<String> = t
        .app
        .outbox_for(&id(&reg))
        .expect("outbox")
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "registration.confirmed",
            "attendee.checked_in",
            "attendee.checkin_reverted",
            "attendee.checked_in"
        ]
    );

    // A cancelled event admits nobody.
    t.post(
        &format!("/api/v1/events/{event}/cancel"),
        Some(&t.admin),
        json!({}),
    )
    .await;
    scan(&t, &door, typed.as_str())
        .await
        .assert_problem(409, "event_not_open");
    assert!(t.app.check().expect("check").ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_scans_of_one_code_admit_exactly_once() {
    let t = Arc::new(spawn_app());
    let event = t.published_event(1).await;
    let code = confirmed_ticket(&t, &event, 1).await["ticket_code"]
        .as_str()
        .expect("code")
        .to_string();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (t, code) = (t.clone(), code.clone());
        set.spawn(async move { scan(&t, &t.admin, &code).await });
    }
    let (mut admitted, mut already) = (0, 0);
    while let Some(r) = set.join_next().await {
        let r = r.expect("task");
        match r.status {
            200 => admitted += 1,
            _ => {
                r.assert_problem(409, "already_checked_in");
                already += 1;
            }
        }
    }
    assert_eq!((admitted, already), (1, 49));
    let e = t.get(&format!("/api/v1/events/{event}"), None).await.json();
    assert_eq!(e["checked_in"], 1);
}

#[tokio::test]
async fn a_scanner_retrying_with_its_key_sees_its_own_first_admission() {
    let t = spawn_app();
    let event = t.published_event(1).await;
    let code = confirmed_ticket(&t, &event, 1).await["ticket_code"]
        .as_str()
        .expect("code")
        .to_string();
    let send = || {
        t.client
            .post(t.url("/api/v1/checkins"))
            .bearer_auth(&t.admin)
            .header("idempotency-key", "scanner-7-scan-1")
            .json(&json!({"ticket_code": code}))
            .send()
    };
    let first = send().await.expect("first");
    assert_eq!(first.status(), 200);
    let first = first.bytes().await.expect("body");
    let retry = send().await.expect("retry");
    assert_eq!(
        retry.status(),
        200,
        "a retry is not told 'already checked in'"
    );
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.bytes().await.expect("body"), first);
}

#[tokio::test]
async fn walk_ups_never_jump_the_waitlist_unless_overridden() {
    let t = spawn_app();
    let counter = t.token(Role::Operator, "counter");
    let event = t.published_event(2).await;
    let walkups = format!("/api/v1/events/{event}/walkups");

    // A free seat and nobody waiting: sold at the counter, no email needed; the ticket checks in.
    let r = t
        .post(
            &walkups,
            Some(&counter),
            json!({"name": "Guest at the counter"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.bytes));
    let sale = r.json();
    assert_eq!(sale["registration"]["status"], "confirmed");
    assert!(sale["attendee"]["email"].is_null());
    let code = sale["registration"]["ticket_code"]
        .as_str()
        .expect("code")
        .to_string();
    assert_eq!(scan(&t, &counter, &code).await.status, 200);
    // No body at all is an anonymous guest.
    let r = t.send("POST", &walkups, Some(&counter), None).await;
    assert_eq!(r.status, 201);
    let anonymous = r.json();

    // Full: the counter cannot sell; online buyers join the waitlist, and the house stays sold out
    // at the counter (no seat to sell, so no queue to jump: an override would change nothing).
    t.post(&walkups, Some(&counter), json!({}))
        .await
        .assert_problem(409, "sold_out");

    let waiter = t.attendee(1).await;
    assert_eq!(t.register(&event, &waiter).await.json()["position"], 1);
    let before = t.snapshot();
    let full = t.post(&walkups, Some(&counter), json!({})).await;
    full.assert_problem(409, "sold_out");
    assert!(
        full.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("1 on the waitlist")),
        "{}",
        full.json()
    );
    t.post(&walkups, Some(&counter), json!({"override_waitlist": true}))
        .await
        .assert_problem(409, "sold_out");
    assert_eq!(t.snapshot(), before);

    // Doors open: the admin closes the waitlist, a seat is given back; the queue is frozen, so the
    // seat stays free, and only an override sells it at the counter.
    let r = t
        .send(
            "PATCH",
            &format!("/api/v1/events/{event}"),
            Some(&t.admin),
            Some(json!({"waitlist_enabled": false})),
        )
        .await;
    assert_eq!(r.status, 200);
    t.post(
        &format!(
            "/api/v1/registrations/{}/cancel",
            id(&anonymous["registration"])
        ),
        Some(&counter),
        json!({}),
    )
    .await;
    let e = t.get(&format!("/api/v1/events/{event}"), None).await.json();
    assert_eq!(
        (e["available"].as_i64(), e["waitlisted"].as_i64()),
        (Some(1), Some(1))
    );
    t.post(&walkups, Some(&counter), json!({}))
        .await
        .assert_problem(409, "waitlist_first");
    let r = t
        .post(
            &walkups,
            Some(&counter),
            json!({"override_waitlist": true, "name": "VIP"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let audit: Vec<(String, String)> = {
        let conn = rusqlite::Connection::open(t.dir.path().join("boxoffice.db")).expect("db");
        let mut st = conn
            .prepare("SELECT actor, action FROM audit WHERE action LIKE 'walkup%' ORDER BY seq")
            .expect("q");
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(
        audit,
        [
            ("counter", "walkup"),
            ("counter", "walkup"),
            ("counter", "walkup.override_waitlist")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // The override is the one sanctioned exception to FIFO: the checker accepts it.
    assert!(t.app.check().expect("check").ok());

    // Sold out with no waitlist at all.
    let full = t
        .post("/api/v1/events", Some(&t.admin), json!({"name": "F", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": 0, "waitlist_enabled": false}))
        .await
        .json();
    t.post(
        &format!("/api/v1/events/{}/publish", id(&full)),
        Some(&t.admin),
        json!({}),
    )
    .await;
    t.post(
        &format!("/api/v1/events/{}/walkups", id(&full)),
        Some(&counter),
        json!({}),
    )
    .await
    .assert_problem(409, "sold_out");
}

/// An event promoted by offer, capacity 1: one confirmed seat and `waiting` people in line.
async fn offer_event(t: &TestApp, waiting: usize) -> (String, Value, Vec<Value>) {
    let r = t
        .post(
            "/api/v1/events",
            Some(&t.admin),
            json!({"name": "O", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": 1, "promotion": "offer", "offer_minutes": 30}),
        )
        .await;
    assert_eq!(r.status, 201);
    let event = id(&r.json());
    assert_eq!(r.json()["promotion"], "offer");
    t.post(
        &format!("/api/v1/events/{event}/publish"),
        Some(&t.admin),
        json!({}),
    )
    .await;
    let holder = confirmed_ticket(t, &event, 100).await;
    let mut line = Vec::new();
    for i in 0..waiting {
        let a = t.attendee(i).await;
        line.push(t.register(&event, &a).await.json());
    }
    (event, holder, line)
}

async fn reg(t: &TestApp, r: &Value) -> Value {
    t.get(&format!("/api/v1/registrations/{}", id(r)), Some(&t.admin))
        .await
        .json()
}

#[tokio::test]
async fn offers_are_accepted_declined_and_expire_by_the_clock() {
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse("2029-06-01T12:00:00Z").expect("t"),
    ));
    let t = spawn_app_full(HttpConfig::default(), clock.clone());
    let (event, holder, line) = offer_event(&t, 3).await;

    // The holder leaves: the head of the line is offered the seat, held for 30 minutes.
    t.post(
        &format!("/api/v1/registrations/{}/cancel", id(&holder)),
        Some(&t.admin),
        json!({}),
    )
    .await;
    let head = reg(&t, &line[0]).await;
    assert_eq!(head["status"], "offered");
    assert_eq!(head["offer_expires_at"], "2029-06-01T12:30:00.000Z");
    assert!(head["ticket_code"].is_null());
    let e = t.get(&format!("/api/v1/events/{event}"), None).await.json();
    assert_eq!(
        (
            e["offered"].as_i64(),
            e["available"].as_i64(),
            e["waitlisted"].as_i64()
        ),
        (Some(1), Some(0), Some(2))
    );
    // A held seat is not for sale: a newcomer waits, the counter cannot sell.
    let late = t.attendee(50).await;
    assert_eq!(t.register(&event, &late).await.json()["position"], 3);

    // Declining passes the seat on at once.
    let r = t
        .post(
            &format!("/api/v1/registrations/{}/decline", id(&line[0])),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(r.json()["status"], "cancelled");
    assert_eq!(reg(&t, &line[1]).await["status"], "offered");
    t.post(
        &format!("/api/v1/registrations/{}/accept", id(&line[0])),
        Some(&t.admin),
        json!({}),
    )
    .await
    .assert_problem(409, "no_offer");
    t.post(
        &format!("/api/v1/registrations/{}/accept", id(&line[2])),
        Some(&t.admin),
        json!({}),
    )
    .await
    .assert_problem(409, "no_offer");

    // Accepting within the time: a confirmed seat with a ticket.
    clock.advance_millis(29 * 60_000);
    let r = t
        .post(
            &format!("/api/v1/registrations/{}/accept", id(&line[1])),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "confirmed");
    assert!(r.json()["ticket_code"].is_string());
    let again = t
        .post(
            &format!("/api/v1/registrations/{}/accept", id(&line[1])),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(
        again.json()["status"],
        "confirmed",
        "accepting twice is harmless"
    );

    // Next seat: the offer runs out; the sweep passes it on; a late answer is refused.
    t.post(
        &format!("/api/v1/registrations/{}/cancel", id(&line[1])),
        Some(&t.admin),
        json!({}),
    )
    .await;
    assert_eq!(reg(&t, &line[2]).await["status"], "offered");
    clock.advance_millis(30 * 60_000);
    assert_eq!(t.app.expire_offers().expect("expire"), 1);
    assert_eq!(reg(&t, &line[2]).await["status"], "cancelled");
    let late_reg = t
        .get(
            &format!("/api/v1/events/{event}/registrations?status=offered"),
            Some(&t.admin),
        )
        .await
        .json();
    assert_eq!(
        late_reg["items"][0]["attendee_id"],
        late.as_str(),
        "the newcomer, last in line, gets the next offer"
    );
    t.post(
        &format!("/api/v1/registrations/{}/accept", id(&line[2])),
        Some(&t.admin),
        json!({}),
    )
    .await
    .assert_problem(409, "no_offer");

    // An answer after the time but before the sweep is refused too, and the seat passes on.
    clock.advance_millis(31 * 60_000);
    let last = &late_reg["items"][0];
    t.post(
        &format!("/api/v1/registrations/{}/accept", id(last)),
        Some(&t.admin),
        json!({}),
    )
    .await
    .assert_problem(409, "offer_expired");
    let e = t.get(&format!("/api/v1/events/{event}"), None).await.json();
    assert_eq!(
        (
            e["offered"].as_i64(),
            e["waitlisted"].as_i64(),
            e["available"].as_i64()
        ),
        (Some(0), Some(0), Some(1))
    );
    let kinds: Vec<String> = t
        .app
        .outbox_for(&id(&line[1]))
        .expect("outbox")
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "registration.waitlisted",
            "registration.promoted",
            "registration.confirmed",
            "registration.cancelled"
        ]
    );
    assert!(t.app.check().expect("check").ok());
}

#[tokio::test]
async fn a_chain_of_expiries_walks_down_the_whole_waitlist() {
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse("2029-06-01T12:00:00Z").expect("t"),
    ));
    let t = spawn_app_full(HttpConfig::default(), clock.clone());
    let (event, holder, line) = offer_event(&t, 6).await;
    t.post(
        &format!("/api/v1/registrations/{}/cancel", id(&holder)),
        Some(&t.admin),
        json!({}),
    )
    .await;
    for (i, person) in line.iter().enumerate() {
        assert_eq!(
            reg(&t, person).await["status"],
            "offered",
            "person {i} holds the offer in turn"
        );
        for later in &line[i + 1..] {
            assert_eq!(reg(&t, later).await["status"], "waitlisted");
        }
        clock.advance_millis(30 * 60_000);
        assert_eq!(t.app.expire_offers().expect("expire"), 1);
        assert_eq!(reg(&t, person).await["status"], "cancelled");
        assert!(t.app.check().expect("check").ok());
    }
    let e = t.get(&format!("/api/v1/events/{event}"), None).await.json();
    assert_eq!(
        (
            e["offered"].as_i64(),
            e["waitlisted"].as_i64(),
            e["available"].as_i64()
        ),
        (Some(0), Some(0), Some(1))
    );
}

#[tokio::test]
async fn an_offer_that_runs_out_while_the_box_is_down_expires_at_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("boxoffice.db");
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse("2029-06-01T12:00:00Z").expect("t"),
    ));
    let actor = Actor::local("test");
    let line = {
        let app = App::open_with_clock(&db, AppOptions::default(), clock.clone()).expect("open");
        let new = boxoffice::domain::NewEvent::parse(
            "O",
            "V",
            None,
            "2030-01-01T00:00:00Z",
            None,
            1,
            None,
            Some("offer"),
            Some(15),
        )
        .expect("event");
        let event = app.create_event(&actor, new).expect("create").id;
        app.publish_event(&actor, event).expect("publish");
        let mut regs = Vec::new();
        for i in 0..3 {
            let a = boxoffice::domain::NewAttendee::parse(
                "P",
                Some(&format!("r{i}@example.org")),
                None,
                true,
            )
            .expect("a");
            let a = app.create_attendee(a, None).expect("attendee");
            regs.push(app.register(event, a.id, None).expect("register"));
        }
        app.cancel_registration(&Actor::local("test"), regs[0].id)
            .expect("cancel");
        assert_eq!(
            app.get_registration(regs[1].id)
                .expect("reg")
                .status
                .as_str(),
            "offered"
        );
        app.shutdown();
        regs
    };
    // Down for an hour: the offer ran out meanwhile.
    clock.advance_millis(60 * 60_000);
    let app =
        Arc::new(App::open_with_clock(&db, AppOptions::default(), clock.clone()).expect("reopen"));
    let rt = tokio::runtime::Handle::current();
    let timer = rt.spawn({
        let app = app.clone();
        async move { boxoffice::app::spawn_offer_timer(app).await }
    });
    // The timer runs on its own task: wait for its first sweep, bounded.
    let mut expired = false;
    for _ in 0..200 {
        if app
            .get_registration(line[1].id)
            .expect("reg")
            .status
            .as_str()
            == "cancelled"
        {
            expired = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    timer.abort();
    assert!(
        expired,
        "the offer that ran out during the downtime was expired by the timer at start"
    );
    assert_eq!(
        app.get_registration(line[2].id)
            .expect("reg")
            .status
            .as_str(),
        "offered",
        "the next in line has it"
    );
    assert!(app.check().expect("check").ok());
}

//! The on-sale: capacity is never exceeded, the waitlist is first come first served, and freed seats go
//! to the head of the waitlist in the same transaction that frees them (I1, I3, I4).

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{json, Value};

use crate::support::spawn_app;

/// Every waitlisted registration of the event, in order, following pagination.
async fn waitlist(t: &crate::support::TestApp, event: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(c) => format!("/api/v1/events/{event}/waitlist?limit=37&after={c}"),
            None => format!("/api/v1/events/{event}/waitlist?limit=37"),
        };
        let r = t.get(&path, Some(&t.admin)).await;
        assert_eq!(r.status, 200);
        let page = r.json();
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next"].as_str() {
            Some(c) => after = Some(c.to_string()),
            None => return items,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hammer_400_concurrent_registrations_on_100_seats() {
    let t = std::sync::Arc::new(spawn_app());
    let event = t.published_event(100).await;
    let mut attendees = Vec::new();
    for i in 0..400 {
        attendees.push(t.attendee(i).await);
    }

    let mut set = tokio::task::JoinSet::new();
    for a in attendees.clone() {
        let t = t.clone();
        let event = event.clone();
        set.spawn(async move { (a.clone(), t.register(&event, &a).await) });
    }
    let mut confirmed_codes = HashSet::new();
    let mut waitlisted_positions = BTreeSet::new();
    let mut by_attendee = HashMap::new();
    while let Some(done) = set.join_next().await {
        let (attendee, r) = done.expect("task");
        assert_eq!(
            r.status,
            201,
            "every registration succeeds: {}",
            String::from_utf8_lossy(&r.bytes)
        );
        let body = r.json();
        match body["status"].as_str() {
            Some("confirmed") => {
                assert!(body["position"].is_null());
                assert!(
                    confirmed_codes.insert(body["ticket_code"].as_str().expect("code").to_string())
                );
            }
            Some("waitlisted") => {
                assert!(body["ticket_code"].is_null());
                let p = body["position"].as_i64().expect("position");
                assert!(waitlisted_positions.insert(p), "position {p} given twice");
            }
            other => panic!("unexpected status {other:?}"),
        }
        by_attendee.insert(attendee, body);
    }
    assert_eq!(
        confirmed_codes.len(),
        100,
        "exactly capacity confirmed, distinct codes"
    );
    assert_eq!(
        waitlisted_positions,
        (1..=300).collect::<BTreeSet<i64>>(),
        "positions 1..300 as they joined"
    );

    let e = t.get(&format!("/api/v1/events/{event}"), None).await.json();
    assert_eq!(
        (
            e["confirmed"].as_i64(),
            e["waitlisted"].as_i64(),
            e["available"].as_i64()
        ),
        (Some(100), Some(300), Some(0))
    );

    // The waitlist lists them in join order: the position each got on joining is its live rank now.
    let list = waitlist(&t, &event).await;
    assert_eq!(list.len(), 300);
    for (i, reg) in list.iter().enumerate() {
        assert_eq!(reg["position"].as_i64(), Some(i as i64 + 1));
        let joined = &by_attendee[reg["attendee_id"].as_str().expect("attendee")];
        assert_eq!(
            joined["position"], reg["position"],
            "rank follows join order"
        );
        assert_eq!(joined["id"], reg["id"]);
    }
    let report = t.app.check().expect("check");
    assert!(report.ok(), "{:?}", report.violations);
}

/// A small event: capacity 3, three confirmed, five waiting. Returns (event, registrations in join order).
async fn full_event_with_waitlist(t: &crate::support::TestApp) -> (String, Vec<Value>) {
    let event = t.published_event(3).await;
    let mut regs = Vec::new();
    for i in 0..8 {
        let a = t.attendee(i).await;
        let r = t.register(&event, &a).await;
        assert_eq!(r.status, 201);
        regs.push(r.json());
    }
    let statuses: Vec<_> = regs
        .iter()
        .map(|r| r["status"].as_str().expect("status").to_string())
        .collect();
    assert_eq!(
        statuses,
        [
            "confirmed",
            "confirmed",
            "confirmed",
            "waitlisted",
            "waitlisted",
            "waitlisted",
            "waitlisted",
            "waitlisted"
        ]
    );
    (event, regs)
}

async fn status_and_position(t: &crate::support::TestApp, reg: &Value) -> (String, Option<i64>) {
    let r = t
        .get(
            &format!("/api/v1/registrations/{}", reg["id"].as_str().expect("id")),
            Some(&t.admin),
        )
        .await;
    assert_eq!(r.status, 200);
    let b = r.json();
    (
        b["status"].as_str().expect("status").to_string(),
        b["position"].as_i64(),
    )
}

#[tokio::test]
async fn cancelling_a_confirmed_seat_promotes_the_head_and_moves_everyone_up() {
    let t = spawn_app();
    let (event, regs) = full_event_with_waitlist(&t).await;

    let r = t
        .post(
            &format!(
                "/api/v1/registrations/{}/cancel",
                regs[1]["id"].as_str().expect("id")
            ),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "cancelled");

    // The answer came after the commit: the head is already confirmed, with a ticket.
    let head = t
        .get(
            &format!(
                "/api/v1/registrations/{}",
                regs[3]["id"].as_str().expect("id")
            ),
            Some(&t.admin),
        )
        .await
        .json();
    assert_eq!(head["status"], "confirmed");
    assert!(head["ticket_code"].is_string());
    assert!(head["position"].is_null());
    for (i, reg) in regs[4..].iter().enumerate() {
        assert_eq!(
            status_and_position(&t, reg).await,
            ("waitlisted".to_string(), Some(i as i64 + 1))
        );
    }
    let pos = t
        .get(
            &format!(
                "/api/v1/registrations/{}/position",
                regs[7]["id"].as_str().expect("id")
            ),
            Some(&t.admin),
        )
        .await
        .json();
    assert_eq!(
        pos,
        json!({"status": "waitlisted", "position": 4, "waitlist_length": 4})
    );

    let e = t.get(&format!("/api/v1/events/{event}"), None).await.json();
    assert_eq!(
        (e["confirmed"].as_i64(), e["waitlisted"].as_i64()),
        (Some(3), Some(4))
    );
    // The promotion is recorded as a domain event for the promoted registration.
    let kinds: Vec<String> = t
        .app
        .outbox_for(regs[3]["id"].as_str().expect("id"))
        .expect("outbox")
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(kinds, ["registration.waitlisted", "registration.promoted"]);

    // Leaving the waitlist moves those behind up; cancelling twice changes nothing.
    let leave = format!(
        "/api/v1/registrations/{}/cancel",
        regs[5]["id"].as_str().expect("id")
    );
    assert_eq!(t.post(&leave, Some(&t.admin), json!({})).await.status, 200);
    let before = t.snapshot();
    let again = t.post(&leave, Some(&t.admin), json!({})).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["status"], "cancelled");
    assert_eq!(
        t.snapshot(),
        before,
        "cancelling a cancelled registration changes nothing"
    );
    assert_eq!(status_and_position(&t, &regs[4]).await.1, Some(1));
    assert_eq!(status_and_position(&t, &regs[6]).await.1, Some(2));
    assert_eq!(status_and_position(&t, &regs[7]).await.1, Some(3));
    assert!(t.app.check().expect("check").ok());
}

#[tokio::test]
async fn raising_capacity_promotes_the_first_k_and_lowering_below_confirmed_is_refused() {
    let t = spawn_app();
    let (event, regs) = full_event_with_waitlist(&t).await;
    let path = format!("/api/v1/events/{event}");

    let r = t
        .send("PATCH", &path, Some(&t.admin), Some(json!({"capacity": 5})))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.bytes));
    assert_eq!(
        (
            r.json()["confirmed"].as_i64(),
            r.json()["waitlisted"].as_i64()
        ),
        (Some(5), Some(3))
    );
    assert_eq!(status_and_position(&t, &regs[3]).await.0, "confirmed");
    assert_eq!(status_and_position(&t, &regs[4]).await.0, "confirmed");
    assert_eq!(
        status_and_position(&t, &regs[5]).await,
        ("waitlisted".to_string(), Some(1))
    );
    assert_eq!(
        status_and_position(&t, &regs[7]).await,
        ("waitlisted".to_string(), Some(3))
    );

    let before = t.snapshot();
    let r = t
        .send("PATCH", &path, Some(&t.admin), Some(json!({"capacity": 4})))
        .await;
    r.assert_problem(409, "capacity_below_confirmed");
    assert_eq!(t.snapshot(), before);

    // Raising past the waitlist empties it and leaves the rest free.
    let r = t
        .send(
            "PATCH",
            &path,
            Some(&t.admin),
            Some(json!({"capacity": 10})),
        )
        .await;
    assert_eq!(
        (
            r.json()["confirmed"].as_i64(),
            r.json()["waitlisted"].as_i64(),
            r.json()["available"].as_i64()
        ),
        (Some(8), Some(0), Some(2))
    );
    assert!(t.app.check().expect("check").ok());
}

#[tokio::test]
async fn registration_rules_answer_their_codes() {
    let t = spawn_app();
    let a = t.attendee(1).await;
    let b = t.attendee(2).await;

    // Draft events are not open.
    let r = t.post("/api/v1/events", Some(&t.admin), json!({"name": "D", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": 1, "waitlist_enabled": false})).await;
    let draft = r.json()["id"].as_str().expect("id").to_string();
    t.register(&draft, &a)
        .await
        .assert_problem(409, "event_not_open");

    // Full with the waitlist off: sold out. Already registered: refused.
    assert_eq!(
        t.post(
            &format!("/api/v1/events/{draft}/publish"),
            Some(&t.admin),
            json!({})
        )
        .await
        .status,
        200
    );
    assert_eq!(t.register(&draft, &a).await.status, 201);
    t.register(&draft, &a)
        .await
        .assert_problem(409, "already_registered");
    t.register(&draft, &b).await.assert_problem(409, "sold_out");

    // Unknown ids.
    t.register("00000000-0000-4000-8000-000000000000", &a)
        .await
        .assert_problem(404, "not_found");
    t.register(&draft, "00000000-0000-4000-8000-000000000000")
        .await
        .assert_problem(404, "not_found");

    // Cancelling the event cancels its registrations and closes it.
    let r = t
        .post(
            &format!("/api/v1/events/{draft}/cancel"),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(r.json()["status"], "cancelled");
    assert_eq!(r.json()["confirmed"], 0);
    t.register(&draft, &b)
        .await
        .assert_problem(409, "event_not_open");
    t.post(
        &format!("/api/v1/events/{draft}/publish"),
        Some(&t.admin),
        json!({}),
    )
    .await
    .assert_problem(409, "invalid_transition");
    let tickets = t
        .get(&format!("/api/v1/attendees/{a}/tickets"), Some(&t.admin))
        .await
        .json();
    assert_eq!(tickets["items"][0]["status"], "cancelled");
    assert_eq!(tickets["items"][0]["event"]["status"], "cancelled");

    // Duplicate email, case-insensitively.
    let r = t
        .post(
            "/api/v1/attendees",
            Some(&t.admin),
            json!({"name": "Again", "email": "P1@EXAMPLE.org"}),
        )
        .await;
    r.assert_problem(409, "email_taken");
}

#[tokio::test]
async fn cancelling_an_event_cancels_every_active_registration_with_its_domain_events() {
    let t = spawn_app();
    let (event, regs) = full_event_with_waitlist(&t).await;
    let r = t
        .post(
            &format!("/api/v1/events/{event}/cancel"),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    for reg in &regs {
        assert_eq!(
            status_and_position(&t, reg).await,
            ("cancelled".to_string(), None)
        );
        let kinds: Vec<String> = t
            .app
            .outbox_for(reg["id"].as_str().expect("id"))
            .expect("outbox")
            .into_iter()
            .map(|m| m.kind)
            .collect();
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("registration.cancelled")
        );
    }
    let kinds: Vec<String> = t
        .app
        .outbox_for(&event)
        .expect("outbox")
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(
        kinds,
        ["event.created", "event.published", "event.cancelled"]
    );
    // Cancelling again succeeds and changes nothing.
    let before = t.snapshot();
    assert_eq!(
        t.post(
            &format!("/api/v1/events/{event}/cancel"),
            Some(&t.admin),
            json!({})
        )
        .await
        .status,
        200
    );
    assert_eq!(t.snapshot(), before);
    assert!(t.app.check().expect("check").ok());
}

#[tokio::test]
async fn lists_paginate_with_stable_cursors() {
    let t = spawn_app();
    for i in 0..7 {
        let r = t
            .post("/api/v1/events", Some(&t.admin), json!({"name": format!("E{i}"), "venue": "V", "starts_at": format!("2030-01-0{}T00:00:00Z", 7 - i), "capacity": 1}))
            .await;
        assert_eq!(r.status, 201);
    }
    let mut names = Vec::new();
    let mut path = "/api/v1/events?limit=3".to_string();
    loop {
        let page = t.get(&path, Some(&t.admin)).await.json();
        names.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["name"].as_str().expect("name").to_string()),
        );
        match page["next"].as_str() {
            Some(c) => path = format!("/api/v1/events?limit=3&after={c}"),
            None => break,
        }
    }
    assert_eq!(
        names,
        ["E6", "E5", "E4", "E3", "E2", "E1", "E0"],
        "by start time, each once"
    );
    // Anonymous callers see published events only: none here.
    assert_eq!(
        t.get("/api/v1/events", None).await.json()["items"],
        json!([])
    );
    t.get("/api/v1/events?limit=0", None)
        .await
        .assert_problem(422, "validation_failed");
    t.get("/api/v1/events?limit=501", None)
        .await
        .assert_problem(422, "validation_failed");
    t.get("/api/v1/events?after=garbage", None)
        .await
        .assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn a_sale_answers_with_the_payload_of_its_domain_event() {
    let t = spawn_app();
    let event = t.published_event(1).await;
    // The first sale takes the fast path (no Idempotency-Key) and answers with the outbox payload it
    // wrote; the second, with a key, is serialized on its own: both are the registration, in the
    // same JSON as its domain event.
    let (a, b) = (t.attendee(1).await, t.attendee(2).await);
    let fast = t.register(&event, &a).await;
    let keyed = t
        .client
        .post(t.url(&format!("/api/v1/events/{event}/registrations")))
        .bearer_auth(&t.admin)
        .header("Idempotency-Key", "answer-2")
        .json(&json!({"attendee_id": b}))
        .send()
        .await
        .expect("send");
    assert_eq!(keyed.status(), 201);
    let keyed: Value = keyed.json().await.expect("json");
    assert_eq!(fast.status, 201);
    assert_eq!(
        fast.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    for (answer, kind) in [
        (fast.json(), "registration.confirmed"),
        (keyed, "registration.waitlisted"),
    ] {
        let id = answer["id"].as_str().expect("id");
        let messages = t.app.outbox_for(id).expect("outbox");
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].kind, kind);
        let payload: Value = serde_json::from_str(&messages[0].payload).expect("payload");
        assert_eq!(answer, payload);
    }
    // The fast answer is the stored payload to the byte.
    let id = fast.json()["id"].as_str().expect("id").to_string();
    let stored = t.app.outbox_for(&id).expect("outbox").remove(0).payload;
    assert_eq!(String::from_utf8(fast.bytes).expect("utf-8"), stored);
}

//! `Idempotency-Key` on creating writes: replay byte for byte, 422 on a different request, one
//! registration however many retries race, 24 hours per (token, key).

use std::sync::Arc;

use boxoffice::app::ManualClock;
use boxoffice::config::HttpConfig;
use boxoffice::domain::{Role, Timestamp};
use serde_json::json;

use crate::support::{spawn_app, spawn_app_full, Resp, TestApp};

async fn post_with_key(
    t: &TestApp,
    path: &str,
    token: &str,
    key: &str,
    body: &serde_json::Value,
) -> Resp {
    let r = t
        .client
        .post(t.url(path))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("request");
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        bytes: r.bytes().await.expect("body").to_vec(),
    }
}

#[tokio::test]
async fn the_same_key_replays_the_first_response_byte_for_byte() {
    let t = spawn_app();
    let kiosk = t.token(Role::Kiosk, "kiosk-1");
    let event = t.published_event(1).await;
    let a = t.attendee(1).await;
    let path = format!("/api/v1/events/{event}/registrations");
    let body = json!({"attendee_id": a});

    let first = post_with_key(&t, &path, &kiosk, "sale-1", &body).await;
    assert_eq!(first.status, 201);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let before = t.snapshot();
    let again = post_with_key(&t, &path, &kiosk, "sale-1", &body).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.bytes, first.bytes, "byte for byte");
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(t.snapshot(), before, "a replay changes nothing");

    // A different body under the same key is refused and changes nothing.
    let b = t.attendee(2).await;
    let before = t.snapshot();
    post_with_key(&t, &path, &kiosk, "sale-1", &json!({"attendee_id": b}))
        .await
        .assert_problem(422, "idempotency_key_reused");
    assert_eq!(t.snapshot(), before);
    // So is a body that would not even parse under that key: the reused key is the fault, not the
    // input (an invalid id, then JSON cut short).
    post_with_key(&t, &path, &kiosk, "sale-1", &json!({"attendee_id": "nope"}))
        .await
        .assert_problem(422, "idempotency_key_reused");
    let cut = t
        .client
        .post(t.url(&path))
        .bearer_auth(&kiosk)
        .header("idempotency-key", "sale-1")
        .header("content-type", "application/json")
        .body("{\"attendee_id\":")
        .send()
        .await
        .expect("request");
    let cut = Resp {
        status: cut.status().as_u16(),
        headers: cut.headers().clone(),
        bytes: cut.bytes().await.expect("body").to_vec(),
    };
    cut.assert_problem(422, "idempotency_key_reused");
    assert_eq!(t.snapshot(), before);
    // Under an unused key the same input is bad input, and the key stays unused.
    post_with_key(&t, &path, &kiosk, "sale-2", &json!({"attendee_id": "nope"}))
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(t.snapshot(), before);
    let c = t.attendee(3).await;
    let fresh = post_with_key(&t, &path, &kiosk, "sale-2", &json!({"attendee_id": c})).await;
    assert_eq!(
        fresh.status, 201,
        "the failed parse stored nothing under sale-2"
    );

    // Keys belong to a token: another token's "sale-1" is a different request.
    let other = t.token(Role::Kiosk, "kiosk-2");
    let r = post_with_key(&t, &path, &other, "sale-1", &json!({"attendee_id": b})).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["status"], "waitlisted");

    // A refused first response (a conflict) is stored and replayed too.
    let dup = post_with_key(&t, &path, &other, "dup", &json!({"attendee_id": b})).await;
    dup.assert_problem(409, "already_registered");
    let dup2 = post_with_key(&t, &path, &other, "dup", &json!({"attendee_id": b})).await;
    assert_eq!(dup2.bytes, dup.bytes);
    assert!(dup2.headers.get("idempotent-replayed").is_some());

    // Attendee creation takes keys too.
    let person = json!({"name": "Kim", "email": "kim@example.org"});
    let p1 = post_with_key(&t, "/api/v1/attendees", &kiosk, "person-1", &person).await;
    let p2 = post_with_key(&t, "/api/v1/attendees", &kiosk, "person-1", &person).await;
    assert_eq!((p1.status, p2.status), (201, 201));
    assert_eq!(p1.bytes, p2.bytes);

    // A malformed key is refused.
    post_with_key(&t, &path, &kiosk, "", &body)
        .await
        .assert_problem(400, "invalid_idempotency_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_retries_create_exactly_one_registration() {
    let t = Arc::new(spawn_app());
    let event = t.published_event(10).await;
    let a = t.attendee(1).await;
    let path = format!("/api/v1/events/{event}/registrations");
    let body = json!({"attendee_id": a});

    let mut set = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (t, path, body) = (t.clone(), path.clone(), body.clone());
        set.spawn(async move { post_with_key(&t, &path, &t.admin, "retry-storm", &body).await });
    }
    let mut created = Vec::new();
    let mut in_flight = 0;
    while let Some(r) = set.join_next().await {
        let r = r.expect("task");
        match r.status {
            201 => created.push(r.bytes),
            409 => {
                r.assert_problem(409, "idempotency_key_in_flight");
                in_flight += 1;
            }
            s => panic!("unexpected {s}: {}", String::from_utf8_lossy(&r.bytes)),
        }
    }
    assert!(!created.is_empty());
    assert!(
        created.iter().all(|b| *b == created[0]),
        "every 201 is the same response"
    );
    assert_eq!(created.len() + in_flight, 200);
    let regs = t
        .get(
            &format!("/api/v1/events/{event}/registrations"),
            Some(&t.admin),
        )
        .await
        .json();
    assert_eq!(
        regs["items"].as_array().map(Vec::len),
        Some(1),
        "exactly one registration"
    );
}

#[tokio::test]
async fn a_key_is_kept_for_24_hours_then_forgotten() {
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse("2030-01-01T00:00:00Z").expect("time"),
    ));
    let t = spawn_app_full(HttpConfig::default(), clock.clone());
    let person = json!({"name": "Kim", "email": "kim@example.org"});
    let first = post_with_key(&t, "/api/v1/attendees", &t.admin, "k", &person).await;
    assert_eq!(first.status, 201);

    clock.advance_millis(24 * 3_600_000 - 1);
    let replay = post_with_key(&t, "/api/v1/attendees", &t.admin, "k", &person).await;
    assert_eq!(
        replay.bytes, first.bytes,
        "still replayed just before 24 hours"
    );

    clock.advance_millis(2);
    let fresh = post_with_key(&t, "/api/v1/attendees", &t.admin, "k", &person).await;
    assert!(fresh.headers.get("idempotent-replayed").is_none());
    fresh.assert_problem(409, "email_taken");
    assert_eq!(
        t.app.prune_idempotency().expect("prune"),
        0,
        "the expired key was replaced by the fresh answer"
    );
    clock.advance_millis(25 * 3_600_000);
    assert_eq!(t.app.prune_idempotency().expect("prune"), 1);
}

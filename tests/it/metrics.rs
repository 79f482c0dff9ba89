//! `/metrics` over real HTTP, parsed by the reference Prometheus parser: every series of DESIGN.md
//! section 6 (but the cache's) is there with its type, request series are per route template (never a
//! raw path), and the series move with real requests, counting only what committed.

use serde_json::json;

use crate::support::{sample, scrape_families, spawn_app, Samples};

fn value(s: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(s, name, labels).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_is_there_and_moves_with_committed_work_only() {
    let t = spawn_app();
    let event = t.published_event(1).await;
    let ada = t.attendee(1).await;
    let grace = t.attendee(2).await;

    let (before, families) = scrape_families(&t).await;
    for (family, kind) in [
        ("http_requests", "counter"),
        ("http_request_duration_seconds", "histogram"),
        ("registrations", "counter"),
        ("waitlist_promotions", "counter"),
        ("checkins", "counter"),
        ("db_commit_batch_size", "histogram"),
        ("db_commit_duration_seconds", "histogram"),
        ("db_writer_queue", "gauge"),
        ("outbox_pending_count", "gauge"),
        ("outbox_oldest_pending_age_seconds", "gauge"),
        ("outbox_processed", "counter"),
        ("outbox_failed", "counter"),
        ("outbox_dead_count", "gauge"),
        ("outbox_delivery_duration_seconds", "histogram"),
        ("console_http_requests", "counter"),
        ("console_http_request_duration_seconds", "histogram"),
    ] {
        // The parser names counter families without their `_total`.
        assert_eq!(
            families.get(family).map(String::as_str),
            Some(kind),
            "{family}: {families:?}"
        );
    }
    // Every route has its histogram before its first request.
    let reg_route = [("route", "/api/v1/events/{id}/registrations")];
    assert_eq!(
        sample(&before, "http_request_duration_seconds_count", &reg_route),
        Some(0.0)
    );

    // Ada gets the seat, Grace waits; a second try by Ada and a sale under a replayed
    // Idempotency-Key commit nothing new and count nothing.
    let path = format!("/api/v1/events/{event}/registrations");
    let first = t.register(&event, &ada).await;
    assert_eq!(first.status, 201);
    let code = first.json()["ticket_code"]
        .as_str()
        .expect("code")
        .to_string();
    let ada_reg = first.json()["id"].as_str().expect("id").to_string();
    t.register(&event, &ada)
        .await
        .assert_problem(409, "already_registered");
    for _ in 0..2 {
        let r = t
            .client
            .post(t.url(&path))
            .bearer_auth(&t.admin)
            .header("idempotency-key", "grace-1")
            .json(&json!({"attendee_id": grace}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 201);
    }
    // The door: one admission, then a second scan refused.
    let scan = t
        .post(
            "/api/v1/checkins",
            Some(&t.admin),
            json!({"ticket_code": code}),
        )
        .await;
    assert_eq!(scan.status, 200);
    t.post(
        "/api/v1/checkins",
        Some(&t.admin),
        json!({"ticket_code": code}),
    )
    .await
    .assert_problem(409, "already_checked_in");
    // Ada cancels: Grace is promoted in the same transaction.
    let cancel = t
        .post(
            &format!("/api/v1/registrations/{ada_reg}/cancel"),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(cancel.status, 200);
    for _ in 0..2 {
        assert_eq!(
            t.get(&format!("/api/v1/events/{event}"), None).await.status,
            200
        );
    }
    assert_eq!(t.get("/no/such/route/42", None).await.status, 404);

    let (after, _) = scrape_families(&t).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let reg_201 = [
        ("route", "/api/v1/events/{id}/registrations"),
        ("status", "201"),
    ];
    let reg_409 = [
        ("route", "/api/v1/events/{id}/registrations"),
        ("status", "409"),
    ];
    assert_eq!(delta("http_requests_total", &reg_201), 3.0);
    assert_eq!(delta("http_requests_total", &reg_409), 1.0);
    assert_eq!(
        delta("http_request_duration_seconds_count", &reg_route),
        4.0
    );
    assert!(delta("http_request_duration_seconds_sum", &reg_route) > 0.0);
    assert_eq!(
        delta(
            "http_requests_total",
            &[("route", "/api/v1/events/{id}"), ("status", "200")]
        ),
        2.0
    );
    assert_eq!(
        delta(
            "http_requests_total",
            &[("route", "/api/v1/checkins"), ("status", "409")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    // Route labels are templates: no id, no raw path.
    for (name, labels, _) in &after {
        if let Some(route) = labels.get("route").and_then(|v| v.as_str()) {
            assert!(
                route == "unmatched" || route.starts_with('/'),
                "{name}: unexpected route label {route:?}"
            );
            for raw in [&event, &ada, &grace, &ada_reg, "/no/such"] {
                assert!(!route.contains(raw), "{name}: a raw path in {route:?}");
            }
        }
    }

    // Business counters: only what committed. The refused sale, the replay and the refused scan
    // are not there.
    assert_eq!(
        delta("registrations_total", &[("status", "confirmed")]),
        1.0
    );
    assert_eq!(
        delta("registrations_total", &[("status", "waitlisted")]),
        1.0
    );
    assert_eq!(
        delta("registrations_total", &[("status", "cancelled")]),
        1.0
    );
    assert_eq!(delta("waitlist_promotions_total", &[]), 1.0);
    assert_eq!(delta("checkins_total", &[]), 1.0);

    // The writer: one observation per group commit, at least one group per committed write.
    let commits = delta("db_commit_batch_size_count", &[]);
    assert!(commits >= 4.0, "{commits}");
    assert_eq!(delta("db_commit_duration_seconds_count", &[]), commits);
    assert!(delta("db_commit_duration_seconds_sum", &[]) > 0.0);
    assert!(delta("db_commit_batch_size_sum", &[]) >= commits);
}

/// A request of the remote console (its user agent) counts like any other, and once more in the
/// console's own series, which the console subtracts; other clients' requests are not in those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_requests_are_counted_twice_and_no_one_elses() {
    let t = spawn_app();
    let (before, _) = scrape_families(&t).await;
    let ping = t.url("/api/v1/ping");
    for agent in [
        "boxoffice-console/0.1.0",
        "curl/8.0",
        "a boxoffice-console/",
    ] {
        let r = t
            .client
            .get(&ping)
            .header("user-agent", agent)
            .send()
            .await
            .expect("ping");
        assert_eq!(r.status(), 200);
    }
    let (after, _) = scrape_families(&t).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let ping_200 = [("route", "/api/v1/ping"), ("status", "200")];
    assert_eq!(delta("http_requests_total", &ping_200), 3.0);
    assert_eq!(delta("console_http_requests_total", &[]), 1.0);
    assert_eq!(
        delta("console_http_request_duration_seconds_count", &[]),
        1.0
    );
    assert_eq!(
        delta(
            "console_http_request_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        1.0
    );
}

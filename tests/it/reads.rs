//! The read path: the cache never answers a caller's own write stale, and counts its hits and misses;
//! event statistics; the streamed door list (`attendees.csv`); keyset pages that stay put.

use boxoffice::domain::Role;
use serde_json::{json, Value};

use crate::support::{sample, scrape};
use crate::support::{spawn_app, TestApp};

async fn cache_counts(t: &TestApp, kind: &str) -> (f64, f64) {
    let m = scrape(t).await;
    (
        sample(&m, "cache_hits_total", &[("kind", kind)]).expect("hits series"),
        sample(&m, "cache_misses_total", &[("kind", kind)]).expect("misses series"),
    )
}

#[tokio::test]
async fn an_event_read_after_a_sale_shows_the_sale_and_repeated_reads_hit_the_cache() {
    let t = spawn_app();
    let event = t.published_event(1).await;
    let path = format!("/api/v1/events/{event}");
    let (h0, m0) = cache_counts(&t, "event").await;

    let first = t.get(&path, None).await.json();
    assert_eq!(first["confirmed"], 0);
    for _ in 0..5 {
        assert_eq!(t.get(&path, None).await.json()["available"], 1);
    }
    let (h1, m1) = cache_counts(&t, "event").await;
    assert_eq!(m1 - m0, 1.0, "one miss filled the cache");
    assert_eq!(h1 - h0, 5.0, "the next five reads were hits");

    // A sale, then a read: the sale is there, at once, for the caller and for everyone else.
    let a = t.attendee(1).await;
    assert_eq!(t.register(&event, &a).await.json()["status"], "confirmed");
    let after = t.get(&path, None).await.json();
    assert_eq!(
        (after["confirmed"].clone(), after["available"].clone()),
        (json!(1), json!(0))
    );
    let b = t.attendee(2).await;
    assert_eq!(t.register(&event, &b).await.json()["status"], "waitlisted");
    assert_eq!(t.get(&path, None).await.json()["waitlisted"], 1);
    // The event was being read, so the writer stored its new counts before answering the sales:
    // the reads after them were hits, not trips to the database.
    let (h2, m2) = cache_counts(&t, "event").await;
    assert_eq!(m2, m1, "no miss after the sales");
    assert_eq!(h2 - h1, 2.0);

    // An edit by the admin shows on the next read too.
    let patched = t
        .send(
            "PATCH",
            &path,
            Some(&t.admin),
            Some(json!({"name": "Gala II"})),
        )
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(t.get(&path, None).await.json()["name"], "Gala II");
}

#[tokio::test]
async fn a_cached_draft_event_stays_hidden_from_the_public() {
    let t = spawn_app();
    let r = t
        .post(
            "/api/v1/events",
            Some(&t.admin),
            json!({"name": "Draft", "venue": "Hall", "starts_at": "2030-01-01T20:00:00Z", "capacity": 3}),
        )
        .await;
    let id = r.json()["id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/events/{id}");
    // The admin's read fills the cache; the anonymous read must still be refused, from the cache.
    assert_eq!(t.get(&path, Some(&t.admin)).await.status, 200);
    assert_eq!(t.get(&path, Some(&t.admin)).await.status, 200);
    t.get(&path, None).await.assert_problem(404, "not_found");
    let kiosk = t.token(Role::Kiosk, "kiosk");
    t.get(&path, Some(&kiosk))
        .await
        .assert_problem(404, "not_found");
    // A bad token is still refused, even for a value the cache holds.
    t.get(&path, Some("not-a-token"))
        .await
        .assert_problem(401, "unauthorized");
}

async fn pos(t: &TestApp, id: String) -> Value {
    t.get(
        &format!("/api/v1/registrations/{id}/position"),
        Some(&t.admin),
    )
    .await
    .json()
}

#[tokio::test]
async fn positions_move_as_soon_as_someone_ahead_leaves() {
    let t = spawn_app();
    let event = t.published_event(1).await;
    let mut regs = Vec::new();
    for n in 0..4 {
        let a = t.attendee(n).await;
        regs.push(t.register(&event, &a).await.json());
    }
    let last = regs[3]["id"].as_str().expect("id").to_string();
    assert_eq!(pos(&t, last.clone()).await["position"], 3);
    assert_eq!(pos(&t, last.clone()).await["position"], 3, "cached");

    // The waitlist head leaves: everyone behind moves up, though only the head's row changed.
    let head = regs[1]["id"].as_str().expect("id");
    let c = t
        .post(
            &format!("/api/v1/registrations/{head}/cancel"),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(c.status, 200);
    let p = pos(&t, last.clone()).await;
    assert_eq!(
        (p["position"].clone(), p["waitlist_length"].clone()),
        (json!(2), json!(2))
    );

    // The seat holder leaves: the new head is promoted, and the last moves up again.
    let holder = regs[0]["id"].as_str().expect("id");
    t.post(
        &format!("/api/v1/registrations/{holder}/cancel"),
        Some(&t.admin),
        json!({}),
    )
    .await;
    assert_eq!(pos(&t, last.clone()).await["position"], 1);
    let promoted = regs[2]["id"].as_str().expect("id").to_string();
    let p = pos(&t, promoted).await;
    assert_eq!(
        (p["status"].clone(), p["position"].clone()),
        (json!("confirmed"), Value::Null)
    );
    let (hits, _) = cache_counts(&t, "position").await;
    assert!(hits >= 1.0, "the repeated read was a hit: {hits}");
}

/// Every registration's position, as the position route answers it, and as the operator's waitlist
/// list (counted over the file) gives it.
async fn positions_both_ways(
    t: &TestApp,
    event: &str,
    regs: &[String],
) -> (Vec<Value>, Vec<Value>) {
    let mut routed = Vec::new();
    for id in regs {
        let p = pos(t, id.clone()).await;
        routed.push(json!([
            id,
            p["status"],
            p["position"],
            p["waitlist_length"]
        ]));
    }
    let list = t
        .get(
            &format!("/api/v1/events/{event}/waitlist?limit=500"),
            Some(&t.admin),
        )
        .await
        .json();
    let items = list["items"].as_array().expect("items");
    let mut counted = Vec::new();
    for id in regs {
        let found = items.iter().find(|r| r["id"] == json!(id));
        counted.push(match found {
            Some(r) => json!([id, "waitlisted", r["position"], items.len()]),
            None => {
                let r = t
                    .get(&format!("/api/v1/registrations/{id}"), Some(&t.admin))
                    .await
                    .json();
                json!([id, r["status"], Value::Null, items.len()])
            }
        });
    }
    (routed, counted)
}

#[tokio::test]
async fn positions_stay_exact_while_the_waitlist_moves_and_polls_stay_in_memory() {
    let t = spawn_app();
    let event = t.published_event(3).await;
    let mut regs = Vec::new();
    for n in 0..12 {
        let a = t.attendee(n).await;
        regs.push(
            t.register(&event, &a).await.json()["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    // The first polls read the waitlist order once; from then on the writer edits it.
    let (routed, counted) = positions_both_ways(&t, &event, &regs).await;
    assert_eq!(routed, counted);
    let (_, order_misses) = cache_counts(&t, "waitlist").await;

    let cancel = |id: String| {
        let t = &t;
        async move {
            let r = t
                .post(
                    &format!("/api/v1/registrations/{id}/cancel"),
                    Some(&t.admin),
                    json!({}),
                )
                .await;
            assert_eq!(r.status, 200, "cancel {id}");
        }
    };
    // Someone in the middle of the waitlist leaves; a seat holder leaves (the head is promoted);
    // newcomers join at the end; capacity goes up by two (two promotions at once).
    cancel(regs[7].clone()).await;
    let (routed, counted) = positions_both_ways(&t, &event, &regs).await;
    assert_eq!(routed, counted, "after a waiting registration left");
    cancel(regs[1].clone()).await;
    let (routed, counted) = positions_both_ways(&t, &event, &regs).await;
    assert_eq!(routed, counted, "after a promotion");
    assert_eq!(routed[3][1], "confirmed", "the head took the freed seat");
    for n in 12..15 {
        let a = t.attendee(n).await;
        regs.push(
            t.register(&event, &a).await.json()["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let patched = t
        .send(
            "PATCH",
            &format!("/api/v1/events/{event}"),
            Some(&t.admin),
            Some(json!({"capacity": 5})),
        )
        .await;
    assert_eq!(patched.status, 200);
    let (hits_before, _) = cache_counts(&t, "position").await;
    let (routed, counted) = positions_both_ways(&t, &event, &regs).await;
    assert_eq!(routed, counted, "after newcomers and a capacity rise");
    let waiting = routed.iter().filter(|r| r[1] == "waitlisted").count();
    assert_eq!(waiting, 15 - 5 - 2, "15 registered, 5 seats, 2 left");

    // Every poll of a waiting registration was answered from memory, and the order was never read
    // again: the writer kept it up to date through all of the above.
    let (hits_after, _) = cache_counts(&t, "position").await;
    assert!(
        hits_after - hits_before >= waiting as f64,
        "{waiting} waiting, {} hits",
        hits_after - hits_before
    );
    let (_, order_misses_after) = cache_counts(&t, "waitlist").await;
    assert_eq!(
        order_misses_after, order_misses,
        "the waitlist order was not read again"
    );

    // Once more after a newcomer joined, a write to the event that changed none of these
    // registrations: every one is answered from memory, the seated and the cancelled too, from the
    // status noted beside the event's order (a cached view would have been retired by the write).
    let a = t.attendee(15).await;
    assert_eq!(t.register(&event, &a).await.json()["status"], "waitlisted");
    let (hits_before, misses_before) = cache_counts(&t, "position").await;
    let (again, counted) = positions_both_ways(&t, &event, &regs).await;
    assert_eq!(again, counted, "after a newcomer joined");
    assert!(again.iter().any(|r| r[1] == "cancelled") && again.iter().any(|r| r[1] == "confirmed"));
    let (hits_after, misses_after) = cache_counts(&t, "position").await;
    assert_eq!(
        (hits_after - hits_before, misses_after - misses_before),
        (regs.len() as f64, 0.0),
        "every poll a hit"
    );
}

#[tokio::test]
async fn positions_are_counted_when_the_cache_is_off() {
    let opts = boxoffice::app::AppOptions {
        cache: boxoffice::cache::CacheOptions {
            enabled: false,
            ..Default::default()
        },
        ..boxoffice::app::AppOptions::default()
    };
    let t = crate::support::spawn_app_opts(
        boxoffice::config::HttpConfig::default(),
        opts,
        std::sync::Arc::new(boxoffice::app::SystemClock),
    );
    let event = t.published_event(1).await;
    let mut regs = Vec::new();
    for n in 0..4 {
        let a = t.attendee(n).await;
        regs.push(
            t.register(&event, &a).await.json()["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let (routed, counted) = positions_both_ways(&t, &event, &regs).await;
    assert_eq!(routed, counted);
    assert_eq!(routed[3][2], 3);
    let r = t
        .post(
            &format!("/api/v1/registrations/{}/cancel", regs[1]),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    let (routed, counted) = positions_both_ways(&t, &event, &regs).await;
    assert_eq!(routed, counted);
    assert_eq!(routed[3][2], 2);
    let (hits, _) = cache_counts(&t, "position").await;
    assert_eq!(hits, 0.0, "nothing was served from memory");
}

#[tokio::test]
async fn event_stats_count_the_sale_and_the_waitlist_conversion() {
    let t = spawn_app();
    let event = t.published_event(2).await;
    let mut regs = Vec::new();
    for n in 0..5 {
        let a = t.attendee(n).await;
        regs.push(t.register(&event, &a).await.json());
    }
    // Two seated, three waiting. One seat holder cancels: the first in line gets the seat.
    let holder = regs[0]["id"].as_str().expect("id");
    t.post(
        &format!("/api/v1/registrations/{holder}/cancel"),
        Some(&t.admin),
        json!({}),
    )
    .await;
    let door = t.token(Role::Operator, "door");
    let code = regs[1]["ticket_code"].as_str().expect("code");
    let scan = t
        .post(
            "/api/v1/checkins",
            Some(&door),
            json!({"ticket_code": code}),
        )
        .await;
    assert_eq!(scan.status, 200);

    let path = format!("/api/v1/events/{event}/stats");
    let s = t.get(&path, Some(&door)).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.bytes));
    let s = s.json();
    assert_eq!(s["confirmed"], 2);
    assert_eq!(s["waitlisted"], 2);
    assert_eq!(s["cancelled"], 1);
    assert_eq!(s["checked_in"], 1);
    assert_eq!(s["promotions"], 1);
    assert_eq!(s["joined_waitlist"], 3);
    assert_eq!(s["waitlist_confirmed"], 1);
    assert!((s["waitlist_conversion_rate"].as_f64().expect("rate") - 1.0 / 3.0).abs() < 1e-9);
    assert!((s["checkin_rate"].as_f64().expect("rate") - 0.5).abs() < 1e-9);
    let hours = s["sales_per_hour"].as_array().expect("hours");
    assert_eq!(hours.len(), 1);
    assert_eq!(hours[0]["registrations"], 5);
    assert_eq!(hours[0]["confirmed_at_once"], 2);

    // Read again after another sale: the cached figures were retired by it.
    let a = t.attendee(9).await;
    t.register(&event, &a).await;
    assert_eq!(t.get(&path, Some(&door)).await.json()["waitlisted"], 3);

    let kiosk = t.token(Role::Kiosk, "kiosk");
    t.get(&path, Some(&kiosk))
        .await
        .assert_problem(403, "forbidden");
}

/// Parses CSV with the `csv` crate's reader: a real parser, so quoting is checked too.
fn parse_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::Reader::from_reader(bytes)
        .records()
        .map(|r| {
            r.expect("a CSV record")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn the_door_list_streams_every_confirmed_seat_across_pages() {
    let t = spawn_app();
    let event = t.published_event(1000).await;
    // 1,003 registrations: 1,000 seats (two full pages of 500, then an empty one) and three on the waitlist.
    let mut names = Vec::new();
    for n in 0..1003 {
        let name = match n {
            7 => "=HYPERLINK(\"http://evil.example\")".to_string(),
            8 => "O'Brien, \"Pat\"".to_string(),
            _ => format!("Guest {n}"),
        };
        let a = t
            .post(
                "/api/v1/attendees",
                Some(&t.admin),
                json!({"name": name, "email": format!("g{n}@example.org"), "phone": "+44 20 7946 0000"}),
            )
            .await;
        let a = a.json()["id"].as_str().expect("id").to_string();
        assert_eq!(t.register(&event, &a).await.status, 201);
        names.push(name);
    }
    let door = t.token(Role::Operator, "door");
    let r = t
        .get(
            &format!("/api/v1/events/{event}/attendees.csv"),
            Some(&door),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), "text/csv; charset=utf-8");
    let text = String::from_utf8(r.bytes.clone()).expect("utf-8");
    assert!(text.starts_with(
        "registration_id,status,ticket_code,name,email,phone,checked_in_at,registered_at\n"
    ));
    let rows = parse_csv(&r.bytes);
    assert_eq!(rows.len(), 1000, "every confirmed seat, no waitlisted one");
    assert!(rows
        .iter()
        .all(|row| row[1] == "confirmed" && row[2].len() == 34));
    // Join order, across page boundaries.
    for (i, row) in rows.iter().enumerate() {
        let want = match i {
            7 => format!("'{}", names[7]),
            _ => names[i].clone(),
        };
        assert_eq!(row[3], want, "row {i}");
        assert_eq!(row[4], format!("g{i}@example.org"));
        assert_eq!(row[5], "'+44 20 7946 0000", "a leading + is made inert");
    }

    let waiting = t
        .get(
            &format!("/api/v1/events/{event}/attendees.csv?status=waitlisted"),
            Some(&door),
        )
        .await;
    assert_eq!(parse_csv(&waiting.bytes).len(), 3);

    // Personal data leaves the box: the audit log says who took it.
    let exports = || async {
        t.get(
            "/api/v1/admin/audit?action=event.attendees_export",
            Some(&t.admin),
        )
        .await
        .json()
    };
    let audit = exports().await;
    let items = audit["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["actor"], "door");

    // A HEAD gets the list's headers and no rows, and exports nothing: no audit entry.
    let head = t
        .send(
            "HEAD",
            &format!("/api/v1/events/{event}/attendees.csv"),
            Some(&door),
            None,
        )
        .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-type"], "text/csv; charset=utf-8");
    assert!(head.bytes.is_empty());
    let audit = exports().await;
    assert_eq!(audit["items"].as_array().expect("items").len(), 2);
    let unknown = t
        .send(
            "HEAD",
            "/api/v1/events/00000000-0000-4000-8000-000000000000/attendees.csv",
            Some(&door),
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);

    // Kiosks may not read it; bad filters and unknown events are refused before anything streams.
    let kiosk = t.token(Role::Kiosk, "kiosk");
    t.get(
        &format!("/api/v1/events/{event}/attendees.csv"),
        Some(&kiosk),
    )
    .await
    .assert_problem(403, "forbidden");
    t.get(
        &format!("/api/v1/events/{event}/attendees.csv?status=vip"),
        Some(&door),
    )
    .await
    .assert_problem(422, "validation_failed");
    t.get(
        "/api/v1/events/00000000-0000-4000-8000-000000000000/attendees.csv",
        Some(&door),
    )
    .await
    .assert_problem(404, "not_found");
}

#[tokio::test]
async fn registration_pages_stay_put_while_the_event_changes() {
    let t = spawn_app();
    let event = t.published_event(100).await;
    for n in 0..7 {
        let a = t.attendee(n).await;
        t.register(&event, &a).await;
    }
    let path = format!("/api/v1/events/{event}/registrations?limit=3");
    let first = t.get(&path, Some(&t.admin)).await.json();
    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].as_str().expect("id").to_string())
            .collect()
    };
    let page1 = ids(&first);
    // A sale between two page reads: keyset pages neither repeat nor skip what was there.
    let a = t.attendee(99).await;
    t.register(&event, &a).await;
    let next = first["next"].as_str().expect("next");
    let second = t
        .get(&format!("{path}&after={next}"), Some(&t.admin))
        .await
        .json();
    let page2 = ids(&second);
    assert_eq!(page1.len() + page2.len(), 6);
    assert!(page2.iter().all(|id| !page1.contains(id)));
}

#[tokio::test]
async fn ping_answers_without_the_database() {
    let t = spawn_app();
    let r = t.get("/api/v1/ping", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"ok": true}));
}

#[test]
fn a_change_by_another_process_on_the_file_clears_the_cache_within_seconds() {
    use boxoffice::app::{Actor, App, AppOptions, Visibility};
    use boxoffice::domain::{EventId, EventPatch, NewEvent};
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("boxoffice.db");
    let box_a = App::open(&db, AppOptions::default()).expect("open a");
    let box_b = App::open(&db, AppOptions::default()).expect("open b");
    let admin = Actor::local("test");
    let new = NewEvent::parse(
        "Gala",
        "Hall",
        None,
        "2030-01-01T20:00:00Z",
        None,
        5,
        None,
        None,
        None,
    )
    .expect("event");
    let id: EventId = box_a.create_event(&admin, new).expect("create").id;
    assert_eq!(
        box_a.get_event(id, Visibility::Staff).expect("read").name,
        "Gala"
    );
    let patch = EventPatch {
        name: Some("Gala II".into()),
        venue: None,
        description: None,
        starts_at: None,
        ends_at: None,
        capacity: None,
        waitlist_enabled: None,
        promotion: None,
        offer_minutes: None,
    };
    box_b.update_event(&admin, id, patch).expect("update by b");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let name = box_a.get_event(id, Visibility::Staff).expect("read").name;
        if name == "Gala II" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "box a still serves the old name 10 s after box b changed it (TTL is 5 min)"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[tokio::test]
async fn the_door_list_streams_gzipped_to_the_end_and_the_box_stays_up() {
    let t = spawn_app();
    let event = t.published_event(3).await;
    for n in 0..3 {
        let a = t.attendee(n).await;
        t.register(&event, &a).await;
    }
    let path = format!("/api/v1/events/{event}/attendees.csv");
    for _ in 0..3 {
        let r = t
            .client
            .get(t.url(&path))
            .bearer_auth(&t.admin)
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers().get("content-encoding").map(|v| v.as_bytes()),
            Some(&b"gzip"[..])
        );
        let body = r.bytes().await.expect("the whole compressed body");
        assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip magic");
    }
    assert_eq!(t.get("/api/v1/ping", None).await.status, 200);
}

/// Inserts a draft event straight through the writer, committed when this returns.
fn commit_an_event(store: &boxoffice::store::Store, id: &str) {
    let id = id.to_string();
    store
        .write(move |tx| {
            tx.execute(
                "INSERT INTO events (id, name, venue, starts_at, capacity, status, created_at, updated_at) \
                 VALUES (?1, 'Snapshot', 'Hall', 0, 1, 'draft', 0, 0)",
                [id],
            )
            .map_err(boxoffice::store::StoreError::from)
        })
        .expect("the insert commits");
}

#[test]
fn one_read_sees_one_committed_state_even_when_a_commit_lands_between_its_statements() {
    let dir = tempfile::tempdir().expect("dir");
    let store = boxoffice::store::Store::open(
        &dir.path().join("boxoffice.db"),
        &boxoffice::store::StoreOptions::default(),
    )
    .expect("open");
    let count = |c: &rusqlite::Connection| -> Result<i64, boxoffice::store::StoreError> {
        Ok(c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
    };
    commit_an_event(&store, "e1");
    let (first, second) = store
        .read(|c| {
            let first = count(c)?;
            // A group commits while this read is between two statements (as a promotion did while
            // a page of the waitlist counted its first place).
            commit_an_event(&store, "e2");
            Ok::<_, boxoffice::store::StoreError>((first, count(c)?))
        })
        .expect("read");
    assert_eq!(first, 1);
    assert_eq!(
        second, 1,
        "the second statement sees the state the first saw"
    );
    assert_eq!(
        store.read(count).expect("read"),
        2,
        "the next read sees the commit"
    );
    // A failing read ends its transaction too: the pooled connections are reused clean.
    for _ in 0..8 {
        let failed: Result<(), boxoffice::store::StoreError> = store.read(|c| {
            count(c)?;
            Err(boxoffice::store::StoreError::TransactionLost)
        });
        assert!(failed.is_err());
    }
    commit_an_event(&store, "e3");
    assert_eq!(store.read(count).expect("read"), 3);
}

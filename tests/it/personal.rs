//! Personal data (DESIGN.md section 7) over real HTTP: the export holds everything stored about one
//! attendee; erasure tombstones them, cancels and promotes in one transaction (the invariants still
//! hold), frees the email, emits `attendee.erased` to a real receiver, blanks idempotent replays,
//! changes nothing the second time, and leaves their email, name and phone nowhere in the database
//! file, neither in its tables nor in its raw bytes.

use boxoffice::domain::Role;
use serde_json::{json, Value};

use crate::support::{spawn_app, Resp, TestApp};
use crate::webhooks::Receiver;

async fn post_idem(t: &TestApp, path: &str, token: &str, key: &str, body: Value) -> Resp {
    let r = t
        .client
        .post(t.url(path))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .expect("request");
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        bytes: r.bytes().await.expect("body").to_vec(),
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

async fn attendee(t: &TestApp, token: &str, name: &str, email: &str) -> String {
    let r = t
        .post(
            "/api/v1/attendees",
            Some(token),
            json!({"name": name, "email": email}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.bytes));
    id(&r.json())
}

async fn register(t: &TestApp, token: &str, event: &str, attendee: &str) -> Value {
    let r = t
        .post(
            &format!("/api/v1/events/{event}/registrations"),
            Some(token),
            json!({"attendee_id": attendee}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.bytes));
    r.json()
}

/// A registration as it now stands.
async fn reg(t: &TestApp, r: &Value) -> Value {
    t.get(&format!("/api/v1/registrations/{}", id(r)), Some(&t.admin))
        .await
        .json()
}

fn of_type<'a>(items: &'a [Value], kind: &str) -> Vec<&'a Value> {
    items.iter().filter(|m| m["type"] == kind).collect()
}

#[tokio::test]
async fn the_export_holds_everything_stored_about_the_attendee() {
    let t = spawn_app();
    let kiosk = t.token(Role::Kiosk, "kiosk-1");
    let door = t.token(Role::Operator, "door-1");
    let made = post_idem(
        &t,
        "/api/v1/attendees",
        &kiosk,
        "signup-1",
        json!({"name": "Ada Lovelace", "email": "Ada@Example.org", "phone": "+44 20 7946 0000"}),
    )
    .await;
    assert_eq!(made.status, 201);
    let ada = id(&made.json());
    let other = attendee(&t, &kiosk, "Grace", "grace@example.org").await;

    // Three events: a seat she is admitted to, a waitlist place, a seat staff cancelled.
    let (seated, waiting, gone) = (
        t.published_event(1).await,
        t.published_event(1).await,
        t.published_event(1).await,
    );
    let seat = register(&t, &kiosk, &seated, &ada).await;
    let code = seat["ticket_code"].as_str().expect("code").to_string();
    let scan = t
        .post(
            "/api/v1/checkins",
            Some(&door),
            json!({"ticket_code": code}),
        )
        .await;
    assert_eq!(scan.status, 200);
    register(&t, &kiosk, &waiting, &other).await;
    let place = register(&t, &kiosk, &waiting, &ada).await;
    assert_eq!(place["position"], 1);
    let cancelled = register(&t, &kiosk, &gone, &ada).await;
    let c = t
        .post(
            &format!("/api/v1/registrations/{}/cancel", id(&cancelled)),
            Some(&door),
            json!({}),
        )
        .await;
    assert_eq!(c.status, 200);

    // Only an admin may export; unknown ids are 404.
    t.get(&format!("/api/v1/attendees/{ada}/export"), Some(&door))
        .await
        .assert_problem(403, "forbidden");
    t.get(
        "/api/v1/attendees/00000000-0000-4000-8000-000000000000/export",
        Some(&t.admin),
    )
    .await
    .assert_problem(404, "not_found");
    t.get("/api/v1/attendees/nope/export", Some(&t.admin))
        .await
        .assert_problem(404, "not_found");

    let r = t
        .get(&format!("/api/v1/attendees/{ada}/export"), Some(&t.admin))
        .await;
    assert_eq!(r.status, 200);
    let x = r.json();
    assert!(x["exported_at"].is_string());
    assert_eq!(x["attendee"]["id"], ada.as_str());
    assert_eq!(x["attendee"]["name"], "Ada Lovelace");
    assert_eq!(x["attendee"]["email"], "Ada@Example.org");
    assert_eq!(x["attendee"]["phone"], "+44 20 7946 0000");

    // Every registration, in join order, with its event, ticket code, check-in time, position.
    let regs = x["registrations"].as_array().expect("registrations");
    assert_eq!(regs.len(), 3);
    assert_eq!(regs[0]["id"], id(&seat).as_str());
    assert_eq!(regs[0]["event"]["id"], seated.as_str());
    assert_eq!(regs[0]["event"]["name"], "Gala");
    assert_eq!(regs[0]["ticket_code"], code.as_str());
    assert_eq!(
        regs[0]["checked_in_at"],
        scan.json()["registration"]["checked_in_at"]
    );
    assert_eq!(
        (regs[1]["status"].as_str(), regs[1]["position"].as_i64()),
        (Some("waitlisted"), Some(1))
    );
    assert_eq!(regs[2]["status"], "cancelled");
    assert!(regs[2]["cancelled_at"].is_string());

    // The audit rows that name her or her registrations: the scan and the staff cancellation.
    let audit: Vec<(String, String)> = x["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap_or("").into(),
                a["target"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        audit,
        [
            ("checkin".to_string(), id(&seat)),
            ("registration.cancel".to_string(), id(&cancelled)),
        ]
    );

    // The domain events about her registrations, with their payloads.
    let outbox = x["outbox"].as_array().expect("outbox");
    let kinds: Vec<&str> = outbox
        .iter()
        .map(|m| m["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "registration.confirmed",
            "attendee.checked_in",
            "registration.waitlisted",
            "registration.confirmed",
            "registration.cancelled"
        ]
    );
    // Nobody subscribes in this test, so each message was settled as it was recorded.
    assert!(outbox
        .iter()
        .all(|m| m["data"]["attendee_id"] == ada.as_str() && m["state"] == "delivered"));

    // The stored first response of her sign-up, which holds her details.
    let stored = x["stored_responses"].as_array().expect("stored");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["token"], "kiosk-1");
    assert_eq!(stored[0]["idempotency_key"], "signup-1");
    assert_eq!(stored[0]["status"], 201);
    assert_eq!(stored[0]["body"]["email"], "Ada@Example.org");

    // The export itself is audited, and shows up in the next export.
    let again = t
        .get(&format!("/api/v1/attendees/{ada}/export"), Some(&t.admin))
        .await
        .json();
    let last = again["audit"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .expect("a row");
    assert_eq!(
        (last["action"].as_str(), last["actor"].as_str()),
        (Some("attendee.export"), Some("admin"))
    );
    assert_eq!(last["target"], ada.as_str());

    // A HEAD exports nothing: no audit row (the GET after it finds only the two exports above).
    let head = t
        .send(
            "HEAD",
            &format!("/api/v1/attendees/{ada}/export"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(head.status, 200);
    assert!(head.bytes.is_empty());
    let third = t
        .get(&format!("/api/v1/attendees/{ada}/export"), Some(&t.admin))
        .await
        .json();
    let exports = third["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|r| r["action"] == "attendee.export")
        .count();
    assert_eq!(exports, 2, "{third}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasure_cancels_promotes_blanks_replays_frees_the_email_and_is_idempotent() {
    let t = spawn_app();
    let kiosk = t.token(Role::Kiosk, "kiosk-1");
    let door = t.token(Role::Operator, "door-1");
    let rx = Receiver::start().await;
    let hook = t
        .post(
            "/api/v1/admin/webhooks",
            Some(&t.admin),
            json!({"url": rx.url(), "event_types": ["attendee.erased", "registration.cancelled", "registration.promoted"]}),
        )
        .await;
    assert_eq!(hook.status, 201);

    let made = post_idem(
        &t,
        "/api/v1/attendees",
        &kiosk,
        "signup-ada",
        json!({"name": "Ada Lovelace", "email": "ada@example.org", "phone": "+44 20 7946 0000"}),
    )
    .await;
    let ada = id(&made.json());
    let people: Vec<String> = {
        let mut v = Vec::new();
        for n in 0..4 {
            v.push(attendee(&t, &kiosk, &format!("P{n}"), &format!("p{n}@example.org")).await);
        }
        v
    };
    // X: she holds the only seat, two wait behind her. Y: she waits first in line behind P2.
    // Z: she was admitted at the door; that visit is history and stays.
    let (x, y, z) = (
        t.published_event(1).await,
        t.published_event(1).await,
        t.published_event(2).await,
    );
    let seat = post_idem(
        &t,
        &format!("/api/v1/events/{x}/registrations"),
        &kiosk,
        "sale-ada-x",
        json!({"attendee_id": ada}),
    )
    .await
    .json();
    let behind = [
        register(&t, &kiosk, &x, &people[0]).await,
        register(&t, &kiosk, &x, &people[1]).await,
    ];
    register(&t, &kiosk, &y, &people[2]).await;
    let place = register(&t, &kiosk, &y, &ada).await;
    let after_her = register(&t, &kiosk, &y, &people[3]).await;
    let visit = register(&t, &kiosk, &z, &ada).await;
    let scan = post_idem(
        &t,
        "/api/v1/checkins",
        &door,
        "scan-ada-z",
        json!({"ticket_code": visit["ticket_code"]}),
    )
    .await;
    assert_eq!(scan.status, 200);
    assert_eq!(scan.json()["attendee"]["name"], "Ada Lovelace");

    // Only an admin may erase.
    let path = format!("/api/v1/attendees/{ada}");
    t.send("DELETE", &path, Some(&door), None)
        .await
        .assert_problem(403, "forbidden");
    t.send(
        "DELETE",
        "/api/v1/attendees/00000000-0000-4000-8000-000000000000",
        Some(&t.admin),
        None,
    )
    .await
    .assert_problem(404, "not_found");

    let r = t.send("DELETE", &path, Some(&t.admin), None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.bytes));
    let erased = r.json();
    assert_eq!(erased["attendee"]["name"], "[erased]");
    assert_eq!(erased["attendee"]["email"], Value::Null);
    assert_eq!(erased["attendee"]["phone"], Value::Null);
    assert!(erased["attendee"]["erased_at"].is_string());
    let cancelled: Vec<String> = erased["cancelled"]
        .as_array()
        .expect("cancelled")
        .iter()
        .map(id)
        .collect();
    assert_eq!(cancelled, [id(&seat), id(&place)]);

    // Her seat in X went to the head of its waitlist in the same transaction; the next one moved up.
    let head = reg(&t, &behind[0]).await;
    assert_eq!(head["status"], "confirmed");
    assert!(head["ticket_code"].is_string());
    assert_eq!(reg(&t, &behind[1]).await["position"], 1);
    // In Y, the one behind her is now first in line.
    assert_eq!(reg(&t, &after_her).await["position"], 1);
    // The visit in Z is kept as it was, and so are Z's figures.
    let kept = reg(&t, &visit).await;
    assert_eq!(
        (kept["status"].as_str(), kept["checked_in_at"].is_string()),
        (Some("confirmed"), true)
    );
    let zf = t
        .get(&format!("/api/v1/events/{z}"), Some(&t.admin))
        .await
        .json();
    assert_eq!(
        (zf["confirmed"].as_i64(), zf["checked_in"].as_i64()),
        (Some(1), Some(1))
    );
    let xf = t
        .get(&format!("/api/v1/events/{x}"), Some(&t.admin))
        .await
        .json();
    assert_eq!(
        (xf["confirmed"].as_i64(), xf["waitlisted"].as_i64()),
        (Some(1), Some(1))
    );
    // The invariants hold over the whole file (what `boxoffice check` runs).
    let report = t.app.check().expect("check");
    assert!(report.ok(), "{report:?}");

    // The attendee is gone as a resource (410, also from the cache that held her) and can no
    // longer register.
    for p in [
        path.clone(),
        format!("{path}/tickets"),
        format!("{path}/export"),
    ] {
        t.get(&p, Some(&t.admin))
            .await
            .assert_problem(410, "attendee_erased");
    }
    t.post(
        &format!("/api/v1/events/{y}/registrations"),
        Some(&kiosk),
        json!({"attendee_id": ada}),
    )
    .await
    .assert_problem(404, "not_found");

    // Retries of writes about her no longer replay her details, nor run again.
    for (p, key, body, token) in [
        (
            "/api/v1/attendees".to_string(),
            "signup-ada",
            json!({"name": "Ada Lovelace", "email": "ada@example.org", "phone": "+44 20 7946 0000"}),
            &kiosk,
        ),
        (
            format!("/api/v1/events/{x}/registrations"),
            "sale-ada-x",
            json!({"attendee_id": ada}),
            &kiosk,
        ),
        (
            "/api/v1/checkins".to_string(),
            "scan-ada-z",
            json!({"ticket_code": visit["ticket_code"]}),
            &door,
        ),
    ] {
        post_idem(&t, &p, token, key, body)
            .await
            .assert_problem(410, "attendee_erased");
    }

    // Her email is free again, in any case.
    let back = attendee(&t, &kiosk, "Ada L.", "ADA@example.org").await;
    assert_ne!(back, ada);

    // One audit row; the domain events went out to the receiver.
    let audit = t
        .get(&format!("/api/v1/admin/audit?target={ada}"), Some(&t.admin))
        .await
        .json();
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(audit["items"][0]["action"], "attendee.erase");
    assert_eq!(audit["items"][0]["actor"], "admin");
    let p = boxoffice::outbox::Processor::with_http(t.app.clone()).expect("processor");
    while boxoffice::outbox::run_once(&p)
        .await
        .expect("run")
        .did_work()
    {}
    let got: Vec<Value> = rx.captured().iter().map(|c| c.json()).collect();
    let gone = of_type(&got, "attendee.erased");
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0]["data"]["id"], ada.as_str());
    assert_eq!(
        gone[0]["data"]["cancelled_registrations"],
        json!([id(&seat), id(&place)])
    );
    assert_eq!(
        gone[0]["data"]["erased_at"],
        erased["attendee"]["erased_at"]
    );
    let c: Vec<&Value> = of_type(&got, "registration.cancelled");
    assert_eq!(c.len(), 2);
    assert!(c.iter().all(|m| m["data"]["attendee_id"] == ada.as_str()));
    let promoted = of_type(&got, "registration.promoted");
    assert_eq!(promoted.len(), 1);
    assert_eq!(promoted[0]["data"]["id"], id(&behind[0]).as_str());

    // Erasing again: 200, the same tombstone, nothing cancelled, nothing changed.
    let before = t.snapshot();
    let r = t.send("DELETE", &path, Some(&t.admin), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["attendee"], erased["attendee"]);
    assert_eq!(r.json()["cancelled"], json!([]));
    assert_eq!(t.snapshot(), before);
}

/// Every value of every table, as text, for a search.
fn every_value(db: &std::path::Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
        .expect("tables")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("names");
    let mut out = Vec::new();
    for table in tables {
        let mut st = conn
            .prepare(&format!("SELECT * FROM \"{table}\""))
            .expect("select");
        let n = st.column_count();
        let rows = st
            .query_map([], |r| {
                let mut vals = Vec::new();
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    vals.push(match v {
                        rusqlite::types::Value::Text(s) => s,
                        rusqlite::types::Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
                        other => format!("{other:?}"),
                    });
                }
                Ok(vals)
            })
            .expect("rows");
        for r in rows {
            for v in r.expect("row") {
                out.push((table.clone(), v));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn an_erased_attendee_is_nowhere_in_the_database_file() {
    let t = spawn_app();
    let kiosk = t.token(Role::Kiosk, "kiosk-1");
    let door = t.token(Role::Operator, "door-1");
    let (name, email, phone) = (
        "Zephyrine Quillfeather",
        "Zephyrine.Q@Example.org",
        "+44 7700 900461",
    );
    let walker = ("Barnaby Thistlewood", "+44 7700 900999");
    let event = t.published_event(500).await;

    // She signs up early (so later inserts move her rows about as pages split), buys with a key,
    // is scanned with a key; a walk-up guest gives a name and a phone; hundreds of others follow.
    let me = post_idem(
        &t,
        "/api/v1/attendees",
        &kiosk,
        "signup",
        json!({"name": name, "email": email, "phone": phone}),
    )
    .await
    .json();
    let sale = post_idem(
        &t,
        &format!("/api/v1/events/{event}/registrations"),
        &kiosk,
        "sale",
        json!({"attendee_id": id(&me)}),
    )
    .await
    .json();
    let scan = post_idem(
        &t,
        "/api/v1/checkins",
        &door,
        "scan",
        json!({"ticket_code": sale["ticket_code"]}),
    )
    .await;
    assert_eq!(scan.status, 200);
    let counter = post_idem(
        &t,
        &format!("/api/v1/events/{event}/walkups"),
        &door,
        "counter",
        json!({"name": walker.0, "phone": walker.1}),
    )
    .await;
    assert_eq!(counter.status, 201);
    for n in 0..300 {
        let a = post_idem(&t, "/api/v1/attendees", &kiosk, &format!("k{n}"), json!({"name": format!("Someone Else {n}"), "email": format!("someone.{n}@example.org"), "phone": "+1 555 0100"}))
            .await
            .json();
        if n % 2 == 0 {
            register(&t, &kiosk, &event, &id(&a)).await;
        }
    }

    let db = t.dir.path().join("boxoffice.db");
    let secrets = [
        name,
        email,
        &email.to_lowercase(),
        phone,
        walker.0,
        walker.1,
    ];
    assert!(
        every_value(&db).iter().any(|(_, v)| v.contains(email)),
        "the search finds her before the erasure"
    );
    for who in [id(&me), id(&counter.json()["attendee"])] {
        let r = t
            .send(
                "DELETE",
                &format!("/api/v1/attendees/{who}"),
                Some(&t.admin),
                None,
            )
            .await;
        assert_eq!(r.status, 200);
    }

    // No table holds any of it.
    for (table, v) in every_value(&db) {
        for s in secrets {
            assert!(!v.contains(s), "{s:?} is still in {table}: {v:?}");
        }
    }
    // Nor do the file's bytes: the WAL folded in and emptied, the file read raw.
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy");
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("checkpoint");
    assert_eq!(busy, 0, "the checkpoint ran to the end");
    let wal = std::fs::metadata(db.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(wal, 0, "the WAL is empty");
    let bytes = std::fs::read(&db).expect("read the file");
    for s in secrets {
        assert!(!contains(&bytes, s), "{s:?} is still in the file's bytes");
    }
    // The others are all still there, so the search would have seen hers.
    assert!(contains(&bytes, "someone.299@example.org"));
}

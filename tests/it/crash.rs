//! Crash safety (I5, I6): the binary under concurrent registrations and cancellations is killed with
//! SIGKILL at random moments. After each restart every write that was answered 2xx is there, each has
//! its outbox row, and `boxoffice check` passes. `BOXOFFICE_CRASH_KILLS` sets the number of kills
//! (default 5).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};

use crate::support::{run_cli, Server};

/// What the clients were told: only answered writes count.
#[derive(Default)]
struct Acked {
    /// registration id -> status when it was answered
    registrations: HashMap<String, String>,
    cancelled: HashSet<String>,
    /// cancels sent whose answer never came: they may or may not have happened
    cancel_unknown: HashSet<String>,
}

async fn json_post(
    client: &reqwest::Client,
    url: String,
    token: &str,
    body: Value,
) -> Option<(u16, Value)> {
    let r = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.ok()?))
}

/// Every answered write is in the database, with its outbox rows.
async fn verify(server: &Server, token: &str, acked: &Acked) {
    let client = reqwest::Client::new();
    for (id, status_then) in &acked.registrations {
        let r = client
            .get(server.url(&format!("/api/v1/registrations/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "acknowledged registration {id} is lost");
        let now: Value = r.json().await.expect("json");
        let now = now["status"].as_str().expect("status");
        if acked.cancelled.contains(id) {
            assert_eq!(now, "cancelled", "acknowledged cancel of {id} is lost");
        } else if !acked.cancel_unknown.contains(id) {
            // A confirmed seat stays confirmed; a waiting one may have been promoted since.
            let allowed: &[&str] = if status_then == "confirmed" {
                &["confirmed"]
            } else {
                &["waitlisted", "confirmed"]
            };
            assert!(allowed.contains(&now), "{id} was {status_then}, now {now}");
        }
    }
    let conn = rusqlite::Connection::open_with_flags(
        server.dir.join("boxoffice.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open");
    let mut kinds = conn
        .prepare("SELECT type FROM outbox WHERE aggregate_id = ?1 ORDER BY seq")
        .expect("prepare");
    for (id, status_then) in &acked.registrations {
        let k: Vec<String> = kinds
            .query_map([id], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            k.first().map(String::as_str),
            Some(format!("registration.{status_then}").as_str()),
            "outbox of {id}"
        );
        if acked.cancelled.contains(id) {
            assert!(
                k.iter().any(|x| x == "registration.cancelled"),
                "outbox row of the cancel of {id}"
            );
        }
        // A seat freed by a cancel went to someone waiting: that promotion has its row too.
        let promoted: bool = conn
            .query_row(
                "SELECT promoted_at IS NOT NULL FROM registrations WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .expect("promoted_at");
        if promoted {
            assert_eq!(
                status_then, "waitlisted",
                "only a waiting registration is promoted"
            );
            assert!(
                k.iter().any(|x| x == "registration.promoted"),
                "outbox row of the promotion of {id}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let kills: usize = std::env::var("BOXOFFICE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("dir");
    let mut server = Server::start(dir.path()).await;
    let token = server.admin_token();
    let client = reqwest::Client::new();
    let (s, ev) = json_post(
        &client,
        server.url("/api/v1/events"),
        &token,
        json!({"name": "Crash", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": 150}),
    )
    .await
    .expect("create");
    assert_eq!(s, 201);
    let event = ev["id"].as_str().expect("id").to_string();
    client
        .post(server.url(&format!("/api/v1/events/{event}/publish")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("publish");

    let acked = Arc::new(Mutex::new(Acked::default()));
    let next_person = Arc::new(AtomicUsize::new(0));
    let mut total_acks = 0;
    for round in 0..=kills {
        if round > 0 {
            server = Server::start(dir.path()).await;
            let snapshot = std::mem::take(&mut *acked.lock().expect("lock"));
            verify(&server, &token, &snapshot).await;
            // The whole file, after every restart, while the box serves again.
            let (code, out, err) = run_cli(&["check"], dir.path());
            assert_eq!(code, 0, "check after kill {round}: {out} {err}");

            *acked.lock().expect("lock") = snapshot;
        }
        if round == kills {
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (client, token, base, event) =
                (client.clone(), token.clone(), server.url(""), event.clone());
            let (acked, next, stop) = (acked.clone(), next_person.clone(), stop.clone());
            workers.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let body =
                        json!({"name": format!("P{n}"), "email": format!("crash{n}@example.org")});
                    let Some((201, a)) =
                        json_post(&client, format!("{base}/api/v1/attendees"), &token, body).await
                    else {
                        continue;
                    };
                    let url = format!("{base}/api/v1/events/{event}/registrations");
                    let Some((201, reg)) =
                        json_post(&client, url, &token, json!({"attendee_id": a["id"]})).await
                    else {
                        continue;
                    };
                    let id = reg["id"].as_str().expect("id").to_string();
                    acked
                        .lock()
                        .expect("lock")
                        .registrations
                        .insert(id.clone(), reg["status"].as_str().expect("s").to_string());
                    // Every fourth sale is cancelled again, freeing a seat for the waitlist.
                    if n % 4 == 0 {
                        acked
                            .lock()
                            .expect("lock")
                            .cancel_unknown
                            .insert(id.clone());
                        let url = format!("{base}/api/v1/registrations/{id}/cancel");
                        if let Some((200, _)) = json_post(&client, url, &token, json!({})).await {
                            let mut a = acked.lock().expect("lock");
                            a.cancel_unknown.remove(&id);
                            a.cancelled.insert(id);
                        }
                    }
                }
            });
        }
        let wait = rand::rng().random_range(200..900);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        while workers.join_next().await.is_some() {}
        let n = acked.lock().expect("lock").registrations.len();
        assert!(n > total_acks, "round {round} acknowledged no write");
        total_acks = n;
    }
    let status = server.terminate();
    assert!(status.success());
    let (code, out, err) = run_cli(&["check"], dir.path());
    assert_eq!(code, 0, "check after {kills} kills: {out} {err}");
    eprintln!("crash test: {kills} kills, {total_acks} acknowledged registrations, none lost");
}

//! `/health`: every check answers, the database check proves a write reaches the file without
//! changing any data, and a failing check (database, disk) turns the answer into a 503 problem
//! document that names it while reads go on. The full and read-only disks themselves are proved
//! against the release binary by the reliability suite (`reliability/`).

use std::sync::Arc;
use std::time::Duration;

use boxoffice::app::{AppOptions, SystemClock};
use boxoffice::config::HttpConfig;
use boxoffice::store::StoreOptions;

use crate::support::{spawn_app, spawn_app_opts, TestApp};

fn data_version(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .expect("data_version")
}

/// Polls `/health` until it answers `status` (a recovery is awaited, never slept for).
async fn wait_for_health(t: &TestApp, status: u16) -> serde_json::Value {
    for _ in 0..200 {
        let r = t.get("/health", None).await;
        if r.status == status {
            return r.json();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/health never answered {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_proves_a_write_reaches_the_file_and_changes_no_data() {
    let t = spawn_app();
    let event = t.published_event(2).await;
    let person = t.attendee(1).await;
    assert_eq!(t.register(&event, &person).await.status, 201);
    let before = t.snapshot();
    // `data_version` moves when another connection commits to the file.
    let watcher = rusqlite::Connection::open(t.dir.path().join("boxoffice.db")).expect("open");
    let version = data_version(&watcher);

    let r = t.get("/health", None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.bytes));
    let body = r.json();
    assert_eq!(body["status"], "ok");
    for check in ["database", "writer", "outbox", "disk"] {
        assert_eq!(body["checks"][check], "ok", "{check}: {body}");
    }
    assert!(body["disk_free_bytes"].as_u64() > Some(0), "{body}");

    assert_ne!(
        data_version(&watcher),
        version,
        "the database check committed nothing"
    );
    assert_eq!(
        t.snapshot(),
        before,
        "the database check changed data (or wrote to the outbox)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_the_database_while_writes_cannot_commit_and_reads_go_on() {
    let opts = AppOptions {
        store: StoreOptions {
            busy_timeout: Duration::from_millis(100),
            ..StoreOptions::default()
        },
        ..AppOptions::default()
    };
    let t = spawn_app_opts(HttpConfig::default(), opts, Arc::new(SystemClock));
    let event = t.published_event(2).await;
    let person = t.attendee(1).await;

    // Another process holds the write lock, as a forgotten `sqlite3` shell in a transaction would.
    let other = rusqlite::Connection::open(t.dir.path().join("boxoffice.db")).expect("open");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");

    let r = t.get("/health", None).await;
    r.assert_problem(503, "unhealthy");
    let body = r.json();
    let database = body["checks"]["database"].as_str().unwrap_or_default();
    assert!(database.starts_with("writes fail"), "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("database: writes fail")),
        "{body}"
    );
    assert_eq!(body["checks"]["disk"], "ok", "{body}");
    // Reads work, so the outbox is still checked and its figures shown.
    assert_eq!(body["checks"]["outbox"], "ok", "{body}");
    assert!(body["outbox"]["pending_count"].is_number(), "{body}");
    // Reads keep answering; a write is told to come back later.
    assert_eq!(
        t.get(&format!("/api/v1/events/{event}"), None).await.status,
        200
    );
    t.register(&event, &person)
        .await
        .assert_problem(503, "storage_unavailable");

    other.execute_batch("ROLLBACK").expect("unlock");
    let body = wait_for_health(&t, 200).await;
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(t.register(&event, &person).await.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_the_disk_when_free_space_is_under_the_minimum() {
    let opts = AppOptions {
        min_free_bytes: u64::MAX,
        ..AppOptions::default()
    };
    let t = spawn_app_opts(HttpConfig::default(), opts, Arc::new(SystemClock));
    let r = t.get("/health", None).await;
    r.assert_problem(503, "unhealthy");
    let body = r.json();
    assert!(
        body["checks"]["disk"]
            .as_str()
            .is_some_and(|d| d.contains("under the minimum")),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("disk: ")),
        "{body}"
    );
    assert_eq!(body["checks"]["database"], "ok", "{body}");
    assert!(body["disk_free_bytes"].as_u64() > Some(0), "{body}");
}

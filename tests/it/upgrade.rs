//! A file written by an earlier schema version is upgraded at open: the same rows, the same ids and
//! order, the schema of a new file, and the box sells on it. `fixtures/schema-v1.sql` is `schema.sql`
//! as version 1 shipped it; a version-2 file is made from a new one (the two differ in one index).

use boxoffice::app::{App, AppOptions, Visibility};
use boxoffice::domain::{EventId, NewAttendee, RegistrationId};
use rusqlite::Connection;

const SCHEMA_V1: &str = include_str!("fixtures/schema-v1.sql");

/// Every schema object of a file as (type, name, table, sql), sorted: two files hold the same schema
/// when these are equal (root pages aside).
fn schema_of(conn: &Connection) -> Vec<(String, String, String, Option<String>)> {
    let mut st = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
        .expect("schema");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("rows")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("schema rows")
}

/// Checks that the upgraded file at `upgraded` holds the schema and version of a new file made in
/// `dir`, and opens it for the test to look further.
fn like_a_new_file(dir: &std::path::Path, upgraded: &std::path::Path) -> Connection {
    let fresh = dir.join("fresh.db");
    drop(App::open(&fresh, AppOptions::default()).expect("fresh"));
    let (old, fresh) = (
        Connection::open(upgraded).expect("old"),
        Connection::open(&fresh).expect("fresh"),
    );
    assert_eq!(schema_of(&old), schema_of(&fresh));
    let version = |c: &Connection| -> i64 {
        c.query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version")
    };
    assert_eq!(version(&old), boxoffice::store::SCHEMA_VERSION);
    assert_eq!(version(&old), version(&fresh));
    old
}

/// A version-1 file with an event of one seat, one person seated, one waiting, one cancelled, their
/// outbox messages, and a webhook with a failed delivery of one of them.
fn version_one_file(path: &std::path::Path) {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(SCHEMA_V1).expect("schema v1");
    conn.execute_batch(
        "PRAGMA user_version = 1;
         INSERT INTO events (seq, id, name, venue, starts_at, capacity, status, confirmed, waitlisted,
                             created_at, updated_at)
         VALUES (1, '6f1c2d3e-0000-4000-8000-000000000001', 'Old show', 'Hall', 1900000000000, 1,
                 'published', 1, 1, 1, 1);
         INSERT INTO attendees (seq, id, name, email, email_key, created_at) VALUES
           (1, '0190a000-0000-7000-8000-000000000001', 'Ada', 'ada@example.org', 'ada@example.org', 1),
           (2, '0190a000-0000-7000-8000-000000000002', 'Alan', 'alan@example.org', 'alan@example.org', 1),
           (3, '0190a000-0000-7000-8000-000000000003', 'Grace', 'grace@example.org', 'grace@example.org', 1);
         INSERT INTO registrations (seq, id, event_seq, attendee_seq, status, ticket_code, waitlisted_at,
                                    created_at, updated_at, cancelled_at) VALUES
           (1, '0190a000-0000-7000-8000-0000000000a1', 1, 1, 'confirmed', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAA', NULL, 1, 1, NULL),
           (2, '0190a000-0000-7000-8000-0000000000a2', 1, 2, 'waitlisted', NULL, 2, 2, 2, NULL),
           (3, '0190a000-0000-7000-8000-0000000000a3', 1, 3, 'cancelled', NULL, NULL, 3, 3, 3);
         INSERT INTO outbox (seq, id, type, aggregate_id, payload, created_at, state) VALUES
           (1, 'm1', 'registration.confirmed', '0190a000-0000-7000-8000-0000000000a1', '{}', 1, 'delivered'),
           (2, 'm2', 'registration.waitlisted', '0190a000-0000-7000-8000-0000000000a2', '{}', 2, 'pending');
         INSERT INTO webhooks (seq, id, url, event_types, secret, cursor, created_at, updated_at)
         VALUES (1, 'w1', 'http://127.0.0.1:9/hook', '*', 'whsec_x', 2, 1, 1);
         INSERT INTO deliveries (outbox_seq, webhook_seq, aggregate_id, state, attempts, next_attempt_at)
         VALUES (2, 1, '0190a000-0000-7000-8000-0000000000a2', 'pending', 1, 5);",
    )
    .expect("rows v1");
}

#[test]
fn a_version_one_file_is_upgraded_with_its_rows_and_the_schema_of_a_new_file() {
    let dir = tempfile::tempdir().expect("dir");
    let old = dir.path().join("old.db");
    version_one_file(&old);

    let app = App::open(&old, AppOptions::default()).expect("open upgrades");
    let report = app.check().expect("check");
    assert!(report.ok(), "{report:?}");
    let event = EventId::parse("6f1c2d3e-0000-4000-8000-000000000001").expect("event id");
    let e = app.get_event(event, Visibility::Staff).expect("event");
    assert_eq!((e.confirmed, e.waitlisted), (1, 1));
    let waiting = app
        .get_registration(
            RegistrationId::parse("0190a000-0000-7000-8000-0000000000a2").expect("id"),
        )
        .expect("the waiting registration");
    assert_eq!(waiting.position, Some(1));
    // The box sells on the upgraded file: a newcomer waits behind Alan, in join order.
    let newcomer = app
        .create_attendee(
            NewAttendee::parse("Edsger", Some("edsger@example.org"), None, true).expect("new"),
            None,
        )
        .expect("attendee");
    let r = app.register(event, newcomer.id, None).expect("register");
    assert_eq!(r.position, Some(2));
    drop(app);

    let old = like_a_new_file(dir.path(), &old);
    // Rows kept their seqs; the failed delivery still points at its message.
    let rows: Vec<(i64, String)> = old
        .prepare("SELECT seq, status FROM registrations ORDER BY seq")
        .expect("regs")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    assert_eq!(
        rows.iter()
            .map(|(s, st)| (*s, st.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, "confirmed"),
            (2, "waitlisted"),
            (3, "cancelled"),
            (4, "waitlisted")
        ]
    );
    let delivery: (i64, String) = old
        .query_row(
            "SELECT o.seq, o.id FROM deliveries d JOIN outbox o ON o.seq = d.outbox_seq",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("delivery");
    assert_eq!(delivery, (2, "m2".to_string()));
    let fk_target: String = old
        .query_row(
            "SELECT \"table\" FROM pragma_foreign_key_list('deliveries') WHERE \"from\" = 'outbox_seq'",
            [],
            |r| r.get(0),
        )
        .expect("fk");
    assert_eq!(fk_target, "outbox");
    let broken: i64 = old
        .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .expect("fk check");
    assert_eq!(broken, 0);
}

/// A version-2 file: version 3 only replaced the outbox's `(state, seq)` index with one of the pending
/// and dead messages alone, so a new file with the old index put back is what version 2 wrote.
fn version_two_file(path: &std::path::Path) {
    drop(App::open(path, AppOptions::default()).expect("new file"));
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(
        "DROP INDEX outbox_unsettled;
         CREATE INDEX outbox_by_state ON outbox (state, seq);
         PRAGMA user_version = 2;
         INSERT INTO outbox (seq, id, type, aggregate_id, payload, created_at, state) VALUES
           (1, 'm1', 'event.created', 'e1', '{}', 1, 'delivered'),
           (2, 'm2', 'event.published', 'e1', '{}', 2, 'pending'),
           (3, 'm3', 'event.updated', 'e1', '{}', 3, 'dead');",
    )
    .expect("v2 file");
}

#[test]
fn a_version_two_file_gets_the_outbox_index_of_a_new_file_and_keeps_its_messages() {
    let dir = tempfile::tempdir().expect("dir");
    let old = dir.path().join("old.db");
    version_two_file(&old);
    let app = App::open(&old, AppOptions::default()).expect("open upgrades");
    assert!(app.check().expect("check").ok());
    drop(app);
    let old = like_a_new_file(dir.path(), &old);
    let states: Vec<(String, String)> = old
        .prepare("SELECT id, state FROM outbox ORDER BY seq")
        .expect("outbox")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    assert_eq!(
        states,
        [
            ("m1".to_string(), "delivered".to_string()),
            ("m2".to_string(), "pending".to_string()),
            ("m3".to_string(), "dead".to_string())
        ]
    );
    // The processor's queries find the unsettled messages through the new index.
    let plan: String = old
        .query_row(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM outbox WHERE state = 'dead'",
            [],
            |r| r.get(3),
        )
        .expect("plan");
    assert!(plan.contains("outbox_unsettled"), "{plan}");
}

#[test]
fn a_file_of_a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("newer.db");
    version_one_file(&path);
    Connection::open(&path)
        .expect("open")
        .execute_batch("PRAGMA user_version = 99")
        .expect("version");
    let err = App::open(&path, AppOptions::default())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("99"), "{err}");
    let version: i64 = Connection::open(&path)
        .expect("open")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 99);
}

#[test]
fn a_backup_of_an_older_file_is_of_that_version_and_leaves_it_as_it_was() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("boxoffice.db");
    version_one_file(&db);
    let before = std::fs::read(&db).expect("read");
    let out = dir.path().join("before-upgrade.db");
    let (code, _, err) =
        crate::support::run_cli(&["backup", out.to_str().expect("utf-8 path")], dir.path());
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&db).expect("read"),
        before,
        "the backup changed the file it copied"
    );
    let version = |p: &std::path::Path| -> i64 {
        Connection::open(p)
            .expect("open")
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version")
    };
    assert_eq!(
        version(&out),
        1,
        "the copy is of the old version, to go back to"
    );
    // The new binary still upgrades the original when it opens it for real.
    drop(App::open(&db, AppOptions::default()).expect("open upgrades"));
    assert!(version(&db) > 1);
}

#[test]
fn check_reads_an_older_file_as_it_is_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("boxoffice.db");
    version_one_file(&db);
    let before = std::fs::read(&db).expect("read");

    let (code, out, err) = crate::support::run_cli(&["check"], dir.path());
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("events: 1, registrations: 3"), "{out}");
    assert!(out.trim_end().ends_with("ok"), "{out}");

    // Not upgraded, not touched: a backup checked before a restore is still the file it was.
    assert_eq!(
        std::fs::read(&db).expect("read"),
        before,
        "the file is unchanged"
    );
    let version: i64 = Connection::open(&db)
        .expect("open")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 1);
}

#[test]
fn check_refuses_a_file_from_a_newer_build_and_one_without_a_schema() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("boxoffice.db");
    let conn = Connection::open(&db).expect("open");
    conn.execute_batch("CREATE TABLE t (x); PRAGMA user_version = 0;")
        .expect("a foreign file");
    let (code, _, err) = crate::support::run_cli(&["check"], dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no boxoffice schema"), "{err}");
    conn.execute_batch(&format!(
        "PRAGMA user_version = {}",
        boxoffice::store::SCHEMA_VERSION + 1
    ))
    .expect("version");
    drop(conn);
    let (code, _, err) = crate::support::run_cli(&["check"], dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("newer than this build"), "{err}");
}

#[test]
fn a_version_three_file_gets_email_keys_that_ignore_how_accents_were_composed() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("v3.db");
    // A new file, its version set back to 3, with keys as version 3 made them: only lower-cased.
    drop(App::open(&path, AppOptions::default()).expect("new"));
    let conn = Connection::open(&path).expect("open");
    let insert = |seq: i64, email: &str| {
        conn.execute(
            "INSERT INTO attendees (seq, id, name, email, email_key, created_at) \
             VALUES (?1, ?2, 'P', ?3, ?4, 1)",
            rusqlite::params![
                seq,
                format!("0190a000-0000-7000-8000-00000000000{seq}"),
                email,
                email.to_lowercase()
            ],
        )
        .expect("attendee");
    };
    insert(1, "Rene\u{301}@example.org"); // decomposed: its key changes
    insert(2, "Zoe\u{308}@example.org"); // decomposed, and...
    insert(3, "zo\u{eb}@example.org"); // ...the same address composed, told apart by version 3
    insert(4, "ada@example.org");
    conn.execute_batch("PRAGMA user_version = 3")
        .expect("version");
    drop(conn);

    let app = App::open(&path, AppOptions::default()).expect("open upgrades");
    assert!(app.check().expect("check").ok());
    // The decomposed René's key is now the composed one: René typed either way is taken.
    let taken = app
        .create_attendee(
            NewAttendee::parse("R", Some("REN\u{c9}@example.org"), None, true).expect("new"),
            None,
        )
        .expect_err("René is taken");
    assert!(taken.to_string().contains("email"), "{taken}");
    // New addresses are keyed the same way whichever form comes first.
    app.create_attendee(
        NewAttendee::parse("N", Some("No\u{eb}l@example.org"), None, true).expect("new"),
        None,
    )
    .expect("Noël");
    assert!(app
        .create_attendee(
            NewAttendee::parse("N", Some("Noe\u{308}l@example.org"), None, true).expect("new"),
            None,
        )
        .is_err());
    drop(app);

    let old = like_a_new_file(dir.path(), &path);
    let keys: Vec<(i64, String)> = old
        .prepare("SELECT seq, email_key FROM attendees WHERE seq <= 4 ORDER BY seq")
        .expect("keys")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    assert_eq!(
        keys,
        [
            (1, "ren\u{e9}@example.org".to_string()),
            // The two Zoës were two people to version 3: the one whose key would change keeps its
            // old key rather than the upgrade failing or merging them.
            (2, "zoe\u{308}@example.org".to_string()),
            (3, "zo\u{eb}@example.org".to_string()),
            (4, "ada@example.org".to_string()),
        ]
    );
}

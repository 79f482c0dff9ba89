//! The single writer's failure paths, on a real file: a failing or panicking command rolls back only
//! itself; a disk-full command is answered as "storage unavailable" (503) and the box writes again
//! once there is room; nothing decided in a group whose commit fails stands; a panicking commit hook
//! does not stop the writer. Commands are put into one group deterministically by holding the writer
//! until the queue holds them all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice::app::{Actor, App, AppOptions, Error};
use boxoffice::domain::{NewAttendee, NewEvent};
use boxoffice::store::{Guard, StoreError, Tx};

fn open() -> (tempfile::TempDir, Arc<App>) {
    let dir = tempfile::tempdir().expect("dir");
    let app = Arc::new(App::open(&dir.path().join("w.db"), AppOptions::default()).expect("open"));
    (dir, app)
}

fn audit_rows(app: &App) -> i64 {
    let db = app.store().path().to_path_buf();
    let conn = rusqlite::Connection::open(db).expect("db");
    conn.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
        .expect("count")
}

fn insert_audit(tx: &Tx<'_>, action: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit (at, actor, action) VALUES (0, 'test', ?1)",
        [action],
    )?;
    Ok(())
}

/// Holds the writer inside a command until `n` more commands are queued behind it, so they all land in
/// the next group together.
fn hold_until_queued(app: &Arc<App>, n: usize) -> std::thread::JoinHandle<()> {
    let (running, started) = std::sync::mpsc::channel();
    let app2 = app.clone();
    let handle = std::thread::spawn(move || {
        let store = app2.clone();
        app2.store()
            .write(move |_tx| {
                running.send(()).expect("signal");
                let deadline = Instant::now() + Duration::from_secs(10);
                while store.store().writer_queue() < n {
                    assert!(Instant::now() < deadline, "the commands never queued");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok::<_, StoreError>(())
            })
            .expect("hold");
    });
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("the holder runs");
    handle
}

#[test]
fn failing_and_panicking_commands_roll_back_only_themselves() {
    let (_dir, app) = open();
    let holder = hold_until_queued(&app, 3);
    let spawn = |f: fn(&Tx<'_>) -> Result<(), StoreError>| {
        let app = app.clone();
        std::thread::spawn(move || app.store().write(f))
    };
    let good = spawn(|tx| insert_audit(tx, "kept"));
    let failing = spawn(|tx| {
        insert_audit(tx, "rolled back")?;
        Err(StoreError::Corrupt("refused on purpose".into()))
    });
    let panicking = spawn(|tx| {
        insert_audit(tx, "rolled back too").expect("insert");
        panic!("a bug in a command");
    });
    holder.join().expect("holder");
    assert!(good.join().expect("good").is_ok());
    assert!(matches!(
        failing.join().expect("failing"),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        panicking.join().expect("panicking"),
        Err(StoreError::CommandPanicked)
    ));
    assert_eq!(audit_rows(&app), 1, "only the good command's row is there");
    assert!(app.store().writer_alive());
    app.store()
        .write(|tx| insert_audit(tx, "after"))
        .expect("the writer goes on");
}

/// Runs `f` as an unguarded command (no savepoint of its own) from its own thread.
fn spawn_unguarded(
    app: &Arc<App>,
    f: fn(&Tx<'_>) -> Result<(), StoreError>,
) -> std::thread::JoinHandle<Result<(), StoreError>> {
    let app = app.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(app.store().write_async(Guard::RefusesBeforeWriting, f))
    })
}

#[test]
fn an_unguarded_refusal_before_writing_leaves_its_group_alone() {
    let (_dir, app) = open();
    let holder = hold_until_queued(&app, 3);
    let good = spawn_unguarded(&app, |tx| insert_audit(tx, "kept"));
    let refused = spawn_unguarded(&app, |_tx| Err(StoreError::Corrupt("refused".into())));
    let good_too = spawn_unguarded(&app, |tx| insert_audit(tx, "kept too"));
    holder.join().expect("holder");
    assert!(good.join().expect("good").is_ok());
    assert!(matches!(
        refused.join().expect("refused"),
        Err(StoreError::Corrupt(_))
    ));
    assert!(good_too.join().expect("good too").is_ok());
    assert_eq!(audit_rows(&app), 2, "both good commands committed");
}

#[test]
fn an_unguarded_command_failing_after_a_write_rolls_back_its_whole_group() {
    let (_dir, app) = open();
    let holder = hold_until_queued(&app, 3);
    let good = spawn_unguarded(&app, |tx| insert_audit(tx, "rolled back with the group"));
    let halfway = spawn_unguarded(&app, |tx| {
        insert_audit(tx, "half a change")?;
        Err(StoreError::Corrupt("failed after writing".into()))
    });
    let later = spawn_unguarded(&app, |tx| insert_audit(tx, "never runs"));
    holder.join().expect("holder");
    for (name, r) in [
        ("good", good.join().expect("good")),
        ("halfway", halfway.join().expect("halfway")),
        ("later", later.join().expect("later")),
    ] {
        let e = r.expect_err(name);
        assert!(
            e.is_unavailable(),
            "{name}: {e:?} tells the caller to retry"
        );
    }
    assert_eq!(audit_rows(&app), 0, "no half-done change committed");
    // A panic after a write spoils its group the same way.
    let holder = hold_until_queued(&app, 1);
    let panicking = spawn_unguarded(&app, |tx| {
        insert_audit(tx, "before the panic").expect("insert");
        panic!("a bug in a command");
    });
    holder.join().expect("holder");
    assert!(panicking.join().expect("panicking").is_err());
    assert_eq!(audit_rows(&app), 0);
    // The writer goes on.
    app.store()
        .write(|tx| insert_audit(tx, "after"))
        .expect("the writer goes on");
    assert_eq!(audit_rows(&app), 1);
}

/// A published event of one seat (with a waitlist or not) and two attendees.
fn one_seat_and_two_people(
    app: &App,
    waitlist: bool,
) -> (
    boxoffice::domain::EventId,
    Vec<boxoffice::domain::AttendeeId>,
) {
    let actor = Actor::local("test");
    let new = NewEvent::parse(
        "E",
        "V",
        None,
        "2030-01-01T00:00:00Z",
        None,
        1,
        Some(waitlist),
        None,
        None,
    )
    .expect("e");
    let event = app.create_event(&actor, new).expect("create").id;
    app.publish_event(&actor, event).expect("publish");
    let people = (0..2)
        .map(|i| {
            let a =
                NewAttendee::parse("P", Some(&format!("p{i}@example.org")), None, true).expect("a");
            app.create_attendee(a, None).expect("attendee").id
        })
        .collect();
    (event, people)
}

#[test]
fn a_second_registration_refused_by_the_one_active_index_leaves_its_group_alone() {
    // A sale on the fast path (`register_async`, no Idempotency-Key) runs without a savepoint; a
    // second active registration is refused by the unique index at the insert itself, which must
    // change nothing, so the sales around it in the same group stand.
    let (_dir, app) = open();
    let (event, people) = one_seat_and_two_people(&app, true);
    let holder = hold_until_queued(&app, 3);
    // Queued in this order: the first attendee, the first again, then the second.
    let mut sales = Vec::new();
    for p in [people[0], people[0], people[1]] {
        let app2 = app.clone();
        let queued = app.store().writer_queue();
        sales.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(app2.register_async(event, p))
                .map(|sale| sale.registration)
        }));
        while app.store().writer_queue() == queued {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    holder.join().expect("holder");
    let [first, again, other] = sales
        .into_iter()
        .map(|s| s.join().expect("sale"))
        .collect::<Vec<_>>()
        .try_into()
        .expect("three");
    assert_eq!(first.expect("first sale").status.as_str(), "confirmed");
    match again {
        Err(Error::Conflict { kind, .. }) => {
            assert_eq!(kind, boxoffice::app::Conflict::AlreadyRegistered)
        }
        r => panic!("expected already registered, got {r:?}"),
    }
    assert_eq!(other.expect("other sale").status.as_str(), "waitlisted");
    let e = app
        .get_event(event, boxoffice::app::Visibility::Staff)
        .expect("event");
    assert_eq!((e.confirmed, e.waitlisted), (1, 1));
    assert!(app.check().expect("check").ok());
}

#[test]
fn a_refusal_from_a_group_that_fails_to_commit_is_not_final() {
    let (_dir, app) = open();
    let (event, people) = one_seat_and_two_people(&app, false);

    let holder = hold_until_queued(&app, 3);
    let sales: Vec<_> = people
        .iter()
        .map(|&p| {
            let app = app.clone();
            std::thread::spawn(move || app.register(event, p, None))
        })
        .collect();
    // A command whose change cannot commit: a deferred foreign key that points at nothing.
    let poison = {
        let app = app.clone();
        std::thread::spawn(move || {
            app.store().write(|tx| {
                tx.execute_batch(
                    "PRAGMA defer_foreign_keys = ON;
                     INSERT INTO idempotency (token_seq, key, fingerprint, status, content_type, body, created_at)
                     VALUES (999999, 'k', 'f', 200, 'x', x'00', 0);",
                )?;
                Ok::<_, StoreError>(())
            })
        })
    };
    holder.join().expect("holder");
    assert!(poison.join().expect("poison").is_err(), "the commit fails");
    for sale in sales {
        let r = sale.join().expect("sale");
        // One of them was "sold out" inside the group, on the other's seat that was then rolled
        // back: that refusal must not reach the caller as final.
        assert!(
            matches!(r, Err(Error::Internal(_)) | Err(Error::Unavailable(_))),
            "got {r:?}"
        );
    }
    let e = app
        .get_event(event, boxoffice::app::Visibility::Staff)
        .expect("event");
    assert_eq!(e.confirmed, 0, "nothing of the failed group stands");
    assert!(app.check().expect("check").ok());
    // The writer goes on: the seat sells now.
    assert_eq!(
        app.register(event, people[0], None)
            .expect("sale")
            .status
            .as_str(),
        "confirmed"
    );
}

#[test]
fn a_full_disk_is_storage_unavailable_and_writes_resume_when_there_is_room() {
    let (_dir, app) = open();
    let pages: i64 = {
        let conn = rusqlite::Connection::open(app.store().path()).expect("db");
        conn.query_row("PRAGMA page_count", [], |r| r.get(0))
            .expect("pages")
    };
    // Cap the file just above its size: a 1 MB row cannot fit.
    app.store()
        .write(move |tx| {
            tx.execute_batch(&format!("PRAGMA max_page_count = {}", pages + 8))?;
            Ok::<_, StoreError>(())
        })
        .expect("cap");
    let big = "x".repeat(1 << 20);
    let r = app.store().write(move |tx| {
        tx.execute(
            "INSERT INTO audit (at, actor, action, detail) VALUES (0, 't', 'big', ?1)",
            [&big],
        )?;
        Ok::<_, StoreError>(())
    });
    let err = r.expect_err("the disk is full");
    assert!(err.is_unavailable(), "a full disk is 503, not 500: {err:?}");
    assert!(matches!(Error::from(err), Error::Unavailable(_)));
    // Room again: writes succeed without a restart.
    app.store()
        .write(|tx| {
            tx.execute_batch("PRAGMA max_page_count = 1073741823")?;
            Ok::<_, StoreError>(())
        })
        .expect("uncap");
    app.store()
        .write(|tx| insert_audit(tx, "after"))
        .expect("writes resume");
    assert!(app.check().expect("check").ok());
}

#[test]
fn a_panicking_commit_hook_does_not_stop_the_writer() {
    let (_dir, app) = open();
    app.store()
        .on_commit(Arc::new(|_, _| panic!("a bug in a hook")));
    app.store()
        .write(|tx| insert_audit(tx, "one"))
        .expect("first");
    app.store()
        .write(|tx| insert_audit(tx, "two"))
        .expect("second");
    assert!(app.store().writer_alive());
    assert!(app.health().ok());
    assert_eq!(audit_rows(&app), 2);
}

#[test]
fn the_writer_commits_with_synchronous_full_in_wal_mode() {
    let (_dir, app) = open();
    let (sync, journal): (i64, String) = app
        .store()
        .write(|tx| {
            let sync = tx.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
            let journal = tx.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            Ok::<_, StoreError>((sync, journal))
        })
        .expect("pragmas");
    assert_eq!(journal, "wal");
    assert_eq!(sync, 2, "synchronous = FULL (I6)");
}

//! The rush's reference in the same run: the sale's own SQL in a plain loop, with no HTTP, no
//! threads and no waiting callers, on the machine as it is at that moment.
//!
//! The rush's target is an absolute rate, and the shared machine's speed moves under it (a fixed loop
//! ran at half speed for stretches, README Benchmark). This loop is what SQLite alone does with the
//! rush's writes on the same disk: per sale, the statements the server's sale runs (the event and
//! attendee lookups, the registration's insert, the event's counters, the outbox row with the
//! registration's JSON), confirmed while seats are left and waitlisted after, on a fresh file with
//! the server's schema (`schema.sql`) and pragmas (WAL, `synchronous = FULL`), `PER_COMMIT` sales to
//! a commit. The SQL is copied by hand from `src/store` (`events::for_sale`, `attendees::buyer_seq`,
//! `registrations::insert`, `events::add_sold`, `outbox::record`) and must follow it. Its rate is a
//! ceiling for the rush, which commits about 25 sales a group, each answered over HTTP, and a witness
//! of how fast the machine was. (The bench process allocates with glibc's malloc, the server with
//! jemalloc; the server's writer also has an update hook that this loop lacks.)

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use serde_json::json;

use crate::fill::Rng;

/// Sales per commit in the loop; the figure's name says it (`targets::RAW_SQLITE`).
pub const PER_COMMIT: usize = 100;

/// The server's pragmas for its writer connection (src/store/mod.rs).
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
    PRAGMA wal_autocheckpoint = 1000; PRAGMA cache_size = -32000; PRAGMA secure_delete = ON; \
    PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;";

/// What the loop did.
#[derive(Debug, Clone, Serialize)]
pub struct Reference {
    pub sales: usize,
    pub capacity: usize,
    pub per_commit: usize,
    pub seconds: f64,
    /// Sales per second.
    pub rate: f64,
}

/// Runs `sales` sales on one event with `capacity` seats and a waitlist, `PER_COMMIT` to a
/// transaction, in a new database in `dir` (which it creates and removes). Only the sales are
/// timed, not the attendees they need.
pub fn sales(dir: &Path, sales: usize, capacity: usize) -> anyhow::Result<Reference> {
    anyhow::ensure!(sales > 0, "the reference needs at least one sale");
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let result = run(&dir.join("reference.db"), sales, capacity);
    let _ = std::fs::remove_dir_all(dir);
    result
}

fn run(db: &Path, sales: usize, capacity: usize) -> anyhow::Result<Reference> {
    let mut conn = Connection::open(db).with_context(|| format!("open {}", db.display()))?;
    conn.execute_batch(PRAGMAS).context("pragmas")?;
    conn.execute_batch(include_str!("../../schema.sql"))
        .context("schema.sql")?;
    let now = millis_now();
    let mut rng = Rng::new(0x5eed);
    let event_id = rng.uuid();
    let mut attendees = Vec::with_capacity(sales);
    {
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO events (id, name, venue, starts_at, capacity, status, created_at, updated_at) \
             VALUES (?1, 'Reference', 'Bench Hall', ?2, ?3, 'published', ?2, ?2)",
            params![event_id, now + 86_400_000, i64::try_from(capacity)?],
        )?;
        let mut st = tx.prepare(
            "INSERT INTO attendees (id, name, email, email_key, created_at) VALUES (?1, ?2, ?3, ?3, ?4)",
        )?;
        for i in 0..sales {
            let id = rng.uuid_v7(now);
            let email = format!("reference-{i}@example.com");
            st.execute(params![id, format!("Reference {i}"), email, now])?;
            attendees.push(id);
        }
        drop(st);
        tx.commit()?;
    }

    let started = Instant::now();
    for chunk in attendees.chunks(PER_COMMIT) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for attendee in chunk {
            sell(&tx, &mut rng, &event_id, attendee)?;
        }
        tx.commit()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Reference {
        sales,
        capacity,
        per_commit: PER_COMMIT,
        seconds,
        rate: sales as f64 / seconds.max(f64::EPSILON),
    })
}

fn millis_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One sale: the statements of the server's `register_command`, in its order. A seat while one is
/// free and nobody waits, else a place at the end of the waitlist (the event's is on), as `admit`
/// decides.
fn sell(conn: &Connection, rng: &mut Rng, event_id: &str, attendee_id: &str) -> anyhow::Result<()> {
    let now = millis_now();
    let (event_seq, capacity, taken, waiting): (i64, i64, i64, i64) = conn
        .prepare_cached(
            "SELECT seq, status, capacity, confirmed, offered, waitlisted, waitlist_enabled \
             FROM events WHERE id = ?1",
        )?
        .query_row([event_id], |r| {
            Ok((
                r.get(0)?,
                r.get(2)?,
                r.get::<_, i64>(3)? + r.get::<_, i64>(4)?,
                r.get(5)?,
            ))
        })?;
    let attendee_seq: i64 = conn
        .prepare_cached("SELECT seq FROM attendees WHERE id = ?1 AND erased_at IS NULL")?
        .query_row([attendee_id], |r| r.get(0))
        .optional()?
        .context("the attendee was just created")?;
    let seated = taken < capacity && waiting == 0;
    let id = rng.uuid_v7(now);
    let code = seated.then(|| rng.ticket_code(now));
    let (status, kind, position) = if seated {
        ("confirmed", "registration.confirmed", None)
    } else {
        ("waitlisted", "registration.waitlisted", Some(waiting + 1))
    };
    conn.prepare_cached(
        "INSERT INTO registrations (id, event_seq, attendee_seq, status, ticket_code, seated_by_override, \
         created_at, updated_at, waitlisted_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?7, ?6, ?6, CASE WHEN ?4 = 'waitlisted' THEN ?6 END)",
    )?
    .execute(params![id, event_seq, attendee_seq, status, code, now, false])?;
    conn.prepare_cached(
        "UPDATE events SET confirmed = confirmed + ?2, waitlisted = waitlisted + ?3 WHERE seq = ?1",
    )?
    .execute(params![event_seq, i64::from(seated), i64::from(!seated)])?;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now) * 1_000_000)?
        .format(&time::format_description::well_known::Rfc3339)?;
    let payload = json!({
        "id": id, "event_id": event_id, "attendee_id": attendee_id, "status": status,
        "position": position, "offer_expires_at": null, "ticket_code": code, "checked_in_at": null,
        "created_at": at, "updated_at": at, "cancelled_at": null,
    })
    .to_string();
    conn.prepare_cached(
        "INSERT INTO outbox (id, type, aggregate_id, payload, created_at, next_attempt_at, state) \
         VALUES (?1, ?2, ?3, ?4, ?5, \
                 CASE WHEN EXISTS (SELECT 1 FROM webhooks) THEN ?5 END, \
                 CASE WHEN EXISTS (SELECT 1 FROM webhooks) THEN 'pending' ELSE 'delivered' END)",
    )?
    .execute(params![rng.uuid_v7(now), kind, id, payload, now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_seats_then_waitlists_in_wal_and_leaves_nothing_behind() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("boxoffice-reference-{}", std::process::id()));
        let db = dir.join("reference.db");
        std::fs::create_dir_all(&dir)?;
        // 250 sales: two full commits and a partial one; 180 seats, so the last 70 wait.
        let r = run(&db, 250, 180)?;
        assert_eq!((r.sales, r.capacity, r.per_commit), (250, 180, PER_COMMIT));
        assert!(r.rate > 0.0 && r.seconds > 0.0);
        let conn = Connection::open(&db)?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        assert_eq!(mode, "wal");
        let counts: [i64; 6] = conn.query_row(
            "SELECT (SELECT confirmed FROM events), (SELECT waitlisted FROM events), \
             (SELECT count(*) FROM registrations WHERE status = 'confirmed' AND ticket_code IS NOT NULL), \
             (SELECT count(*) FROM registrations WHERE status = 'waitlisted' AND waitlisted_at IS NOT NULL), \
             (SELECT count(*) FROM outbox WHERE type = 'registration.confirmed'), \
             (SELECT count(*) FROM outbox WHERE type = 'registration.waitlisted')",
            [],
            |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?]),
        )?;
        assert_eq!(counts, [180, 70, 180, 70, 180, 70]);
        // The last one waited behind the 69 before it.
        let last: serde_json::Value = serde_json::from_str(&conn.query_row(
            "SELECT payload FROM outbox ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get::<_, String>(0),
        )?)?;
        assert_eq!(last["position"], 70);
        drop(conn);
        std::fs::remove_dir_all(&dir)?;
        let r = sales(&dir, 10, 5)?;
        assert_eq!(r.sales, 10);
        assert!(!dir.exists(), "the reference removes its directory");
        assert!(sales(&dir, 0, 5).is_err());
        Ok(())
    }
}

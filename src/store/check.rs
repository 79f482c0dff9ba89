//! `boxoffice check`: SQLite's own integrity check, then invariants I1-I4 recomputed from the
//! registrations themselves over the whole file, independent of the counters the writer keeps.

use rusqlite::Connection;

use super::StoreError;

/// What the check found; `violations` is empty on a healthy file.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    pub integrity: String,
    pub events: i64,
    pub registrations: i64,
    pub violations: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.integrity == "ok" && self.violations.is_empty()
    }
}

/// Each query returns one text line per violation.
const CHECKS: &[(&str, &str)] = &[
    (
        "I1 capacity",
        "WITH c AS (SELECT event_seq, SUM(status IN ('confirmed', 'offered')) AS held FROM registrations GROUP BY event_seq)
         SELECT 'event ' || e.id || ': ' || c.held || ' seats held, capacity ' || e.capacity
         FROM events e JOIN c ON c.event_seq = e.seq WHERE c.held > e.capacity",
    ),
    (
        "I2 one seat per attendee",
        "SELECT 'event seq ' || event_seq || ', attendee seq ' || attendee_seq || ': ' || COUNT(*) || ' active registrations'
         FROM registrations WHERE status IN ('confirmed', 'waitlisted', 'offered')
         GROUP BY event_seq, attendee_seq HAVING COUNT(*) > 1",
    ),
    (
        // A waitlisted row was created waitlisted and never went back, so it already waited when any
        // later-joined registration got a seat: that seat jumped the queue.
        "I3 FIFO",
        "WITH w AS (SELECT event_seq, MIN(seq) AS first_waiting FROM registrations
                    WHERE status = 'waitlisted' GROUP BY event_seq),
              s AS (SELECT event_seq, MAX(seq) AS last_seated FROM registrations
                    WHERE (ticket_code IS NOT NULL OR status = 'offered') AND NOT seated_by_override
                    GROUP BY event_seq)
         SELECT 'event ' || e.id || ': a registration that joined after the head of the waitlist got a seat'
         FROM w JOIN s ON s.event_seq = w.event_seq JOIN events e ON e.seq = w.event_seq
         WHERE s.last_seated > w.first_waiting",
    ),
    (
        "I4 no idle seats",
        "WITH c AS (SELECT event_seq, SUM(status IN ('confirmed', 'offered')) AS held,
                           SUM(status = 'waitlisted') AS waiting FROM registrations GROUP BY event_seq)
         SELECT 'event ' || e.id || ': ' || (e.capacity - c.held) || ' free seats while ' || c.waiting || ' wait'
         FROM events e JOIN c ON c.event_seq = e.seq
         WHERE e.waitlist_enabled AND c.held < e.capacity AND c.waiting > 0",
    ),
    (
        "counters",
        "WITH c AS (SELECT e.seq AS event_seq,
                           COALESCE(SUM(r.status = 'confirmed'), 0) AS confirmed,
                           COALESCE(SUM(r.status = 'offered'), 0) AS offered,
                           COALESCE(SUM(r.status = 'waitlisted'), 0) AS waitlisted,
                           COALESCE(SUM(r.checked_in_at IS NOT NULL AND r.status = 'confirmed'), 0) AS checked_in
                    FROM events e LEFT JOIN registrations r ON r.event_seq = e.seq GROUP BY e.seq)
         SELECT 'event ' || e.id || ': stored counts ' || e.confirmed || '/' || e.offered || '/' || e.waitlisted
                || '/' || e.checked_in || ' but registrations say ' || c.confirmed || '/' || c.offered || '/'
                || c.waitlisted || '/' || c.checked_in
         FROM events e JOIN c ON c.event_seq = e.seq
         WHERE (e.confirmed, e.offered, e.waitlisted, e.checked_in)
               IS NOT (c.confirmed, c.offered, c.waitlisted, c.checked_in)",
    ),
    (
        "offers",
        "SELECT 'registration ' || id || ' is offered without an expiry, or has an expiry without an offer'
         FROM registrations WHERE (status = 'offered') <> (offer_expires_at IS NOT NULL)",
    ),
    (
        "ticket codes",

        "SELECT 'registration ' || id || ' is confirmed without a ticket code'
         FROM registrations WHERE status = 'confirmed' AND ticket_code IS NULL",
    ),
];

/// Whether SQLite refused because the file itself is damaged (a finding of the check, not a failure
/// to run it).
fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Runs the check. A damaged file is reported, not failed on: SQLite's integrity check says what is
/// wrong, and the invariant queries, which would only trip over the same broken pages, are skipped
/// (they answered "database disk image is malformed" and the command ended as an internal error).
pub fn run(conn: &Connection) -> Result<CheckReport, StoreError> {
    let integrity = match conn.query_row("PRAGMA integrity_check(1)", [], |r| r.get::<_, String>(0))
    {
        Ok(line) => line,
        Err(e) if is_damage(&e) => e.to_string(),
        Err(e) => return Err(e.into()),
    };
    if integrity != "ok" {
        return Ok(damaged(conn, integrity));
    }
    match invariants(conn) {
        Err(StoreError::Sqlite(e)) if is_damage(&e) => Ok(damaged(conn, e.to_string())),
        other => other,
    }
}

/// The report on a damaged file: what SQLite said, and the counts where they can still be read.
fn damaged(conn: &Connection, what: String) -> CheckReport {
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get(0)).unwrap_or(0);
    CheckReport {
        events: count("SELECT COUNT(*) FROM events"),
        registrations: count("SELECT COUNT(*) FROM registrations"),
        violations: vec![format!("integrity: {what}")],
        integrity: what,
    }
}

fn invariants(conn: &Connection) -> Result<CheckReport, StoreError> {
    let integrity = "ok".to_string();
    let mut violations = Vec::new();
    let fk_errors: i64 =
        conn.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })?;
    if fk_errors > 0 {
        violations.push(format!("foreign keys: {fk_errors} rows point at nothing"));
    }
    for (name, sql) in CHECKS {
        let mut st = conn.prepare(sql)?;
        let lines = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        violations.extend(lines.into_iter().map(|l| format!("{name}: {l}")));
    }
    let events = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
    let registrations = conn.query_row("SELECT COUNT(*) FROM registrations", [], |r| r.get(0))?;
    Ok(CheckReport {
        integrity,
        events,
        registrations,
        violations,
    })
}

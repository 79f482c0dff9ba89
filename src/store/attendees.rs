//! SQL for attendees.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{decode, ts, ts_opt, StoreError, Tx};
use crate::domain::{Attendee, AttendeeId, NewAttendee};

const COLS: &str = "seq, id, name, email, phone, created_at, erased_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Attendee> {
    let id: String = r.get(1)?;
    Ok(Attendee {
        seq: r.get(0)?,
        id: decode("attendee id", &id, AttendeeId::parse)?,
        name: r.get(2)?,
        email: r.get(3)?,
        phone: r.get(4)?,
        created_at: ts(r.get(5)?),
        erased_at: ts_opt(r.get(6)?),
    })
}

/// Inserts; a taken email surfaces as a unique violation (see `StoreError::is_unique_violation`).
pub fn insert(
    tx: &Tx<'_>,
    id: AttendeeId,
    a: &NewAttendee,
    now: i64,
) -> Result<Attendee, StoreError> {
    let mut st = tx.prepare_cached(
        "INSERT INTO attendees (id, name, email, email_key, phone, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    st.execute(params![
        id.to_string(),
        a.name,
        a.email.as_ref().map(|e| e.as_str()),
        a.email.as_ref().map(|e| e.key()),
        a.phone.as_ref().map(|p| p.as_str()),
        now
    ])?;
    Ok(Attendee {
        seq: tx.last_insert_rowid(),
        id,
        name: a.name.clone(),
        email: a.email.as_ref().map(|e| e.as_str().to_string()),
        phone: a.phone.as_ref().map(|p| p.as_str().to_string()),
        created_at: ts(now),
        erased_at: None,
    })
}

pub fn get(conn: &Connection, id: AttendeeId) -> Result<Option<Attendee>, StoreError> {
    let mut st = conn.prepare_cached(&format!("SELECT {COLS} FROM attendees WHERE id = ?1"))?;
    Ok(st.query_row([id.to_string()], from_row).optional()?)
}

/// The internal key of an attendee who may still buy: `None` when there is no such attendee or
/// they were erased. A sale needs nothing else of the person.
pub fn buyer_seq(conn: &Connection, id: AttendeeId) -> Result<Option<i64>, StoreError> {
    let mut st =
        conn.prepare_cached("SELECT seq FROM attendees WHERE id = ?1 AND erased_at IS NULL")?;
    Ok(st.query_row([id.to_string()], |r| r.get(0)).optional()?)
}

pub fn email_taken(conn: &Connection, email_key: &str) -> Result<bool, StoreError> {
    let mut st = conn.prepare_cached("SELECT 1 FROM attendees WHERE email_key = ?1")?;
    Ok(st.exists([email_key])?)
}

/// What an erased attendee's name becomes.
pub const TOMBSTONE_NAME: &str = "[erased]";

/// Replaces the attendee's personal data with the tombstone (DESIGN.md section 7). Email and its
/// key become NULL, so the address may register again (the unique index skips NULLs).
pub fn erase(tx: &Tx<'_>, seq: i64, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE attendees SET name = ?2, email = NULL, email_key = NULL, phone = NULL, erased_at = ?3 \
         WHERE seq = ?1",
    )?
    .execute(params![seq, TOMBSTONE_NAME, now])?;
    Ok(())
}

//! SQL for stored first responses of `Idempotency-Key` requests.

use rusqlite::{params, Connection, OptionalExtension};

use super::{StoreError, Tx};

/// A response as first sent, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub fingerprint: String,
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// The stored response for (token, key), if it was stored at or after `not_before`.
pub fn get(
    conn: &Connection,
    token_seq: i64,
    key: &str,
    not_before: i64,
) -> Result<Option<StoredResponse>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT fingerprint, status, content_type, body FROM idempotency \
         WHERE token_seq = ?1 AND key = ?2 AND created_at >= ?3",
    )?;
    Ok(st
        .query_row(params![token_seq, key, not_before], |r| {
            Ok(StoredResponse {
                fingerprint: r.get(0)?,
                status: r.get(1)?,
                content_type: r.get(2)?,
                body: r.get(3)?,
            })
        })
        .optional()?)
}

/// The fingerprint of a stored response blanked by an erasure: no request hashes to it.
pub const ERASED: &str = "erased";

/// Stores (or, for an expired key, replaces) the first response; `attendee_id` is the attendee it
/// is about, if any.
pub fn put(
    tx: &Tx<'_>,
    token_seq: i64,
    key: &str,
    resp: &StoredResponse,
    attendee_id: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO idempotency (token_seq, key, fingerprint, status, content_type, body, created_at, attendee_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![token_seq, key, resp.fingerprint, resp.status, resp.content_type, resp.body, now, attendee_id])?;
    Ok(())
}

/// Blanks every stored response about this attendee (body and request fingerprint), keeping the
/// key so a retry learns the attendee was erased instead of running again. Returns how many.
pub fn erase_attendee(tx: &Tx<'_>, attendee_id: &str) -> Result<usize, StoreError> {
    Ok(tx
        .prepare_cached(
            "UPDATE idempotency SET fingerprint = ?2, status = 410, content_type = '', body = X'' \
             WHERE attendee_id = ?1 AND fingerprint <> ?2",
        )?
        .execute(params![attendee_id, ERASED])?)
}

/// Forgets responses stored before `before`; returns how many.
pub fn prune(tx: &Tx<'_>, before: i64) -> Result<usize, StoreError> {
    Ok(tx
        .prepare_cached("DELETE FROM idempotency WHERE created_at < ?1")?
        .execute([before])?)
}

/// A stored response about an attendee, for their export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AboutAttendee {
    pub token_name: String,
    pub key: String,
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub created_at: i64,
}

/// Every stored response about this attendee, oldest first.
pub fn for_attendee(
    conn: &Connection,
    attendee_id: &str,
) -> Result<Vec<AboutAttendee>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT t.name, i.key, i.status, i.content_type, i.body, i.created_at \
         FROM idempotency i JOIN tokens t ON t.seq = i.token_seq \
         WHERE i.attendee_id = ?1 ORDER BY i.created_at",
    )?;
    let rows = st
        .query_map([attendee_id], |r| {
            Ok(AboutAttendee {
                token_name: r.get(0)?,
                key: r.get(1)?,
                status: r.get(2)?,
                content_type: r.get(3)?,
                body: r.get(4)?,
                created_at: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

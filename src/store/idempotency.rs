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

/// Stores (or, for an expired key, replaces) the first response.
pub fn put(
    tx: &Tx<'_>,
    token_seq: i64,
    key: &str,
    resp: &StoredResponse,
    now: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO idempotency (token_seq, key, fingerprint, status, content_type, body, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![token_seq, key, resp.fingerprint, resp.status, resp.content_type, resp.body, now])?;
    Ok(())
}

/// Forgets responses stored before `before`; returns how many.
pub fn prune(tx: &Tx<'_>, before: i64) -> Result<usize, StoreError> {
    Ok(tx
        .prepare_cached("DELETE FROM idempotency WHERE created_at < ?1")?
        .execute([before])?)
}

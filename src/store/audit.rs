//! SQL for the audit log: who did what, when, from where.

use rusqlite::params;

use super::{StoreError, Tx};

/// One admin or operator action.
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub remote_addr: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub detail: Option<&'a str>,
}

pub fn record(tx: &Tx<'_>, e: &Entry<'_>, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO audit (at, actor, action, target, remote_addr, request_id, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        now,
        e.actor,
        e.action,
        e.target,
        e.remote_addr,
        e.request_id,
        e.detail
    ])?;
    Ok(())
}

/// One stored audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub remote_addr: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
}

/// Which rows to list: an exact actor, and an action or its dotted prefix (`event` matches
/// `event.cancel`, not `events`).
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub actor: Option<&'a str>,
    pub action: Option<&'a str>,
}

/// Newest first: rows with `seq` below `before` (keyset), at most `limit`. A filtered read walks
/// the primary key backwards and skips what does not match; the audit log of one venue is small
/// enough for that, and it keeps the write path free of extra indexes.
pub fn list(
    conn: &rusqlite::Connection,
    filter: &Filter<'_>,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<Row>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT seq, at, actor, action, target, remote_addr, request_id, detail FROM audit \
         WHERE seq < ?1 \
           AND (?2 IS NULL OR actor = ?2) \
           AND (?3 IS NULL OR action = ?3 OR substr(action, 1, length(?3) + 1) = ?3 || '.') \
         ORDER BY seq DESC LIMIT ?4",
    )?;
    let rows = st
        .query_map(
            params![
                before.unwrap_or(i64::MAX),
                filter.actor,
                filter.action,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok(Row {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    remote_addr: r.get(5)?,
                    request_id: r.get(6)?,
                    detail: r.get(7)?,
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

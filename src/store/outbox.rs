//! SQL for the transactional outbox (I5): a domain event is written by the same command, in the same
//! transaction, as the change it records.

use rusqlite::{params, Connection};

use super::{StoreError, Tx};
use crate::domain::DomainEventType;

/// Records one domain event. `payload` is the JSON document a subscriber receives as `data`.
///
/// A message nobody subscribes to (no row in `webhooks`, enabled or paused) is stored `delivered`:
/// a subscription made later starts after it (its cursor is the newest message then), so no endpoint
/// will ever be sent it. Stored so, it never enters `outbox_unsettled`, and the processor does not
/// rewrite it (the whole row, payload included) to settle it a moment later.
pub fn record(
    tx: &Tx<'_>,
    id: &str,
    kind: DomainEventType,
    aggregate_id: &str,
    payload: &str,
    now: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO outbox (id, type, aggregate_id, payload, created_at, next_attempt_at, state) \
         VALUES (?1, ?2, ?3, ?4, ?5, \
                 CASE WHEN EXISTS (SELECT 1 FROM webhooks) THEN ?5 END, \
                 CASE WHEN EXISTS (SELECT 1 FROM webhooks) THEN 'pending' ELSE 'delivered' END)",
    )?
    .execute(params![id, kind.as_str(), aggregate_id, payload, now])?;
    tx.note_outbox_row(kind);
    Ok(())
}

/// One stored outbox message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub seq: i64,
    pub id: String,
    pub kind: String,
    pub aggregate_id: String,
    pub payload: String,
    pub created_at: i64,
    pub state: String,
}

/// Every message about one aggregate, in the order they were recorded.
pub fn for_aggregate(conn: &Connection, aggregate_id: &str) -> Result<Vec<Message>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT seq, id, type, aggregate_id, payload, created_at, state FROM outbox \
         WHERE aggregate_id = ?1 ORDER BY seq",
    )?;
    let rows = st
        .query_map([aggregate_id], |r| {
            Ok(Message {
                seq: r.get(0)?,
                id: r.get(1)?,
                kind: r.get(2)?,
                aggregate_id: r.get(3)?,
                payload: r.get(4)?,
                created_at: r.get(5)?,
                state: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Pending messages and the age of the oldest, for health and metrics.
pub fn pending_summary(conn: &Connection) -> Result<(i64, Option<i64>), StoreError> {
    let mut st = conn
        .prepare_cached("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending'")?;
    Ok(st.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

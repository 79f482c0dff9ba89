//! SQL for webhook subscriptions and per-endpoint delivery state (DESIGN.md section 4).
//!
//! Each subscription has a `cursor`: every outbox message up to it has been handled for that endpoint,
//! either delivered on its first attempt (which leaves no row) or recorded in `deliveries` (failed,
//! waiting behind a failed message of its aggregate, dead, or sent back by an operator). The happy
//! path therefore costs one cursor update per batch, not a row per message. `outbox.state` is a
//! summary kept by `summarise`: pending until every endpoint's cursor has passed the message and no
//! delivery of it is pending; then `dead` if some endpoint gave up on it, else `delivered`. (A message
//! recorded while nobody subscribes is stored `delivered` by `outbox::record` and never summarised.)

use rusqlite::{params, Connection, OptionalExtension};

use super::{StoreError, Tx};

/// A subscription as stored, without its secret.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub seq: i64,
    pub id: String,
    pub url: String,
    pub event_types: String,
    pub description: String,
    pub enabled: bool,
    pub timeout_ms: Option<i64>,
    pub cursor: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What the processor needs to deliver to one endpoint: the subscription and its signing secret.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub webhook: Webhook,
    pub secret: String,
}

/// A new subscription's stored fields.
#[derive(Debug, Clone)]
pub struct NewWebhook<'a> {
    pub id: &'a str,
    pub url: &'a str,
    pub event_types: &'a str,
    pub secret: &'a str,
    pub description: &'a str,
    pub enabled: bool,
    pub timeout_ms: Option<i64>,
}

const COLUMNS: &str =
    "seq, id, url, event_types, description, enabled, timeout_ms, cursor, created_at, updated_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        seq: r.get(0)?,
        id: r.get(1)?,
        url: r.get(2)?,
        event_types: r.get(3)?,
        description: r.get(4)?,
        enabled: r.get(5)?,
        timeout_ms: r.get(6)?,
        cursor: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

/// Inserts a subscription whose cursor is the newest outbox message: it receives what comes after.
pub fn insert(tx: &Tx<'_>, new: &NewWebhook<'_>, now: i64) -> Result<Webhook, StoreError> {
    tx.prepare_cached(
        "INSERT INTO webhooks (id, url, event_types, secret, description, enabled, timeout_ms, \
         cursor, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, (SELECT COALESCE(MAX(seq), 0) FROM outbox), ?8, ?8)",
    )?
    .execute(params![
        new.id,
        new.url,
        new.event_types,
        new.secret,
        new.description,
        new.enabled,
        new.timeout_ms,
        now
    ])?;
    get(tx, new.id)?.ok_or_else(|| StoreError::Corrupt("inserted webhook vanished".into()))
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Webhook>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id], row).optional()?)
}

/// Subscriptions in creation order, after `after_seq`.
pub fn list(conn: &Connection, after_seq: i64, limit: usize) -> Result<Vec<Webhook>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![after_seq, limit as i64], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Every subscription with its secret, for the processor.
pub fn endpoints(conn: &Connection) -> Result<Vec<Endpoint>, StoreError> {
    let sql = format!("SELECT {COLUMNS}, secret FROM webhooks ORDER BY seq");
    let rows = conn
        .prepare_cached(&sql)?
        .query_map([], |r| {
            Ok(Endpoint {
                webhook: row(r)?,
                secret: r.get(10)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn endpoint(conn: &Connection, seq: i64) -> Result<Option<Endpoint>, StoreError> {
    let sql = format!("SELECT {COLUMNS}, secret FROM webhooks WHERE seq = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([seq], |r| {
            Ok(Endpoint {
                webhook: row(r)?,
                secret: r.get(10)?,
            })
        })
        .optional()?)
}

/// Saves the changeable fields of a subscription.
pub fn save(tx: &Tx<'_>, w: &Webhook) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE webhooks SET url = ?2, event_types = ?3, description = ?4, enabled = ?5, \
         timeout_ms = ?6, updated_at = ?7 WHERE seq = ?1",
    )?
    .execute(params![
        w.seq,
        w.url,
        w.event_types,
        w.description,
        w.enabled,
        w.timeout_ms,
        w.updated_at
    ])?;
    Ok(())
}

/// Deletes a subscription and its delivery rows, then settles the messages that only waited for it.
pub fn delete(tx: &Tx<'_>, seq: i64) -> Result<(), StoreError> {
    let touched: Vec<i64> = tx
        .prepare_cached("SELECT outbox_seq FROM deliveries WHERE webhook_seq = ?1")?
        .query_map([seq], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    tx.prepare_cached("DELETE FROM deliveries WHERE webhook_seq = ?1")?
        .execute([seq])?;
    tx.prepare_cached("DELETE FROM webhooks WHERE seq = ?1")?
        .execute([seq])?;
    for outbox_seq in touched {
        resummarise(tx, outbox_seq)?;
    }
    summarise(tx)?;
    Ok(())
}

// ----- what the processor reads -----

/// An outbox message on its way to one endpoint.
#[derive(Debug, Clone)]
pub struct Message {
    pub seq: i64,
    pub id: String,
    pub kind: String,
    pub aggregate_id: String,
    pub payload: String,
    pub created_at: i64,
    /// Attempts already made for this endpoint (0 for a message past the cursor).
    pub attempts: i64,
    /// True when the message has a row in `deliveries` for this endpoint.
    pub has_row: bool,
}

/// Messages past the endpoint's cursor, oldest first.
pub fn after_cursor(
    conn: &Connection,
    cursor: i64,
    limit: usize,
) -> Result<Vec<Message>, StoreError> {
    let rows = conn
        .prepare_cached(
            "SELECT seq, id, type, aggregate_id, payload, created_at FROM outbox \
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?
        .query_map(params![cursor, limit as i64], |r| {
            Ok(Message {
                seq: r.get(0)?,
                id: r.get(1)?,
                kind: r.get(2)?,
                aggregate_id: r.get(3)?,
                payload: r.get(4)?,
                created_at: r.get(5)?,
                attempts: 0,
                has_row: false,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Pending deliveries of the endpoint that are due and first in line for their aggregate (no earlier
/// message of the same aggregate is still pending for this endpoint), oldest first.
pub fn due_heads(
    conn: &Connection,
    webhook_seq: i64,
    now: i64,
    limit: usize,
) -> Result<Vec<Message>, StoreError> {
    let rows = conn
        .prepare_cached(
            "SELECT o.seq, o.id, o.type, o.aggregate_id, o.payload, o.created_at, d.attempts \
             FROM deliveries d JOIN outbox o ON o.seq = d.outbox_seq \
             WHERE d.webhook_seq = ?1 AND d.state = 'pending' AND d.next_attempt_at <= ?2 \
               AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.webhook_seq = ?1 \
                   AND e.state = 'pending' AND e.aggregate_id = d.aggregate_id \
                   AND e.outbox_seq < d.outbox_seq) \
             ORDER BY d.outbox_seq LIMIT ?3",
        )?
        .query_map(params![webhook_seq, now, limit as i64], |r| {
            Ok(Message {
                seq: r.get(0)?,
                id: r.get(1)?,
                kind: r.get(2)?,
                aggregate_id: r.get(3)?,
                payload: r.get(4)?,
                created_at: r.get(5)?,
                attempts: r.get(6)?,
                has_row: true,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Is a message of this aggregate still pending for this endpoint? Then later ones wait behind it.
pub fn aggregate_held(
    conn: &Connection,
    webhook_seq: i64,
    aggregate_id: &str,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM deliveries WHERE webhook_seq = ?1 AND aggregate_id = ?2 \
             AND state = 'pending' LIMIT 1",
        )?
        .query_row(params![webhook_seq, aggregate_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Does the endpoint have any pending delivery? When not (the healthy case), no message can be held
/// behind one, and the per-message check is skipped.
pub fn any_pending(conn: &Connection, webhook_seq: i64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM deliveries WHERE webhook_seq = ?1 AND state = 'pending' LIMIT 1",
        )?
        .query_row([webhook_seq], |_| Ok(()))
        .optional()?
        .is_some())
}

/// When the endpoint next has a delivery due, if it has any pending: the earliest retry among the
/// deliveries first in line for their aggregate (as `due_heads` picks them). A message held behind an
/// earlier one of its aggregate is not due whatever its own time says (its row may carry a time long
/// past); counting it made the endpoint's worker wake at once, find nothing due, and loop until the
/// head's retry came round.
pub fn next_due(conn: &Connection, webhook_seq: i64) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT MIN(d.next_attempt_at) FROM deliveries d \
             WHERE d.webhook_seq = ?1 AND d.state = 'pending' \
               AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.webhook_seq = ?1 \
                   AND e.state = 'pending' AND e.aggregate_id = d.aggregate_id \
                   AND e.outbox_seq < d.outbox_seq)",
        )?
        .query_row([webhook_seq], |r| r.get(0))?)
}

// ----- what the processor writes -----

/// The result of one message for one endpoint in a batch.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered {
        outbox_seq: i64,
        has_row: bool,
        status: u16,
    },
    Failed {
        outbox_seq: i64,
        aggregate_id: String,
        has_row: bool,
        /// Attempts including this one.
        attempts: i64,
        error: String,
        status: Option<u16>,
        /// When to try again; `None`: the message is dead for this endpoint.
        retry_at: Option<i64>,
    },
    /// Not attempted: waits behind an earlier message of its aggregate, or the endpoint's circuit
    /// opened before its turn. Only messages past the cursor need a row for that.
    Waiting {
        outbox_seq: i64,
        aggregate_id: String,
        at: i64,
    },
}

/// Writes a batch's outcomes for one endpoint, moves its cursor, and settles what can be settled.
/// Returns false (and writes nothing) if the subscription was deleted meanwhile.
pub fn record(
    tx: &Tx<'_>,
    webhook_seq: i64,
    outcomes: &[Outcome],
    cursor: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let exists = tx
        .prepare_cached("SELECT 1 FROM webhooks WHERE seq = ?1")?
        .query_row([webhook_seq], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        return Ok(false);
    }
    for o in outcomes {
        match o {
            Outcome::Delivered {
                outbox_seq,
                has_row: true,
                status,
            } => {
                tx.prepare_cached(
                    "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, \
                     delivered_at = ?3, last_status = ?4 WHERE outbox_seq = ?1 AND webhook_seq = ?2",
                )?
                .execute(params![outbox_seq, webhook_seq, now, status])?;
                resummarise(tx, *outbox_seq)?;
            }
            Outcome::Delivered { has_row: false, .. } => {}
            Outcome::Failed {
                outbox_seq,
                aggregate_id,
                has_row,
                attempts,
                error,
                status,
                retry_at,
            } => {
                let state = if retry_at.is_some() {
                    "pending"
                } else {
                    "dead"
                };
                let next = retry_at.unwrap_or(now);
                if *has_row {
                    tx.prepare_cached(
                        "UPDATE deliveries SET state = ?3, attempts = ?4, next_attempt_at = ?5, \
                         last_error = ?6, last_status = ?7 WHERE outbox_seq = ?1 AND webhook_seq = ?2",
                    )?
                    .execute(params![
                        outbox_seq,
                        webhook_seq,
                        state,
                        attempts,
                        next,
                        error,
                        status
                    ])?;
                } else {
                    tx.prepare_cached(
                        "INSERT INTO deliveries (outbox_seq, webhook_seq, aggregate_id, state, \
                         attempts, next_attempt_at, last_error, last_status) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )?
                    .execute(params![
                        outbox_seq,
                        webhook_seq,
                        aggregate_id,
                        state,
                        attempts,
                        next,
                        error,
                        status
                    ])?;
                }
                tx.prepare_cached(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 \
                     WHERE seq = ?1",
                )?
                .execute(params![outbox_seq, error, retry_at])?;
                if retry_at.is_none() {
                    resummarise(tx, *outbox_seq)?;
                }
            }
            Outcome::Waiting {
                outbox_seq,
                aggregate_id,
                at,
            } => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO deliveries (outbox_seq, webhook_seq, aggregate_id, state, \
                     attempts, next_attempt_at) VALUES (?1, ?2, ?3, 'pending', 0, ?4)",
                )?
                .execute(params![outbox_seq, webhook_seq, aggregate_id, at])?;
            }
        }
    }
    tx.prepare_cached("UPDATE webhooks SET cursor = MAX(cursor, ?2) WHERE seq = ?1")?
        .execute(params![webhook_seq, cursor])?;
    summarise(tx)?;
    Ok(true)
}

/// The seq up to which every endpoint's cursor has passed: the slowest cursor, or the newest message
/// when nobody subscribes (such messages are done at once).
fn settle_point(conn: &Connection) -> Result<i64, StoreError> {
    let (slowest, count): (Option<i64>, i64) = conn
        .prepare_cached("SELECT MIN(cursor), COUNT(*) FROM webhooks")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if count > 0 {
        return Ok(slowest.unwrap_or(0));
    }
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM outbox")?
        .query_row([], |r| r.get(0))?)
}

/// How far `outbox.state` has been settled, and how far it could be now.
pub fn summary_lag(conn: &Connection) -> Result<(i64, i64), StoreError> {
    let done: i64 = conn
        .prepare_cached("SELECT summarised_seq FROM outbox_progress WHERE id = 1")?
        .query_row([], |r| r.get(0))?;
    Ok((done, settle_point(conn)?))
}

/// Settles the messages every endpoint's cursor has newly passed: delivered, or dead when some
/// endpoint gave up on it; those with a pending delivery stay pending until `resummarise`.
pub fn summarise(tx: &Tx<'_>) -> Result<(), StoreError> {
    let (done, point) = summary_lag(tx)?;
    if point <= done {
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE outbox SET \
           state = CASE WHEN EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_seq = outbox.seq \
                                     AND d.state = 'dead') THEN 'dead' ELSE 'delivered' END, \
           next_attempt_at = NULL \
         WHERE seq > ?1 AND seq <= ?2 AND state = 'pending' \
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_seq = outbox.seq \
                           AND d.state = 'pending')",
    )?
    .execute(params![done, point])?;
    tx.prepare_cached("UPDATE outbox_progress SET summarised_seq = ?1 WHERE id = 1")?
        .execute([point])?;
    Ok(())
}

/// Settles one message again after one of its deliveries changed, if every cursor has passed it.
pub fn resummarise(tx: &Tx<'_>, outbox_seq: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE outbox SET \
           state = CASE \
             WHEN EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_seq = ?1 AND d.state = 'pending') \
               THEN 'pending' \
             WHEN EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_seq = ?1 AND d.state = 'dead') \
               THEN 'dead' \
             ELSE 'delivered' END \
         WHERE seq = ?1 AND seq <= (SELECT summarised_seq FROM outbox_progress WHERE id = 1)",
    )?
    .execute([outbox_seq])?;
    tx.prepare_cached(
        "UPDATE outbox SET next_attempt_at = NULL WHERE seq = ?1 AND state <> 'pending'",
    )?
    .execute([outbox_seq])?;
    Ok(())
}

/// Sends a dead message back to pending for every endpoint that gave up on it. Returns false when the
/// message is not dead.
pub fn retry_dead(tx: &Tx<'_>, outbox_seq: i64, now: i64) -> Result<bool, StoreError> {
    let n = tx
        .prepare_cached(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?2 \
             WHERE outbox_seq = ?1 AND state = 'dead'",
        )?
        .execute(params![outbox_seq, now])?;
    if n == 0 {
        return Ok(false);
    }
    tx.prepare_cached(
        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2 WHERE seq = ?1",
    )?
    .execute(params![outbox_seq, now])?;
    Ok(true)
}

/// One step of pruning: looks at up to `limit` messages after `after_seq`, oldest first, and deletes
/// the delivered ones among them recorded before `before` (their delivery rows go with them), up to
/// the first message that is not that old. Pending and dead messages are kept whatever their age,
/// and so is the newest message: `seq` is SQLite's rowid, which would start again after an emptied
/// table and fall behind the subscriptions' cursors. Returns how many it deleted and, when older
/// messages may follow, the seq to go on after.
///
/// Messages are read by `seq` (delivered ones are in no index of their own) and recorded in `seq`
/// order, so their times ascend: the first young message ends the pruning. One dated after `now`
/// (recorded while the clock ran ahead) does not: it is stepped over and kept.
pub fn prune_delivered(
    tx: &Tx<'_>,
    before: i64,
    now: i64,
    after_seq: i64,
    limit: usize,
) -> Result<(usize, Option<i64>), StoreError> {
    let newest: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM outbox")?
        .query_row([], |r| r.get(0))?;
    let mut st = tx.prepare_cached(
        "SELECT seq, created_at FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut rows = st.query(params![after_seq, limit as i64])?;
    let (mut read, mut upto, mut young) = (0, after_seq, false);
    while let Some(r) = rows.next()? {
        let at: i64 = r.get(1)?;
        if (before..=now).contains(&at) {
            young = true;
            break;
        }
        read += 1;
        upto = r.get(0)?;
    }
    drop(rows);
    let deleted = tx
        .prepare_cached(
            "DELETE FROM outbox WHERE seq > ?1 AND seq <= ?2 AND seq < ?3 \
             AND state = 'delivered' AND created_at < ?4",
        )?
        .execute(params![after_seq, upto, newest, before])?;
    let more = !young && read == limit;
    Ok((deleted, more.then_some(upto)))
}

// ----- what operators read -----

/// One outbox message as the admin list shows it.
#[derive(Debug, Clone)]
pub struct ListedMessage {
    pub seq: i64,
    pub id: String,
    pub kind: String,
    pub aggregate_id: String,
    pub payload: String,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub state: String,
    pub deliveries: Vec<DeliveryRow>,
}

/// A delivery row of a message, with the subscription it belongs to.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub webhook_id: String,
    pub url: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub last_status: Option<i64>,
    pub delivered_at: Option<i64>,
}

/// Messages in outbox order, optionally of one state, after `after_seq`.
pub fn list_messages(
    conn: &Connection,
    state: Option<&str>,
    after_seq: i64,
    limit: usize,
) -> Result<Vec<ListedMessage>, StoreError> {
    // Pending and dead messages are read through `outbox_unsettled`, whose condition a query must
    // spell out for SQLite to use it; delivered ones, and all of them, by `seq`.
    let filter = match state {
        None => "",
        Some("pending") => "state = 'pending' AND",
        Some("dead") => "state = 'dead' AND",
        Some("delivered") => "state = 'delivered' AND",
        // No message is in any other state.
        Some(_) => return Ok(Vec::new()),
    };
    let mut st = conn.prepare_cached(&format!(
        "SELECT seq, id, type, aggregate_id, payload, created_at, attempts, next_attempt_at, \
         last_error, state FROM outbox WHERE {filter} seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let mut rows = st
        .query_map(params![after_seq, limit as i64], |r| {
            Ok(ListedMessage {
                seq: r.get(0)?,
                id: r.get(1)?,
                kind: r.get(2)?,
                aggregate_id: r.get(3)?,
                payload: r.get(4)?,
                created_at: r.get(5)?,
                attempts: r.get(6)?,
                next_attempt_at: r.get(7)?,
                last_error: r.get(8)?,
                state: r.get(9)?,
                deliveries: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for m in &mut rows {
        m.deliveries = deliveries_of(conn, m.seq)?;
    }
    Ok(rows)
}

pub fn message_seq(conn: &Connection, id: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq FROM outbox WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

pub fn get_message(conn: &Connection, seq: i64) -> Result<Option<ListedMessage>, StoreError> {
    let mut rows = list_messages(conn, None, seq - 1, 1)?;
    Ok(rows.pop().filter(|m| m.seq == seq))
}

fn deliveries_of(conn: &Connection, outbox_seq: i64) -> Result<Vec<DeliveryRow>, StoreError> {
    let rows = conn
        .prepare_cached(
            "SELECT w.id, w.url, d.state, d.attempts, d.next_attempt_at, d.last_error, \
             d.last_status, d.delivered_at FROM deliveries d JOIN webhooks w ON w.seq = d.webhook_seq \
             WHERE d.outbox_seq = ?1 ORDER BY w.seq",
        )?
        .query_map([outbox_seq], |r| {
            Ok(DeliveryRow {
                webhook_id: r.get(0)?,
                url: r.get(1)?,
                state: r.get(2)?,
                attempts: r.get(3)?,
                next_attempt_at: r.get(4)?,
                last_error: r.get(5)?,
                last_status: r.get(6)?,
                delivered_at: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Outbox messages by state: (pending, dead), and the creation time of the oldest pending one.
pub fn counts(conn: &Connection) -> Result<(i64, i64, Option<i64>), StoreError> {
    let (pending, oldest) = super::outbox::pending_summary(conn)?;
    let dead: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM outbox WHERE state = 'dead'")?
        .query_row([], |r| r.get(0))?;
    Ok((pending, dead, oldest))
}

//! SQL for events, including their live counters.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{decode, ts, ts_opt, StoreError, Tx};
use crate::domain::{
    Capacity, Event, EventId, EventStatus, NewEvent, Occupancy, OfferMinutes, Promotion,
};

const COLS: &str = "seq, id, name, venue, description, starts_at, ends_at, capacity, status, \
    waitlist_enabled, promotion, confirmed, offered, waitlisted, checked_in, promotions, created_at, updated_at, \
    offer_minutes";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    let id: String = r.get(1)?;
    let status: String = r.get(8)?;
    let promotion: String = r.get(10)?;
    let capacity: i64 = r.get(7)?;
    let offer_minutes: i64 = r.get(18)?;
    Ok(Event {
        seq: r.get(0)?,
        id: decode("event id", &id, EventId::parse)?,
        name: r.get(2)?,
        venue: r.get(3)?,
        description: r.get(4)?,
        starts_at: ts(r.get(5)?),
        ends_at: ts_opt(r.get(6)?),
        capacity: decode("capacity", &capacity.to_string(), |_| {
            Capacity::parse(capacity).ok()
        })?,
        status: decode("event status", &status, EventStatus::parse)?,
        waitlist_enabled: r.get(9)?,
        promotion: decode("promotion", &promotion, Promotion::parse)?,
        offer_minutes: decode("offer_minutes", &offer_minutes.to_string(), |_| {
            OfferMinutes::parse(offer_minutes).ok()
        })?,

        confirmed: r.get(11)?,
        offered: r.get(12)?,
        waitlisted: r.get(13)?,
        checked_in: r.get(14)?,
        promotions: r.get(15)?,
        created_at: ts(r.get(16)?),
        updated_at: ts(r.get(17)?),
    })
}

pub fn insert(tx: &Tx<'_>, id: EventId, e: &NewEvent, now: i64) -> Result<Event, StoreError> {
    tx.prepare_cached(
        "INSERT INTO events (id, name, venue, description, starts_at, ends_at, capacity, status, \
         waitlist_enabled, promotion, offer_minutes, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'draft', ?8, ?10, ?11, ?9, ?9)",
    )?
    .execute(params![
        id.to_string(),
        e.name,
        e.venue,
        e.description,
        e.starts_at.millis(),
        e.ends_at.map(|t| t.millis()),
        e.capacity.get(),
        e.waitlist_enabled,
        now,
        e.promotion.as_str(),
        e.offer_minutes.get(),
    ])?;
    get(tx, id)?.ok_or_else(|| StoreError::Corrupt("inserted event not found".into()))
}

pub fn get(conn: &Connection, id: EventId) -> Result<Option<Event>, StoreError> {
    let mut st = conn.prepare_cached(&format!("SELECT {COLS} FROM events WHERE id = ?1"))?;
    Ok(st.query_row([id.to_string()], from_row).optional()?)
}

pub fn get_by_seq(conn: &Connection, seq: i64) -> Result<Option<Event>, StoreError> {
    let mut st = conn.prepare_cached(&format!("SELECT {COLS} FROM events WHERE seq = ?1"))?;
    Ok(st.query_row([seq], from_row).optional()?)
}

/// Writes every mutable field and counter of `e` back.
pub fn save(tx: &Tx<'_>, e: &Event) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE events SET name = ?2, venue = ?3, description = ?4, starts_at = ?5, ends_at = ?6, \
         capacity = ?7, status = ?8, waitlist_enabled = ?9, confirmed = ?10, offered = ?11, waitlisted = ?12, \
         checked_in = ?13, promotions = ?14, updated_at = ?15, promotion = ?16, offer_minutes = ?17 WHERE seq = ?1",
    )?
    .execute(params![
        e.seq,
        e.name,
        e.venue,
        e.description,
        e.starts_at.millis(),
        e.ends_at.map(|t| t.millis()),
        e.capacity.get(),
        e.status.as_str(),
        e.waitlist_enabled,
        e.confirmed,
        e.offered,
        e.waitlisted,
        e.checked_in,
        e.promotions,
        e.updated_at.millis(),
        e.promotion.as_str(),
        e.offer_minutes.get(),
    ])?;

    Ok(())
}

/// What a sale needs of its event: its key, its status and how full it is, without its texts.
#[derive(Debug, Clone, Copy)]
pub struct ForSale {
    pub seq: i64,
    pub status: EventStatus,
    pub occupancy: Occupancy,
}

/// The event as a sale sees it (`ForSale`): the sale's hot path reads and decodes nothing else.
pub fn for_sale(conn: &Connection, id: EventId) -> Result<Option<ForSale>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT seq, status, capacity, confirmed, offered, waitlisted, waitlist_enabled \
         FROM events WHERE id = ?1",
    )?;
    let row = st
        .query_row([id.to_string()], |r| {
            let status: String = r.get(1)?;
            Ok(ForSale {
                seq: r.get(0)?,
                status: decode("event status", &status, EventStatus::parse)?,
                occupancy: Occupancy {
                    capacity: r.get(2)?,
                    confirmed: r.get(3)?,
                    offered: r.get(4)?,
                    waitlisted: r.get(5)?,
                    waitlist_enabled: r.get(6)?,
                },
            })
        })
        .optional()?;
    Ok(row)
}

/// Moves a sale's counters by the given amounts (one more confirmed, or one more waiting).
pub fn add_sold(tx: &Tx<'_>, seq: i64, confirmed: i64, waitlisted: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE events SET confirmed = confirmed + ?2, waitlisted = waitlisted + ?3 WHERE seq = ?1",
    )?
    .execute(params![seq, confirmed, waitlisted])?;
    Ok(())
}

/// Only the counters: the hot path of a sale touches nothing else of the event.
pub fn save_counts(tx: &Tx<'_>, e: &Event) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE events SET confirmed = ?2, offered = ?3, waitlisted = ?4, checked_in = ?5, promotions = ?6 \
         WHERE seq = ?1",
    )?
    .execute(params![e.seq, e.confirmed, e.offered, e.waitlisted, e.checked_in, e.promotions])?;
    Ok(())
}

/// Keyset position in the events list: ordered by start time, then creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    pub starts_at: i64,
    pub seq: i64,
}

/// Events in date order after `after`, optionally only those with one of `statuses`.
pub fn list(
    conn: &Connection,
    statuses: &[EventStatus],
    after: Option<EventCursor>,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    let (a_start, a_seq) = after.map_or((i64::MIN, i64::MIN), |c| (c.starts_at, c.seq));
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = if statuses.is_empty() {
        let mut st = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM events WHERE (starts_at, seq) > (?1, ?2) ORDER BY starts_at, seq LIMIT ?3"
        ))?;
        let rows = st
            .query_map(params![a_start, a_seq, limit], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows
    } else {
        // One keyset scan per status, merged: each uses the (status, starts_at, seq) index.
        let mut all = Vec::new();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM events WHERE status = ?1 AND (starts_at, seq) > (?2, ?3) \
             ORDER BY starts_at, seq LIMIT ?4"
        ))?;
        for s in statuses {
            let part = st.query_map(params![s.as_str(), a_start, a_seq, limit], from_row)?;
            all.extend(part.collect::<rusqlite::Result<Vec<_>>>()?);
        }
        all.sort_by_key(|e| (e.starts_at, e.seq));
        all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        all
    };
    Ok(rows)
}

pub fn count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
}

/// Just the status of an event (the door's check, without reading the whole row).
pub fn status(conn: &Connection, seq: i64) -> Result<Option<EventStatus>, StoreError> {
    let mut st = conn.prepare_cached("SELECT status FROM events WHERE seq = ?1")?;
    let raw: Option<String> = st.query_row([seq], |r| r.get(0)).optional()?;
    raw.map(|s| {
        EventStatus::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("event status {s:?}")))
    })
    .transpose()
}

/// The door's counters after one more (or one fewer) check-in, as the update leaves them.
#[derive(Debug, Clone)]
pub struct DoorCounts {
    pub id: EventId,
    pub name: String,
    pub confirmed: i64,
    pub checked_in: i64,
}

/// Adds `delta` to the event's check-in counter in place and returns what the door shows.
pub fn add_checked_in(tx: &Tx<'_>, seq: i64, delta: i64) -> Result<DoorCounts, StoreError> {
    let mut st = tx.prepare_cached(
        "UPDATE events SET checked_in = checked_in + ?2 WHERE seq = ?1 RETURNING id, name, confirmed, checked_in",
    )?;
    let counts = st.query_row(params![seq, delta], |r| {
        let id: String = r.get(0)?;
        Ok(DoorCounts {
            id: decode("event id", &id, EventId::parse)?,
            name: r.get(1)?,
            confirmed: r.get(2)?,
            checked_in: r.get(3)?,
        })
    })?;
    Ok(counts)
}

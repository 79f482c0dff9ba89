//! SQL for registrations and the waitlist. A waitlist position is never stored: it is the count of
//! waitlisted registrations of the event that joined no later (the `registrations_waitlist` index), so
//! positions are 1..n with no gaps and follow join order by construction (I3).

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{decode, ts, ts_opt, NewReg, StoreError, Tx};
use crate::domain::{AttendeeId, EventId, RegStatus, Registration, RegistrationId, TicketCode};

const SELECT: &str = "SELECT r.seq, r.id, e.id, a.id, r.status, r.offer_expires_at, r.ticket_code, \
    r.checked_in_at, r.created_at, r.updated_at, r.cancelled_at, r.event_seq, a.name \
    FROM registrations r JOIN events e ON e.seq = r.event_seq JOIN attendees a ON a.seq = r.attendee_seq";

/// A registration row with the event's internal seq, needed to compute positions and apply changes.
#[derive(Debug, Clone)]
pub struct RegRow {
    pub reg: Registration,
    pub event_seq: i64,
    /// The attendee's name, for the door: read in the same query.
    pub attendee_name: String,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<RegRow> {
    let id: String = r.get(1)?;
    let event_id: String = r.get(2)?;
    let attendee_id: String = r.get(3)?;
    let status: String = r.get(4)?;
    Ok(RegRow {
        reg: Registration {
            seq: r.get(0)?,
            id: decode("registration id", &id, RegistrationId::parse)?,
            event_id: decode("event id", &event_id, EventId::parse)?,
            attendee_id: decode("attendee id", &attendee_id, AttendeeId::parse)?,
            status: decode("registration status", &status, RegStatus::parse)?,
            position: None,
            offer_expires_at: ts_opt(r.get(5)?),
            ticket_code: r.get::<_, Option<String>>(6)?.map(TicketCode::from_stored),
            checked_in_at: ts_opt(r.get(7)?),
            created_at: ts(r.get(8)?),
            updated_at: ts(r.get(9)?),
            cancelled_at: ts_opt(r.get(10)?),
        },
        event_seq: r.get(11)?,
        attendee_name: r.get(12)?,
    })
}

/// A new registration row, as the writer decided it.
pub struct NewRegistration<'a> {
    pub id: RegistrationId,
    pub event_seq: i64,
    pub attendee_seq: i64,
    pub status: RegStatus,
    pub ticket_code: Option<&'a TicketCode>,
    /// A counter sale seated ahead of the waitlist by the operator's override.
    pub seated_by_override: bool,
    pub now: i64,
}

/// Inserts; an active duplicate for (event, attendee) surfaces as a unique violation (I2).
pub fn insert(tx: &Tx<'_>, n: &NewRegistration<'_>) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO registrations (id, event_seq, attendee_seq, status, ticket_code, seated_by_override, \
         created_at, updated_at, waitlisted_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?7, ?6, ?6, CASE WHEN ?4 = 'waitlisted' THEN ?6 END)",
    )?
    .execute(params![
        n.id.to_string(),
        n.event_seq,
        n.attendee_seq,
        n.status.as_str(),
        n.ticket_code.map(TicketCode::stored),
        n.now,
        n.seated_by_override,
    ])?;
    let seq = tx.last_insert_rowid();
    tx.note_registration(NewReg {
        id: n.id,
        seq,
        event_seq: n.event_seq,
    });
    Ok(seq)
}

pub fn get(conn: &Connection, id: RegistrationId) -> Result<Option<RegRow>, StoreError> {
    let mut st = conn.prepare_cached(&format!("{SELECT} WHERE r.id = ?1"))?;
    Ok(st.query_row([id.to_string()], from_row).optional()?)
}

pub fn get_by_seq(conn: &Connection, seq: i64) -> Result<Option<RegRow>, StoreError> {
    let mut st = conn.prepare_cached(&format!("{SELECT} WHERE r.seq = ?1"))?;
    Ok(st.query_row([seq], from_row).optional()?)
}

/// The registration holding this ticket code (normalised form).
pub fn get_by_ticket(conn: &Connection, code: &TicketCode) -> Result<Option<RegRow>, StoreError> {
    let mut st = conn.prepare_cached(&format!("{SELECT} WHERE r.ticket_code = ?1"))?;
    Ok(st.query_row([code.stored()], from_row).optional()?)
}

/// Records (or, with `None`, undoes) a check-in.
pub fn set_checked_in(tx: &Tx<'_>, seq: i64, at: Option<i64>, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE registrations SET checked_in_at = ?2, updated_at = ?3 WHERE seq = ?1",
    )?
    .execute(params![seq, at, now])?;
    Ok(())
}

/// Holds a seat for a waitlisted registration until `expires_at`.
pub fn offer(tx: &Tx<'_>, seq: i64, expires_at: i64, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE registrations SET status = 'offered', offer_expires_at = ?2, updated_at = ?3 \
         WHERE seq = ?1 AND status = 'waitlisted'",
    )?
    .execute(params![seq, expires_at, now])?;
    Ok(())
}

/// Confirms an accepted offer and gives it its ticket.
pub fn accept(tx: &Tx<'_>, seq: i64, code: &TicketCode, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE registrations SET status = 'confirmed', ticket_code = ?2, offer_expires_at = NULL, \
         promoted_at = ?3, updated_at = ?3 WHERE seq = ?1 AND status = 'offered'",
    )?
    .execute(params![seq, code.stored(), now])?;
    Ok(())
}

/// Offers that expired at or before `now`, oldest first (a range of the `registrations_offers` index).
pub fn expired_offers(conn: &Connection, now: i64, limit: i64) -> Result<Vec<i64>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT seq FROM registrations WHERE status = 'offered' AND offer_expires_at <= ?1 \
         ORDER BY offer_expires_at LIMIT ?2",
    )?;
    let seqs = st
        .query_map(params![now, limit], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(seqs)
}

/// When the next open offer expires (the first entry of the `registrations_offers` index).
pub fn next_offer_expiry(conn: &Connection) -> Result<Option<i64>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT MIN(offer_expires_at) FROM registrations WHERE status = 'offered'",
    )?;
    Ok(st.query_row([], |r| r.get(0))?)
}

/// Fills in the live position when the registration is waitlisted.
pub fn with_position(conn: &Connection, mut row: RegRow) -> Result<Registration, StoreError> {
    if row.reg.status == RegStatus::Waitlisted {
        row.reg.position = Some(position(conn, row.event_seq, row.reg.seq)?);
    }
    Ok(row.reg)
}

/// 1-based rank of a waitlisted registration in its event's waitlist.
pub fn position(conn: &Connection, event_seq: i64, seq: i64) -> Result<i64, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT COUNT(*) FROM registrations WHERE event_seq = ?1 AND status = 'waitlisted' AND seq <= ?2",
    )?;
    Ok(st.query_row(params![event_seq, seq], |r| r.get(0))?)
}

/// How the registration `seq` stands: its event and whether it waits (for the waitlist orders the
/// read cache keeps up to date after each commit). `None` when there is no such row.
pub fn placement(conn: &Connection, seq: i64) -> Result<Option<(i64, bool)>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT event_seq, status = 'waitlisted' FROM registrations WHERE seq = ?1",
    )?;
    Ok(st
        .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// An event's whole waitlist in join order (internal sequence numbers), for the read cache.
pub fn waitlist_order(conn: &Connection, event_seq: i64) -> Result<Vec<i64>, StoreError> {
    waitlist_heads(conn, event_seq, i64::MAX)
}

/// Whether `e` is the file refusing a second active registration of one attendee for one event (I2,
/// `registrations_one_active`), which `insert` answers without changing anything.
pub fn is_second_active(e: &StoreError) -> bool {
    e.is_unique_violation_of("registrations.event_seq, registrations.attendee_seq")
}

/// Whether the attendee already holds an active registration for the event (I2).
pub fn has_active(
    conn: &Connection,
    event_seq: i64,
    attendee_seq: i64,
) -> Result<bool, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT 1 FROM registrations WHERE event_seq = ?1 AND attendee_seq = ?2 \
         AND status <> 'cancelled'",
    )?;
    Ok(st.exists(params![event_seq, attendee_seq])?)
}

/// The first `n` waitlisted registrations of the event, in join order (the heads, for promotion).
pub fn waitlist_heads(conn: &Connection, event_seq: i64, n: i64) -> Result<Vec<i64>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT seq FROM registrations WHERE event_seq = ?1 AND status = 'waitlisted' ORDER BY seq LIMIT ?2",
    )?;
    let seqs = st
        .query_map(params![event_seq, n], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(seqs)
}

/// Confirms a waitlisted registration and gives it its ticket.
pub fn confirm(tx: &Tx<'_>, seq: i64, code: &TicketCode, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE registrations SET status = 'confirmed', ticket_code = ?2, promoted_at = ?3, updated_at = ?3 \
         WHERE seq = ?1 AND status = 'waitlisted'",
    )?
    .execute(params![seq, code.stored(), now])?;
    Ok(())
}

pub fn cancel(tx: &Tx<'_>, seq: i64, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE registrations SET status = 'cancelled', offer_expires_at = NULL, cancelled_at = ?2, \
         updated_at = ?2 WHERE seq = ?1",
    )?
    .execute(params![seq, now])?;
    Ok(())
}

/// Every active registration of an event (to cancel them with the event).
pub fn active_of_event(
    conn: &Connection,
    event_seq: i64,
) -> Result<Vec<(i64, RegStatus)>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT seq, status FROM registrations WHERE event_seq = ?1 \
         AND status <> 'cancelled' ORDER BY seq",
    )?;
    let rows = st
        .query_map([event_seq], |r| {
            let s: String = r.get(1)?;
            Ok((
                r.get(0)?,
                decode("registration status", &s, RegStatus::parse)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// A page of an event's registrations in join order, optionally of one status, with live positions.
pub fn list_for_event(
    conn: &Connection,
    event_seq: i64,
    status: Option<RegStatus>,
    after_seq: i64,
    limit: usize,
) -> Result<Vec<Registration>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = match status {
        Some(s) => {
            let mut st = conn.prepare_cached(&format!(
                "{SELECT} WHERE r.event_seq = ?1 AND r.status = ?2 AND r.seq > ?3 ORDER BY r.seq LIMIT ?4"
            ))?;
            let rows = st
                .query_map(params![event_seq, s.as_str(), after_seq, limit], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        }
        None => {
            let mut st = conn.prepare_cached(&format!(
                "{SELECT} WHERE r.event_seq = ?1 AND r.seq > ?2 ORDER BY r.seq LIMIT ?3"
            ))?;
            let rows = st
                .query_map(params![event_seq, after_seq, limit], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        }
    };
    number_waitlisted(conn, rows)
}

/// Positions for a page in join order: one count for the first waitlisted row, then +1 for each next
/// one, since every waitlisted row between them is on the page too.
fn number_waitlisted(
    conn: &Connection,
    rows: Vec<RegRow>,
) -> Result<Vec<Registration>, StoreError> {
    let mut next: Option<i64> = None;
    let mut out = Vec::with_capacity(rows.len());
    for mut row in rows {
        if row.reg.status == RegStatus::Waitlisted {
            let p = match next {
                Some(p) => p,
                None => position(conn, row.event_seq, row.reg.seq)?,
            };
            row.reg.position = Some(p);
            next = Some(p + 1);
        }
        out.push(row.reg);
    }
    Ok(out)
}

/// A page of an attendee's registrations, newest last, with live positions.
pub fn list_for_attendee(
    conn: &Connection,
    attendee_seq: i64,
    after_seq: i64,
    limit: usize,
) -> Result<Vec<Registration>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut st = conn.prepare_cached(&format!(
        "{SELECT} WHERE r.attendee_seq = ?1 AND r.seq > ?2 ORDER BY r.seq LIMIT ?3"
    ))?;
    let rows = st
        .query_map(params![attendee_seq, after_seq, limit], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|row| with_position(conn, row))
        .collect()
}

/// Counts over an event's registrations that its counters do not keep (`GET /events/{id}/stats`).
#[derive(Debug, Clone, Default)]
pub struct EventTally {
    pub cancelled: i64,
    /// Registrations that ever joined the waitlist, and those of them that got a seat.
    pub joined_waitlist: i64,
    pub converted: i64,
    /// (hour as unix milliseconds, registrations made in it, of them seated at once).
    pub per_hour: Vec<(i64, i64, i64)>,
}

/// One pass over the event's registrations (the `registrations_by_event` index).
pub fn tally(conn: &Connection, event_seq: i64) -> Result<EventTally, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT created_at / 3600000 * 3600000 AS hour, count(*), \
                sum(waitlisted_at IS NULL AND ticket_code IS NOT NULL), \
                sum(status = 'cancelled'), sum(waitlisted_at IS NOT NULL), \
                sum(waitlisted_at IS NOT NULL AND ticket_code IS NOT NULL) \
         FROM registrations WHERE event_seq = ?1 GROUP BY hour ORDER BY hour",
    )?;
    let mut t = EventTally::default();
    let mut rows = st.query([event_seq])?;
    while let Some(r) = rows.next()? {
        t.per_hour.push((r.get(0)?, r.get(1)?, r.get(2)?));
        t.cancelled += r.get::<_, i64>(3)?;
        t.joined_waitlist += r.get::<_, i64>(4)?;
        t.converted += r.get::<_, i64>(5)?;
    }
    Ok(t)
}

/// A line of the door list: a registration with its attendee's contact details.
#[derive(Debug, Clone)]
pub struct DoorLine {
    pub seq: i64,
    pub registration_id: String,
    pub status: String,
    pub ticket_code: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub checked_in_at: Option<i64>,
    pub created_at: i64,
}

/// The event's registrations of one status after `after_seq`, in join order, with attendee details:
/// one page of the streamed door list (a range of `registrations_by_event_status`).
pub fn door_list(
    conn: &Connection,
    event_seq: i64,
    status: RegStatus,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<DoorLine>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT r.seq, r.id, r.status, r.ticket_code, a.name, a.email, a.phone, r.checked_in_at, r.created_at \
         FROM registrations r JOIN attendees a ON a.seq = r.attendee_seq \
         WHERE r.event_seq = ?1 AND r.status = ?2 AND r.seq > ?3 ORDER BY r.seq LIMIT ?4",
    )?;
    let lines = st
        .query_map(params![event_seq, status.as_str(), after_seq, limit], |r| {
            Ok(DoorLine {
                seq: r.get(0)?,
                registration_id: r.get(1)?,
                status: r.get(2)?,
                ticket_code: r.get(3)?,
                name: r.get(4)?,
                email: r.get(5)?,
                phone: r.get(6)?,
                checked_in_at: r.get(7)?,
                created_at: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(lines)
}

/// Every active registration of an attendee, in join order (to cancel them when they are erased).
pub fn active_of_attendee(conn: &Connection, attendee_seq: i64) -> Result<Vec<RegRow>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "{SELECT} WHERE r.attendee_seq = ?1 AND r.status <> 'cancelled' \
         ORDER BY r.seq"
    ))?;
    let rows = st
        .query_map([attendee_seq], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

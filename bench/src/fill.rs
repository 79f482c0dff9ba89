//! Builds a large, consistent database directly with rusqlite, for the `scale` scenario: writing a
//! million registrations through the API would take minutes, and what is measured is the server on
//! the file, not how the file was made.
//!
//! It writes into a file the server has already created (schema applied, admin token made) and then
//! stopped. The rows are what the box itself would hold after a season of sales: every event
//! published, half of them sold out with a waitlist, one registration in twenty cancelled (keeping
//! its ticket code, as a cancellation does), the confirmed seats of past events mostly checked in.
//! Registrations are written in rounds over all events, so an event's rows are spread over the file
//! as concurrent sales spread them. Ids and ticket codes have the product's shapes (UUID v4 text for
//! events, v7 of the creation time for attendees and registrations, ticket codes of 28 base32
//! characters that start with their issuing time step) from a fixed-seed generator, so the indexes
//! are as large and laid out as the real ones. The counters on each event row agree with its
//! registrations and I1-I4 hold, so `boxoffice check` passes over the result. The outbox is left empty: the box prunes delivered
//! messages after their retention, and a season's worth of them would only measure that.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rusqlite::{params, Connection};
use serde::Serialize;

/// Rows per transaction: big enough that commits cost nothing, small enough to bound the WAL.
const BATCH: usize = 100_000;
const DAY_MS: i64 = 86_400_000;

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct Filled {
    pub events: usize,
    pub attendees: usize,
    pub registrations: usize,
    pub confirmed: usize,
    pub waitlisted: usize,
    pub cancelled: usize,
    pub checked_in: usize,
    pub seconds: f64,
}

/// One registration's fate, from its place `j` in its event (join order) and the event's shape.
#[derive(Clone, Copy, PartialEq)]
enum Fate {
    Confirmed,
    Waitlisted,
    Cancelled,
}

/// The shape of event `e`: `per_event` registrations, of which the last twentieth wait on even
/// (sold-out) events, and one in twenty of the others is cancelled.
struct Shape {
    per_event: usize,
    waiting: usize,
}

impl Shape {
    fn sold_out(e: usize) -> bool {
        e.is_multiple_of(2)
    }

    fn fate(&self, e: usize, j: usize) -> Fate {
        if Self::sold_out(e) && j >= self.per_event - self.waiting {
            Fate::Waitlisted
        } else if j % 20 == 19 {
            Fate::Cancelled
        } else {
            Fate::Confirmed
        }
    }

    /// Confirmed seats of event `e`; a sold-out event's capacity is exactly this (I4 with a
    /// waitlist), the others keep a fifth of `per_event` free.
    fn confirmed(&self, e: usize) -> usize {
        (0..self.per_event)
            .filter(|&j| self.fate(e, j) == Fate::Confirmed)
            .count()
    }

    fn capacity(&self, e: usize) -> usize {
        self.confirmed(e)
            + if Self::sold_out(e) {
                0
            } else {
                self.per_event / 5
            }
    }
}

/// SplitMix64: a fixed-seed generator, enough for ids that only need to look random.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A version 4 UUID in its hyphenated text form, as the box writes event ids.
    pub(crate) fn uuid(&mut self) -> String {
        let hi = (self.next() & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
        let lo = (self.next() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        hyphenated(hi, lo)
    }

    /// A version 7 UUID of the millisecond `ms`, as the box writes attendee and registration ids.
    pub(crate) fn uuid_v7(&mut self, ms: i64) -> String {
        let ms = u64::try_from(ms).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
        let hi = (ms << 16) | 0x7000 | (self.next() & 0x0FFF);
        let lo = (self.next() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        hyphenated(hi, lo)
    }

    /// A ticket code issued at `ms`, in its stored form, shaped as the box's
    /// `TicketCode::from_time_and_random`: two characters of the time in 16 ms steps modulo 1024,
    /// then 128 random bits in 26 base32 characters (the last one holds 3 bits, zero-padded).
    pub(crate) fn ticket_code(&mut self, ms: i64) -> String {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let symbol = |v: u64| char::from(ALPHABET[usize::try_from(v & 31).unwrap_or(0)]);
        let step = u64::try_from(ms.max(0) / 16 % 1024).unwrap_or(0);
        let mut out = String::with_capacity(28);
        out.push(symbol(step >> 5));
        out.push(symbol(step));
        let (mut bits, mut left) = (self.next(), 64);
        for i in 0..26 {
            if i == 25 {
                out.push(symbol((bits & 7) << 2));
                break;
            }
            if left < 5 {
                (bits, left) = (self.next(), 64);
            }
            out.push(symbol(bits));
            bits >>= 5;
            left -= 5;
        }
        out
    }
}

/// A UUID's 128 bits in the hyphenated text form.
fn hyphenated(hi: u64, lo: u64) -> String {
    let h = format!("{hi:016x}{lo:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Writes `events` events with `registrations` registrations spread evenly over them (rounded down
/// to a whole number per event) and a tenth as many attendees, into the database at `db`, which must
/// hold the schema; whatever else it holds stays as it is (the attendees' emails, `fill-{i}@...`,
/// are this module's own). The server must not be running.
pub fn fill(db: &Path, events: usize, registrations: usize) -> anyhow::Result<Filled> {
    let started = Instant::now();
    if events == 0 || registrations < events {
        bail!("fill: need at least one event and one registration per event");
    }
    let per_event = registrations / events;
    let shape = Shape {
        per_event,
        waiting: per_event / 20,
    };
    let total = per_event * events;
    let attendees = (total / 10).max(per_event);

    let mut conn = Connection::open(db).with_context(|| format!("open {}", db.display()))?;
    // Durability is beside the point while building a file nobody serves yet; the server applies
    // its own pragmas when it opens the file.
    conn.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -262144; PRAGMA temp_store = MEMORY;",
    )?;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    let now = i64::try_from(now).context("the clock is past 2262")?;
    // Events run from 200 days ago to 200 days ahead; the past ones have had their doors open.
    let first_start = now - 200 * DAY_MS;
    let step = 400 * DAY_MS / i64::try_from(events)?;
    let mut rng = Rng(0x5EED_B0C5_0FF1_CE00);
    let mut filled = Filled {
        events,
        attendees,
        registrations: total,
        confirmed: 0,
        waitlisted: 0,
        cancelled: 0,
        checked_in: 0,
        seconds: 0.0,
    };

    // Events, with counters that agree with the registrations written below.
    let mut starts = Vec::with_capacity(events);
    let mut event_seqs = Vec::with_capacity(events);
    {
        let tx = conn.transaction()?;
        let mut st = tx.prepare(
            "INSERT INTO events (id, name, venue, description, starts_at, capacity, status, \
             confirmed, waitlisted, checked_in, created_at, updated_at) \
             VALUES (?1, ?2, 'Bench Hall', 'Built by boxoffice-bench fill', ?3, ?4, 'published', \
             ?5, ?6, ?7, ?8, ?8)",
        )?;
        for e in 0..events {
            let starts_at = first_start + step * i64::try_from(e)?;
            let confirmed = shape.confirmed(e);
            let waitlisted = if Shape::sold_out(e) { shape.waiting } else { 0 };
            let checked_in = if starts_at < now {
                checked_in_of(&shape, e)
            } else {
                0
            };
            st.execute(params![
                rng.uuid(),
                format!("Scale {e}"),
                starts_at,
                i64::try_from(shape.capacity(e))?,
                i64::try_from(confirmed)?,
                i64::try_from(waitlisted)?,
                i64::try_from(checked_in)?,
                starts_at - 60 * DAY_MS,
            ])?;
            starts.push(starts_at);
            event_seqs.push(tx.last_insert_rowid());
        }
        drop(st);
        tx.commit()?;
    }

    // Attendees.
    let mut attendee_seqs = Vec::with_capacity(attendees);
    for chunk in (0..attendees).collect::<Vec<_>>().chunks(BATCH) {
        let tx = conn.transaction()?;
        let mut st = tx.prepare(
            "INSERT INTO attendees (id, name, email, email_key, created_at) VALUES (?1, ?2, ?3, ?3, ?4)",
        )?;
        for &a in chunk {
            // One a second, from 90 days before the first event.
            let created = first_start - 90 * DAY_MS + i64::try_from(a)? * 1000;
            st.execute(params![
                rng.uuid_v7(created),
                format!("Fill {a}"),
                format!("fill-{a}@example.org"),
                created,
            ])?;
            attendee_seqs.push(tx.last_insert_rowid());
        }
        drop(st);
        tx.commit()?;
    }

    // Registrations, round by round over all events: the j-th of every event, then the (j+1)-th.
    let mut written = 0;
    let mut tx = conn.transaction()?;
    for j in 0..per_event {
        for e in 0..events {
            let fate = shape.fate(e, j);
            let attendee = attendee_seqs[(e * per_event + j) % attendees];
            let created = starts[e] - 30 * DAY_MS + i64::try_from(j)? * 60_000;
            let (status, code, waitlisted_at, cancelled_at, checked_in_at) = match fate {
                Fate::Confirmed => {
                    filled.confirmed += 1;
                    let checked = (starts[e] < now && j % 10 != 0).then_some(starts[e]);
                    filled.checked_in += usize::from(checked.is_some());
                    (
                        "confirmed",
                        Some(rng.ticket_code(created)),
                        None,
                        None,
                        checked,
                    )
                }
                Fate::Waitlisted => {
                    filled.waitlisted += 1;
                    ("waitlisted", None, Some(created), None, None)
                }
                Fate::Cancelled => {
                    filled.cancelled += 1;
                    (
                        "cancelled",
                        Some(rng.ticket_code(created)),
                        None,
                        Some(created + DAY_MS),
                        None,
                    )
                }
            };
            tx.prepare_cached(
                "INSERT INTO registrations (id, event_seq, attendee_seq, status, ticket_code, \
                 checked_in_at, waitlisted_at, created_at, updated_at, cancelled_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, COALESCE(?9, ?8), ?9)",
            )?
            .execute(params![
                rng.uuid_v7(created),
                event_seqs[e],
                attendee,
                status,
                code,
                checked_in_at,
                waitlisted_at,
                created,
                cancelled_at,
            ])?;
            written += 1;
            if written % BATCH == 0 {
                tx.commit()?;
                tx = conn.transaction()?;
            }
        }
    }
    tx.commit()?;
    // Leave the file whole, with no write-ahead log for the server to replay at start.
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    drop(conn);
    filled.seconds = started.elapsed().as_secs_f64();
    Ok(filled)
}

/// Checked-in seats of a past event: every confirmed seat but one in ten.
fn checked_in_of(shape: &Shape, e: usize) -> usize {
    (0..shape.per_event)
        .filter(|&j| shape.fate(e, j) == Fate::Confirmed && j % 10 != 0)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_codes_have_the_products_shapes() {
        let mut rng = Rng(1);
        let id = rng.uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        let ms = 1_790_000_000_123;
        let v7 = rng.uuid_v7(ms);
        assert_eq!((&v7[14..15], v7.len()), ("7", 36));
        assert!(matches!(&v7[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(
            i64::from_str_radix(&v7.replace('-', "")[..12], 16).expect("hex"),
            ms
        );
        let code = rng.ticket_code(ms);
        assert_eq!(code.len(), 28);
        let base32 = |b: u8| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b);
        assert!(code.bytes().all(base32), "{code}");
        assert_eq!(code[..2], rng.ticket_code(ms + 1)[..2], "one 16 ms step");
        assert_ne!(code[2..], rng.ticket_code(ms)[2..], "random after the step");
        // The 26th character of 128 bits carries 3 of them: its low two bits are padding.
        let last = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
            .iter()
            .position(|&c| c == code.as_bytes()[27])
            .expect("symbol");
        assert_eq!(last % 4, 0, "{code}");
    }

    #[test]
    fn a_sold_out_event_has_no_free_seat_while_people_wait() {
        let shape = Shape {
            per_event: 100,
            waiting: 5,
        };
        assert_eq!(shape.capacity(0), shape.confirmed(0));
        assert_eq!(shape.confirmed(0), 91);
        assert_eq!(shape.confirmed(1), 95);
        assert_eq!(shape.capacity(1), 115);
    }
}

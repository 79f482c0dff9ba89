//! Reads that go through the cache (event details, attendees, event statistics, waitlist positions),
//! the event statistics, and the pages of the streamed door list.
//!
//! Each cached read takes a `Ticket` before it reads the database and stores what it read under the
//! scope it depends on; the writer's commit hook (see `App::open_with_clock`) invalidates the scopes a
//! commit touched before the commit's callers are answered. The `*_cached` variants never block: the
//! HTTP layer calls them on its IO threads and only goes to the blocking pool on a miss.

use std::collections::HashMap;
use std::sync::Mutex;

use rusqlite::Connection;

use crate::cache::{
    Cache, Facts, HeldPlace, Kind, Lru, Orders, Placement, Rank, Scope, Unreadable,
};
use crate::domain::{
    Attendee, AttendeeId, Event, EventId, RegStatus, Registration, RegistrationId, Timestamp,
};
use crate::store::registrations::{DoorLine, RegRow};
use crate::store::{attendees, events, registrations};

use super::{internal, record_audit, Actor, App, Error, PositionView, Result, Visibility};

/// The typed LRUs, one per kind, over one invalidation clock.
pub(super) struct ReadCache {
    pub(super) core: Cache,
    events: Lru<EventId, Event>,
    attendees: Lru<AttendeeId, Attendee>,
    stats: Lru<EventId, EventStats>,
    /// Views of registrations that do not wait (a waiting one's view comes from `keys` and `orders`).
    positions: Lru<RegistrationId, PositionView>,
    /// A registration's internal key and its event's, which never change: noted by the writer for
    /// every registration it inserts, and by a position read that missed.
    keys: Facts<RegistrationId, RegKeys>,
    orders: Orders,
    /// Events read through the cache, by internal key: a commit that touches one of them reads it
    /// again on the writer and stores the new value (see `after_commit`). Bounded like the events LRU.
    hot_events: Mutex<HashMap<i64, EventId>>,
    hot_limit: usize,
    /// One reader at a time reads a whole waitlist order: a crowd of first lookups must not all
    /// read the same long list at once.
    order_reads: Mutex<()>,
}

impl ReadCache {
    pub(super) fn new(o: &crate::cache::CacheOptions) -> Self {
        Self {
            core: Cache::new(o),
            events: Lru::new(Kind::Event, o),
            attendees: Lru::new(Kind::Attendee, o),
            stats: Lru::new(Kind::Counts, o),
            positions: Lru::new(Kind::Position, o),
            keys: Facts::new(Kind::Position, o),
            orders: Orders::new(o),
            hot_events: Mutex::default(),
            hot_limit: o.event_entries.max(1),
            order_reads: Mutex::new(()),
        }
    }

    fn hot(&self) -> std::sync::MutexGuard<'_, HashMap<i64, EventId>> {
        self.hot_events.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer's commit hook: on the writer thread, after the group committed (or failed) and
    /// before its callers are answered. It retires what the group touched, edits the waitlist orders
    /// held for the registrations it changed, and stores the new state of every touched event that
    /// readers asked for: the event row carries the live counters, so without this a sale would
    /// send the next reader of its event to the database. `conn` is the writer's connection outside
    /// any transaction: it reads what was committed, and no other writer of ours can interleave.
    pub(super) fn after_commit(&self, report: &crate::store::CommitReport, conn: &Connection) {
        use crate::store::Touched;
        let scopes = report.touched.iter().filter_map(|t| match *t {
            Touched::Event(seq) => Some(Scope::Event(seq)),
            Touched::Attendee(seq) => Some(Scope::Attendee(seq)),
            Touched::Registration(_) => None,
        });
        // A failed group changed nothing that was committed, so the held orders still hold; and its
        // connection may still be inside the failed transaction, whose writes must not be read back.
        let changed: Vec<i64> = if report.ok {
            report
                .touched
                .iter()
                .filter_map(|t| match *t {
                    Touched::Registration(seq) => Some(seq),
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        self.core.commit(
            &self.orders,
            report.foreign_change,
            scopes,
            &changed,
            |seq| match registrations::placement(conn, seq) {
                Ok(p) => Ok(p.map(|(event_seq, waitlisted)| Placement {
                    event_seq,
                    waitlisted,
                })),
                Err(e) => {
                    // The orders are dropped; the next lookup reads them again.
                    tracing::warn!(error = %e, "cannot read a changed registration back; waitlist orders dropped");
                    Err(Unreadable)
                }
            },
        );
        self.keys.put_all(report.inserted.iter().map(|r| {
            (
                r.id,
                RegKeys {
                    seq: r.seq,
                    event_seq: r.event_seq,
                },
            )
        }));
        if report.foreign_change {
            self.hot().clear();
        }
        if !report.ok {
            return;
        }
        let hot: Vec<(i64, EventId)> = {
            let hot = self.hot();
            report
                .touched
                .iter()
                .filter_map(|t| match *t {
                    Touched::Event(seq) => hot.get(&seq).map(|id| (seq, *id)),
                    _ => None,
                })
                .collect()
        };
        for (seq, id) in hot {
            // Taken after the marks moved, so the value read now is newer than every mark.
            let ticket = self.core.ticket();
            match events::get_by_seq(conn, seq) {
                Ok(Some(e)) => self
                    .core
                    .put(&self.events, ticket, id, Scope::Event(seq), e),
                Ok(None) => {
                    self.hot().remove(&seq);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a changed event back for the cache")
                }
            }
        }
    }
}

/// A registration's internal keys: its own and its event's.
#[derive(Debug, Clone, Copy)]
struct RegKeys {
    seq: i64,
    event_seq: i64,
}

/// `GET /events/{id}/stats`: the event's counts and how its sale went.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct EventStats {
    pub event_id: EventId,
    pub capacity: i64,
    pub confirmed: i64,
    pub offered: i64,
    pub waitlisted: i64,
    pub cancelled: i64,
    pub checked_in: i64,
    pub available: i64,
    /// Seats filled from the waitlist (direct promotions and offers).
    pub promotions: i64,
    /// Registrations that ever joined the waitlist, and those of them that got a seat.
    pub joined_waitlist: i64,
    pub waitlist_confirmed: i64,
    /// `waitlist_confirmed / joined_waitlist`; null while nobody has joined the waitlist.
    pub waitlist_conversion_rate: Option<f64>,
    /// `checked_in / confirmed`; null while nothing is confirmed.
    pub checkin_rate: Option<f64>,
    /// Registrations per hour (UTC), oldest first, with how many of them got a seat at once.
    pub sales_per_hour: Vec<HourlySales>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct HourlySales {
    pub hour: Timestamp,
    pub registrations: i64,
    pub confirmed_at_once: i64,
}

fn ratio(part: i64, whole: i64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)] // counts stay far below 2^52
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The view of a registration that waits, at `rank`.
fn waiting(rank: Rank) -> PositionView {
    PositionView {
        status: RegStatus::Waitlisted.as_str(),
        position: Some(rank.position),
        waitlist_length: rank.length,
    }
}

fn visible(e: Event, vis: Visibility) -> Result<Event> {
    if vis == Visibility::Staff || e.status == crate::domain::EventStatus::Published {
        Ok(e)
    } else {
        Err(Error::NotFound("event"))
    }
}

impl App {
    /// The read cache's counters, for `/metrics`.
    pub fn cache_stats(&self) -> [(Kind, crate::cache::KindStats); Kind::ALL.len()] {
        self.cache.core.stats()
    }

    /// The event from the cache, if it is there and fresh; never blocks on the database.
    /// A miss is not counted here: the caller goes on to `get_event`, which counts it.
    pub fn get_event_cached(&self, id: EventId, vis: Visibility) -> Option<Result<Event>> {
        let c = &self.cache;
        c.core.try_get(&c.events, &id).map(|e| visible(e, vis))
    }

    pub fn get_event(&self, id: EventId, vis: Visibility) -> Result<Event> {
        let c = &self.cache;
        if let Some(e) = c.core.get(&c.events, &id) {
            return visible(e, vis);
        }
        let ticket = c.core.ticket();
        let event = self
            .store
            .read(|conn| events::get(conn, id))?
            .ok_or(Error::NotFound("event"))?;
        {
            let mut hot = c.hot();
            if hot.len() >= c.hot_limit {
                hot.clear();
            }
            hot.insert(event.seq, id);
        }
        c.core.put(
            &c.events,
            ticket,
            id,
            Scope::Event(event.seq),
            event.clone(),
        );
        visible(event, vis)
    }

    pub fn get_attendee_cached(&self, id: AttendeeId) -> Option<Attendee> {
        let c = &self.cache;
        c.core.try_get(&c.attendees, &id)
    }

    pub fn get_attendee(&self, id: AttendeeId) -> Result<Attendee> {
        let c = &self.cache;
        if let Some(a) = c.core.get(&c.attendees, &id) {
            return Ok(a);
        }
        let ticket = c.core.ticket();
        let a = self
            .store
            .read(|conn| attendees::get(conn, id))?
            .ok_or(Error::NotFound("attendee"))?;
        c.core
            .put(&c.attendees, ticket, id, Scope::Attendee(a.seq), a.clone());
        Ok(a)
    }

    /// The position from memory, if it is there; never blocks on the database. A waiting
    /// registration's place comes from its keys and its event's waitlist order, which the writer
    /// keeps up to date, so a poll is answered here however often the waitlist moves.
    pub fn position_cached(&self, id: RegistrationId) -> Option<PositionView> {
        let c = &self.cache;
        if let Some(keys) = c.keys.get(&id) {
            // Not counted as a lookup of the order: the waitlist kind counts the lookups of reads
            // that had to read the registration (see `waitlist_rank`).
            let view = match c.core.peek_standing(&c.orders, keys.event_seq, keys.seq) {
                Some(HeldPlace::Waiting(rank)) => Some(waiting(rank)),
                Some(HeldPlace::Left { status, length }) => Some(PositionView {
                    status,
                    position: None,
                    waitlist_length: length,
                }),
                None => None,
            };
            if view.is_some() {
                c.core.count_hit(Kind::Position);
                return view;
            }
        }
        c.core.try_get(&c.positions, &id)
    }

    /// A registration's live place, cached under its event's scope (any change to the event's
    /// registrations retires it). A miss reads the registration and takes its rank from the event's
    /// waitlist order (see `waitlist_rank`), so it costs the same at the head and at the end.
    pub fn position(&self, id: RegistrationId) -> Result<PositionView> {
        let c = &self.cache;
        if let Some(p) = c.core.get(&c.positions, &id) {
            return Ok(p);
        }
        let ticket = c.core.ticket();
        let (row, waitlisted) = self.store.read(|conn| {
            let row = registrations::get(conn, id)?.ok_or(Error::NotFound("registration"))?;
            let event = events::get_by_seq(conn, row.event_seq)?
                .ok_or_else(|| internal("event vanished"))?;
            Ok::<_, Error>((row, event.waitlisted))
        })?;
        let event_seq = row.event_seq;
        c.keys.put_all([(
            id,
            RegKeys {
                seq: row.reg.seq,
                event_seq,
            },
        )]);
        let view = match self.live_position(row)? {
            (_, Some(rank)) => waiting(rank),
            (reg, None) => {
                // Not waiting: noted in the event's held order, if one is held, where the writer
                // forgets it at the registration's next change.
                c.core
                    .note_left(&c.orders, ticket, event_seq, reg.seq, reg.status.as_str());
                let view = PositionView {
                    status: reg.status.as_str(),
                    position: None,
                    waitlist_length: waitlisted,
                };
                c.core.put(
                    &c.positions,
                    ticket,
                    id,
                    Scope::Event(event_seq),
                    view.clone(),
                );
                view
            }
        };
        Ok(view)
    }

    /// A registration with its live position while it waits, and the rank it was given (`None`
    /// when it does not wait).
    fn live_position(&self, row: RegRow) -> Result<(Registration, Option<Rank>)> {
        let mut reg = row.reg;
        if reg.status != RegStatus::Waitlisted {
            return Ok((reg, None));
        }
        if !self.cache.core.enabled() {
            // No orders are held: a count over the index, as cheap as reading a whole order.
            return self.counted_position(reg.id);
        }
        match self.waitlist_rank(row.event_seq, reg.seq)? {
            Some(rank) => {
                reg.position = Some(rank.position);
                Ok((reg, Some(rank)))
            }
            // The order and the row were read at different moments, around a commit: count in
            // one snapshot instead.
            None => self.counted_position(reg.id),
        }
    }

    /// The registration and its rank counted over the waitlist index, in one snapshot (one `read`).
    fn counted_position(&self, id: RegistrationId) -> Result<(Registration, Option<Rank>)> {
        let (reg, length) = self.store.read(|conn| {
            let row = registrations::get(conn, id)?.ok_or(Error::NotFound("registration"))?;
            let event = events::get_by_seq(conn, row.event_seq)?
                .ok_or_else(|| internal("event vanished"))?;
            Ok::<_, Error>((registrations::with_position(conn, row)?, event.waitlisted))
        })?;
        let rank = reg.position.map(|position| Rank { position, length });
        Ok((reg, rank))
    }

    /// The rank of a waitlisted registration from its event's waitlist order: held in memory and
    /// kept up to date by the writer, read whole on a miss. `None` when the order does not list it.
    fn waitlist_rank(&self, event_seq: i64, seq: i64) -> Result<Option<Rank>> {
        let c = &self.cache;
        if let Some(rank) = c.core.rank(&c.orders, event_seq, seq) {
            return Ok(rank);
        }
        let _one = c.order_reads.lock().unwrap_or_else(|p| p.into_inner());
        // Another reader may have read it while this one waited.
        if let Some(rank) = c.core.peek_rank(&c.orders, event_seq, seq) {
            return Ok(rank);
        }
        let ticket = c.core.ticket();
        let order = self
            .store
            .read(|conn| registrations::waitlist_order(conn, event_seq))?;
        let rank = order.binary_search(&seq).ok().map(|i| Rank {
            position: i64::try_from(i).unwrap_or(i64::MAX - 1) + 1,
            length: i64::try_from(order.len()).unwrap_or(i64::MAX),
        });
        c.core.put_order(&c.orders, ticket, event_seq, order);
        Ok(rank)
    }

    /// One registration, with its live position while it waits.
    pub fn get_registration(&self, id: RegistrationId) -> Result<Registration> {
        let row = self
            .store
            .read(|c| registrations::get(c, id))?
            .ok_or(Error::NotFound("registration"))?;
        Ok(self.live_position(row)?.0)
    }

    /// The event's counts and sale figures (staff only: the route checks the role).
    pub fn event_stats(&self, id: EventId) -> Result<EventStats> {
        let c = &self.cache;
        if let Some(s) = c.core.get(&c.stats, &id) {
            return Ok(s);
        }
        let ticket = c.core.ticket();
        let (event, tally) = self.store.read(|conn| {
            let event = events::get(conn, id)?.ok_or(Error::NotFound("event"))?;
            let tally = registrations::tally(conn, event.seq)?;
            Ok::<_, Error>((event, tally))
        })?;
        let capacity = event.capacity.get();
        let stats = EventStats {
            event_id: event.id,
            capacity,
            confirmed: event.confirmed,
            offered: event.offered,
            waitlisted: event.waitlisted,
            cancelled: tally.cancelled,
            checked_in: event.checked_in,
            available: (capacity - event.confirmed - event.offered).max(0),
            promotions: event.promotions,
            joined_waitlist: tally.joined_waitlist,
            waitlist_confirmed: tally.converted,
            waitlist_conversion_rate: ratio(tally.converted, tally.joined_waitlist),
            checkin_rate: ratio(event.checked_in, event.confirmed),
            sales_per_hour: tally
                .per_hour
                .into_iter()
                .map(|(hour, registrations, confirmed_at_once)| HourlySales {
                    hour: Timestamp::from_millis(hour),
                    registrations,
                    confirmed_at_once,
                })
                .collect(),
        };
        c.core
            .put(&c.stats, ticket, id, Scope::Event(event.seq), stats.clone());
        Ok(stats)
    }

    /// Starts an export of the event's door list: it holds personal data, so who took it is written
    /// to the audit log first. Answers the event's internal key, to page the list with.
    pub fn start_door_list(&self, actor: &Actor, id: EventId, status: RegStatus) -> Result<i64> {
        let seq = self.door_list_event(id)?;
        let actor = actor.clone();
        let detail = format!("status {}", status.as_str());
        let now = self.now().millis();
        self.store.write(move |tx| {
            record_audit(
                tx,
                &actor,
                "event.attendees_export",
                Some(&id.to_string()),
                Some(&detail),
                now,
            )
        })?;
        Ok(seq)
    }

    /// The event a door list is of (its internal seq), without exporting anything: what a `HEAD`
    /// of the list needs, which sends no row and so writes no audit entry.
    pub fn door_list_event(&self, id: EventId) -> Result<i64> {
        Ok(self.get_event(id, Visibility::Staff)?.seq)
    }

    /// One page of the door list: up to `limit` registrations of `status` after `after_seq`, with the
    /// attendees' contact details. The HTTP layer streams pages, so memory stays constant however
    /// large the event is.
    pub fn door_list_page(
        &self,
        event_seq: i64,
        status: RegStatus,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<DoorLine>> {
        Ok(self
            .store
            .read(|conn| registrations::door_list(conn, event_seq, status, after_seq, limit))?)
    }
}

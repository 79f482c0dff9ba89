//! Reads that go through the cache (event details, attendees, event statistics, waitlist positions),
//! the event statistics, and the pages of the streamed door list.
//!
//! Each cached read takes a `Ticket` before it reads the database and stores what it read under the
//! scope it depends on; the writer's commit hook (see `App::open_with_clock`) invalidates the scopes a
//! commit touched before the commit's callers are answered. The `*_cached` variants never block: the
//! HTTP layer calls them on its IO threads and only goes to the blocking pool on a miss.

use crate::cache::{Cache, Kind, Lru, Scope};
use crate::domain::{Attendee, AttendeeId, Event, EventId, RegStatus, RegistrationId, Timestamp};
use crate::store::registrations::DoorLine;
use crate::store::{attendees, events, registrations};

use super::{internal, record_audit, Actor, App, Error, PositionView, Result, Visibility};

/// The typed LRUs, one per kind, over one invalidation clock.
pub(super) struct ReadCache {
    pub(super) core: Cache,
    events: Lru<EventId, Event>,
    attendees: Lru<AttendeeId, Attendee>,
    stats: Lru<EventId, EventStats>,
    positions: Lru<RegistrationId, PositionView>,
}

impl ReadCache {
    pub(super) fn new(o: &crate::cache::CacheOptions) -> Self {
        Self {
            core: Cache::new(o),
            events: Lru::new(Kind::Event, o),
            attendees: Lru::new(Kind::Attendee, o),
            stats: Lru::new(Kind::Counts, o),
            positions: Lru::new(Kind::Position, o),
        }
    }
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

fn visible(e: Event, vis: Visibility) -> Result<Event> {
    if vis == Visibility::Staff || e.status == crate::domain::EventStatus::Published {
        Ok(e)
    } else {
        Err(Error::NotFound("event"))
    }
}

impl App {
    /// The read cache's counters, for `/metrics`.
    pub fn cache_stats(&self) -> [(Kind, crate::cache::KindStats); 4] {
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

    pub fn position_cached(&self, id: RegistrationId) -> Option<PositionView> {
        let c = &self.cache;
        c.core.try_get(&c.positions, &id)
    }

    /// A registration's live place: its position is a count over the waitlist index, so it is cached
    /// under its event's scope (any change to the event's registrations retires it).
    pub fn position(&self, id: RegistrationId) -> Result<PositionView> {
        let c = &self.cache;
        if let Some(p) = c.core.get(&c.positions, &id) {
            return Ok(p);
        }
        let ticket = c.core.ticket();
        let (event_seq, view) = self.store.read(|conn| {
            let row = registrations::get(conn, id)?.ok_or(Error::NotFound("registration"))?;
            let event = events::get_by_seq(conn, row.event_seq)?
                .ok_or_else(|| internal("event vanished"))?;
            let reg = registrations::with_position(conn, row)?;
            Ok::<_, Error>((
                event.seq,
                PositionView {
                    status: reg.status.as_str(),
                    position: reg.position,
                    waitlist_length: event.waitlisted,
                },
            ))
        })?;
        c.core.put(
            &c.positions,
            ticket,
            id,
            Scope::Event(event_seq),
            view.clone(),
        );
        Ok(view)
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
        let event = self.get_event(id, Visibility::Staff)?;
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
        Ok(event.seq)
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

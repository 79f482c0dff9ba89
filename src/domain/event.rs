//! Events: what is sold, how many seats, and the life cycle draft -> published -> cancelled | completed.

use serde::ser::SerializeStruct;

use super::{required_text, EventId, FieldError, Timestamp};

/// Longest name or venue accepted, in characters.
pub const EVENT_TEXT_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 4_000;
/// A venue is a room, not a stadium league; the bound keeps arithmetic and mistakes small.
const CAPACITY_MAX: i64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventStatus {
    Draft,
    Published,
    Cancelled,
    Completed,
}

impl EventStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(Self::Draft),
            "published" => Some(Self::Published),
            "cancelled" => Some(Self::Cancelled),
            "completed" => Some(Self::Completed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Published => "published",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
        }
    }

    /// Publishing opens registrations. `Ok(false)`: already published, nothing to do.
    pub fn publish(self) -> Result<bool, &'static str> {
        match self {
            Self::Draft => Ok(true),
            Self::Published => Ok(false),
            Self::Cancelled => Err("a cancelled event cannot be published"),
            Self::Completed => Err("a completed event cannot be published"),
        }
    }

    /// Cancelling closes the event for good. `Ok(false)`: already cancelled, nothing to do.
    pub fn cancel(self) -> Result<bool, &'static str> {
        match self {
            Self::Draft | Self::Published => Ok(true),
            Self::Cancelled => Ok(false),
            Self::Completed => Err("a completed event cannot be cancelled"),
        }
    }

    /// Details and capacity may change until the event is over or called off.
    pub fn editable(self) -> Result<(), &'static str> {
        match self {
            Self::Draft | Self::Published => Ok(()),
            Self::Cancelled => Err("a cancelled event cannot be changed"),
            Self::Completed => Err("a completed event cannot be changed"),
        }
    }

    pub fn accepts_registrations(self) -> bool {
        self == Self::Published
    }
}

/// Seats an event holds; never negative, bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Capacity(u32);

impl Capacity {
    pub fn parse(n: i64) -> Result<Self, FieldError> {
        if !(0..=CAPACITY_MAX).contains(&n) {
            return Err(FieldError::new(
                "capacity",
                format!("must be an integer from 0 to {CAPACITY_MAX}"),
            ));
        }
        Ok(Self(u32::try_from(n).expect("bounded above")))
    }

    pub fn get(self) -> i64 {
        i64::from(self.0)
    }
}

/// How the head of the waitlist gets a freed seat: confirmed at once (`direct`), or offered the seat,
/// held for `offer_minutes`, to accept or decline (`offer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    Direct,
    Offer,
}

impl Promotion {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(Self::Direct),
            "offer" => Some(Self::Offer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Offer => "offer",
        }
    }
}

/// How long an offered seat is held: a minute to 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferMinutes(u32);

impl OfferMinutes {
    pub const DEFAULT: OfferMinutes = OfferMinutes(24 * 60);
    const MAX: i64 = 30 * 24 * 60;

    pub fn parse(n: i64) -> Result<Self, FieldError> {
        if !(1..=Self::MAX).contains(&n) {
            return Err(FieldError::new(
                "offer_minutes",
                format!("must be an integer from 1 to {}", Self::MAX),
            ));
        }
        Ok(Self(u32::try_from(n).expect("bounded")))
    }

    pub fn get(self) -> i64 {
        i64::from(self.0)
    }

    pub fn millis(self) -> i64 {
        self.get() * 60_000
    }
}

fn parse_promotion(s: &str, errors: &mut Vec<FieldError>) -> Option<Promotion> {
    let p = Promotion::parse(s);
    if p.is_none() {
        errors.push(FieldError::new("promotion", "must be direct or offer"));
    }
    p
}

/// A validated request to create an event.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub name: String,
    pub venue: String,
    pub description: String,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub capacity: Capacity,
    pub waitlist_enabled: bool,
    pub promotion: Promotion,
    pub offer_minutes: OfferMinutes,
}

/// Raw text of a time field as the caller sent it.
fn parse_time(field: &'static str, s: &str, errors: &mut Vec<FieldError>) -> Option<Timestamp> {
    let t = Timestamp::parse(s);
    if t.is_none() {
        errors.push(FieldError::new(
            field,
            "must be an RFC 3339 date-time, e.g. 2026-12-31T20:00:00Z",
        ));
    }
    t
}

impl NewEvent {
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        name: &str,
        venue: &str,
        description: Option<&str>,
        starts_at: &str,
        ends_at: Option<&str>,
        capacity: i64,
        waitlist_enabled: Option<bool>,
        promotion: Option<&str>,
        offer_minutes: Option<i64>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = required_text("name", name, EVENT_TEXT_MAX, &mut errors);
        let promotion = match promotion {
            Some(p) => parse_promotion(p, &mut errors),
            None => Some(Promotion::Direct),
        };
        let offer_minutes = match offer_minutes {
            Some(m) => OfferMinutes::parse(m).map_err(|e| errors.push(e)).ok(),
            None => Some(OfferMinutes::DEFAULT),
        };
        let venue = required_text("venue", venue, EVENT_TEXT_MAX, &mut errors);
        let raw = description.unwrap_or_default();
        let description = raw.trim().to_string();
        if raw.chars().count() > DESCRIPTION_MAX {
            errors.push(FieldError::new(
                "description",
                format!("must be at most {DESCRIPTION_MAX} characters"),
            ));
        }
        let starts = parse_time("starts_at", starts_at, &mut errors);
        let ends = ends_at.and_then(|s| parse_time("ends_at", s, &mut errors));
        if let (Some(s), Some(e)) = (starts, ends) {
            if e <= s {
                errors.push(FieldError::new("ends_at", "must be after starts_at"));
            }
        }
        let capacity = Capacity::parse(capacity).map_err(|e| errors.push(e)).ok();
        match (
            errors.is_empty(),
            starts,
            capacity,
            promotion,
            offer_minutes,
        ) {
            (true, Some(starts_at), Some(capacity), Some(promotion), Some(offer_minutes)) => {
                Ok(Self {
                    name,
                    venue,
                    description,
                    starts_at,
                    ends_at: ends,
                    capacity,
                    waitlist_enabled: waitlist_enabled.unwrap_or(true),
                    promotion,
                    offer_minutes,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A validated partial update; `None` leaves a field as it is. `ends_at: Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPatch {
    pub name: Option<String>,
    pub venue: Option<String>,
    pub description: Option<String>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Option<Timestamp>>,
    pub capacity: Option<Capacity>,
    pub waitlist_enabled: Option<bool>,
    pub promotion: Option<Promotion>,
    pub offer_minutes: Option<OfferMinutes>,
}

impl EventPatch {
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        name: Option<&str>,
        venue: Option<&str>,
        description: Option<&str>,
        starts_at: Option<&str>,
        ends_at: Option<Option<&str>>,
        capacity: Option<i64>,
        waitlist_enabled: Option<bool>,
        promotion: Option<&str>,
        offer_minutes: Option<i64>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let patch = Self {
            promotion: promotion.and_then(|p| parse_promotion(p, &mut errors)),
            offer_minutes: offer_minutes
                .and_then(|m| OfferMinutes::parse(m).map_err(|e| errors.push(e)).ok()),
            name: name.map(|n| required_text("name", n, EVENT_TEXT_MAX, &mut errors)),
            venue: venue.map(|v| required_text("venue", v, EVENT_TEXT_MAX, &mut errors)),
            description: description.map(|d| {
                if d.chars().count() > DESCRIPTION_MAX {
                    errors.push(FieldError::new(
                        "description",
                        format!("must be at most {DESCRIPTION_MAX} characters"),
                    ));
                }
                d.trim().to_string()
            }),
            starts_at: starts_at.and_then(|s| parse_time("starts_at", s, &mut errors)),
            ends_at: ends_at.map(|e| e.and_then(|s| parse_time("ends_at", s, &mut errors))),
            capacity: capacity.and_then(|c| Capacity::parse(c).map_err(|e| errors.push(e)).ok()),
            waitlist_enabled,
        };
        if patch == Self::default() && errors.is_empty() {
            errors.push(FieldError::new("body", "names no field to change"));
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(errors)
        }
    }
}

/// How full an event is; the input of every seat decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupancy {
    pub capacity: i64,
    pub confirmed: i64,
    pub offered: i64,
    pub waitlisted: i64,
    pub waitlist_enabled: bool,
}

impl Occupancy {
    /// Seats neither confirmed nor held by an offer.
    pub fn free(&self) -> i64 {
        (self.capacity - self.confirmed - self.offered).max(0)
    }
}

/// An event as stored, with its live counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: i64,
    pub id: EventId,
    pub name: String,
    pub venue: String,
    pub description: String,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub capacity: Capacity,
    pub status: EventStatus,
    pub waitlist_enabled: bool,
    pub promotion: Promotion,
    pub offer_minutes: OfferMinutes,
    pub confirmed: i64,
    pub offered: i64,
    pub waitlisted: i64,
    pub checked_in: i64,
    pub promotions: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Event {
    pub fn occupancy(&self) -> Occupancy {
        Occupancy {
            capacity: self.capacity.get(),
            confirmed: self.confirmed,
            offered: self.offered,
            waitlisted: self.waitlisted,
            waitlist_enabled: self.waitlist_enabled,
        }
    }

    /// Applies a patch, checking the rules that need the current state. Returns what changed.
    pub fn apply(&mut self, patch: &EventPatch) -> Result<Vec<&'static str>, EventPatchError> {
        self.status.editable().map_err(EventPatchError::Closed)?;
        let mut changed = Vec::new();
        if let Some(c) = patch.capacity {
            if c.get() < self.confirmed + self.offered {
                return Err(EventPatchError::CapacityBelowConfirmed {
                    confirmed: self.confirmed + self.offered,
                });
            }
            if c != self.capacity {
                self.capacity = c;
                changed.push("capacity");
            }
        }
        // Closing the waitlist freezes it: those waiting keep their places, freed seats are no longer
        // promoted (I4 binds an open waitlist only), and reopening it promotes at once.
        if let Some(w) = patch.waitlist_enabled {
            if w != self.waitlist_enabled {
                self.waitlist_enabled = w;
                changed.push("waitlist_enabled");
            }
        }
        if let Some(p) = patch.promotion {
            if p != self.promotion {
                self.promotion = p;
                changed.push("promotion");
            }
        }
        if let Some(m) = patch.offer_minutes {
            if m != self.offer_minutes {
                self.offer_minutes = m;
                changed.push("offer_minutes");
            }
        }
        let starts_at = patch.starts_at.unwrap_or(self.starts_at);
        let ends_at = patch.ends_at.unwrap_or(self.ends_at);
        if let Some(e) = ends_at {
            if e <= starts_at {
                return Err(EventPatchError::Invalid(FieldError::new(
                    "ends_at",
                    "must be after starts_at",
                )));
            }
        }
        if starts_at != self.starts_at {
            self.starts_at = starts_at;
            changed.push("starts_at");
        }
        if ends_at != self.ends_at {
            self.ends_at = ends_at;
            changed.push("ends_at");
        }
        for (field, new, old) in [
            ("name", &patch.name, &mut self.name),
            ("venue", &patch.venue, &mut self.venue),
            ("description", &patch.description, &mut self.description),
        ] {
            if let Some(v) = new {
                if v != old {
                    *old = v.clone();
                    changed.push(field);
                }
            }
        }
        Ok(changed)
    }
}

/// Why a patch cannot apply to the event as it stands.
#[derive(Debug, Clone, PartialEq)]
pub enum EventPatchError {
    Closed(&'static str),
    CapacityBelowConfirmed { confirmed: i64 },
    Invalid(FieldError),
}

impl serde::Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Event", 18)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("venue", &self.venue)?;
        st.serialize_field("description", &self.description)?;
        st.serialize_field("starts_at", &self.starts_at)?;
        st.serialize_field("ends_at", &self.ends_at)?;
        st.serialize_field("capacity", &self.capacity.get())?;
        st.serialize_field("status", self.status.as_str())?;
        st.serialize_field("waitlist_enabled", &self.waitlist_enabled)?;
        st.serialize_field("promotion", self.promotion.as_str())?;
        st.serialize_field("offer_minutes", &self.offer_minutes.get())?;
        st.serialize_field("confirmed", &self.confirmed)?;
        st.serialize_field("offered", &self.offered)?;
        st.serialize_field("waitlisted", &self.waitlisted)?;
        st.serialize_field("checked_in", &self.checked_in)?;
        st.serialize_field("available", &self.occupancy().free())?;
        st.serialize_field("created_at", &self.created_at)?;
        st.serialize_field("updated_at", &self.updated_at)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(capacity: i64, confirmed: i64, waitlisted: i64) -> Event {
        let t = Timestamp::from_millis(1_800_000_000_000);
        Event {
            seq: 1,
            id: EventId::from_random([1; 16]),
            name: "Gala".into(),
            venue: "Hall".into(),
            description: String::new(),
            starts_at: t,
            ends_at: None,
            capacity: Capacity::parse(capacity).expect("valid"),
            status: EventStatus::Published,
            waitlist_enabled: true,
            promotion: Promotion::Direct,
            offer_minutes: OfferMinutes::DEFAULT,
            confirmed,
            offered: 0,
            waitlisted,
            checked_in: 0,
            promotions: 0,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn new_event_collects_every_invalid_field() {
        let errs = NewEvent::parse(
            " ",
            "Hall",
            None,
            "tomorrow",
            None,
            -1,
            None,
            Some("lottery"),
            Some(0),
        )
        .expect_err("invalid");
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "name",
                "promotion",
                "offer_minutes",
                "starts_at",
                "capacity"
            ]
        );
    }

    #[test]
    fn new_event_rejects_end_before_start() {
        let errs = NewEvent::parse(
            "A",
            "B",
            None,
            "2026-01-02T00:00:00Z",
            Some("2026-01-01T00:00:00Z"),
            5,
            None,
            None,
            None,
        )
        .expect_err("invalid");
        assert_eq!(errs[0].field, "ends_at");
    }

    #[test]
    fn capacity_cannot_drop_below_confirmed() {
        let mut e = event(10, 8, 0);
        let patch = EventPatch {
            capacity: Some(Capacity::parse(7).expect("valid")),
            ..Default::default()
        };
        assert_eq!(
            e.apply(&patch),
            Err(EventPatchError::CapacityBelowConfirmed { confirmed: 8 })
        );
        let patch = EventPatch {
            capacity: Some(Capacity::parse(8).expect("valid")),
            ..Default::default()
        };
        assert_eq!(e.apply(&patch), Ok(vec!["capacity"]));
    }

    #[test]
    fn the_waitlist_can_be_closed_while_people_wait() {
        let mut e = event(1, 1, 3);
        let patch = EventPatch {
            waitlist_enabled: Some(false),
            ..Default::default()
        };
        assert_eq!(e.apply(&patch), Ok(vec!["waitlist_enabled"]));
        assert!(!e.waitlist_enabled);
    }

    #[test]
    fn life_cycle_transitions() {
        assert_eq!(EventStatus::Draft.publish(), Ok(true));
        assert_eq!(EventStatus::Published.publish(), Ok(false));
        assert!(EventStatus::Cancelled.publish().is_err());
        assert_eq!(EventStatus::Cancelled.cancel(), Ok(false));
        assert!(EventStatus::Completed.cancel().is_err());
        assert!(EventStatus::Cancelled.editable().is_err());
    }
}

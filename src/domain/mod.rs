//! Pure types and rules of the box office: ids, times, events, attendees, registrations, roles.
//!
//! Nothing here does IO or reads a clock: time and randomness are parameters. A value that exists is
//! valid (`parse` constructors), and the decisions that keep invariants I1-I4 of DESIGN.md (who gets a
//! seat, who is promoted) are plain functions of the current counts, unit- and property-tested here.

mod attendee;
mod event;
mod ids;
mod registration;
mod role;
mod time;
mod webhook;

pub use attendee::{email_key, Attendee, Email, NewAttendee, Phone};
pub use event::{
    Capacity, Event, EventPatch, EventPatchError, EventStatus, NewEvent, Occupancy, OfferMinutes,
    Promotion,
};
pub use ids::{AttendeeId, EventId, RegistrationId, TokenId};
pub use registration::{
    admit, seats_to_promote, walk_up, Admission, RegStatus, Registration, TicketCode, WalkUp,
};
pub use role::Role;
pub use time::Timestamp;
pub use webhook::{parse_description, parse_timeout_ms, EventTypes, WebhookUrl};

/// One invalid field of an input, as shown to the caller in a problem document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    #[schema(value_type = String)]
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Trims a required text field and bounds its length (in characters). The bounds apply to the text
/// as sent, so they mean what the API document's `maxLength` and pattern say: a control character
/// is refused even where trimming would have dropped it.
pub(crate) fn required_text(
    field: &'static str,
    value: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> String {
    let v = value.trim();
    if v.is_empty() {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if value.chars().count() > max {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    } else if value.chars().any(|c| c.is_control()) {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    v.to_string()
}

/// The kinds of domain events recorded in the outbox (DESIGN.md section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainEventType {
    EventCreated,
    EventPublished,
    EventUpdated,
    EventCancelled,
    RegistrationConfirmed,
    RegistrationWaitlisted,
    RegistrationCancelled,
    RegistrationPromoted,
    AttendeeCheckedIn,
    AttendeeCheckinReverted,
    AttendeeErased,
}

impl DomainEventType {
    pub const ALL: [DomainEventType; 11] = [
        Self::EventCreated,
        Self::EventPublished,
        Self::EventUpdated,
        Self::EventCancelled,
        Self::RegistrationConfirmed,
        Self::RegistrationWaitlisted,
        Self::RegistrationCancelled,
        Self::RegistrationPromoted,
        Self::AttendeeCheckedIn,
        Self::AttendeeCheckinReverted,
        Self::AttendeeErased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventCreated => "event.created",
            Self::EventPublished => "event.published",
            Self::EventUpdated => "event.updated",
            Self::EventCancelled => "event.cancelled",
            Self::RegistrationConfirmed => "registration.confirmed",
            Self::RegistrationWaitlisted => "registration.waitlisted",
            Self::RegistrationCancelled => "registration.cancelled",
            Self::RegistrationPromoted => "registration.promoted",
            Self::AttendeeCheckedIn => "attendee.checked_in",
            Self::AttendeeCheckinReverted => "attendee.checkin_reverted",
            Self::AttendeeErased => "attendee.erased",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

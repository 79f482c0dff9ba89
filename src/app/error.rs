//! The errors a use case can end in. `http` maps each to a status and a problem document in one match.

use crate::domain::{FieldError, Timestamp};
use crate::store::StoreError;

/// A conflict with the current state, named by a stable machine code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    EventNotOpen,
    AlreadyRegistered,
    SoldOut,
    CapacityBelowConfirmed,
    AlreadyCheckedIn,
    RegistrationCancelled,
    NotCheckedIn,
    WaitlistFirst,
    OfferExpired,
    NoOffer,
    EmailTaken,
    InvalidTransition,
    TokenNameTaken,
    LastAdminToken,
    IdempotencyKeyInFlight,
}

impl Conflict {
    /// Every conflict, for the catalogue of problem codes in the API document.
    pub const ALL: [Conflict; 15] = [
        Self::EventNotOpen,
        Self::AlreadyRegistered,
        Self::SoldOut,
        Self::CapacityBelowConfirmed,
        Self::AlreadyCheckedIn,
        Self::RegistrationCancelled,
        Self::NotCheckedIn,
        Self::WaitlistFirst,
        Self::OfferExpired,
        Self::NoOffer,
        Self::EmailTaken,
        Self::InvalidTransition,
        Self::TokenNameTaken,
        Self::LastAdminToken,
        Self::IdempotencyKeyInFlight,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::EventNotOpen => "event_not_open",
            Self::AlreadyRegistered => "already_registered",
            Self::SoldOut => "sold_out",
            Self::CapacityBelowConfirmed => "capacity_below_confirmed",
            Self::AlreadyCheckedIn => "already_checked_in",
            Self::RegistrationCancelled => "registration_cancelled",
            Self::NotCheckedIn => "not_checked_in",
            Self::WaitlistFirst => "waitlist_first",
            Self::OfferExpired => "offer_expired",
            Self::NoOffer => "no_offer",
            Self::EmailTaken => "email_taken",
            Self::InvalidTransition => "invalid_transition",
            Self::TokenNameTaken => "token_name_taken",
            Self::LastAdminToken => "last_admin_token",
            Self::IdempotencyKeyInFlight => "idempotency_key_in_flight",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::EventNotOpen => "Event is not open for registration",
            Self::AlreadyRegistered => "Already registered",
            Self::SoldOut => "Sold out",
            Self::CapacityBelowConfirmed => "Capacity below confirmed seats",
            Self::AlreadyCheckedIn => "Already checked in",
            Self::RegistrationCancelled => "Registration cancelled",
            Self::NotCheckedIn => "Not checked in",
            Self::WaitlistFirst => "People are waiting for a seat",
            Self::OfferExpired => "Offer expired",
            Self::NoOffer => "No open offer",
            Self::EmailTaken => "Email already taken",
            Self::InvalidTransition => "Not allowed in the current state",
            Self::TokenNameTaken => "Token name already taken",
            Self::LastAdminToken => "Last admin token",
            Self::IdempotencyKeyInFlight => "Request with this Idempotency-Key is in progress",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Displayed with its fields (the command line shows only this text).
    #[error("invalid input: {}", fields(.0))]
    Invalid(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Conflict {
        kind: Conflict,
        detail: String,
        checked_in_at: Option<Timestamp>,
    },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn conflict(kind: Conflict, detail: impl Into<String>) -> Self {
        Self::Conflict {
            kind,
            detail: detail.into(),
            checked_in_at: None,
        }
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    /// Errors that say something about the request rather than about the box's health at that moment;
    /// only these are stored for `Idempotency-Key` replay. A 503 must stay retryable.
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Unavailable(_) | Self::Internal(_))
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `name: must be ...; email: ...`
fn fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

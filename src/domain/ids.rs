//! Public ids: random UUID v4 strings, unguessable. Internal ordering never uses them (see `seq`).

use std::fmt;

macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A fresh id from 16 random bytes supplied by the caller (the domain has no randomness).
            pub fn from_random(bytes: [u8; 16]) -> Self {
                Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
            }

            /// Parses the canonical hyphenated form; anything else is not an id of ours.
            pub fn parse(s: &str) -> Option<Self> {
                if s.len() != 36 {
                    return None;
                }
                uuid::Uuid::try_parse(s).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

public_id!(
    /// Public id of an event.
    EventId
);
public_id!(
    /// Public id of an attendee.
    AttendeeId
);
public_id!(
    /// Public id of a registration.
    RegistrationId
);
public_id!(
    /// Public id of an API token (its secret is something else).
    TokenId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_forms() {
        let id = EventId::from_random([7; 16]);
        let text = id.to_string();
        assert_eq!(EventId::parse(&text), Some(id));
        assert_eq!(EventId::parse(&text.replace('-', "")), None);
        assert_eq!(EventId::parse("not-an-id"), None);
        assert_eq!(EventId::parse(""), None);
    }
}

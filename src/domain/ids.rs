//! Public ids: UUID strings, unguessable. Internal ordering never uses them (see `seq`).
//!
//! Rows made in bulk (attendees, registrations, outbox messages) get UUID v7: 48 bits of the creation
//! millisecond and 74 random bits. The random part keeps them unguessable; the time prefix makes a new
//! id land at the end of its unique index, so a group commit of a rush dirties one index page per
//! index instead of one random page per sale (the write amplification showed in the rush profile).

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

            /// A fresh UUID v7 id: the creation time (unix milliseconds) and 10 random bytes, of which
            /// the version and variant take 6 bits, leaving 74 random bits.
            pub fn from_time_and_random(unix_ms: i64, bytes: [u8; 10]) -> Self {
                let ms = u64::try_from(unix_ms).unwrap_or(0);
                Self(uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid())
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
            /// One `write_str` of the encoded id (ids are bound into SQL as strings on every sale).
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = uuid::Uuid::encode_buffer();
                f.write_str(self.0.hyphenated().encode_lower(&mut buf))
            }
        }

        impl serde::Serialize for $name {
            /// Encoded into a stack buffer and handed over whole, not through `collect_str`.
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut buf = uuid::Uuid::encode_buffer();
                s.serialize_str(self.0.hyphenated().encode_lower(&mut buf))
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

    #[test]
    fn time_ordered_ids_sort_by_creation_and_keep_their_random_part() {
        let a = RegistrationId::from_time_and_random(1_700_000_000_000, [0xFF; 10]);
        let b = RegistrationId::from_time_and_random(1_700_000_000_001, [0x00; 10]);
        // Index order is text order: a later millisecond sorts after, whatever the random bytes.
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.0.get_version_num(), 7);
        assert_eq!(RegistrationId::parse(&a.to_string()), Some(a));
        let c = RegistrationId::from_time_and_random(1_700_000_000_000, [0x00; 10]);
        assert_ne!(a, c, "the random part tells ids of one millisecond apart");
    }
}

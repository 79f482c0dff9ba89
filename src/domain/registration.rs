//! Registrations (tickets) and the seat decisions that keep I1 (capacity), I3 (FIFO) and I4 (no idle
//! seats). The store applies these decisions; it never decides on its own.

use serde::ser::SerializeStruct;

use super::{AttendeeId, EventId, Occupancy, RegistrationId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegStatus {
    Confirmed,
    Waitlisted,
    Offered,
    Cancelled,
}

impl RegStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "confirmed" => Some(Self::Confirmed),
            "waitlisted" => Some(Self::Waitlisted),
            "offered" => Some(Self::Offered),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Waitlisted => "waitlisted",
            Self::Offered => "offered",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_active(self) -> bool {
        self != Self::Cancelled
    }
}

/// What a new registration gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Confirm,
    Waitlist,
    SoldOut,
}

/// Decides a new registration. A free seat goes to the newcomer only when nobody waits for it (I3):
/// a waitlist that is not empty is ahead of everyone who arrives later.
pub fn admit(o: Occupancy) -> Admission {
    if o.free() > 0 && o.waitlisted == 0 {
        Admission::Confirm
    } else if o.waitlist_enabled {
        Admission::Waitlist
    } else {
        Admission::SoldOut
    }
}

/// How many heads of the waitlist must be promoted now so that no seat stays idle while people wait (I4).
/// A closed waitlist is frozen: nobody is promoted from it until it opens again.
pub fn seats_to_promote(o: Occupancy) -> i64 {
    if !o.waitlist_enabled {
        return 0;
    }
    o.free().min(o.waitlisted.max(0))
}

/// Whether a counter sale may take a free seat: not while anyone waits, unless the operator overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkUp {
    Sell,
    WaitlistFirst,
    SoldOut,
}

/// With no seat free the answer is "sold out", whoever waits: there is no queue to jump, and sending
/// the operator to an override that would only be refused again wastes the counter's time.
pub fn walk_up(o: Occupancy, override_waitlist: bool) -> WalkUp {
    if o.free() <= 0 {
        WalkUp::SoldOut
    } else if o.waitlisted > 0 && !override_waitlist {
        WalkUp::WaitlistFirst
    } else {
        WalkUp::Sell
    }
}

/// A ticket code: 28 base32 characters, shown in groups of four so a person can read it out; stored
/// and compared in its normalised form (upper case, no separators). The last 26 characters are 128
/// random bits (DESIGN.md section 2). The first two name the moment of issue: the time in 16 ms steps,
/// modulo 1024 (about 16 s). Codes issued together therefore share their start, and a burst of sales
/// adds its codes to one small stretch of the unique index (a few pages per commit), where codes
/// random from the first character would each dirty a page of their own, all over an index that
/// grows with every season sold. The two characters tell nothing but the moment of issue modulo 16 s.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TicketCode(String);

impl TicketCode {
    pub const RANDOM_BYTES: usize = 16;
    /// The base32 alphabet of RFC 4648, as `data_encoding::BASE32_NOPAD` writes the random part.
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    pub fn from_time_and_random(unix_ms: i64, random: [u8; Self::RANDOM_BYTES]) -> Self {
        let step = usize::try_from(unix_ms.max(0) / 16 % 1024).unwrap_or(0);
        let mut code = String::with_capacity(28);
        code.push(char::from(Self::ALPHABET[step / 32]));
        code.push(char::from(Self::ALPHABET[step % 32]));
        code.push_str(&data_encoding::BASE32_NOPAD.encode(&random));
        Self(code)
    }

    /// Normalises what a person typed or a scanner sent: case, spaces and dashes do not matter, and the
    /// digits 0, 1 and 8, which base32 never uses, are read as the letters O, I and B they resemble.
    pub fn normalize(input: &str) -> Option<Self> {
        let mut out = String::with_capacity(28);
        for c in input.chars() {
            match c.to_ascii_uppercase() {
                ' ' | '-' | '_' | '.' => {}
                '0' => out.push('O'),
                '1' => out.push('I'),
                '8' => out.push('B'),
                c @ ('A'..='Z' | '2'..='7') => out.push(c),
                _ => return None,
            }
            if out.len() > 28 {
                return None;
            }
        }
        (out.len() == 28).then_some(Self(out))
    }

    /// Stored form, without separators.
    pub fn stored(&self) -> &str {
        &self.0
    }

    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// Display form, `ABCD-EFGH-...`.
    pub fn display(&self) -> String {
        let mut out = String::with_capacity(34);
        for (i, c) in self.0.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push('-');
            }
            out.push(c);
        }
        out
    }
}

/// A registration as stored, with its live waitlist position when waitlisted.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub seq: i64,
    pub id: RegistrationId,
    pub event_id: EventId,
    pub attendee_id: AttendeeId,
    pub status: RegStatus,
    pub position: Option<i64>,
    pub offer_expires_at: Option<Timestamp>,
    pub ticket_code: Option<TicketCode>,
    pub checked_in_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub cancelled_at: Option<Timestamp>,
}

impl serde::Serialize for Registration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Registration", 11)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("event_id", &self.event_id)?;
        st.serialize_field("attendee_id", &self.attendee_id)?;
        st.serialize_field("status", self.status.as_str())?;
        st.serialize_field("position", &self.position)?;
        st.serialize_field("offer_expires_at", &self.offer_expires_at)?;
        st.serialize_field(
            "ticket_code",
            &self.ticket_code.as_ref().map(TicketCode::display),
        )?;
        st.serialize_field("checked_in_at", &self.checked_in_at)?;
        st.serialize_field("created_at", &self.created_at)?;
        st.serialize_field("updated_at", &self.updated_at)?;
        st.serialize_field("cancelled_at", &self.cancelled_at)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(capacity: i64, confirmed: i64, waitlisted: i64, waitlist_enabled: bool) -> Occupancy {
        Occupancy {
            capacity,
            confirmed,
            offered: 0,
            waitlisted,
            waitlist_enabled,
        }
    }

    #[test]
    fn free_seat_goes_to_newcomer_only_when_nobody_waits() {
        assert_eq!(admit(occ(2, 1, 0, true)), Admission::Confirm);
        assert_eq!(admit(occ(2, 1, 1, true)), Admission::Waitlist);
        assert_eq!(admit(occ(2, 2, 0, true)), Admission::Waitlist);
        assert_eq!(admit(occ(2, 2, 0, false)), Admission::SoldOut);
        assert_eq!(admit(occ(0, 0, 0, false)), Admission::SoldOut);
    }

    #[test]
    fn promotes_as_many_as_free_seats_and_waiters_allow() {
        assert_eq!(seats_to_promote(occ(10, 7, 5, true)), 3);
        assert_eq!(seats_to_promote(occ(10, 7, 2, true)), 2);
        assert_eq!(seats_to_promote(occ(10, 10, 5, true)), 0);
        assert_eq!(
            seats_to_promote(occ(10, 7, 5, false)),
            0,
            "a closed waitlist is frozen"
        );
    }

    #[test]
    fn the_counter_never_jumps_the_waitlist_unless_told_to() {
        assert_eq!(walk_up(occ(2, 1, 0, true), false), WalkUp::Sell);
        assert_eq!(walk_up(occ(2, 2, 0, true), false), WalkUp::SoldOut);
        assert_eq!(walk_up(occ(2, 1, 3, false), false), WalkUp::WaitlistFirst);
        assert_eq!(walk_up(occ(2, 1, 3, false), true), WalkUp::Sell);
        assert_eq!(walk_up(occ(2, 2, 3, true), true), WalkUp::SoldOut);
        assert_eq!(
            walk_up(occ(2, 2, 3, true), false),
            WalkUp::SoldOut,
            "a full house is sold out, not a queue to jump"
        );
        assert_eq!(walk_up(occ(0, 0, 1, true), false), WalkUp::SoldOut);
    }

    #[test]
    fn ticket_codes_read_back_however_typed() {
        let code =
            TicketCode::from_time_and_random(1_790_000_000_000, [0xA5; TicketCode::RANDOM_BYTES]);
        assert_eq!(code.stored().len(), 28);
        let shown = code.display();
        assert_eq!(shown.len(), 34);
        assert_eq!(TicketCode::normalize(&shown), Some(code.clone()));
        assert_eq!(
            TicketCode::normalize(&shown.to_lowercase().replace('-', " ")),
            Some(code.clone())
        );
        assert_eq!(TicketCode::normalize("ABCD"), None);
        assert_eq!(TicketCode::normalize(&format!("{shown}!")), None);
    }

    #[test]
    fn codes_issued_together_share_their_start_and_differ_in_their_random_part() {
        let t = 1_790_000_000_000;
        assert_eq!(t % 16, 0, "t starts a 16 ms step");
        let a = TicketCode::from_time_and_random(t, [1; TicketCode::RANDOM_BYTES]);
        let b = TicketCode::from_time_and_random(t + 15, [2; TicketCode::RANDOM_BYTES]);
        let next = TicketCode::from_time_and_random(t + 16, [1; TicketCode::RANDOM_BYTES]);
        let round = TicketCode::from_time_and_random(t + 16 * 1024, [3; TicketCode::RANDOM_BYTES]);
        assert_eq!((a.stored().len(), b.stored().len()), (28, 28));
        assert_eq!(a.stored()[..2], b.stored()[..2]);
        assert_ne!(a.stored()[..2], next.stored()[..2]);
        assert_eq!(
            a.stored()[..2],
            round.stored()[..2],
            "the step wraps after 1024"
        );
        // The random part is all of the other 26 characters: 128 bits.
        assert_ne!(a.stored()[2..], b.stored()[2..]);
        assert_eq!(a.stored()[2..], next.stored()[2..]);
        assert_eq!(
            data_encoding::BASE32_NOPAD.decode(&a.stored().as_bytes()[2..]),
            Ok(vec![1; TicketCode::RANDOM_BYTES])
        );
        assert_eq!(TicketCode::normalize(a.stored()), Some(a));
    }
}

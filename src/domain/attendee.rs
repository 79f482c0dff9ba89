//! Attendees: the people who hold registrations. Email and phone are personal data (DESIGN.md 7).

use super::{required_text, AttendeeId, FieldError, Timestamp};

const NAME_MAX: usize = 200;

/// An email address, trimmed and stored as sent; compared through `key()`, which ignores case and
/// how the characters were composed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Deliberately modest: one `@`, a non-empty local part, a dotted domain, no spaces. Whether the
    /// mailbox exists is for a mailer to find out, not for the box office.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let bad = || FieldError::new("email", "must be an email address like name@example.org");
        if s.chars().count() > 254 {
            return Err(bad());
        }
        let s = s.trim();
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(bad());
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is checked on (`email_key`).
    pub fn key(&self) -> String {
        email_key(&self.0)
    }
}

/// The uniqueness key of an email address: lower case, in Unicode normalization form C, so
/// `José@x.org` typed with a precomposed `é` and with `e` plus a combining accent (as some
/// keyboards and systems send it) are one address. ASCII addresses are simply lower-cased.
pub fn email_key(email: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    let lower = email.to_lowercase();
    if lower.is_ascii() {
        return lower;
    }
    lower.nfc().collect()
}

/// A phone number as a person writes it: digits with optional `+`, spaces, dashes, dots, brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Surrounding spaces are dropped; the length bound applies to the text as sent.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim_matches(' ');
        let digits = s.chars().filter(char::is_ascii_digit).count();
        let allowed = s.chars().enumerate().all(|(i, c)| {
            c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')') || (c == '+' && i == 0)
        });
        if !allowed || !(3..=20).contains(&digits) || raw.chars().count() > 32 {
            return Err(FieldError::new(
                "phone",
                "must be a phone number: digits, optionally a leading +",
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated request to create an attendee.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAttendee {
    pub name: String,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
}

impl NewAttendee {
    /// `email_required` is false only for walk-up sales at the counter.
    pub fn parse(
        name: &str,
        email: Option<&str>,
        phone: Option<&str>,
        email_required: bool,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = required_text("name", name, NAME_MAX, &mut errors);
        let email = match email {
            Some(e) => Email::parse(e).map_err(|e| errors.push(e)).ok(),
            None if email_required => {
                errors.push(FieldError::new("email", "is required"));
                None
            }
            None => None,
        };
        let phone = phone.and_then(|p| Phone::parse(p).map_err(|e| errors.push(e)).ok());
        if errors.is_empty() {
            Ok(Self { name, email, phone })
        } else {
            Err(errors)
        }
    }
}

/// An attendee as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Attendee {
    #[serde(skip)]
    pub seq: i64,
    pub id: AttendeeId,
    pub name: String,
    /// Absent only for walk-up sales at the counter.
    #[schema(required, format = Email)]
    pub email: Option<String>,
    #[schema(required)]
    pub phone: Option<String>,
    pub created_at: Timestamp,
    /// When the attendee's personal data was erased, if it was.
    #[schema(required)]
    pub erased_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_keyed_case_insensitively() {
        let e = Email::parse("  Ada@Example.ORG ").expect("valid");
        assert_eq!(e.as_str(), "Ada@Example.ORG");
        assert_eq!(e.key(), "ada@example.org");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "a b@example.org",
            "ada@example",
            "a@b@c.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn email_keys_ignore_how_accents_were_composed() {
        let composed = Email::parse("Jos\u{e9}@Caf\u{e9}.example").expect("valid");
        let decomposed = Email::parse("JOSE\u{301}@CAFE\u{301}.example").expect("valid");
        assert_ne!(composed.as_str(), decomposed.as_str(), "stored as sent");
        assert_eq!(composed.key(), decomposed.key());
        assert_eq!(composed.key(), "jos\u{e9}@caf\u{e9}.example");
        // Different letters stay different.
        let other = Email::parse("Jose@Cafe.example").expect("valid");
        assert_ne!(other.key(), composed.key());
    }

    #[test]
    fn phone_accepts_written_forms_only() {
        assert!(Phone::parse("+49 (30) 123-456").is_ok());
        assert!(Phone::parse("12").is_err());
        assert!(Phone::parse("call me").is_err());
        assert!(Phone::parse("12+34").is_err());
    }

    #[test]
    fn email_is_required_except_at_the_counter() {
        assert!(NewAttendee::parse("Ada", None, None, true).is_err());
        assert!(NewAttendee::parse("Ada", None, None, false).is_ok());
    }
}

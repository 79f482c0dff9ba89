//! Request bodies as they arrive on the wire, and their parsing into domain values. Unknown fields are
//! refused so a typo never silently does nothing. Response bodies are the domain's read models, which
//! serialize to the API shape.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::ToSchema;

use super::problem::Problem;
use crate::domain::{self, FieldError};

/// Parses a JSON body: syntax errors are 400 `malformed_json`, well-formed JSON of the wrong shape
/// (missing, unknown or mistyped fields) is 422 `validation_failed`.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    if body.is_empty() {
        return Err(Problem::malformed_json("the request needs a JSON body"));
    }
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => {
                let msg = e.to_string();
                Problem::invalid(vec![FieldError::new("body", msg)])
            }
            // serde_json files a number beyond f64 (`1e400`) under syntax, but it is valid JSON
            // with a value out of bounds: the input's fault, like `1e300`. Its message is the only
            // way to tell it from real syntax errors.
            Category::Syntax if e.to_string().starts_with("number out of range") => {
                Problem::invalid(vec![FieldError::new("body", e.to_string())])
            }
            Category::Syntax | Category::Eof | Category::Io => {
                Problem::malformed_json(e.to_string())
            }
        }
    })
}

/// A new event (created as a draft). A missing or `null` optional field takes its default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEvent {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub venue: String,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub description: Option<String>,
    #[schema(format = DateTime)]
    pub starts_at: String,
    /// After `starts_at`, if given.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    #[schema(value_type = i64, minimum = 0, maximum = 1_000_000)]
    pub capacity: Whole,
    /// Default true.
    #[serde(default)]
    pub waitlist_enabled: Option<bool>,
    /// Default `direct`.
    #[serde(default)]
    #[schema(value_type = Option<domain::Promotion>)]
    pub promotion: Option<String>,
    /// How long an offered seat is held; default 1440 (a day).
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 43_200)]
    pub offer_minutes: Option<Whole>,
}

impl CreateEvent {
    pub fn into_domain(self) -> Result<domain::NewEvent, Problem> {
        domain::NewEvent::parse(
            &self.name,
            &self.venue,
            self.description.as_deref(),
            &self.starts_at,
            self.ends_at.as_deref(),
            self.capacity.0,
            self.waitlist_enabled,
            self.promotion.as_deref(),
            self.offer_minutes.map(|m| m.0),
        )
        .map_err(Problem::invalid)
    }
}

/// A JSON integer. JSON (and JSON Schema, which the API document uses) counts `5.0` as the integer 5,
/// so the API does too; `5.5` or a number beyond 64 bits is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole(pub i64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Whole;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Whole, E> {
                Ok(Whole(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Whole, E> {
                i64::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Whole, E> {
                // 2^63 is exactly representable; every whole f64 below it in magnitude fits an i64.
                const LIMIT: f64 = 9_223_372_036_854_775_808.0;
                if v.fract() == 0.0 && v > -LIMIT && v < LIMIT {
                    #[allow(clippy::cast_possible_truncation)]
                    Ok(Whole(v as i64))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Distinguishes a field that is absent (leave it) from one that is `null` (clear it).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A field that may be absent (leave it) but not `null`: in a change, `null` means "clear", and only
/// fields that can be cleared accept it.
pub(super) fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Changes to an event: at least one field; `ends_at: null` removes the end time.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct PatchEvent {
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    pub venue: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, required = false, max_length = 4000)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, required = false, format = DateTime)]
    pub starts_at: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = false, format = DateTime)]
    pub ends_at: Option<Option<String>>,
    /// Not below the seats confirmed or offered (409 `capacity_below_confirmed`); raising it promotes.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = i64, required = false, minimum = 0, maximum = 1_000_000)]
    pub capacity: Option<Whole>,
    /// Reopening the waitlist promotes; closing it freezes those waiting.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = bool, required = false)]
    pub waitlist_enabled: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = domain::Promotion, required = false)]
    pub promotion: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = i64, required = false, minimum = 1, maximum = 43_200)]
    pub offer_minutes: Option<Whole>,
}

impl PatchEvent {
    pub fn into_domain(self) -> Result<domain::EventPatch, Problem> {
        domain::EventPatch::parse(
            self.name.as_deref(),
            self.venue.as_deref(),
            self.description.as_deref(),
            self.starts_at.as_deref(),
            self.ends_at.as_ref().map(|e| e.as_deref()),
            self.capacity.map(|c| c.0),
            self.waitlist_enabled,
            self.promotion.as_deref(),
            self.offer_minutes.map(|m| m.0),
        )
        .map_err(Problem::invalid)
    }
}

/// A scanned or typed ticket code: case, spaces and dashes do not matter; 0, 1 and 8 read as O, I, B.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInBody {
    #[schema(max_length = 256)]
    pub ticket_code: String,
}

/// A counter sale: no email; a name if the buyer gives one. The body may be left out altogether.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WalkUpBody {
    /// Default "Walk-up guest".
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 32, pattern = r"^ *\+?[ ().-]*([0-9][ ().-]*){3,20}$")]
    pub phone: Option<String>,
    /// Sell a free seat even though people wait for one (else 409 `waitlist_first`).
    #[serde(default)]
    pub override_waitlist: bool,
}

impl WalkUpBody {
    pub fn person(&self) -> Result<domain::NewAttendee, Problem> {
        let name = self
            .name
            .as_deref()
            // Blank means "no name given"; a control character is refused, as anywhere else.
            .filter(|n| !n.trim().is_empty() || n.chars().any(char::is_control))
            .unwrap_or("Walk-up guest");
        domain::NewAttendee::parse(name, None, self.phone.as_deref(), false)
            .map_err(Problem::invalid)
    }
}

/// A new attendee; the email is unique, compared without case (409 `email_taken`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAttendee {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// Digits with an optional leading `+`, spaces, dashes, dots and brackets.
    #[serde(default)]
    #[schema(max_length = 32, pattern = r"^ *\+?[ ().-]*([0-9][ ().-]*){3,20}$")]
    pub phone: Option<String>,
}

impl CreateAttendee {
    pub fn into_domain(self) -> Result<domain::NewAttendee, Problem> {
        domain::NewAttendee::parse(&self.name, Some(&self.email), self.phone.as_deref(), true)
            .map_err(Problem::invalid)
    }
}

/// A sale: the attendee gets a confirmed seat with a ticket, or a place on the waitlist.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRegistration {
    #[schema(format = Uuid)]
    pub attendee_id: String,
}

impl CreateRegistration {
    pub fn attendee_id(&self) -> Result<domain::AttendeeId, Problem> {
        domain::AttendeeId::parse(&self.attendee_id).ok_or_else(|| {
            Problem::invalid(vec![FieldError::new(
                "attendee_id",
                "must be an attendee id",
            )])
        })
    }
}

/// `?limit=&after=` of every list, plus `?status=` where a list has one.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<String>,
    pub after: Option<String>,
    pub status: Option<String>,
}

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

impl ListQuery {
    pub fn page(&self) -> Result<crate::app::PageRequest, Problem> {
        let limit = match &self.limit {
            None => DEFAULT_LIMIT,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(Problem::invalid(vec![FieldError::new(
                        "limit",
                        format!("must be an integer from 1 to {MAX_LIMIT}"),
                    )]))
                }
            },
        };
        Ok(crate::app::PageRequest {
            after: self.after.clone(),
            limit,
        })
    }
}

// ----- the door list (`attendees.csv`) -----

/// The CSV columns of the door list.
const DOOR_LIST_COLUMNS: [&str; 8] = [
    "registration_id",
    "status",
    "ticket_code",
    "name",
    "email",
    "phone",
    "checked_in_at",
    "registered_at",
];

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR at the start) gets a
/// leading `'`: names and phone numbers come from the public, the list is opened by staff.
fn inert(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

fn csv_bytes(
    write: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> csv::Result<()>,
) -> Result<axum::body::Bytes, std::io::Error> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(64 * 1024));
    write(&mut w).map_err(std::io::Error::other)?;
    w.into_inner()
        .map(axum::body::Bytes::from)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

pub fn door_list_header() -> Result<axum::body::Bytes, std::io::Error> {
    csv_bytes(|w| w.write_record(DOOR_LIST_COLUMNS))
}

pub fn door_list_rows(
    lines: &[crate::store::registrations::DoorLine],
) -> Result<axum::body::Bytes, std::io::Error> {
    use crate::domain::{TicketCode, Timestamp};
    csv_bytes(|w| {
        for l in lines {
            let code = l
                .ticket_code
                .clone()
                .map(|c| TicketCode::from_stored(c).display())
                .unwrap_or_default();
            let checked_in = l
                .checked_in_at
                .map(|t| Timestamp::from_millis(t).to_rfc3339())
                .unwrap_or_default();
            w.write_record([
                l.registration_id.as_str(),
                l.status.as_str(),
                code.as_str(),
                &inert(&l.name),
                &inert(l.email.as_deref().unwrap_or("")),
                &inert(l.phone.as_deref().unwrap_or("")),
                checked_in.as_str(),
                Timestamp::from_millis(l.created_at).to_rfc3339().as_str(),
            ])?;
        }
        Ok(())
    })
}

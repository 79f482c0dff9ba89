//! Request bodies as they arrive on the wire, and their parsing into domain values. Unknown fields are
//! refused so a typo never silently does nothing. Response bodies are the domain's read models, which
//! serialize to the API shape.

use serde::de::DeserializeOwned;
use serde::Deserialize;

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
            Category::Syntax | Category::Eof | Category::Io => {
                Problem::malformed_json(e.to_string())
            }
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEvent {
    pub name: String,
    pub venue: String,
    #[serde(default)]
    pub description: Option<String>,
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: Option<String>,
    pub capacity: i64,
    #[serde(default)]
    pub waitlist_enabled: Option<bool>,
    #[serde(default)]
    pub promotion: Option<String>,
    #[serde(default)]
    pub offer_minutes: Option<i64>,
}

impl CreateEvent {
    pub fn into_domain(self) -> Result<domain::NewEvent, Problem> {
        domain::NewEvent::parse(
            &self.name,
            &self.venue,
            self.description.as_deref(),
            &self.starts_at,
            self.ends_at.as_deref(),
            self.capacity,
            self.waitlist_enabled,
            self.promotion.as_deref(),
            self.offer_minutes,
        )
        .map_err(Problem::invalid)
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchEvent {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub venue: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub starts_at: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub ends_at: Option<Option<String>>,
    #[serde(default)]
    pub capacity: Option<i64>,
    #[serde(default)]
    pub waitlist_enabled: Option<bool>,
    #[serde(default)]
    pub promotion: Option<String>,
    #[serde(default)]
    pub offer_minutes: Option<i64>,
}

impl PatchEvent {
    pub fn into_domain(self) -> Result<domain::EventPatch, Problem> {
        domain::EventPatch::parse(
            self.name.as_deref(),
            self.venue.as_deref(),
            self.description.as_deref(),
            self.starts_at.as_deref(),
            self.ends_at.as_ref().map(|e| e.as_deref()),
            self.capacity,
            self.waitlist_enabled,
            self.promotion.as_deref(),
            self.offer_minutes,
        )
        .map_err(Problem::invalid)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInBody {
    pub ticket_code: String,
}

/// A counter sale: no email; a name if the buyer gives one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalkUpBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub override_waitlist: bool,
}

impl WalkUpBody {
    pub fn person(&self) -> Result<domain::NewAttendee, Problem> {
        let name = self
            .name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or("Walk-up guest");
        domain::NewAttendee::parse(name, None, self.phone.as_deref(), false)
            .map_err(Problem::invalid)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAttendee {
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub phone: Option<String>,
}

impl CreateAttendee {
    pub fn into_domain(self) -> Result<domain::NewAttendee, Problem> {
        domain::NewAttendee::parse(&self.name, Some(&self.email), self.phone.as_deref(), true)
            .map_err(Problem::invalid)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRegistration {
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

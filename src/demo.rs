//! Demo data (`fixtures/demo.json`, built into the binary) for a first look: loaded by a bare
//! `boxoffice` when the database holds no events, through the same use cases the API calls.

use serde::Deserialize;

use crate::app::{Actor, App, Result};
use crate::domain::{NewAttendee, NewEvent, Timestamp};

const DEMO: &str = include_str!("../fixtures/demo.json");

#[derive(Deserialize)]
struct Demo {
    attendees: Vec<(String, String)>,
    events: Vec<DemoEvent>,
}

#[derive(Deserialize)]
struct DemoEvent {
    name: String,
    venue: String,
    description: String,
    starts_in_days: i64,
    hours: i64,
    capacity: i64,
    publish: bool,
    registrations: usize,
}

/// Loads the demo; returns how many events it created.
pub fn load(app: &App) -> Result<usize> {
    let demo: Demo = serde_json::from_str(DEMO)
        .map_err(|e| crate::app::Error::Internal(format!("demo.json: {e}")))?;
    let actor = Actor::local("demo");
    let mut people = Vec::new();
    for (name, email) in &demo.attendees {
        let new = NewAttendee::parse(name, Some(email), None, true)
            .map_err(crate::app::Error::Invalid)?;
        people.push(app.create_attendee(new, None)?);
    }
    // Whole hours, so demo times read well.
    let now = app.now().millis() / 3_600_000 * 3_600_000;
    for e in &demo.events {
        let starts = Timestamp::from_millis(now + e.starts_in_days * 86_400_000);
        let ends = starts.plus_millis(e.hours * 3_600_000);
        let new = NewEvent::parse(
            &e.name,
            &e.venue,
            Some(&e.description),
            &starts.to_rfc3339(),
            Some(&ends.to_rfc3339()),
            e.capacity,
            Some(true),
            None,
            None,
        )
        .map_err(crate::app::Error::Invalid)?;
        let event = app.create_event(&actor, new)?;
        if e.publish {
            app.publish_event(&actor, event.id)?;
        }
        for person in people.iter().take(e.registrations) {
            app.register(event.id, person.id, None)?;
        }
    }
    Ok(demo.events.len())
}

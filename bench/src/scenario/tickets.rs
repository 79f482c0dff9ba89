//! `GET /api/v1/attendees/{id}/tickets` with a kiosk token: attendees looking up what they hold, each
//! with a registration for each of `EVENTS` events (so every answer is a page of that many tickets,
//! each with its event's summary).
//!
//! Setup: `--registrations / EVENTS` attendees, each registered for every event (all confirmed).
//! The phase asks for every attendee's tickets in turn, about `requests / attendees` times each;
//! every 16th answer is checked to hold `EVENTS` tickets.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::outbox::create_event;
use super::read_event::SAMPLE_EVERY;
use super::rush::create_attendees;
use super::setup::register;
use super::{every_request_answered, spread, Check, Outcome, Params};
use crate::client::Call;
use crate::load::{self, Phase};
use crate::server::Server;

/// Events every attendee holds a ticket for.
const EVENTS: usize = 3;

#[derive(Deserialize)]
struct TicketPage {
    items: Vec<serde_json::Value>,
}

pub async fn tickets(server: &Server, p: &Params) -> anyhow::Result<Outcome> {
    // Made first: the server notices another process's write at its next commit and then clears
    // its cache, which must happen during the setup, not during the phase.
    let kiosk = server.create_token("kiosk", "bench-kiosk")?;
    let admin = server.admin();
    let people = (p.registrations / EVENTS).max(1);
    let mut setup = Vec::new();

    let started = Instant::now();
    let mut events = Vec::with_capacity(EVENTS);
    for e in 0..EVENTS {
        events.push(create_event(admin, &format!("Tickets {}", e + 1), people).await?);
    }
    setup.push(Phase::sequential(
        "setup: events",
        &mut [],
        started.elapsed(),
    ));
    let (attendees, phase) = create_attendees(
        admin,
        &Params {
            registrations: people,
            ..p.clone()
        },
    )
    .await?;
    setup.push(phase);
    let pairs: Vec<(&str, &str)> = attendees
        .iter()
        .flat_map(|a| events.iter().map(move |e| (e.as_str(), a.as_str())))
        .collect();
    let (_, phase) = register("setup: registrations", admin, p.connections, &pairs).await?;
    setup.push(phase);

    let calls: Arc<Vec<Call>> = Arc::new(
        attendees
            .iter()
            .map(|a| Call::get(format!("/api/v1/attendees/{a}/tickets")))
            .collect(),
    );
    let wrong = Arc::new(AtomicUsize::new(0));
    let headline = load::run(
        "tickets",
        &kiosk,
        p.connections,
        p.requests,
        StatusCode::OK,
        move |i| calls[spread(i, calls.len())].clone(),
        {
            let wrong = wrong.clone();
            move |i, body| {
                if i % SAMPLE_EVERY == 0
                    && !serde_json::from_slice::<TicketPage>(body)
                        .is_ok_and(|t| t.items.len() == EVENTS)
                {
                    wrong.fetch_add(1, Ordering::Relaxed);
                }
            }
        },
    )
    .await?;

    let wrong = wrong.load(Ordering::Relaxed);
    let checks = vec![
        every_request_answered(&headline),
        Check::new(
            "every attendee holds a ticket per event",
            wrong == 0,
            format!("{wrong} of the sampled answers (one in {SAMPLE_EVERY}) did not hold {EVENTS} tickets"),
        ),
    ];
    Ok(Outcome {
        headline,
        setup,
        values: BTreeMap::from([
            ("attendees", json!(people)),
            ("tickets_per_attendee", json!(EVENTS)),
        ]),
        checks,
        figures: Vec::new(),
    })
}

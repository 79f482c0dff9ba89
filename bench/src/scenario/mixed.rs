//! A night's mix on one event: 80% reads, 20% writes, from the same connections at once.
//!
//! Setup: one event with half of `--registrations` seats; three quarters of the attendees registered
//! (so it is sold out with a waitlist a third as long as the seats), the last quarter kept for sales
//! during the phase. The phase repeats a fixed pattern of 20 requests: 8 event reads, 3 waitlist
//! positions, 3 registration reads, 2 ticket lists, 2 sales to fresh attendees and 2 cancellations of
//! earlier registrations (each cancelled once; a cancelled seat promotes the head of the waitlist).
//! Every write to the event retires its cached entries, so the event's hit rate shows how well the
//! cache holds up under writes (the target is above 95%). The phase has at most ten times as
//! many requests as there are fresh attendees, so every sale is a first one.
//!
//! Checks: not oversold, and the event's counts equal the setup's plus the sales minus the
//! cancellations the answers reported, with every seat taken while anyone waits (I4).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::rush::{on_sale, read_counts};
use super::setup::register;
use super::{every_request_answered, Check, Outcome, Params};
use crate::client::Call;
use crate::load;
use crate::metrics::CacheCounters;
use crate::server::Server;
use crate::targets::{Figure, Unit, CACHE_HIT_RATE, EVENT_HIT_RATE, POSITION_HIT_RATE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Event,
    Position,
    Registration,
    Tickets,
    Sale,
    Cancel,
}

use Kind::*;

/// The repeating pattern: 40% event, 15% position, 15% registration, 10% tickets (80% reads), 10%
/// sales, 10% cancellations, interleaved so writes are spread evenly.
const PATTERN: [Kind; 20] = [
    Event,
    Position,
    Event,
    Registration,
    Sale,
    Event,
    Tickets,
    Event,
    Position,
    Cancel,
    Event,
    Registration,
    Event,
    Tickets,
    Sale,
    Event,
    Position,
    Event,
    Registration,
    Cancel,
];

fn share(kind: Kind) -> usize {
    PATTERN.iter().filter(|k| **k == kind).count()
}

#[derive(Deserialize)]
struct Status {
    status: String,
}

/// The answers to the writes, to compare with the event's counts afterwards.
#[derive(Default)]
struct Tally {
    sold_confirmed: AtomicUsize,
    sold_waitlisted: AtomicUsize,
    cancelled: AtomicUsize,
}

pub async fn mixed(server: &Server, p: &Params) -> anyhow::Result<Outcome> {
    // Made first: the server notices another process's write at its next commit and then clears
    // its cache, which must happen during the setup, not during the phase.
    let kiosk = server.create_token("kiosk", "bench-kiosk")?;
    let n = p.registrations;
    let capacity = (n / 2).max(1);
    let held = (n * 3 / 4).max(1);
    let fresh = n - held.min(n);
    if fresh == 0 {
        bail!("mixed needs attendees left for sales: --registrations must be at least 4");
    }
    // Each pattern round makes as many sales as cancellations; neither may run out.
    let rounds_of_writes = fresh.min(held.div_ceil(3));
    let total = p
        .requests
        .min(rounds_of_writes * PATTERN.len() / share(Sale));
    let (event, attendees, mut setup) = on_sale(server, p, capacity).await?;
    let pairs: Vec<(&str, &str)> = attendees[..held]
        .iter()
        .map(|a| (event.id.as_str(), a.as_str()))
        .collect();
    let (regs, phase) = register(
        "setup: registrations",
        server.admin(),
        p.connections,
        &pairs,
    )
    .await?;
    setup.push(phase);
    let waiting: Vec<&str> = regs
        .iter()
        .filter(|r| r.status == "waitlisted")
        .map(|r| r.id.as_str())
        .collect();
    if waiting.is_empty() {
        bail!("mixed: the setup left nobody waiting ({held} registrations, {capacity} seats)");
    }

    // Every request of the phase, built before the clock starts.
    let mut seen = [0usize; 6];
    let mut calls = Vec::with_capacity(total);
    for i in 0..total {
        let kind = PATTERN[i % PATTERN.len()];
        let k = seen[kind as usize];
        seen[kind as usize] += 1;
        calls.push(match kind {
            Event => Call::get(format!("/api/v1/events/{}", event.id)),
            Position => Call::get(format!(
                "/api/v1/registrations/{}/position",
                waiting[k % waiting.len()]
            )),
            Registration => Call::get(format!("/api/v1/registrations/{}", regs[k % held].id)),
            Tickets => Call::get(format!("/api/v1/attendees/{}/tickets", attendees[k % held])),
            Sale => Call::post(
                format!("/api/v1/events/{}/registrations", event.id),
                Some(Bytes::from(
                    json!({"attendee_id": attendees[held + k]}).to_string(),
                )),
            )
            .expecting(StatusCode::CREATED),
            // Every third earlier registration, so each is cancelled once (`total` is bounded so
            // that `3 * k` stays below `held`).
            Cancel => Call::post(
                format!("/api/v1/registrations/{}/cancel", regs[(3 * k) % held].id),
                None,
            ),
        });
    }
    let calls = Arc::new(calls);

    let anonymous = server.anonymous()?;
    let tally = Arc::new(Tally::default());
    let before = CacheCounters::read(&anonymous).await?;
    let headline = load::run(
        "mixed",
        &kiosk,
        p.connections,
        total,
        StatusCode::OK,
        move |i| calls[i].clone(),
        {
            let tally = tally.clone();
            move |i, body| match PATTERN[i % PATTERN.len()] {
                Sale => {
                    let status = serde_json::from_slice::<Status>(body).map(|s| s.status);
                    match status.as_deref() {
                        Ok("confirmed") => tally.sold_confirmed.fetch_add(1, Ordering::Relaxed),
                        Ok("waitlisted") => tally.sold_waitlisted.fetch_add(1, Ordering::Relaxed),
                        _ => 0,
                    };
                }
                Cancel => {
                    tally.cancelled.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        },
    )
    .await?;
    let after = CacheCounters::read(&anonymous).await?;
    let events = after.since(&before, "event");
    let positions = after.since(&before, "position");

    let counts = read_counts(server.admin(), &event.id)
        .await
        .context("verify after the mixed phase")?;
    let sold = tally.sold_confirmed.load(Ordering::Relaxed)
        + tally.sold_waitlisted.load(Ordering::Relaxed);
    let cancelled = tally.cancelled.load(Ordering::Relaxed);
    let active = i64::try_from(held + sold - cancelled.min(held + sold))?;
    let capacity = counts.capacity;
    let oversold = (counts.confirmed + counts.offered - capacity).max(0);
    let checks = vec![
        every_request_answered(&headline),
        Check::new(
            "not oversold",
            oversold == 0,
            format!(
                "oversold {oversold}: confirmed {} + offered {} vs capacity {capacity}",
                counts.confirmed, counts.offered
            ),
        ),
        Check::new(
            "counts follow the answers",
            counts.confirmed + counts.offered + counts.waitlisted == active,
            format!(
                "confirmed {} + offered {} + waitlisted {} == {held} registered + {sold} sold - {cancelled} cancelled",
                counts.confirmed, counts.offered, counts.waitlisted
            ),
        ),
        Check::new(
            "no idle seat while anyone waits",
            counts.waitlisted == 0 || counts.confirmed + counts.offered == capacity,
            format!(
                "confirmed {} + offered {} of {capacity} seats, {} waiting",
                counts.confirmed, counts.offered, counts.waitlisted
            ),
        ),
        Check::new(
            "the cache counted the event reads",
            events.rate.is_some(),
            format!("{} hits, {} misses of kind event", events.hits, events.misses),
        ),
    ];
    let mut figures = Vec::new();
    if let Some(rate) = events.rate {
        figures.push(Figure::new(EVENT_HIT_RATE, rate, Unit::Share));
    }
    if let Some(rate) = positions.rate {
        figures.push(Figure::new(POSITION_HIT_RATE, rate, Unit::Share));
    }
    // Every kind together, first reads included: each tickets read asks for an attendee no read
    // asked for before, so its attendee lookup cannot hit, and the answer for someone no longer
    // waiting (promoted during the phase) is cached under the event, which every write retires.
    if let Some(rate) = after.total_since(&before).rate {
        figures.push(Figure::new(CACHE_HIT_RATE, rate, Unit::Share));
    }
    let per_kind: BTreeMap<&str, usize> = [
        ("event", Event),
        ("position", Position),
        ("registration", Registration),
        ("tickets", Tickets),
        ("sale", Sale),
        ("cancel", Cancel),
    ]
    .into_iter()
    .map(|(name, kind)| (name, seen[kind as usize]))
    .collect();
    Ok(Outcome {
        headline,
        setup,
        values: BTreeMap::from([
            ("capacity", json!(capacity)),
            ("registered_before", json!(held)),
            ("waitlisted_before", json!(waiting.len())),
            ("requests_per_kind", json!(per_kind)),
            (
                "sold_confirmed",
                json!(tally.sold_confirmed.load(Ordering::Relaxed)),
            ),
            (
                "sold_waitlisted",
                json!(tally.sold_waitlisted.load(Ordering::Relaxed)),
            ),
            ("cancelled", json!(cancelled)),
            ("confirmed", json!(counts.confirmed)),
            ("waitlisted", json!(counts.waitlisted)),
            ("oversold", json!(oversold)),
            ("cache_event", json!(events)),
            ("cache_all_kinds", json!(after.all_since(&before))),
        ]),
        checks,
        figures,
    })
}

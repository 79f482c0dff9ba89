//! `GET /api/v1/registrations/{id}/position` with a kiosk token: people on a long waitlist asking
//! where they are, as a kiosk or an app polls for them.
//!
//! Setup: one event with a quarter of `--registrations` seats, every attendee registered, so three
//! quarters wait. The phase polls a set of waitlisted registrations spread evenly over the whole
//! list, from the head to the very last place, each about `POLLS` times: a position is a count over
//! the waitlist index, so a miss deep in the list costs the most, and the position cache is what
//! keeps it cheap. Its hit rate over the phase comes from `/metrics`. Nothing is written during the
//! phase, so every answer must still give the place the registration was given when it joined; every
//! 16th answer is compared. The phase takes turns with `GET /api/v1/ping` on the same server (see
//! `baseline::bracketed`), and its `x baseline` is the share of those pings' rate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::bail;
use serde::Deserialize;
use serde_json::json;

use super::baseline::{bracketed, ratio};
use super::read_event::SAMPLE_EVERY;
use super::rush::on_sale;
use super::setup::register;
use super::{every_request_answered, spread, Check, Outcome, Params};
use crate::client::Call;
use crate::metrics::CacheCounters;
use crate::server::Server;
use crate::targets::{Figure, Unit, EVENT_HIT_RATE, POSITION_HIT_RATE, VS_BASELINE};

/// How often each polled registration is asked for, on average, over the phase.
const POLLS: usize = 20;

#[derive(Deserialize)]
struct PositionView {
    status: String,
    position: Option<i64>,
    waitlist_length: i64,
}

pub async fn position(server: &Server, p: &Params) -> anyhow::Result<Outcome> {
    // Made first: the server notices another process's write at its next commit and then clears
    // its cache, which must happen during the setup, not during the phase.
    let kiosk = server.create_token("kiosk", "bench-kiosk")?;
    let n = p.registrations;
    let capacity = (n / 4).max(1);
    if n <= capacity {
        bail!("position needs a waitlist: --registrations must be at least 2");
    }
    let (event, attendees, mut setup) = on_sale(server, p, capacity).await?;
    let pairs: Vec<(&str, &str)> = attendees
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

    let mut waiting: Vec<(i64, &str)> = regs
        .iter()
        .filter(|r| r.status == "waitlisted")
        .filter_map(|r| r.position.map(|pos| (pos, r.id.as_str())))
        .collect();
    waiting.sort_unstable();
    let length = waiting.len();
    if length == 0 {
        bail!(
            "position: nobody was waitlisted ({} registrations, {capacity} seats)",
            regs.len()
        );
    }
    // Evenly spaced over the list, the head and the last place included.
    let polled = (p.requests / POLLS).clamp(1, length);
    let picks: Vec<(i64, &str)> = (0..polled)
        .map(|j| {
            waiting[if polled > 1 {
                j * (length - 1) / (polled - 1)
            } else {
                0
            }]
        })
        .collect();
    let expected: Arc<Vec<i64>> = Arc::new(picks.iter().map(|(pos, _)| *pos).collect());
    let calls: Arc<Vec<Call>> = Arc::new(
        picks
            .iter()
            .map(|(_, id)| Call::get(format!("/api/v1/registrations/{id}/position")))
            .collect(),
    );
    let deepest = expected.last().copied().unwrap_or(0);
    let waitlist_length = i64::try_from(length)?;

    let anonymous = server.anonymous()?;
    let wrong = Arc::new(AtomicUsize::new(0));
    let before = CacheCounters::read(&anonymous).await?;
    let (headline, pings) = bracketed(
        server,
        p,
        "position",
        &kiosk,
        {
            let calls = calls.clone();
            move |i| calls[spread(i, calls.len())].clone()
        },
        {
            let (wrong, expected) = (wrong.clone(), expected.clone());
            move |i, body| {
                if i % SAMPLE_EVERY != 0 {
                    return;
                }
                let want = expected[spread(i, expected.len())];
                let right = serde_json::from_slice::<PositionView>(body).is_ok_and(|v| {
                    v.status == "waitlisted"
                        && v.position == Some(want)
                        && v.waitlist_length == waitlist_length
                });
                if !right {
                    wrong.fetch_add(1, Ordering::Relaxed);
                }
            }
        },
    )
    .await?;
    let after = CacheCounters::read(&anonymous).await?;
    let positions = after.since(&before, "position");
    let events = after.since(&before, "event");

    let wrong = wrong.load(Ordering::Relaxed);
    let checks = vec![
        every_request_answered(&headline),
        every_request_answered(&pings),
        Check::new(
            "positions are the places given at joining",
            wrong == 0,
            format!(
                "{wrong} of the sampled answers (one in {SAMPLE_EVERY}) differed; \
                 waitlist of {length}"
            ),
        ),
        Check::new(
            "the cache counted the lookups",
            positions.rate.is_some(),
            format!(
                "{} hits, {} misses of kind position",
                positions.hits, positions.misses
            ),
        ),
    ];
    let mut figures = Vec::new();
    if let Some(r) = ratio(&headline, &[&pings]) {
        figures.push(Figure::new(VS_BASELINE, r, Unit::Ratio));
    }
    if let Some(rate) = positions.rate {
        figures.push(Figure::new(POSITION_HIT_RATE, rate, Unit::Share));
    }
    if let Some(rate) = events.rate {
        figures.push(Figure::new(EVENT_HIT_RATE, rate, Unit::Share));
    }
    setup.push(pings);
    Ok(Outcome {
        headline,
        setup,
        values: BTreeMap::from([
            ("capacity", json!(capacity)),
            ("waitlist_length", json!(length)),
            ("registrations_polled", json!(polled)),
            ("deepest_position_polled", json!(deepest)),
            ("cache_position", json!(positions)),
            ("cache_all_kinds", json!(after.all_since(&before))),
        ]),
        checks,
        figures,
    })
}

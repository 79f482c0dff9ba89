//! `GET /api/v1/events/{id}` of one published event by anonymous callers, as the web shop's pages and
//! the kiosks' screens ask for it during an on-sale: served from the read cache on the IO threads.
//!
//! The cache's counters are read from `/metrics` before and after the phase, so the hit rate is the
//! phase's own (the target is above 95%). Every 16th answer is parsed to make sure it is the
//! event asked for. The phase takes turns with `GET /api/v1/ping` on the same server (see
//! `baseline::bracketed`), and its `x baseline` is the share of those pings' rate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::baseline::{bracketed, ratio};
use super::outbox::create_event;
use super::{every_request_answered, Check, Outcome, Params};
use crate::client::Call;
use crate::metrics::CacheCounters;
use crate::server::Server;
use crate::targets::{Figure, Unit, EVENT_HIT_RATE, VS_BASELINE};

/// One answer in this many is parsed and compared: enough to catch a wrong answer, few enough that
/// the client's parsing does not weigh on the measurement.
pub(super) const SAMPLE_EVERY: usize = 16;

#[derive(Deserialize)]
struct EventView {
    id: String,
}

pub async fn read_event(server: &Server, p: &Params) -> anyhow::Result<Outcome> {
    let event = create_event(server.admin(), "Read", p.capacity).await?;
    let anonymous = server.anonymous()?;
    let call = Call::get(format!("/api/v1/events/{event}"));
    let wrong = Arc::new(AtomicUsize::new(0));

    let before = CacheCounters::read(&anonymous).await?;
    let (headline, pings) = bracketed(
        server,
        p,
        "read-event",
        &anonymous,
        move |_| call.clone(),
        {
            let (wrong, event) = (wrong.clone(), event.clone());
            move |i, body| {
                if i % SAMPLE_EVERY != 0 {
                    return;
                }
                let id = serde_json::from_slice::<EventView>(body).map(|e| e.id);
                if id.ok().as_ref() != Some(&event) {
                    wrong.fetch_add(1, Ordering::Relaxed);
                }
            }
        },
    )
    .await?;
    let after = CacheCounters::read(&anonymous).await?;
    let hits = after.since(&before, "event");

    let wrong = wrong.load(Ordering::Relaxed);
    let checks = vec![
        every_request_answered(&headline),
        every_request_answered(&pings),
        Check::new(
            "answers are the event asked for",
            wrong == 0,
            format!("{wrong} of the sampled answers (one in {SAMPLE_EVERY}) were not"),
        ),
        Check::new(
            "the cache counted the reads",
            hits.rate.is_some(),
            format!("{} hits, {} misses of kind event", hits.hits, hits.misses),
        ),
    ];
    let mut figures = Vec::new();
    if let Some(r) = ratio(&headline, &[&pings]) {
        figures.push(Figure::new(VS_BASELINE, r, Unit::Ratio));
    }
    if let Some(rate) = hits.rate {
        figures.push(Figure::new(EVENT_HIT_RATE, rate, Unit::Share));
    }
    Ok(Outcome {
        headline,
        setup: vec![pings],
        values: BTreeMap::from([
            ("event", json!(event)),
            ("cache_event", json!(hits)),
            ("cache_all_kinds", json!(after.all_since(&before))),
        ]),
        checks,
        figures,
    })
}

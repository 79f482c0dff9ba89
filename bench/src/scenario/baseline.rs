//! The reference: `GET /api/v1/ping`, a route of the same server behind the same middleware (request
//! id, security headers, timeouts, compression, the connection cap) that touches no database and no
//! cache. What the other scenarios reach as a share of this is what the box's own work costs on top
//! of HTTP on this machine, with the client on the same cores.
//!
//! The machine's speed drifts, from minute to minute and within one, by more than the difference the
//! ratio targets are about, so `read-event` and `position` also measure this route on their own
//! server, `--requests` pings taking turns with their headline phase in slices ([`bracketed`]): their
//! `x baseline` is judged against those pings, the same server over the same seconds.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::json;

use super::{every_request_answered, Outcome, Params};
use crate::client::{Call, Target};
use crate::load;
use crate::load::{Phase, Samples, Slice};
use crate::server::Server;

pub async fn baseline(server: &Server, p: &Params) -> anyhow::Result<Outcome> {
    let anonymous = server.anonymous()?;
    let call = Call::get("/api/v1/ping");
    let headline = load::run(
        "baseline",
        &anonymous,
        p.connections,
        p.requests,
        StatusCode::OK,
        move |_| call.clone(),
        |_, _| {},
    )
    .await?;
    Ok(Outcome {
        checks: vec![every_request_answered(&headline)],
        values: BTreeMap::from([("route", json!("GET /api/v1/ping"))]),
        headline,
        setup: Vec::new(),
        figures: Vec::new(),
    })
}

/// Slices of each side of a bracket: the headline and the pings take turns this many times each.
pub const ROUNDS: usize = 8;

/// The headline phase and `--requests` pings of `GET /api/v1/ping` on the same server, interleaved:
/// each is sent in [`ROUNDS`] slices, in the order ping, headline, headline, ping, ping, headline, ...
/// so a drift in the machine's speed, whether a step or a slope, falls on both sides alike. Returns
/// the headline (`name`) and the pings, each with all its slices' requests over all their time.
///
/// `request(i)` and `on_success(i, body)` see the headline's indices `0..--requests` exactly once, as
/// in [`load::run`].
pub async fn bracketed<R, S>(
    server: &Server,
    p: &Params,
    name: &str,
    target: &Target,
    request: R,
    on_success: S,
) -> anyhow::Result<(Phase, Phase)>
where
    R: Fn(usize) -> Call + Send + Sync + 'static,
    S: Fn(usize, &Bytes) + Send + Sync + 'static,
{
    let anonymous = server.anonymous()?;
    let call = Call::get("/api/v1/ping");
    let pings = Slice {
        target: &anonymous,
        connections: p.connections,
        expect: StatusCode::OK,
        request: Arc::new(move |_| call.clone()),
        on_success: Arc::new(|_: usize, _: &Bytes| {}),
    };
    let headline = Slice {
        target,
        connections: p.connections,
        expect: StatusCode::OK,
        request: Arc::new(request),
        on_success: Arc::new(on_success),
    };
    let (headline_side, ping_side) =
        interleaved(p.requests, (&pings, PINGS), (&headline, name)).await?;
    Ok((headline_side.into_phase(name), ping_side.into_phase(PINGS)))
}

/// Sends `requests` requests of a reference phase and as many of a headline phase in [`turns`]
/// (reference first): each side is sent whole, in [`ROUNDS`] slices, and each side's slices are
/// taken over the same stretch of time as the other's. Returns the headline's samples and the
/// reference's.
pub async fn interleaved<R1, S1, R2, S2>(
    requests: usize,
    (reference, reference_name): (&Slice<'_, R1, S1>, &str),
    (headline, headline_name): (&Slice<'_, R2, S2>, &str),
) -> anyhow::Result<(Samples, Samples)>
where
    R1: Fn(usize) -> Call + Send + Sync + 'static,
    S1: Fn(usize, &Bytes) + Send + Sync + 'static,
    R2: Fn(usize) -> Call + Send + Sync + 'static,
    S2: Fn(usize, &Bytes) + Send + Sync + 'static,
{
    let (mut reference_side, mut headline_side) = (Samples::default(), Samples::default());
    for (side, range) in turns(requests) {
        let count = range.end - range.start;
        match side {
            Side::Reference => {
                reference_side.extend(reference.send(reference_name, range.start, count).await?);
            }
            Side::Headline => {
                headline_side.extend(headline.send(headline_name, range.start, count).await?);
            }
        }
    }
    Ok((headline_side, reference_side))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Reference,
    Headline,
}

/// The slices of a bracket of `requests` requests a side, in the order they are sent: [`ROUNDS`]
/// rounds, the reference (pings, or the empty-db rush) first in even rounds and second in odd ones;
/// in round `k` each side sends the indices `k * requests / ROUNDS .. (k + 1) * requests / ROUNDS`.
fn turns(requests: usize) -> Vec<(Side, std::ops::Range<usize>)> {
    (0..ROUNDS)
        .flat_map(|k| {
            let range = k * requests / ROUNDS..(k + 1) * requests / ROUNDS;
            let order = if k % 2 == 0 {
                [Side::Reference, Side::Headline]
            } else {
                [Side::Headline, Side::Reference]
            };
            order.map(|side| (side, range.clone()))
        })
        .collect()
}

/// The name of a bracket's pings in reports.
const PINGS: &str = "same-server baseline (interleaved)";

/// The headline's rate as a share of the reference's (the pings of a bracket, or the empty-db rushes
/// of `scale`): all the reference's requests over all its time, so a short, fast phase does not
/// weigh like a long, slow one. `None` when no time passed.
pub fn ratio(headline: &Phase, reference: &[&Phase]) -> Option<f64> {
    let rate = load::combined_rate(reference)?;
    (rate > 0.0).then(|| headline.rps / rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(requests: usize, seconds: f64) -> Phase {
        let mut latencies = vec![std::time::Duration::from_millis(1); requests];
        Phase::sequential(
            "p",
            &mut latencies,
            std::time::Duration::from_secs_f64(seconds),
        )
    }

    #[test]
    fn the_ratio_is_over_both_sides_together() {
        // 100,000 pings in 1 s before and 100,000 in 3 s after: 50,000/s over the bracket, not the
        // mean of 100,000 and 33,333.
        let headline = phase(40_000, 1.0);
        let r =
            ratio(&headline, &[&phase(100_000, 1.0), &phase(100_000, 3.0)]).expect("time passed");
        assert!((r - 0.8).abs() < 1e-9, "{r}");
    }

    #[test]
    fn the_sides_take_turns_and_each_sends_every_index_once() {
        let t = turns(1_001);
        let sides: Vec<Side> = t.iter().map(|(s, _)| *s).collect();
        // ping, headline, headline, ping, ping, headline, ...: a slope in the machine's speed
        // weighs on both sides alike.
        assert_eq!(
            &sides[..6],
            [
                Side::Reference,
                Side::Headline,
                Side::Headline,
                Side::Reference,
                Side::Reference,
                Side::Headline
            ]
        );
        for side in [Side::Reference, Side::Headline] {
            let ranges: Vec<_> = t
                .iter()
                .filter(|(s, _)| *s == side)
                .map(|(_, r)| r.clone())
                .collect();
            assert_eq!(ranges.len(), ROUNDS);
            let indices: Vec<usize> = ranges.into_iter().flatten().collect();
            assert_eq!(indices, (0..1_001).collect::<Vec<_>>(), "{side:?}");
        }
    }

    #[test]
    fn no_ratio_without_time() {
        let headline = phase(10, 1.0);
        assert_eq!(ratio(&headline, &[&phase(0, 0.0), &phase(0, 0.0)]), None);
    }
}

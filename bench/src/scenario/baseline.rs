//! The reference: `GET /api/v1/ping`, a route of the same server behind the same middleware (request
//! id, security headers, timeouts, compression, the connection cap) that touches no database and no
//! cache. What the other scenarios reach as a share of this is what the box's own work costs on top
//! of HTTP on this machine, with the client on the same cores.
//!
//! The machine's speed drifts from minute to minute, more than the difference the ratio targets are
//! about, so `read-event` and `position` also measure this route on their own server, half of
//! `--requests` right before their headline phase and half right after ([`ping`], [`ratio`]): their
//! `x baseline` is judged against that bracket, the same server over the same stretch of time.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde_json::json;

use super::{every_request_answered, Outcome, Params};
use crate::client::Call;
use crate::load;
use crate::load::Phase;
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

/// `GET /api/v1/ping` for half of `--requests` on `server`: one side of a scenario's bracket.
pub async fn ping(server: &Server, p: &Params, phase: &str) -> anyhow::Result<Phase> {
    let anonymous = server.anonymous()?;
    let call = Call::get("/api/v1/ping");
    load::run(
        phase,
        &anonymous,
        p.connections,
        (p.requests / 2).max(1),
        StatusCode::OK,
        move |_| call.clone(),
        |_, _| {},
    )
    .await
}

/// The headline's rate as a share of the reference's over the bracket around it (pings here, empty-db
/// rushes in `scale`): every request of both sides over their time together, so a drift during the
/// headline weighs on both sides alike.
pub fn ratio(headline: &Phase, before: &Phase, after: &Phase) -> Option<f64> {
    let rate = load::combined_rate(&[before, after])?;
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
        let r = ratio(&headline, &phase(100_000, 1.0), &phase(100_000, 3.0)).expect("time passed");
        assert!((r - 0.8).abs() < 1e-9, "{r}");
    }

    #[test]
    fn no_ratio_without_time() {
        let headline = phase(10, 1.0);
        assert_eq!(ratio(&headline, &phase(0, 0.0), &phase(0, 0.0)), None);
    }
}

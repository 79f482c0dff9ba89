//! Setup shared by the read scenarios: registering attendees over the connections the headline will
//! use, keeping what each answer said. Setup is timed and reported, never the headline.

use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::client::{Call, Target};
use crate::load::{self, Phase};

/// What `POST /api/v1/events/{id}/registrations` answered for one registration.
#[derive(Debug, Clone, Deserialize)]
pub struct Registered {
    pub id: String,
    pub status: String,
    /// The waitlist position at the time of the answer (only while waitlisted).
    pub position: Option<i64>,
}

/// Registers each `(event, attendee)` pair once, from `connections` connections; answers what each
/// registration became, in the order of `pairs`. Any failure ends the benchmark: a scenario built on
/// a partial setup would measure something else.
pub async fn register(
    phase: &str,
    target: &Target,
    connections: usize,
    pairs: &[(&str, &str)],
) -> anyhow::Result<(Vec<Registered>, Phase)> {
    let n = pairs.len();
    let calls: Arc<Vec<Call>> = Arc::new(
        pairs
            .iter()
            .map(|(event, attendee)| {
                Call::post(
                    format!("/api/v1/events/{event}/registrations"),
                    Some(Bytes::from(json!({"attendee_id": attendee}).to_string())),
                )
            })
            .collect(),
    );
    let out: Arc<Vec<OnceLock<Registered>>> = Arc::new((0..n).map(|_| OnceLock::new()).collect());
    let phase = load::run(
        phase,
        target,
        connections,
        n,
        StatusCode::CREATED,
        move |i| calls[i].clone(),
        {
            let out = out.clone();
            move |i, body| {
                if let Ok(r) = serde_json::from_slice::<Registered>(body) {
                    let _ = out[i].set(r);
                }
            }
        },
    )
    .await?;
    if phase.error_count > 0 {
        bail!(
            "{}: {} of {n} registrations failed: {:?}; first errors:\n{}",
            phase.phase,
            phase.error_count,
            phase.errors,
            phase.error_samples.join("\n")
        );
    }
    let regs = out
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.get()
                .cloned()
                .with_context(|| format!("registration {i}: the answer had no id or status"))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((regs, phase))
}

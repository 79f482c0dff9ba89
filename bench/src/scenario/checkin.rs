//! The doors open: every ticket of a sold-out event is scanned once, each a distinct code, from all
//! connections at once. Each scan is a durable write (I7: once only), so this measures the writer's
//! group commit under the door's load. The check reads the event back: checked-in equals admitted.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::rush::{on_sale, read_counts};
use super::{Check, Outcome, Params};
use crate::client::Call;
use crate::load;
use crate::server::Server;

#[derive(Deserialize)]
struct Ticket {
    ticket_code: Option<String>,
}

pub async fn checkin(server: &Server, p: &Params) -> anyhow::Result<Outcome> {
    let admin = server.admin();
    let n = p.registrations;
    // Every attendee gets a seat: capacity is the number of tickets.
    let (event, ids, mut setup) = on_sale(server, p, n).await?;

    // Setup: sell every seat, keeping the ticket codes.
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        ids.iter()
            .map(|id| json!({"attendee_id": id}).to_string().into())
            .collect(),
    );
    let codes: Arc<Vec<OnceLock<String>>> = Arc::new((0..n).map(|_| OnceLock::new()).collect());
    let path: Arc<str> = format!("/api/v1/events/{}/registrations", event.id).into();
    let phase = load::run(
        "setup: registrations",
        admin,
        p.connections,
        n,
        StatusCode::CREATED,
        move |i| Call::post(path.clone(), Some(bodies[i].clone())),
        {
            let codes = codes.clone();
            move |i, body| {
                if let Ok(Ticket {
                    ticket_code: Some(code),
                }) = serde_json::from_slice(body)
                {
                    let _ = codes[i].set(code);
                }
            }
        },
    )
    .await?;
    if phase.error_count > 0 {
        bail!(
            "selling the seats failed for {} of {n}: {:?}",
            phase.error_count,
            phase.errors
        );
    }
    setup.push(phase);
    let scans: Arc<Vec<Bytes>> = Arc::new(
        codes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let code = c
                    .get()
                    .with_context(|| format!("registration {i} came back without a ticket code"))?;
                Ok(json!({"ticket_code": code}).to_string().into())
            })
            .collect::<anyhow::Result<_>>()?,
    );

    // The headline: each ticket scanned once.
    let path: Arc<str> = "/api/v1/checkins".into();
    let headline = load::run(
        "checkin",
        admin,
        p.connections,
        n,
        StatusCode::OK,
        move |i| Call::post(path.clone(), Some(scans[i].clone())),
        |_, _| {},
    )
    .await?;

    let counts = read_counts(admin, &event.id)
        .await
        .context("verify after the check-ins")?;
    let admitted = i64::try_from(n - headline.error_count.min(n)).context("count")?;
    let checks = vec![
        Check::new(
            "every scan admitted",
            headline.error_count == 0,
            format!(
                "{} of {n} scans failed: {:?}",
                headline.error_count, headline.errors
            ),
        ),
        Check::new(
            "checked-in count",
            counts.checked_in == admitted
                && counts.confirmed == i64::try_from(n).unwrap_or(i64::MAX),
            format!(
                "event says checked_in {} of confirmed {}; scans admitted {admitted}",
                counts.checked_in, counts.confirmed
            ),
        ),
    ];
    let values = BTreeMap::from([
        ("tickets", json!(n)),
        ("admitted", json!(admitted)),
        ("checked_in", json!(counts.checked_in)),
    ]);
    Ok(Outcome {
        headline,
        setup,
        values,
        checks,
        figures: Vec::new(),
    })
}

//! The reference: `GET /api/v1/ping`, a route of the same server behind the same middleware (request
//! id, security headers, timeouts, compression, the connection cap) that touches no database and no
//! cache. What the other scenarios reach as a share of this is what the box's own work costs on top
//! of HTTP on this machine, with the client on the same cores.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde_json::json;

use super::{every_request_answered, Outcome, Params};
use crate::client::Call;
use crate::load;
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

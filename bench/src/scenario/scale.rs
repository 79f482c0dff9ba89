//! The rush on a big database: does the box stay fast when its file holds a season of sales?
//!
//! 1. On the fresh server: the rush on an empty database (the reference, in the same invocation).
//! 2. The server is stopped (SIGTERM) and `fill` writes `--scale-registrations` registrations over
//!    `--scale-events` events straight into its file, consistent down to the event counters.
//! 3. The server is started again on that file, timed from starting the process to its first `200`
//!    from `/health` (the target: under 1 s). The file was just written, so it is in the OS
//!    page cache: this is a warm start, as after a restart of the service, not a cold boot.
//! 4. The rush again, on a fresh event with fresh attendees: the headline. Its rate as a share of the
//!    empty-database rush is the figure the issue bounds (within 20%); the runner adds the server's
//!    peak RSS (target: under 150 MB) and runs `boxoffice check` over the whole file.

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::json;

use super::rush::rush_as;
use super::{Check, Outcome, Params};
use crate::fill;
use crate::load::Phase;
use crate::server::Server;
use crate::targets::{Figure, Unit, DB_SIZE, STARTUP, VS_EMPTY};

pub async fn scale(server: &mut Server, p: &Params) -> anyhow::Result<Outcome> {
    let empty = rush_as(server, p, "rush, empty db", "empty").await?;
    let stopped = server.stop().await?;

    let db = server.db_path();
    let (events, registrations) = (p.scale_events, p.scale_registrations);
    let filled = tokio::task::spawn_blocking(move || fill::fill(&db, events, registrations))
        .await
        .context("the fill task panicked")??;
    let filled_bytes = server.db_bytes();
    let startup = server
        .restart()
        .await
        .context("start on the filled database")?;

    let full = rush_as(server, p, "rush, scale db", "scale").await?;
    let db_bytes = server.db_bytes();
    let ratio = if empty.headline.rps > 0.0 {
        full.headline.rps / empty.headline.rps
    } else {
        0.0
    };

    let mut setup = empty.setup;
    setup.push(empty.headline.clone());
    // Not a request phase: its row in the table shows how long the file took to write.
    setup.push(Phase::sequential(
        "setup: fill the db",
        &mut [],
        std::time::Duration::from_secs_f64(filled.seconds),
    ));
    setup.extend(full.setup);

    let mut checks = vec![Check::new(
        "the empty-database server stopped on SIGTERM",
        stopped.graceful,
        format!("{} after {:.2} s", stopped.exit_status, stopped.seconds),
    )];
    for (label, outcome_checks) in [("empty db", empty.checks), ("scale db", full.checks)] {
        checks.extend(outcome_checks.into_iter().map(|c| Check {
            name: format!("{label}: {}", c.name),
            ..c
        }));
    }
    let figures = vec![
        Figure::new("empty-db rush", empty.headline.rps, Unit::PerSecond),
        Figure::new(VS_EMPTY, ratio, Unit::Ratio),
        Figure::new(STARTUP, startup.as_secs_f64(), Unit::Seconds),
        Figure::new(DB_SIZE, db_bytes as f64, Unit::Bytes),
    ];
    Ok(Outcome {
        headline: full.headline,
        setup,
        values: BTreeMap::from([
            ("fill", json!(filled)),
            ("db_bytes_after_fill", json!(filled_bytes)),
            ("db_bytes_after_rush", json!(db_bytes)),
            ("startup_seconds", json!(startup.as_secs_f64())),
            ("empty_db_registrations_per_s", json!(empty.headline.rps)),
            ("rush_vs_empty", json!(ratio)),
            ("empty_db", json!(empty.values)),
            ("scale_db", json!(full.values)),
        ]),
        checks,
        figures,
    })
}

//! The rush on a big database: does the box stay fast when its file holds a season of sales?
//!
//! 1. On the fresh server: the rush on an empty database, before anything else (reported, for a
//!    rate from the same invocation before the long fill).
//! 2. The server is stopped (SIGTERM) and `fill` writes `--scale-registrations` registrations over
//!    `--scale-events` events straight into its file, consistent down to the event counters.
//! 3. The server is started again on that file, timed from starting the process to its first `200`
//!    from `/health` (the target: under 1 s). The file was just written, so it is in the OS
//!    page cache: this is a warm start, as after a restart of the service, not a cold boot.
//! 4. A second server starts on a second, empty data directory. Each server gets a fresh event on
//!    sale and fresh attendees; then the rush on the filled database (the headline) and the rush on
//!    the empty one (the reference) are sent in slices that take turns, as the read scenarios take
//!    turns with their pings (`baseline::interleaved`): the machine's speed drifts within a minute
//!    by more than the 20% the target allows, and this way both rushes see the same seconds. The
//!    headline's rate as a share of the reference's is the figure the issue bounds. The runner adds
//!    the server's peak RSS (target: under 150 MB) and runs `boxoffice check` over the filled file;
//!    the second server is stopped and checked here.

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::json;

use super::baseline::{interleaved, ratio};
use super::rush::{rush_as, Prepared};
use super::{Check, Outcome, Params};
use crate::fill;
use crate::load::Phase;
use crate::server::Server;
use crate::targets::{Figure, Unit, DB_SIZE, STARTUP, VS_EMPTY};

pub async fn scale(server: &mut Server, p: &Params) -> anyhow::Result<Outcome> {
    let empty = rush_as(server, p, "rush, empty db (before the fill)", "empty").await?;
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

    let mut second = Server::start(server.binary()).await?;
    let compared = side_by_side(server, &second, p).await;
    let second_stopped = second.stop().await;
    let second_checked = second.check();
    if let Err(e) = second.remove_data() {
        eprintln!("boxoffice-bench: {e:#}");
    }
    let ((full, after), second_stopped, second_checked) =
        (compared?, second_stopped?, second_checked?);
    let db_bytes = server.db_bytes();
    let empty_rate = after.headline.rps;
    let ratio = ratio(&full.headline, &[&after.headline]).unwrap_or(0.0);

    let mut setup = empty.setup;
    setup.push(empty.headline.clone());
    // Not a request phase: its row in the table shows how long the file took to write.
    setup.push(Phase::sequential(
        "setup: fill the db",
        &mut [],
        std::time::Duration::from_secs_f64(filled.seconds),
    ));
    setup.extend(full.setup);
    setup.extend(after.setup);
    setup.push(after.headline.clone());

    let mut checks = vec![Check::new(
        "the empty-database server stopped on SIGTERM",
        stopped.graceful,
        format!("{} after {:.2} s", stopped.exit_status, stopped.seconds),
    )];
    checks.push(Check::new(
        "the second empty-database server stopped on SIGTERM",
        second_stopped.graceful,
        format!(
            "{} after {:.2} s",
            second_stopped.exit_status, second_stopped.seconds
        ),
    ));
    checks.push(Check::new(
        "boxoffice check over the second empty-database file",
        second_checked.passed,
        format!("{}: {}", second_checked.exit_status, second_checked.output),
    ));
    for (label, outcome_checks) in [
        ("empty db before the fill", empty.checks),
        ("scale db", full.checks),
        ("empty db interleaved", after.checks),
    ] {
        checks.extend(outcome_checks.into_iter().map(|c| Check {
            name: format!("{label}: {}", c.name),
            ..c
        }));
    }
    let figures = vec![
        Figure::new("empty-db rush, interleaved", empty_rate, Unit::PerSecond),
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
            (
                "empty_db_before_fill_registrations_per_s",
                json!(empty.headline.rps),
            ),
            (
                "empty_db_interleaved_registrations_per_s",
                json!(empty_rate),
            ),
            ("rush_vs_empty", json!(ratio)),
            ("empty_db_before_fill", json!(empty.values)),
            ("scale_db", json!(full.values)),
            ("empty_db_interleaved", json!(after.values)),
        ]),
        checks,
        figures,
    })
}

const HEADLINE: &str = "rush, scale db";
const REFERENCE: &str = "rush, empty db (interleaved)";

/// The rush on `filled` (the headline) and on `empty` (the reference), each on a fresh event with
/// fresh attendees, sent in slices that take turns; then both are verified.
async fn side_by_side(
    filled: &Server,
    empty: &Server,
    p: &Params,
) -> anyhow::Result<(Outcome, Outcome)> {
    let headline = Prepared::new(filled, p, "scale").await?;
    let reference = Prepared::new(empty, p, "empty").await?;
    let (headline_side, reference_side) = interleaved(
        p.registrations,
        (&reference.slice(empty.admin(), p.connections), REFERENCE),
        (&headline.slice(filled.admin(), p.connections), HEADLINE),
    )
    .await?;
    let full = headline
        .verify(filled.admin(), headline_side.into_phase(HEADLINE))
        .await?;
    let after = reference
        .verify(empty.admin(), reference_side.into_phase(REFERENCE))
        .await?;
    Ok((full, after))
}

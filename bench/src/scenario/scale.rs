//! The rush on a big database: does the box stay fast when its file holds a season of sales?
//!
//! 1. On the fresh server: the rush on an empty database (the reference, in the same invocation).
//! 2. The server is stopped (SIGTERM) and `fill` writes `--scale-registrations` registrations over
//!    `--scale-events` events straight into its file, consistent down to the event counters.
//! 3. The server is started again on that file, timed from starting the process to its first `200`
//!    from `/health` (the target: under 1 s). The file was just written, so it is in the OS
//!    page cache: this is a warm start, as after a restart of the service, not a cold boot.
//! 4. The rush again, on a fresh event with fresh attendees: the headline. The runner adds the
//!    server's peak RSS (target: under 150 MB) and runs `boxoffice check` over the whole file.
//! 5. A second server on a second empty data directory runs the empty-database rush once more, right
//!    after the headline, and is stopped and checked. The headline's rate as a share of both empty
//!    rushes together (all their registrations over all their time) is the figure the issue bounds
//!    (within 20%): the machine's speed drifts over the time the fill takes by more than that, and
//!    a reference on either side of the headline weighs the drift on both sides alike.

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::json;

use super::baseline::ratio;
use super::rush::rush_as;
use super::{Check, Outcome, Params};
use crate::fill;
use crate::load::{combined_rate, Phase};
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

    let mut second = Server::start(server.binary()).await?;
    let after = rush_as(&second, p, "rush, empty db again", "empty").await;
    let second_stopped = second.stop().await;
    let second_checked = second.check();
    if let Err(e) = second.remove_data() {
        eprintln!("boxoffice-bench: {e:#}");
    }
    let (after, second_stopped, second_checked) = (after?, second_stopped?, second_checked?);
    let empty_rate = combined_rate(&[&empty.headline, &after.headline]).unwrap_or(0.0);
    let ratio = ratio(&full.headline, &[&empty.headline, &after.headline]).unwrap_or(0.0);

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
        ("empty db", empty.checks),
        ("scale db", full.checks),
        ("empty db again", after.checks),
    ] {
        checks.extend(outcome_checks.into_iter().map(|c| Check {
            name: format!("{label}: {}", c.name),
            ..c
        }));
    }
    let figures = vec![
        Figure::new("empty-db rushes", empty_rate, Unit::PerSecond),
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
            (
                "empty_db_again_registrations_per_s",
                json!(after.headline.rps),
            ),
            ("empty_db_both_registrations_per_s", json!(empty_rate)),
            ("rush_vs_empty", json!(ratio)),
            ("empty_db", json!(empty.values)),
            ("scale_db", json!(full.values)),
            ("empty_db_again", json!(after.values)),
        ]),
        checks,
        figures,
    })
}

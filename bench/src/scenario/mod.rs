//! Scenarios: each is an async function that takes a running server and returns an [`Outcome`].
//!
//! A scenario owns its setup (timed, reported, but not the headline), its headline phase and the
//! checks that prove the server stayed correct under that load. Starting and stopping the server and
//! the offline `boxoffice check` belong to the runner in `main.rs`, so every scenario gets them.

mod baseline;
mod checkin;
mod console;
mod mixed;
mod outbox;
mod position;
mod read_event;
mod rush;
mod scale;
mod setup;
mod tickets;

use std::collections::BTreeMap;

use clap::ValueEnum;
use serde::Serialize;

use crate::load::Phase;
use crate::server::Server;
use crate::targets::Figure;

/// The scenarios this benchmark knows, each a module beside this one (`all` is the runner's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// `GET /api/v1/ping`, a route that touches no database: the reference the others are
    /// reported against.
    Baseline,
    /// `GET /api/v1/events/{id}` of a published event, anonymous, from the read cache.
    ReadEvent,
    /// `GET /api/v1/registrations/{id}/position` over a long waitlist, with a kiosk token.
    Position,
    /// `GET /api/v1/attendees/{id}/tickets` over many attendees with a few registrations each.
    Tickets,
    /// 80% reads (event, position, tickets, registration), 20% sales and cancellations, one event.
    Mixed,
    /// The rush on a database of `--scale-registrations` over `--scale-events` events, against the
    /// rush on an empty one; start-up time, peak RSS and the file's size.
    Scale,
    /// baseline, read-event, position, tickets, mixed, rush and scale in turn, each on a fresh
    /// server, in one table and one JSON file.
    All,
    /// Many attendees register for one event at once: the on-sale rush.
    Rush,
    /// The rush twice, without and then with one healthy webhook subscriber: the cost of delivery,
    /// deliveries per second, and how long the backlog takes to drain.
    Outbox,
    /// The doors open: every confirmed ticket is scanned once (`--registrations` tickets).
    Checkin,
    /// The operator console's cost: CPU of an idle dashboard (remote and in-process, in tmux), and
    /// the rush without and with a console watching (needs tmux).
    Console,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::ReadEvent => "read-event",
            Scenario::Position => "position",
            Scenario::Tickets => "tickets",
            Scenario::Mixed => "mixed",
            Scenario::Scale => "scale",
            Scenario::All => "all",
            Scenario::Rush => "rush",
            Scenario::Outbox => "outbox",
            Scenario::Checkin => "checkin",
            Scenario::Console => "console",
        }
    }
}

/// Load shape shared by the scenarios; a scenario ignores what does not apply to it.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub connections: usize,
    /// Attendees created and registered by the writing scenarios (each scenario's module says how
    /// it sizes its setup from this).
    pub registrations: usize,
    pub capacity: usize,
    /// Requests of the headline phase of the read scenarios and `mixed`.
    pub requests: usize,
    /// The database `scale` builds before it starts the server.
    pub scale_events: usize,
    pub scale_registrations: usize,
}

/// What a scenario measured and verified.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub headline: Phase,
    pub setup: Vec<Phase>,
    /// Figures read back from the server after the load, e.g. `confirmed`, `oversold`.
    pub values: BTreeMap<&'static str, serde_json::Value>,
    pub checks: Vec<Check>,
    /// Figures for the table (hit rates, start-up, sizes); the runner attaches the targets.
    pub figures: Vec<Figure>,
}

/// One verification: a name, whether it held, and the numbers behind it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: &str, passed: bool, detail: String) -> Self {
        Self {
            name: name.to_string(),
            passed,
            detail,
        }
    }
}

/// Runs one scenario on a fresh, running server. `scale` stops and restarts it on the same data
/// directory; every other scenario leaves it running for the runner to stop and check.
pub async fn run(
    scenario: Scenario,
    server: &mut Server,
    params: &Params,
) -> anyhow::Result<Outcome> {
    match scenario {
        Scenario::Baseline => baseline::baseline(server, params).await,
        Scenario::ReadEvent => read_event::read_event(server, params).await,
        Scenario::Position => position::position(server, params).await,
        Scenario::Tickets => tickets::tickets(server, params).await,
        Scenario::Mixed => mixed::mixed(server, params).await,
        Scenario::Scale => scale::scale(server, params).await,
        Scenario::All => anyhow::bail!("`all` runs each scenario on its own server; see main.rs"),
        Scenario::Rush => rush::rush(server, params).await,
        Scenario::Outbox => outbox::outbox(server, params).await,
        Scenario::Checkin => checkin::checkin(server, params).await,
        Scenario::Console => console::console(server, params).await,
    }
}

/// The check every read scenario makes of each of its phases: each request got the answer it expected.
fn every_request_answered(phase: &Phase) -> Check {
    Check::new(
        &format!("every request answered ({})", phase.phase),
        phase.error_count == 0,
        format!(
            "{} of {} failed: {:?}",
            phase.error_count, phase.requests, phase.errors
        ),
    )
}

/// `i` spread over `0..n`: consecutive requests go to different entries and every entry comes round
/// once every `n` requests, so each is asked about `total / n` times, evenly over the phase.
fn spread(i: usize, n: usize) -> usize {
    i % n.max(1)
}

//! Scenarios: each is an async function that takes a running server and returns an [`Outcome`].
//!
//! A scenario owns its setup (timed, reported, but not the headline), its headline phase and the
//! checks that prove the server stayed correct under that load. Starting and stopping the server and
//! the offline `boxoffice check` belong to the runner in `main.rs`, so every scenario gets them.

mod checkin;
mod console;
mod outbox;
mod rush;

use std::collections::BTreeMap;

use clap::ValueEnum;
use serde::Serialize;

use crate::load::Phase;
use crate::server::Server;

/// The scenarios this benchmark knows. `read-event`, `position`, `tickets`, `mixed`, `baseline` and
/// `scale` are planned; each becomes a variant here and a module beside `rush`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
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
    pub registrations: usize,
    pub capacity: usize,
}

/// What a scenario measured and verified.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub headline: Phase,
    pub setup: Vec<Phase>,
    /// Figures read back from the server after the load, e.g. `confirmed`, `oversold`.
    pub values: BTreeMap<&'static str, serde_json::Value>,
    pub checks: Vec<Check>,
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

pub async fn run(scenario: Scenario, server: &Server, params: &Params) -> anyhow::Result<Outcome> {
    match scenario {
        Scenario::Rush => rush::rush(server, params).await,
        Scenario::Outbox => outbox::outbox(server, params).await,
        Scenario::Checkin => checkin::checkin(server, params).await,
        Scenario::Console => console::console(server, params).await,
    }
}

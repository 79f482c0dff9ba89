//! `boxoffice-bench`: load benchmark for the boxoffice server.
//!
//! It starts the real release binary in a fresh data directory, runs one scenario against its HTTP
//! API over keep-alive connections, verifies the server stayed correct (nothing oversold, counts
//! consistent, clean shutdown, `boxoffice check` passes), prints a table and writes a JSON report.
//! It exits non-zero when any verification fails.
//!
//! ```text
//! cargo build --release --workspace && target/release/boxoffice-bench rush
//! cargo build --release --workspace && target/release/boxoffice-bench all
//! ```
//!
//! `all` runs the scenarios the issue's targets are about, each on its own fresh server, and prints
//! one table with each figure judged against its target (see `targets`).

mod client;
mod cpu;
mod fill;
mod load;
mod metrics;
mod reference;
mod report;
mod scenario;
mod server;
mod stats;
mod targets;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;

use report::{Machine, NotRun, Report, ScenarioReport, ServerInfo, Verification};
use scenario::{Params, Scenario};
use server::Server;
use targets::{Figure, Unit};

/// What `all` runs, in this order; `baseline` first, since the others are reported against it.
const ALL: [Scenario; 7] = [
    Scenario::Baseline,
    Scenario::ReadEvent,
    Scenario::Position,
    Scenario::Tickets,
    Scenario::Mixed,
    Scenario::Rush,
    Scenario::Scale,
];

#[derive(Parser)]
#[command(
    name = "boxoffice-bench",
    about = "Load benchmark: starts the boxoffice server and drives its HTTP API."
)]
struct Cli {
    /// The scenario to run.
    #[arg(value_enum)]
    scenario: Scenario,
    /// The server binary. Default: `boxoffice` next to this benchmark's own binary (target/release).
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Keep-alive connections, each with one request in flight at a time.
    #[arg(long, default_value_t = targets::issue_params().connections)]
    connections: usize,
    /// Attendees created and registered (each scenario's setup is sized from this).
    #[arg(long, default_value_t = targets::issue_params().registrations)]
    registrations: usize,
    /// Seats in the rush's event; registrations beyond it join the waitlist.
    #[arg(long, default_value_t = targets::issue_params().capacity)]
    capacity: usize,
    /// Requests of the headline phase of baseline, read-event, position, tickets and mixed.
    #[arg(long, default_value_t = targets::issue_params().requests)]
    requests: usize,
    /// Events in the database `scale` builds.
    #[arg(long, default_value_t = targets::issue_params().scale_events)]
    scale_events: usize,
    /// Registrations in the database `scale` builds, spread evenly over its events.
    #[arg(long, default_value_t = targets::issue_params().scale_registrations)]
    scale_registrations: usize,
    /// Where to write the JSON report. Default: bench-results/<scenario>.json.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Keep the server's temporary data directory (database, log) instead of removing it.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("boxoffice-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the benchmark; `Ok(false)` means it ran but a verification failed.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    if cli.connections == 0 || cli.registrations == 0 || cli.requests == 0 {
        bail!("--connections, --registrations and --requests must be at least 1");
    }
    let binary = match cli.server {
        Some(path) => path,
        None => default_server()?,
    };
    let params = Params {
        connections: cli.connections,
        registrations: cli.registrations,
        capacity: cli.capacity,
        requests: cli.requests,
        scale_events: cli.scale_events,
        scale_registrations: cli.scale_registrations,
    };
    let out = cli
        .out
        .unwrap_or_else(|| PathBuf::from(format!("bench-results/{}.json", cli.scenario.name())));
    let info = ServerInfo {
        binary: binary.display().to_string(),
        config_toml: server::CONFIG_TOML,
    };

    let mut report = Report {
        date: String::new(),
        machine: Machine::detect(),
        command: std::env::args().collect(),
        server: info,
        params,
        scenarios: Vec::new(),
        not_run: Vec::new(),
        passed: true,
    };
    if cli.scenario == Scenario::All {
        for scenario in ALL {
            eprintln!("boxoffice-bench: all: {}", scenario.name());
            match run_one(scenario, &binary, &report.params, cli.keep).await {
                Ok(ran) => {
                    print!("{}", report::verification(&ran.report));
                    report.scenarios.push(ran.report);
                }
                Err(e) => {
                    eprintln!("boxoffice-bench: {}: {e:#}", scenario.name());
                    report.not_run.push(NotRun {
                        scenario: scenario.name(),
                        error: format!("{e:#}"),
                    });
                }
            }
        }
        against_baseline(&mut report.scenarios, &report.params);
        println!(
            "\nserver config ({}):\n{}",
            binary.display(),
            server::CONFIG_TOML
        );
        print!(
            "{}",
            report::summary(&report.scenarios, &report.not_run, &report.params)
        );
    } else {
        let ran = run_one(cli.scenario, &binary, &report.params, cli.keep).await?;
        print!("{}", report::table(std::slice::from_ref(&ran.report)));
        println!();
        print!("{}", report::figures(std::slice::from_ref(&ran.report)));
        print!("{}", report::verification(&ran.report));
        if !ran.report.verification.passed || ran.report.headline.error_count > 0 {
            println!("server log tail:\n{}", ran.log_tail);
        }
        report.scenarios.push(ran.report);
    }

    report.passed =
        report.not_run.is_empty() && report.scenarios.iter().all(|s| s.verification.passed);
    report.date = report::now_rfc3339()?;
    report::write_json(&report, &out)?;
    println!(
        "\n{} written to {}",
        if report.passed { "passed;" } else { "FAILED;" },
        out.display()
    );
    Ok(report.passed)
}

/// One scenario's report and the tail of its server's log.
struct Ran {
    report: ScenarioReport,
    log_tail: String,
}

/// Starts a fresh server, runs `scenario` on it, reads its peak RSS, stops it, runs `boxoffice
/// check` over its file, and judges the figures against the issue's targets.
async fn run_one(
    scenario: Scenario,
    binary: &Path,
    params: &Params,
    keep: bool,
) -> anyhow::Result<Ran> {
    let mut server = Server::start(binary).await?;
    eprintln!(
        "boxoffice-bench: {} serving on {}, data in {}",
        binary.display(),
        server.admin().addr(),
        server.data_dir().display()
    );
    eprintln!(
        "boxoffice-bench: rate limits (requests per minute per client address or token, far above this load): {}",
        server::rate_limits()
    );

    let outcome = scenario::run(scenario, &mut server, params).await;
    let peak_rss = server.peak_rss();
    let stopped = server.stop().await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("server log tail:\n{}", server.log_tail(30));
            finish(&server, keep);
            return Err(e.context(format!("scenario {}", scenario.name())));
        }
    };
    let stopped = stopped?;
    let checked = server.check()?;
    let log_tail = server.log_tail(30);
    let args = server.args().to_vec();
    finish(&server, keep);

    let mut figures = headline_figures(scenario, &outcome.headline);
    figures.extend(outcome.figures);
    if let Some(bytes) = peak_rss {
        #[allow(clippy::cast_precision_loss)]
        figures.push(Figure::new(targets::PEAK_RSS, bytes as f64, Unit::Bytes));
    }
    let figures: Vec<Figure> = figures
        .into_iter()
        .map(|f| f.judged(scenario, params))
        .collect();
    // A scenario that measured the baseline on its own server reports its ratio itself.
    let vs_baseline = figures
        .iter()
        .find(|f| f.name == targets::VS_BASELINE)
        .map(|f| f.value);

    let passed = outcome.checks.iter().all(|c| c.passed) && stopped.graceful && checked.passed;
    let report = ScenarioReport {
        scenario: scenario.name(),
        headline: outcome.headline,
        setup: outcome.setup,
        server_args: args,
        vs_baseline,
        figures,
        verification: Verification {
            values: outcome.values,
            check_passed: checked.passed,
            shutdown: stopped,
            check: checked,
            checks: outcome.checks,
            passed,
        },
    };
    Ok(Ran { report, log_tail })
}

/// The headline's rate and p99 as figures, for the scenarios the issue sets targets on them for.
fn headline_figures(scenario: Scenario, headline: &load::Phase) -> Vec<Figure> {
    [
        (targets::RATE, headline.rps, Unit::PerSecond),
        (targets::P99, headline.latency.p99_ms, Unit::Ms),
    ]
    .into_iter()
    .filter(|(name, _, _)| targets::goal(scenario, name).is_some())
    .map(|(name, value, unit)| Figure::new(name, value, unit))
    .collect()
}

/// Sets the rate of every scenario without a same-server bracket of its own as a share of the
/// `baseline` scenario's, and judges it where the issue sets a target.
fn against_baseline(scenarios: &mut [ScenarioReport], params: &Params) {
    let Some(base) = scenarios
        .iter()
        .find(|s| s.scenario == Scenario::Baseline.name())
        .map(|s| s.headline.rps)
        .filter(|r| *r > 0.0)
    else {
        return;
    };
    for s in scenarios.iter_mut() {
        if s.vs_baseline.is_some() {
            continue;
        }
        let ratio = s.headline.rps / base;
        s.vs_baseline = Some(ratio);
        let Some(scenario) = ALL.iter().find(|a| a.name() == s.scenario) else {
            continue;
        };
        if targets::goal(*scenario, targets::VS_BASELINE).is_some() {
            s.figures.insert(
                0,
                Figure::new(targets::VS_BASELINE, ratio, Unit::Ratio).judged(*scenario, params),
            );
        }
    }
}

/// `boxoffice` in the directory this binary was built into, where `cargo build --workspace` puts it.
fn default_server() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locate the benchmark binary")?;
    let dir = me
        .parent()
        .context("the benchmark binary has no parent directory")?;
    Ok(dir.join(format!("boxoffice{}", std::env::consts::EXE_SUFFIX)))
}

/// Removes the data directory unless asked to keep it, saying where it is when kept.
fn finish(server: &Server, keep: bool) {
    if keep {
        eprintln!(
            "boxoffice-bench: data kept in {}",
            server.data_dir().display()
        );
    } else if let Err(e) = server.remove_data() {
        eprintln!("boxoffice-bench: {e:#}");
    }
}

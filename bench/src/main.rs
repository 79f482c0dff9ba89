//! `boxoffice-bench`: load benchmark for the boxoffice server.
//!
//! It starts the real release binary in a fresh data directory, runs one scenario against its HTTP
//! API over keep-alive connections, verifies the server stayed correct (nothing oversold, counts
//! consistent, clean shutdown, `boxoffice check` passes), prints a table and writes a JSON report.
//! It exits non-zero when any verification fails.
//!
//! ```text
//! cargo build --release --workspace && target/release/boxoffice-bench rush
//! ```

mod client;
mod load;
mod report;
mod scenario;
mod server;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;

use report::{Machine, Report, ScenarioReport, ServerInfo, Verification};
use scenario::{Params, Scenario};
use server::Server;

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
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Attendees created and registered.
    #[arg(long, default_value_t = 40_000)]
    registrations: usize,
    /// Seats in the event; registrations beyond it join the waitlist.
    #[arg(long, default_value_t = 30_000)]
    capacity: usize,
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
    if cli.connections == 0 || cli.registrations == 0 {
        bail!("--connections and --registrations must be at least 1");
    }
    let binary = match cli.server {
        Some(path) => path,
        None => default_server()?,
    };
    let params = Params {
        connections: cli.connections,
        registrations: cli.registrations,
        capacity: cli.capacity,
    };
    let out = cli
        .out
        .unwrap_or_else(|| PathBuf::from(format!("bench-results/{}.json", cli.scenario.name())));

    let mut server = Server::start(&binary).await?;
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
    let info = ServerInfo {
        binary: binary.display().to_string(),
        args: server.args().to_vec(),
        config_toml: server::CONFIG_TOML,
    };

    let outcome = scenario::run(cli.scenario, &server, &params).await;
    let stopped = server.stop().await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("server log tail:\n{}", server.log_tail(30));
            finish(&server, cli.keep);
            return Err(e.context(format!("scenario {}", cli.scenario.name())));
        }
    };
    let stopped = stopped?;
    let checked = server.check()?;
    let log_tail = server.log_tail(30);
    finish(&server, cli.keep);

    let passed = outcome.checks.iter().all(|c| c.passed) && stopped.graceful && checked.passed;
    let scenario = ScenarioReport {
        scenario: cli.scenario.name(),
        headline: outcome.headline,
        setup: outcome.setup,
        verification: Verification {
            values: outcome.values,
            check_passed: checked.passed,
            shutdown: stopped,
            check: checked,
            checks: outcome.checks,
            passed,
        },
    };

    print!("{}", report::table(std::slice::from_ref(&scenario)));
    println!();
    print!("{}", report::verification(&scenario));
    if !passed || scenario.headline.error_count > 0 {
        println!("server log tail:\n{log_tail}");
    }

    let report = Report {
        date: report::now_rfc3339()?,
        machine: Machine::detect(),
        command: std::env::args().collect(),
        server: info,
        params,
        scenarios: vec![scenario],
        passed,
    };
    report::write_json(&report, &out)?;
    println!(
        "\n{} written to {}",
        if passed { "passed;" } else { "FAILED;" },
        out.display()
    );
    Ok(passed)
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

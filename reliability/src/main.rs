//! `reliability`: runs the reliability suite against the release `boxoffice` binary, prints a
//! table per item and writes every figure as JSON.
//!
//! ```text
//! cargo build --release --workspace && target/release/reliability --short   # what CI runs, minutes
//! cargo build --release --workspace && target/release/reliability --long    # about an hour
//! ```
//!
//! The disk item mounts file systems (tmpfs, an ext4 image on a loop device): it needs root.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use reliability::report::{self, Machine, Report};
use reliability::{Mode, Options, ITEMS};

#[derive(Parser)]
#[command(
    name = "reliability",
    about = "Crash loop, hostile clients, full and broken disks, webhook outage and soak against the boxoffice binary."
)]
struct Cli {
    /// The short form (CI): 10 kills, seconds-long attacks and outage, a one-minute soak. The default.
    #[arg(long, conflicts_with = "long")]
    short: bool,
    /// The long form: 200 kills, half-minute attacks, a five-minute outage, a 30-minute soak.
    #[arg(long)]
    long: bool,
    /// Run only these items (comma-separated): crash, hostile, disk, outage, soak.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The server binary. Default: `boxoffice` next to this binary (target/release).
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Where to write the JSON. Default: reliability-results/<short|long>.json.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mode = if cli.long { Mode::Long } else { Mode::Short };
    let binary = match cli
        .server
        .map(Ok)
        .unwrap_or_else(reliability::default_server)
    {
        Ok(b) => b,
        Err(e) => {
            eprintln!("reliability: {e:#}");
            return ExitCode::from(2);
        }
    };
    let items: Vec<String> = if cli.only.is_empty() {
        ITEMS.iter().map(|s| s.to_string()).collect()
    } else {
        cli.only
    };
    let opts = Options {
        binary: binary.clone(),
        mode,
    };
    println!(
        "# reliability, {} form, {}, server {}",
        mode.name(),
        report::now_rfc3339(),
        binary.display()
    );
    let mut reports = Vec::new();
    for item in &items {
        eprintln!("reliability: running {item} ({})", mode.name());
        let r = reliability::run_item(item, &opts).await;
        r.print();
        reports.push(r);
    }
    let passed = reports.iter().all(|r| r.passed);
    let report = Report {
        date: report::now_rfc3339(),
        mode: mode.name().to_string(),
        command: std::env::args().collect(),
        server: binary.display().to_string(),
        machine: Machine::detect(),
        items: reports,
        passed,
    };
    let out = cli
        .out
        .unwrap_or_else(|| PathBuf::from(format!("reliability-results/{}.json", mode.name())));
    match report::write_json(&report, &out) {
        Ok(()) => println!(
            "\n{} written to {}",
            if passed { "passed;" } else { "FAILED;" },
            out.display()
        ),
        Err(e) => {
            eprintln!("reliability: {e:#}");
            return ExitCode::from(2);
        }
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

//! The reliability suite: DESIGN.md's promises I6 (an answered write survives `kill -9`) and I8 (no
//! request crashes the process or starves other clients) turned into figures, against the real
//! release binary over loopback.
//!
//! Five items, each a module with one `run`:
//! 1. `crash`: registrations, cancellations and check-ins under SIGKILL at random moments.
//! 2. `hostile`: hostile clients while a well-behaved client measures its own latency.
//! 3. `disk`: a data dir on a small tmpfs that fills, and one whose file system turns read-only.
//! 4. `outage`: the webhook receiver goes away during a rush and comes back.
//! 5. `soak`: mixed load for a long time, with memory, descriptors and file sizes sampled.
//!
//! Every item has a short form (CI, through `cargo test`) and a long form (`reliability --long`).
//! An item fails on must-haves (nothing lost, nothing oversold, process up, bounded growth); the
//! latency and memory targets are reported beside the figures.

pub mod client;
pub mod crash;
pub mod disk;
pub mod hostile;
pub mod outage;
pub mod receiver;
pub mod report;
pub mod server;
pub mod soak;
pub mod stats;

use std::path::PathBuf;
use std::time::Instant;

use report::ItemReport;

/// Short (CI, minutes in all) or long (on demand, the better part of an hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Mode {
    Short,
    Long,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Short => "short",
            Mode::Long => "long",
        }
    }
}

/// What every item needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `boxoffice` binary under test.
    pub binary: PathBuf,
    pub mode: Mode,
}

/// The items, in the order.
pub const ITEMS: &[&str] = &["crash", "hostile", "disk", "outage", "soak"];

/// Runs one item by name; an item that cannot run at all (say, no permission to mount) reports a
/// failure saying so rather than an error that hides the other items.
pub async fn run_item(name: &str, opts: &Options) -> ItemReport {
    server::raise_own_nofile();
    let started = Instant::now();
    let outcome = match name {
        "crash" => crash::run(opts).await,
        "hostile" => hostile::run(opts).await,
        "disk" => disk::run(opts).await,
        "outage" => outage::run(opts).await,
        "soak" => soak::run(opts).await,
        other => Err(anyhow::anyhow!(
            "no item {other:?}; the items are {}",
            ITEMS.join(", ")
        )),
    };
    let mut report = match outcome {
        Ok(r) => r,
        Err(e) => {
            let mut r = ItemReport::new(name);
            r.must(false, format!("the item could not run: {e:#}"));
            r
        }
    };
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// `boxoffice` next to the running executable (target/release/ for the `reliability` binary, one
/// level up for a test binary in target/release/deps/).
pub fn default_server() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let name = format!("boxoffice{}", std::env::consts::EXE_SUFFIX);
    for dir in me.ancestors().skip(1).take(2) {
        let candidate = dir.join(&name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    anyhow::bail!(
        "no {name} next to {}; build it with `cargo build --release --workspace`",
        me.display()
    )
}

//! CI's run of the reliability suite: the short form of every item, one after another, against the
//! `boxoffice` binary of this build (target/release/boxoffice under `cargo test --release
//! --workspace`, which builds it for the main package's integration tests). Each item's table is
//! printed (`--nocapture` shows them on success too) and the figures go to
//! `$CARGO_TARGET_TMPDIR/reliability-short.json`. The test fails on any item's must-haves: nothing
//! acknowledged lost, nothing oversold, no check violation, no webhook lost or out of order, the
//! process up under every attack and serving right after, peak memory under 200 MB, writes refused
//! with 503 problem documents on a full or read-only disk and taken again once space is back, no
//! unbounded growth in the soak. Latency targets are printed, never asserted (the machine is shared).
//!
//! The disk item mounts a tmpfs and an ext4 image on a loop device: CI runs as root. Without the
//! rights to mount, the item fails and says so.

use reliability::report::{self, Machine, Report};
use reliability::{run_item, Mode, Options, ITEMS};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_short_reliability_suite_keeps_every_promise() {
    let binary = reliability::default_server().expect("the boxoffice binary of this build");
    let opts = Options {
        binary: binary.clone(),
        mode: Mode::Short,
    };
    let mut items = Vec::new();
    for item in ITEMS {
        let r = run_item(item, &opts).await;
        r.print();
        items.push(r);
    }
    let failed: Vec<String> = items
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}: {}", r.item, r.failures.join("; ")))
        .collect();
    let report = Report {
        date: report::now_rfc3339(),
        mode: "short".to_string(),
        command: vec!["cargo test --release --workspace".to_string()],
        server: binary.display().to_string(),
        machine: Machine::detect(),
        passed: failed.is_empty(),
        items,
    };
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("reliability-short.json");
    report::write_json(&report, &out).expect("write the figures");
    println!("figures written to {}", out.display());
    assert!(failed.is_empty(), "{failed:#?}");
}

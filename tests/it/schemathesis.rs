//! schemathesis against the real release binary: it reads `/api/v1/openapi.json`, generates valid
//! and invalid requests for every operation (examples, coverage, fuzzing and stateful phases) with
//! the admin token, and checks every answer against the document.
//!
//! The checks are all of schemathesis's but one: no server error, status codes, content types,
//! headers and bodies as documented, invalid input rejected (`negative_data_rejection`), missing
//! headers and auth, unsupported methods answered 405 with a matching `Allow`, and the use-after-free
//! and resource-availability checks of the stateful phase. Left out is `positive_data_acceptance`
//! (every schema-valid request must succeed): some rules cannot be written in JSON Schema, and their
//! refusals would count as failures: a `?after=` cursor must be one the API handed out, `ends_at`
//! must follow `starts_at`, an Idempotency-Key reused for another request is 422.
//!
//! The run is seeded, so CI repeats the same requests; change the seed to explore further. It needs
//! Python's schemathesis (`.ci/run` installs the pinned version) and fails, never skips, without it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::Server;

/// The version `.ci/run` installs.
const SCHEMATHESIS: &str = "4.32.5";
/// Generated cases per operation and phase; the run makes well over 1,000 requests.
const MAX_EXAMPLES: &str = "40";
const SEED: &str = "20261122";
/// The run takes about half a minute on the 2-core machine; this bounds a runaway.
const DEADLINE: Duration = Duration::from_secs(300);

fn schemathesis_version() -> String {
    let out = Command::new("python3")
        .args(["-m", "schemathesis.cli", "--version"])
        .output()
        .expect("python3 must be installed to run the schemathesis test");
    assert!(
        out.status.success(),
        "schemathesis is missing: `python3 -m pip install schemathesis=={SCHEMATHESIS}` (.ci/run \
         does this)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Requests schemathesis sent, from its HAR report (one entry per request).
fn requests_in_har(har: &Path) -> usize {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(har).expect("read HAR")).expect("HAR is JSON");
    v["log"]["entries"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_against_the_release_binary() {
    let version = schemathesis_version();
    assert!(
        version.ends_with(SCHEMATHESIS),
        "expected schemathesis {SCHEMATHESIS}, found {version:?}"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    // schemathesis creates webhook subscriptions to whatever URLs it makes up: the processor stays
    // off, so no delivery ever leaves the machine (the subscription routes are still exercised).
    let config = dir.path().join("boxoffice.toml");
    std::fs::write(&config, "[outbox]\nenabled = false\n").expect("config");
    let mut server =
        Server::start_with(dir.path(), &["--config", config.to_str().expect("utf-8")]).await;
    let base = format!("http://{}", server.addr);
    let work = tempfile::tempdir().expect("work dir");
    let har = work.path().join("requests.har");

    let mut child = Command::new("python3")
        .current_dir(work.path())
        .args(["-m", "schemathesis.cli", "run"])
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--url", &base])
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", server.admin_token()))
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--generation-database", "none", "--no-color"])
        .args(["--request-timeout", "30"])
        .args(["--report", "har", "--report-har-path"])
        .arg(&har)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run schemathesis");
    // Drain the output on threads so a full pipe never stalls the run.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("schemathesis ran over {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out = out.join().expect("stdout thread");
    let err = err.join().expect("stderr thread");
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    assert!(
        status.success(),
        "schemathesis found problems ({status}):\n{out}\n{err}\n--- server log (tail) ---\n{}",
        log.lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let requests = requests_in_har(&har);
    eprintln!("schemathesis sent {requests} requests, no failure");
    assert!(
        requests >= 1000,
        "schemathesis sent only {requests} requests:\n{out}"
    );
    // Nothing was delivered anywhere: the processor was off.
    let stats = reqwest::Client::new()
        .get(server.url("/api/v1/stats"))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .expect("stats")
        .json::<serde_json::Value>()
        .await
        .expect("stats JSON");
    assert_eq!(stats["outbox"]["processed_total"], 0, "{stats}");
    assert_eq!(stats["outbox"]["failed_total"], 0, "{stats}");
    // The box is still consistent after the barrage, and stops cleanly.
    assert_eq!(server.terminate().code(), Some(0));
    let (code, stdout, stderr) = crate::support::run_cli(&["check"], dir.path());
    assert_eq!(code, 0, "boxoffice check: {stdout}{stderr}");
}

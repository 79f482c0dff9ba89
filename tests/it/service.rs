//! Running as a service: `--version` names the version and the commit, the systemd unit in
//! `fixtures/` passes `systemd-analyze verify` with its hardening rated "OK", and its command line
//! serves and stops cleanly on SIGTERM, as systemd stops it.

use std::path::Path;
use std::process::Command;

use crate::support::{bin, free_port, Server};

const UNIT: &str = include_str!("../../fixtures/boxoffice.service");

#[test]
fn version_names_the_version_and_the_commit() {
    let out = Command::new(bin())
        .arg("--version")
        .output()
        .expect("run boxoffice");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let expected_commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    assert_eq!(
        text.trim(),
        format!(
            "boxoffice {} (commit {expected_commit})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

/// The value of each `Key=` line of the unit (repeated keys in order).
fn values<'a>(key: &str) -> Vec<&'a str> {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_unit_has_the_hardening_and_passes_systemd_analyze() {
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "boxoffice"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("Restart", "on-failure"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(values(key), [value], "{key}");
    }

    // Verify a copy that runs the binary just built (systemd-analyze checks the executable exists).
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = dir.path().join("boxoffice.service");
    std::fs::write(&unit, UNIT.replace("/usr/local/bin/boxoffice", bin())).expect("unit");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze is needed (.ci/run installs systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // Exposure on systemd's scale of 0 to 10 (here times ten): 2.0 or less is rated "OK".
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze");
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "exposure over 2.0:\n{}",
        report.lines().last().unwrap_or("")
    );
    assert!(report.contains("OK"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_units_command_line_serves_and_stops_on_sigterm() {
    // ExecStart as written, with the state and config directories moved into a temp dir.
    let exec = values("ExecStart");
    assert_eq!(exec.len(), 1);
    let mut argv = exec[0].split_whitespace();
    assert_eq!(argv.next(), Some("/usr/local/bin/boxoffice"));
    let args: Vec<&str> = argv.collect();
    assert_eq!(
        args,
        [
            "serve",
            "--data-dir",
            "/var/lib/boxoffice",
            "--config",
            "/etc/boxoffice/boxoffice.toml"
        ]
    );
    let root = tempfile::tempdir().expect("temp dir");
    let state = root.path().join("var/lib/boxoffice");
    let etc = root.path().join("etc/boxoffice");
    std::fs::create_dir_all(&etc).expect("etc");
    // The README installs the documented example as the config.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/boxoffice.example.toml");
    std::fs::copy(&example, etc.join("boxoffice.toml")).expect("config");
    let moved: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("/var/lib/boxoffice", &state.to_string_lossy())
                .replace("/etc/boxoffice", &etc.to_string_lossy())
        })
        .collect();
    std::fs::create_dir_all(&state).expect("state");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let log = std::fs::File::create(state.join("server.log")).expect("log");
    let child = Command::new(bin())
        .args(&moved)
        // The example listens on 8080; the environment moves it to a free port.
        .env("BOXOFFICE_LISTEN", addr.to_string())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn");
    let mut server = Server {
        child,
        addr,
        dir: state.clone(),
    };
    server.wait_healthy().await;
    assert!(state.join("admin.token").exists());
    let status = server.terminate();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
}

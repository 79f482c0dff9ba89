//! The operator console's cost (issue 6): what an idle dashboard costs in CPU, and whether a console
//! watching the box slows a rush.
//!
//! 1. Idle. The server under test idles for `IDLE` with nothing attached (its own baseline); then a
//!    remote console (`boxoffice console --url --token-file`, a process of its own) runs in a 120x40
//!    tmux window on the dashboard, which refreshes once a second, and the console's CPU time and the
//!    server's are read from /proc over the same span. Then an in-process console (`boxoffice serve
//!    --console` on a second, empty data dir) runs in tmux, and its whole process is measured: its
//!    figure minus the idle server's is what the console adds in-process.
//! 2. Rush. After a warm-up rush that is not counted (the first rush on a fresh file is always the
//!    fastest), four rushes of the same attendees on four more events, A B B A: A with no console, B
//!    with a remote console on the dashboard in tmux (attached before, quit after). The console on the same
//!    two cores polls the API every second, which is at least what an in-process console costs the
//!    server: the same reads, plus the HTTP around them.
//!
//! Checks: an idle dashboard costs under 5 ms of CPU per second (remote process, and in-process
//! console over the idle server), and the rushes with a console keep at least 90% of the rate
//! without (runs on this shared machine vary by several percent; the figures are in the report).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use serde_json::json;

use super::outbox::{cpu_seconds, create_event, rush};
use super::rush::on_sale;
use super::{Check, Outcome, Params};
use crate::load::Phase;
use crate::server::Server;

/// How long each idle measurement runs.
const IDLE: Duration = Duration::from_secs(30);
/// Time for a console to start and settle before it is measured.
const SETTLE: Duration = Duration::from_secs(3);
/// The bound for an idle dashboard.
const IDLE_LIMIT_MS_PER_S: f64 = 5.0;
/// The rate a rush watched by a console must keep.
const KEEP_AT_LEAST: f64 = 0.9;

/// A tmux server of its own, with one 120x40 window running one command.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str, command: &str) -> anyhow::Result<Self> {
        let t = Tmux {
            socket: format!("bo-bench-{name}-{}", std::process::id()),
        };
        t.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            "120",
            "-y",
            "40",
            command,
        ])?;
        Ok(t)
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .context("run tmux (the console scenario needs it: apt-get install tmux)")?;
        if !out.status.success() {
            bail!("tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The pid of the window's command (started with `exec`, so the console itself).
    fn pid(&self) -> anyhow::Result<String> {
        Ok(self
            .run(&["display-message", "-p", "-t", "main", "#{pane_pid}"])?
            .trim()
            .to_string())
    }

    async fn wait_for(&self, what: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.run(&["capture-pane", "-p", "-t", "main"])?;
            if screen.contains(what) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the console never showed {what:?}; it shows:\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Presses `q` and waits for the process to end.
    async fn quit(&self, pid: &str) -> anyhow::Result<()> {
        self.run(&["send-keys", "-t", "main", "q"])?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Path::new(&format!("/proc/{pid}")).exists() {
            if Instant::now() > deadline {
                bail!("the console {pid} did not quit");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// CPU milliseconds per second of wall time each process spent over `span`.
async fn cpu_over(pids: &[&str], span: Duration) -> Vec<Option<f64>> {
    let before: Vec<Option<f64>> = pids.iter().map(|p| cpu_seconds(p)).collect();
    let started = Instant::now();
    tokio::time::sleep(span).await;
    let wall = started.elapsed().as_secs_f64();
    pids.iter()
        .zip(before)
        .map(|(p, b)| {
            let a = cpu_seconds(p)?;
            Some((a - b?) * 1000.0 / wall)
        })
        .collect()
}

/// A remote console on the server's dashboard, in tmux.
async fn remote_console(server: &Server) -> anyhow::Result<(Tmux, String)> {
    let command = format!(
        "exec {} console --url http://{} --token-file {}",
        server.binary().display(),
        server.admin().addr(),
        server.data_dir().join("admin.token").display()
    );
    let t = Tmux::start("remote", &command)?;
    t.wait_for("[1 Dashboard]").await?;
    let pid = t.pid()?;
    Ok((t, pid))
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2} ms/s"))
        .unwrap_or_else(|| "n/a".into())
}

pub async fn console(server: &Server, p: &Params) -> anyhow::Result<Outcome> {
    let admin = server.admin();
    let server_pid = server.pid().map(|p| p.to_string()).context("server pid")?;
    let mut setup = Vec::new();
    let mut none = Vec::new();

    // 1. Idle: the server alone, then with a remote console on its dashboard.
    let started = Instant::now();
    let idle_server = cpu_over(&[&server_pid], IDLE).await[0];
    let (t, console_pid) = remote_console(server).await?;
    tokio::time::sleep(SETTLE).await;
    let with = cpu_over(&[&console_pid, &server_pid], IDLE).await;
    let (remote_idle, server_with_console) = (with[0], with[1]);
    t.quit(&console_pid).await?;
    drop(t);

    // The in-process console: `serve --console` on a data dir of its own, in tmux.
    let dir = server.data_dir().join("inprocess");
    std::fs::create_dir_all(&dir).context("in-process data dir")?;
    let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let command = format!(
        "exec {} serve --console --listen {listen} --data-dir {} --config {}",
        server.binary().display(),
        dir.display(),
        server.data_dir().join("bench.toml").display()
    );
    let t = Tmux::start("inprocess", &command)?;
    t.wait_for("[1 Dashboard]").await?;
    let pid = t.pid()?;
    tokio::time::sleep(SETTLE).await;
    let inprocess_total = cpu_over(&[&pid], IDLE).await[0];
    t.quit(&pid).await?;
    drop(t);
    let inprocess_console = inprocess_total
        .zip(idle_server)
        .map(|(a, b)| (a - b).max(0.0));
    setup.push(Phase::sequential(
        "idle: server alone, with a remote console, an in-process console",
        &mut none,
        started.elapsed(),
    ));

    // 2. The rushes, A B B A; B with a remote console watching.
    let (first, ids, mut rush_setup) = on_sale(server, p, p.capacity).await?;
    setup.append(&mut rush_setup);
    let mut events = vec![first.id];
    for name in [
        "A1 (no console)",
        "B1 (console)",
        "B2 (console)",
        "A2 (no console)",
    ] {
        events.push(create_event(admin, &format!("Rush {name}"), p.capacity).await?);
    }
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        ids.iter()
            .map(|id| json!({"attendee_id": id}).to_string().into())
            .collect(),
    );
    // A first rush on a fresh file runs faster than every later one (the file and its indexes
    // grow); it warms up and is not counted.
    let warm_up = rush(
        "rush W, warm-up (not counted)",
        admin,
        p,
        &events[0],
        &bodies,
    )
    .await?;
    setup.push(warm_up);
    let events = &events[1..];
    let mut phases = Vec::new();
    let mut console_cpu = Vec::new();
    for (i, (name, watched)) in [
        ("rush A1, no console", false),
        ("rush B1, console on the dashboard", true),
        ("rush B2, console on the dashboard", true),
        ("rush A2, no console", false),
    ]
    .into_iter()
    .enumerate()
    {
        let attached = if watched {
            let (t, pid) = remote_console(server).await?;
            tokio::time::sleep(SETTLE).await;
            Some((t, pid))
        } else {
            None
        };
        let before = attached.as_ref().and_then(|(_, pid)| cpu_seconds(pid));
        let phase = rush(name, admin, p, &events[i], &bodies).await?;
        if let Some((t, pid)) = attached {
            let after = cpu_seconds(&pid);
            console_cpu.push(
                before
                    .zip(after)
                    .map(|(b, a)| (a - b) * 1000.0 / phase.seconds.max(1e-9)),
            );
            t.quit(&pid).await?;
        }
        if phase.error_count > 0 {
            bail!(
                "{name}: {} errors: {:?}",
                phase.error_count,
                phase.error_samples
            );
        }
        phases.push(phase);
    }
    let mean = |x: f64, y: f64| (x + y) / 2.0;
    let without = mean(phases[0].rps, phases[3].rps);
    let with_console = mean(phases[1].rps, phases[2].rps);
    let kept = if without > 0.0 {
        with_console / without
    } else {
        0.0
    };

    let checks = vec![
        Check::new(
            "an idle remote console costs under 5 ms of CPU per second",
            remote_idle.is_some_and(|v| v < IDLE_LIMIT_MS_PER_S),
            format!(
                "console process {}; server {} with it, {} alone",
                ms(remote_idle),
                ms(server_with_console),
                ms(idle_server)
            ),
        ),
        Check::new(
            "an idle in-process console costs under 5 ms of CPU per second",
            inprocess_console.is_some_and(|v| v < IDLE_LIMIT_MS_PER_S),
            format!(
                "serve --console {} in all, minus the idle server's {}: {}",
                ms(inprocess_total),
                ms(idle_server),
                ms(inprocess_console)
            ),
        ),
        Check::new(
            "a rush watched by a console keeps 90% of its rate",
            kept >= KEEP_AT_LEAST,
            format!(
                "B1 {:.0}, B2 {:.0} reg/s with a console vs A1 {:.0}, A2 {:.0} without: {:.0}%",
                phases[1].rps,
                phases[2].rps,
                phases[0].rps,
                phases[3].rps,
                kept * 100.0
            ),
        ),
    ];
    let values = BTreeMap::from([
        ("idle_seconds", json!(IDLE.as_secs())),
        ("idle_server_alone_cpu_ms_per_s", json!(idle_server)),
        ("idle_remote_console_cpu_ms_per_s", json!(remote_idle)),
        (
            "idle_server_with_remote_console_cpu_ms_per_s",
            json!(server_with_console),
        ),
        (
            "idle_serve_console_process_cpu_ms_per_s",
            json!(inprocess_total),
        ),
        (
            "idle_in_process_console_cpu_ms_per_s",
            json!(inprocess_console),
        ),
        ("rush_without_console_registrations_per_s", json!(without)),
        ("rush_with_console_registrations_per_s", json!(with_console)),
        ("rate_kept", json!(kept)),
        ("console_cpu_ms_per_s_during_rush", json!(console_cpu)),
        (
            "rushes_registrations_per_s",
            json!(phases.iter().map(|p| p.rps).collect::<Vec<_>>()),
        ),
    ]);
    let headline = phases[1].clone();
    setup.push(phases[0].clone());
    setup.push(phases[2].clone());
    setup.push(phases[3].clone());
    Ok(Outcome {
        headline,
        setup,
        values,
        checks,
        figures: Vec::new(),
    })
}

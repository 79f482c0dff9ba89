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
//!    fastest), rushes of the same attendees on fresh events, interleaved A B A B ... A with
//!    [`PAIRS`] B: A with no console, B with a remote console on the dashboard in tmux (attached
//!    before, quit after). Every rush starts after the same pause ([`SETTLE`], the time a console
//!    gets to start). The console on the same two cores polls the API every second (the box's
//!    figures, the events on sale, `/metrics`), which is at least what an in-process console costs
//!    the server: the same reads, plus the HTTP around them.
//!
//! The verdict compares like with like. Rushes run slower as the file grows, so each B is compared
//! with the mean of the A right before and the A right after it, which cancels a steady decline;
//! and the run-to-run noise is the A rushes' scatter around a straight line through them (their
//! plain standard deviation, trend included, is reported too). The console "does not slow the API
//! measurably" when the mean difference of the B rushes from their A neighbours is inside that
//! noise; a paired t statistic over the B rushes is reported beside it.
//!
//! Checks: an idle dashboard costs under 5 ms of CPU per second (remote process, and in-process
//! console over the idle server), the rushes with a console keep at least 90% of the rate of the A
//! rushes around them (on average), and the slowdown is not measurable as above.

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
/// Rushes with a console (B) after the warm-up; each runs between two without (A): A B A B ... A.
const PAIRS: usize = 4;

/// The rushes with a console (B) against those without (A) around them.
#[derive(Debug, Clone, PartialEq)]
struct Comparison {
    /// Per B: its rate over the mean of the A right before and the A right after it.
    kept: Vec<f64>,
    kept_mean: f64,
    a_mean: f64,
    /// The sample standard deviation of the A rates, trend and noise together.
    a_sd: f64,
    /// How much the A rates change from one rush to the next on average (the file grows): the
    /// slope of a straight line through them, per rush (A and B alike).
    a_trend_per_rush: f64,
    /// The A runs' scatter around that line (residual standard deviation): the run-to-run noise.
    a_noise_sd: f64,
    /// The mean of B minus the mean of its two A neighbours, in registrations per second.
    mean_difference: f64,
    /// `mean_difference` over the standard error of those differences (`None` when they are all
    /// equal).
    paired_t: Option<f64>,
    /// The two-sided 5% critical value of Student's t for `pairs - 1` degrees of freedom.
    t_critical: f64,
    /// `|mean_difference| <= a_noise_sd`: the console's effect, if any, is inside the noise of runs
    /// without it.
    not_measurable: bool,
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

/// The sample standard deviation (n - 1); 0 for fewer than two values.
fn sd(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

/// Student's t, two-sided 5%, for 1 to 10 degrees of freedom (more: the normal's 1.96, close enough
/// past 10).
fn t_critical(df: usize) -> f64 {
    const TABLE: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    df.checked_sub(1)
        .and_then(|i| TABLE.get(i))
        .copied()
        .unwrap_or(1.96)
}

/// The least-squares line through `(x, y)`: (slope, residual standard deviation with n - 2
/// degrees of freedom; 0 for fewer than three points).
fn line(points: &[(f64, f64)]) -> (f64, f64) {
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let (mx, my) = (mean(&xs), mean(&ys));
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    if points.len() < 3 {
        return (slope, 0.0);
    }
    let ssr: f64 = points
        .iter()
        .map(|(x, y)| (y - (my + slope * (x - mx))).powi(2))
        .sum();
    (slope, (ssr / (points.len() - 2) as f64).sqrt())
}

/// `a` are the rushes without a console in run order, `b` those with one, `b[i]` run between
/// `a[i]` and `a[i + 1]` (so `a` has one more).
fn compare(a: &[f64], b: &[f64]) -> Comparison {
    let around: Vec<f64> = a.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    let kept: Vec<f64> = b
        .iter()
        .zip(&around)
        .map(|(b, a)| if *a > 0.0 { b / a } else { 0.0 })
        .collect();
    let diffs: Vec<f64> = b.iter().zip(&around).map(|(b, a)| b - a).collect();
    let mean_difference = mean(&diffs);
    let se = sd(&diffs) / (diffs.len() as f64).sqrt();
    // A runs at rush 0, 2, 4, ... of the interleaved order.
    let points: Vec<(f64, f64)> = a
        .iter()
        .enumerate()
        .map(|(i, v)| (2.0 * i as f64, *v))
        .collect();
    let (a_trend_per_rush, a_noise_sd) = line(&points);
    Comparison {
        kept_mean: mean(&kept),
        kept,
        a_mean: mean(a),
        a_sd: sd(a),
        a_trend_per_rush,
        a_noise_sd,
        mean_difference,
        paired_t: (se > 0.0).then(|| mean_difference / se),
        t_critical: t_critical(diffs.len().saturating_sub(1)),
        not_measurable: mean_difference.abs() <= a_noise_sd,
    }
}

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

    // 2. The rushes, A B A B ... A; B with a remote console watching.
    let (first, ids, mut rush_setup) = on_sale(server, p, p.capacity).await?;
    setup.append(&mut rush_setup);
    let mut runs = Vec::new();
    for pair in 1..=PAIRS {
        runs.push((format!("rush A{pair}, no console"), false));
        runs.push((format!("rush B{pair}, console on the dashboard"), true));
    }
    runs.push((format!("rush A{}, no console", PAIRS + 1), false));
    let mut events = Vec::new();
    for (name, _) in &runs {
        events.push(create_event(admin, name, p.capacity).await?);
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
        &first.id,
        &bodies,
    )
    .await?;
    setup.push(warm_up);
    let mut phases = Vec::new();
    let mut console_cpu = Vec::new();
    for ((name, watched), event) in runs.iter().zip(&events) {
        let attached = if *watched {
            Some(remote_console(server).await?)
        } else {
            None
        };
        // The same pause before every rush, with or without a console starting in it.
        tokio::time::sleep(SETTLE).await;
        let before = attached.as_ref().and_then(|(_, pid)| cpu_seconds(pid));
        let phase = rush(name, admin, p, event, &bodies).await?;
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
    let a: Vec<f64> = phases.iter().step_by(2).map(|p| p.rps).collect();
    let b: Vec<f64> = phases.iter().skip(1).step_by(2).map(|p| p.rps).collect();
    let c = compare(&a, &b);
    let pairs_text: Vec<String> = b
        .iter()
        .zip(a.windows(2))
        .zip(&c.kept)
        .enumerate()
        .map(|(i, ((b, a), k))| {
            format!(
                "B{n} {b:.0} vs A{n}/A{m} {:.0}/{:.0}: {:.0}%",
                a[0],
                a[1],
                k * 100.0,
                n = i + 1,
                m = i + 2
            )
        })
        .collect();
    let t_text = c
        .paired_t
        .map(|t| format!("{t:.2}"))
        .unwrap_or_else(|| "n/a".into());

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
            c.kept_mean >= KEEP_AT_LEAST,
            format!(
                "reg/s with a console against the mean of the rushes without one before and after \
                 it: {}; mean kept {:.1}%",
                pairs_text.join(", "),
                c.kept_mean * 100.0
            ),
        ),
        Check::new(
            "the console does not slow the API measurably",
            c.not_measurable,
            format!(
                "mean difference {:+.0} reg/s ({:+.1}% of the A mean {:.0}) against the A runs' \
                 own noise of {:.0} reg/s (sd around their trend of {:+.0} reg/s per rush; \
                 {:.0} with the trend): {}; paired t {t_text} over {PAIRS} pairs (|t| > {:.2} \
                 would be a difference at 5%)",
                c.mean_difference,
                c.mean_difference / c.a_mean.max(1e-9) * 100.0,
                c.a_mean,
                c.a_noise_sd,
                c.a_trend_per_rush,
                c.a_sd,
                if c.not_measurable {
                    "inside it"
                } else {
                    "outside it"
                },
                c.t_critical
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
        (
            "rush_order",
            json!("W, then A B A B ... A: each B between two A; W (warm-up) not counted"),
        ),
        ("rush_pairs", json!(PAIRS)),
        ("rush_without_console_registrations_per_s", json!(a)),
        ("rush_with_console_registrations_per_s", json!(b)),
        ("rate_kept_per_pair", json!(c.kept)),
        ("rate_kept", json!(c.kept_mean)),
        ("rush_without_console_mean", json!(c.a_mean)),
        ("rush_without_console_sd", json!(c.a_sd)),
        (
            "rush_without_console_trend_per_rush",
            json!(c.a_trend_per_rush),
        ),
        ("rush_without_console_noise_sd", json!(c.a_noise_sd)),
        (
            "mean_difference_with_minus_without",
            json!(c.mean_difference),
        ),
        ("paired_t", json!(c.paired_t)),
        ("paired_t_critical_5pct", json!(c.t_critical)),
        ("console_slowdown_not_measurable", json!(c.not_measurable)),
        ("console_cpu_ms_per_s_during_rush", json!(console_cpu)),
        (
            "rushes_registrations_per_s",
            json!(phases.iter().map(|p| p.rps).collect::<Vec<_>>()),
        ),
    ]);
    let headline = phases[1].clone();
    for (i, phase) in phases.iter().enumerate() {
        if i != 1 {
            setup.push(phase.clone());
        }
    }
    Ok(Outcome {
        headline,
        setup,
        values,
        checks,
        figures: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn each_console_run_is_compared_with_the_runs_around_it_and_their_noise() {
        // Without a console the rate falls by about 2 a rush (4 from one A to the next) with a
        // little noise; with one, each B is 3 under the mean of the A before and after it.
        let a = [100.0, 96.5, 92.0, 88.5, 84.0];
        let b = [95.25, 91.25, 87.25, 83.25];
        let c = compare(&a, &b);
        assert!(close(c.kept[0], 95.25 / 98.25), "{:?}", c.kept);
        assert!(close(c.mean_difference, -3.0));
        // The line through the A runs: -2 per rush, through 100.2 at the first; residuals -0.2,
        // 0.3, -0.2, 0.3, -0.2.
        assert!(close(c.a_trend_per_rush, -2.0));
        let residuals = [-0.2, 0.3, -0.2, 0.3, -0.2f64];
        let noise = (residuals.iter().map(|r| r * r).sum::<f64>() / 3.0).sqrt();
        assert!(close(c.a_noise_sd, noise), "{} {noise}", c.a_noise_sd);
        // The A runs spread widely with the trend, but 3 under is far outside their noise.
        assert!(c.a_sd > 6.0);
        assert!(!c.not_measurable);
        assert_eq!(c.paired_t, None, "four equal differences: no spread, no t");
        assert!(close(c.t_critical, 3.182));

        // B a fraction above or below the A around it: not measurable.
        let c = compare(&a, &[98.5, 94.0, 90.5, 86.0]);
        assert!(c.not_measurable, "{c:?}");
        let t = c.paired_t.expect("t");
        assert!(t.abs() < c.t_critical, "{t}");
    }
}

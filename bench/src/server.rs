//! The server under test: the real `boxoffice` binary, started in a fresh data directory on a free
//! loopback port, stopped with SIGTERM, and checked offline afterwards with `boxoffice check`.
//!
//! A `Server` that is dropped while still running is killed, so a failed benchmark never leaves a
//! stray server behind.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use hyper::StatusCode;
use serde::Serialize;

use crate::client::{Call, Target};

/// The server config every benchmark uses. Logging at `warn` keeps per-request log lines out of the
/// measurement; the connection cap is raised so it is never what limits a scenario. The benchmark
/// sends everything with the admin token (and polls `/health` anonymously) from one address, so
/// every class gets a limit far above what a scenario sends (60 million a minute, a million a
/// second): nothing is refused, and the limiter still does its work on every request, as it does
/// for kiosks in production.
pub const CONFIG_TOML: &str = "log = \"warn\"\n\n[http]\nmax_connections = 4096\n\n\
[http.rate_limit]\nanonymous_per_minute = 60000000\nkiosk_per_minute = 60000000\n\
operator_per_minute = 60000000\nadmin_per_minute = 60000000\n";

/// The `[http.rate_limit]` lines of `CONFIG_TOML`, for the benchmark to print what it runs with.
pub fn rate_limits() -> String {
    CONFIG_TOML
        .lines()
        .skip_while(|l| *l != "[http.rate_limit]")
        .skip(1)
        .collect::<Vec<_>>()
        .join(", ")
}

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

/// A running server and the directory it owns.
pub struct Server {
    binary: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    addr: SocketAddr,
    admin: Target,
}

/// How the server went down.
#[derive(Debug, Clone, Serialize)]
pub struct Stopped {
    /// True when the process exited by itself within the timeout after SIGTERM.
    pub graceful: bool,
    pub exit_status: String,
    pub seconds: f64,
}

/// The result of `boxoffice check --data-dir DIR`.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub passed: bool,
    pub exit_status: String,
    pub output: String,
}

impl Server {
    /// Starts `binary serve` in a new directory under the system temp dir and waits until
    /// `GET /health` answers 200.
    pub async fn start(binary: &Path) -> anyhow::Result<Self> {
        if !binary.is_file() {
            bail!(
                "server binary {} not found; build it with `cargo build --release --workspace`",
                binary.display()
            );
        }
        let data_dir = fresh_dir()?;
        let config_path = data_dir.join("bench.toml");
        fs::write(&config_path, CONFIG_TOML)
            .with_context(|| format!("write {}", config_path.display()))?;
        let log_path = data_dir.join("server.log");
        let log =
            File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        let log_err = log.try_clone().context("clone log file handle")?;

        let addr = free_port()?;
        let args = vec![
            "serve".to_string(),
            "--listen".to_string(),
            addr.to_string(),
            "--data-dir".to_string(),
            data_dir.display().to_string(),
            "--config".to_string(),
            config_path.display().to_string(),
        ];
        let child = Command::new(binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;

        let mut server = Self {
            binary: binary.to_path_buf(),
            data_dir,
            log_path,
            args,
            child: Some(child),
            addr,
            admin: Target::anonymous(addr)?,
        };
        if let Err(e) = server.wait_ready().await {
            // Nothing useful is left in the directory once the log tail is in the error.
            server.kill();
            let _ = server.remove_data();
            return Err(e);
        }
        let token_path = server.data_dir.join("admin.token");
        let token = fs::read_to_string(&token_path)
            .with_context(|| format!("read {}", token_path.display()))?;
        server.admin = server.admin.with_token(token.trim())?;
        Ok(server)
    }

    /// Polls `/health` until it answers 200, failing early if the process exits.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let anonymous = Target::anonymous(self.addr)?;
        let started = Instant::now();
        let mut last = String::from("no attempt yet");
        while started.elapsed() < READY_TIMEOUT {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().context("poll server process")? {
                    bail!(
                        "server exited during start-up ({status}); log tail:\n{}",
                        self.log_tail(20)
                    );
                }
            }
            match health(&anonymous).await {
                Ok(StatusCode::OK) => return Ok(()),
                Ok(status) => last = format!("GET /health answered {status}"),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(POLL).await;
        }
        bail!(
            "server not healthy after {} s (last: {last}); log tail:\n{}",
            READY_TIMEOUT.as_secs(),
            self.log_tail(20)
        )
    }

    /// A target that authenticates with the admin token written at first start.
    pub fn admin(&self) -> &Target {
        &self.admin
    }

    /// The `boxoffice` binary under test (the console scenario starts its console from it).
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's process id while it runs (for reading its CPU time from /proc).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits for the process to exit, killing it after the timeout.
    pub async fn stop(&mut self) -> anyhow::Result<Stopped> {
        let Some(mut child) = self.child.take() else {
            bail!("server already stopped")
        };
        let started = Instant::now();
        // std has no portable way to send SIGTERM and the workspace forbids unsafe code, so the
        // signal goes through kill(1).
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .context("run kill -TERM")?;
        if !sent.success() {
            bail!("kill -TERM {} failed: {sent}", child.id());
        }
        while started.elapsed() < STOP_TIMEOUT {
            if let Some(status) = child.try_wait().context("poll server process")? {
                return Ok(Stopped {
                    graceful: true,
                    exit_status: describe(status),
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
        child.kill().context("kill server after SIGTERM timeout")?;
        let status = child.wait().context("reap killed server")?;
        Ok(Stopped {
            graceful: false,
            exit_status: describe(status),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Runs `boxoffice check` over the data directory; only meaningful once the server is stopped.
    pub fn check(&self) -> anyhow::Result<Checked> {
        let out = Command::new(&self.binary)
            .arg("check")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .output()
            .with_context(|| format!("run {} check", self.binary.display()))?;
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok(Checked {
            passed: out.status.success(),
            exit_status: describe(out.status),
            output: output.trim().to_string(),
        })
    }

    /// The last `n` lines the server wrote to its log.
    pub fn log_tail(&self, n: usize) -> String {
        match fs::read_to_string(&self.log_path) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(n)..];
                if tail.is_empty() {
                    "(log is empty)".to_string()
                } else {
                    tail.join("\n")
                }
            }
            Err(e) => format!("(cannot read {}: {e})", self.log_path.display()),
        }
    }

    /// Deletes the data directory; call after `stop`.
    pub fn remove_data(&self) -> anyhow::Result<()> {
        fs::remove_dir_all(&self.data_dir)
            .with_context(|| format!("remove {}", self.data_dir.display()))
    }
}

impl Server {
    /// Kills the process at once, if it is still running.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn health(target: &Target) -> anyhow::Result<StatusCode> {
    let mut conn = target.connect().await?;
    Ok(conn.send(&Call::get("/health")).await?.status)
}

/// A new, empty directory under the system temp dir, named so concurrent runs never collide.
fn fresh_dir() -> anyhow::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("boxoffice-bench-{}-{nanos}", std::process::id()));
    fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

/// A loopback port the OS says is free. The listener is dropped before the server binds it; another
/// process could take the port in between, which start-up would then report as a failure.
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener =
        TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0 to find a free port")?;
    listener.local_addr().context("read the free port")
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit {code}"),
        None => status.to_string(),
    }
}

//! The server under test: the real `boxoffice` binary, started in a fresh data directory on a free
//! loopback port, stopped with SIGTERM, and checked offline afterwards with `boxoffice check`. The
//! `scale` scenario stops it, writes into its file, and starts it again on the same directory.
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

/// The server config every benchmark uses, verbatim: the report prints it and the JSON stores it, so
/// a figure always comes with the settings it was measured under. Anything not set here is the
/// server's default (`fixtures/boxoffice.example.toml`). The server refuses unknown keys, so this file
/// only ever holds keys the build under test accepts.
pub const CONFIG_TOML: &str = r#"# boxoffice-bench: the server config of this run. Keys not set here have the server's defaults
# (fixtures/boxoffice.example.toml), the read cache's sizes and TTLs included: the box as shipped.

# Per-request log lines would be part of the measurement.
log = "warn"

[http]
# Raised from 1024 so the connection cap never limits a scenario (one address, the benchmark's, may
# hold half of them: 2048).
max_connections = 4096

# The benchmark sends from one address with one token per role: every class gets a limit far above
# what a scenario sends (60 million a minute), so nothing is refused and the limiter still does its
# work on every request, as it does for kiosks in production.
[http.rate_limit]
anonymous_per_minute = 60000000
kiosk_per_minute = 60000000
operator_per_minute = 60000000
admin_per_minute = 60000000
"#;

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
/// How often start-up and shutdown are polled; also the resolution of the measured start-up time.
const POLL: Duration = Duration::from_millis(10);

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
        let addr = free_port()?;
        let mut server = Self {
            binary: binary.to_path_buf(),
            data_dir,
            log_path,
            args: Vec::new(),
            child: None,
            addr,
            admin: Target::anonymous(addr)?,
        };
        if let Err(e) = server.launch().await {
            // Nothing useful is left in the directory once the log tail is in the error.
            server.kill();
            let _ = server.remove_data();
            return Err(e);
        }
        Ok(server)
    }

    /// Starts the server again on the same data directory (after `stop`), on a fresh port, and
    /// answers the time from starting the process to its first `200` from `/health`.
    pub async fn restart(&mut self) -> anyhow::Result<Duration> {
        if self.child.is_some() {
            bail!("restart: the server is still running");
        }
        self.addr = free_port()?;
        let started = Instant::now();
        self.launch().await?;
        Ok(started.elapsed())
    }

    /// Spawns `serve` on `self.addr` with the data dir and config, appending to the log, and waits
    /// until it is healthy; then reads the admin token written at the first start.
    async fn launch(&mut self) -> anyhow::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("open {}", self.log_path.display()))?;
        let log_err = log.try_clone().context("clone log file handle")?;
        self.args = vec![
            "serve".to_string(),
            "--listen".to_string(),
            self.addr.to_string(),
            "--data-dir".to_string(),
            self.data_dir.display().to_string(),
            "--config".to_string(),
            self.data_dir.join("bench.toml").display().to_string(),
        ];
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("start {}", self.binary.display()))?;
        self.child = Some(child);
        self.admin = Target::anonymous(self.addr)?;
        self.wait_ready().await?;
        let token_path = self.data_dir.join("admin.token");
        let token = fs::read_to_string(&token_path)
            .with_context(|| format!("read {}", token_path.display()))?;
        self.admin = self.admin.with_token(token.trim())?;
        Ok(())
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

    /// The server as an anonymous caller sees it (published events, `/metrics`, `/api/v1/ping`).
    pub fn anonymous(&self) -> anyhow::Result<Target> {
        Target::anonymous(self.addr)
    }

    /// Creates a token with `boxoffice token create` (the only way to make one: tokens are not an API
    /// resource) and answers a target that authenticates with it. Run while serving, it is another
    /// process writing the same file, which is what the command is for.
    pub fn create_token(&self, role: &str, name: &str) -> anyhow::Result<Target> {
        let out = Command::new(&self.binary)
            .arg("token")
            .arg("create")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--role")
            .arg(role)
            .arg("--name")
            .arg(name)
            .output()
            .with_context(|| format!("run {} token create", self.binary.display()))?;
        if !out.status.success() {
            bail!(
                "token create --role {role} --name {name}: {}: {}",
                describe(out.status),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let token = String::from_utf8(out.stdout).context("token create printed non-UTF-8")?;
        self.admin.with_token(token.trim())
    }

    /// The running server's peak resident set size in bytes (`VmHWM` in /proc; Linux only).
    pub fn peak_rss(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line
            .trim_start_matches("VmHWM:")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// The database file, where the server keeps it in its data directory.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("boxoffice.db")
    }

    /// Bytes of the database file plus its write-ahead log, as they are now.
    pub fn db_bytes(&self) -> u64 {
        let db = self.db_path();
        let wal = self.data_dir.join("boxoffice.db-wal");
        [db, wal]
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
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

/// The kind of file system that holds `path`, from `statfs(2)`'s magic number: a name for the
/// common ones (`ext2/3/4`, `xfs`, `btrfs`, `tmpfs`, ...), the number in hex otherwise.
pub fn filesystem_of(path: &std::path::Path) -> Option<String> {
    let magic = u64::try_from(rustix::fs::statfs(path).ok()?.f_type).ok()?;
    Some(
        match magic {
            0xEF53 => "ext2/3/4",
            0x5846_5342 => "xfs",
            0x9123_683E => "btrfs",
            0x0102_1994 => TMPFS,
            0x8584_58F6 => RAMFS,
            0x794C_7630 => "overlayfs",
            0x2FC1_2FC1 => "zfs",
            0x9FA0 => "proc",
            _ => return Some(format!("{magic:#x}")),
        }
        .to_string(),
    )
}

const TMPFS: &str = "tmpfs";
const RAMFS: &str = "ramfs";

/// A new, empty directory under the system temp dir, named so concurrent runs never collide. A temp
/// dir in memory is refused: there `fsync` writes nothing, and every write rate would be of sales
/// that are not durable.
fn fresh_dir() -> anyhow::Result<PathBuf> {
    if let Some(kind) = filesystem_of(&std::env::temp_dir()).filter(|k| k == TMPFS || k == RAMFS) {
        anyhow::bail!(
            "the temp dir {} is on {kind}, where fsync writes nothing: the rates would not be of durable \
             writes; set TMPDIR to a directory on a disk",
            std::env::temp_dir().display()
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_system_of_a_path_is_its_innermost_mount() {
        // /proc is a mount of its own inside /, whatever / is.
        assert_eq!(
            filesystem_of(std::path::Path::new("/proc/self")).as_deref(),
            Some("proc")
        );
        assert!(filesystem_of(std::path::Path::new("/")).is_some_and(|k| k != "proc"));
    }
}

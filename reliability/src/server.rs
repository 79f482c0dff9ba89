//! The server under test: the real `boxoffice` binary (`serve --listen 127.0.0.1:PORT --data-dir
//! DIR`), started with a config file of the item's choosing, optionally with a lowered open-file
//! limit, killed with SIGKILL or stopped with SIGTERM, and watched through `/proc/PID` (peak and
//! current resident memory, open file descriptors). `boxoffice check --json` runs on its data dir.
//!
//! A `Server` dropped while its process runs kills it, so a failed item never leaves a server behind.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Spec {
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    /// The config file's text; written next to the data dir (never inside it: the disk items fill
    /// and break the data dir's file system, and the config must still be readable).
    pub config: String,
    /// `RLIMIT_NOFILE` (soft and hard) for the server process, set with prlimit(2) right after it
    /// starts, before it is ready.
    pub nofile: Option<u64>,
}

/// A running server.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub spec: Spec,
    log: PathBuf,
}

/// `boxoffice check --json`: the violations it found (none on a good file) and its exit status.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub passed: bool,
    pub integrity: String,
    pub violations: Vec<String>,
    pub output: String,
}

impl Server {
    /// Starts `binary serve` on a free loopback port and waits until `/health` answers (any status:
    /// the disk items start servers on file systems that health already calls failing).
    pub async fn start(spec: &Spec) -> anyhow::Result<Self> {
        if !spec.binary.is_file() {
            bail!(
                "server binary {} not found; build it with `cargo build --release --workspace`",
                spec.binary.display()
            );
        }
        fs::create_dir_all(&spec.data_dir)
            .with_context(|| format!("create {}", spec.data_dir.display()))?;
        let side = side_dir(&spec.data_dir);
        fs::create_dir_all(&side).with_context(|| format!("create {}", side.display()))?;
        let config = side.join("config.toml");
        fs::write(&config, &spec.config).with_context(|| format!("write {}", config.display()))?;
        let log = side.join("server.log");
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("open {}", log.display()))?;
        let err = out.try_clone()?;
        let addr = free_port()?;
        let child = Command::new(&spec.binary)
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("start {}", spec.binary.display()))?;
        let mut server = Self {
            child: Some(child),
            addr,
            spec: spec.clone(),
            log,
        };
        if let Some(n) = spec.nofile {
            server.limit_open_files(n)?;
        }
        server.wait_ready().await?;
        Ok(server)
    }

    fn limit_open_files(&self, n: u64) -> anyhow::Result<()> {
        let pid = self.pid().context("server not running")?;
        let pid = rustix::process::Pid::from_raw(i32::try_from(pid)?)
            .context("the server's pid is not a valid pid")?;
        let limit = rustix::process::Rlimit {
            current: Some(n),
            maximum: Some(n),
        };
        rustix::process::prlimit(Some(pid), rustix::process::Resource::Nofile, limit)
            .context("prlimit RLIMIT_NOFILE on the server")?;
        Ok(())
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let started = Instant::now();
        let mut last = String::from("no answer yet");
        while started.elapsed() < READY_TIMEOUT {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "server exited during start-up ({status}); log tail:\n{}",
                    self.log_tail(20)
                );
            }
            match client.get(self.url("/health")).send().await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "server did not answer /health within {} s (last: {last}); log tail:\n{}",
            READY_TIMEOUT.as_secs(),
            self.log_tail(20)
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The admin token the server wrote on its first start.
    pub fn admin_token(&self) -> anyhow::Result<String> {
        let path = self.spec.data_dir.join("admin.token");
        Ok(fs::read_to_string(&path)
            .with_context(|| format!("read {}", path.display()))?
            .trim()
            .to_string())
    }

    /// Whether the process is still running (it has not exited or been killed).
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL: no chance to flush anything or say goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit; true when it exited 0 within the timeout (else it is killed).
    pub async fn stop(&mut self) -> anyhow::Result<bool> {
        let Some(mut child) = self.child.take() else {
            return Ok(false);
        };
        let pid = rustix::process::Pid::from_raw(i32::try_from(child.id())?)
            .context("the server's pid is not a valid pid")?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .context("SIGTERM the server")?;
        let started = Instant::now();
        while started.elapsed() < STOP_TIMEOUT {
            if let Some(status) = child.try_wait()? {
                return Ok(status.success());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(false)
    }

    /// Peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        proc_status_kb(self.pid()?, "VmHWM:").map(|kb| kb * 1024)
    }

    /// Resident memory now (VmRSS), in bytes.
    pub fn rss(&self) -> Option<u64> {
        proc_status_kb(self.pid()?, "VmRSS:").map(|kb| kb * 1024)
    }

    /// CPU time the server has used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(&format!("/proc/{}/stat", self.pid()?))
    }

    /// Open file descriptors now (entries of /proc/PID/fd).
    pub fn open_fds(&self) -> Option<u64> {
        let dir = format!("/proc/{}/fd", self.pid()?);
        Some(fs::read_dir(dir).ok()?.count() as u64)
    }

    /// The soft open-file limit the kernel applies to the server (from /proc/PID/limits).
    pub fn nofile_limit(&self) -> Option<u64> {
        let text = fs::read_to_string(format!("/proc/{}/limits", self.pid()?)).ok()?;
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse().ok()
    }

    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log, n)
    }

    /// `boxoffice check --json` over the data dir (safe while serving: it only reads, after taking
    /// the write lock briefly to see the schema is current).
    pub fn check(&self) -> anyhow::Result<Checked> {
        check(&self.spec.binary, &self.spec.data_dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `boxoffice check --json --data-dir DIR`.
pub fn check(binary: &Path, data_dir: &Path) -> anyhow::Result<Checked> {
    let out = Command::new(binary)
        .arg("check")
        .arg("--json")
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .with_context(|| format!("run {} check", binary.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let parsed: Option<serde_json::Value> = serde_json::from_str(&stdout).ok();
    let (integrity, violations) = match &parsed {
        Some(v) => (
            v["integrity"].as_str().unwrap_or("?").to_string(),
            v["violations"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x.as_str().unwrap_or("?").to_string())
                        .collect()
                })
                .unwrap_or_default(),
        ),
        None => (
            "not run".to_string(),
            vec![format!("check did not report: {}", stderr.trim())],
        ),
    };
    Ok(Checked {
        passed: out.status.success() && integrity == "ok" && violations.is_empty(),
        integrity,
        violations,
        output: format!("{}{}", stdout.trim(), stderr.trim()),
    })
}

/// utime + stime of a /proc/.../stat file, in seconds (the kernel counts in 1/100 s ticks).
pub fn cpu_seconds(stat_path: &str) -> Option<f64> {
    let text = fs::read_to_string(stat_path).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis are fixed.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The directory beside `data_dir` that holds the config and the log.
pub fn side_dir(data_dir: &Path) -> PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_string());
    data_dir.with_file_name(format!("{name}.side"))
}

pub fn log_tail(path: &Path, n: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A loopback port the OS says is free right now.
fn free_port() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// Raises this process's own soft open-file limit to its hard limit: the hostile items open
/// thousands of sockets from here.
pub fn raise_own_nofile() {
    let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if now.maximum.is_some() && now.current != now.maximum {
        let _ = rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: now.maximum,
                maximum: now.maximum,
            },
        );
    }
}

/// The size of a file in bytes, 0 when it does not exist.
pub fn file_size(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A fresh working directory under the system temp dir for one item's data dirs.
pub fn work_dir(item: &str) -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "boxoffice-reliability-{item}-{}-{nanos}",
        std::process::id()
    ));
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

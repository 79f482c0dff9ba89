//! Test support: `spawn_app()` runs the real router and server loop on 127.0.0.1 port 0 over a real
//! SQLite file in a temp dir, on its own runtime thread, and hands back a small HTTP client.

use std::net::SocketAddr;
use std::sync::Arc;

use boxoffice::app::{Actor, App, AppOptions};
use boxoffice::config::HttpConfig;
use boxoffice::domain::Role;
use serde_json::{json, Value};

pub struct TestApp {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn spawn_app() -> TestApp {
    spawn_app_with(HttpConfig::default())
}

pub fn spawn_app_with(cfg: HttpConfig) -> TestApp {
    spawn_app_full(cfg, Arc::new(boxoffice::app::SystemClock))
}

pub fn spawn_app_full(cfg: HttpConfig, clock: Arc<dyn boxoffice::app::Clock>) -> TestApp {
    spawn_app_opts(cfg, AppOptions::default(), clock)
}

pub fn spawn_app_opts(
    cfg: HttpConfig,
    opts: AppOptions,
    clock: Arc<dyn boxoffice::app::Clock>,
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = Arc::new(
        App::open_with_clock(&dir.path().join("boxoffice.db"), opts, clock).expect("open app"),
    );
    let admin = app
        .create_token(&Actor::local("test"), Role::Admin, "admin")
        .expect("admin token")
        .secret;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_app = app.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(cfg.blocking_threads)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send addr");
            let router = boxoffice::http::router(server_app.clone(), &cfg);
            boxoffice::http::serve(listener, server_app, router, &cfg, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
    });
    let addr = addr_rx.recv().expect("server address");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .expect("client");
    TestApp {
        addr,
        app,
        admin,
        dir,
        client,
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.bytes))
        })
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts this is a problem document with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.bytes)
        );
        assert_eq!(self.content_type(), "application/problem+json");
        let p = self.json();
        assert_eq!(p["status"], status);
        assert_eq!(p["code"], code, "problem: {p}");
        assert!(
            p["title"].is_string() && p["detail"].is_string() && p["type"].is_string(),
            "problem: {p}"
        );
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        Resp {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            bytes: r.bytes().await.expect("body").to_vec(),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send("GET", path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.send("POST", path, token, Some(body)).await
    }

    pub fn token(&self, role: Role, name: &str) -> String {
        self.app
            .create_token(&Actor::local("test"), role, name)
            .expect("token")
            .secret
    }

    /// A published event of this capacity; returns its id.
    pub async fn published_event(&self, capacity: i64) -> String {
        let r = self
            .post(
                "/api/v1/events",
                Some(&self.admin),
                json!({"name": "Gala", "venue": "Hall", "starts_at": "2030-01-01T20:00:00Z", "capacity": capacity}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.bytes));
        let id = r.json()["id"].as_str().expect("id").to_string();
        let p = self
            .post(
                &format!("/api/v1/events/{id}/publish"),
                Some(&self.admin),
                json!({}),
            )
            .await;
        assert_eq!(p.status, 200);
        id
    }

    pub async fn attendee(&self, n: usize) -> String {
        let r = self
            .post(
                "/api/v1/attendees",
                Some(&self.admin),
                json!({"name": format!("Person {n}"), "email": format!("p{n}@example.org")}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.bytes));
        r.json()["id"].as_str().expect("id").to_string()
    }

    pub async fn register(&self, event: &str, attendee: &str) -> Resp {
        self.post(
            &format!("/api/v1/events/{event}/registrations"),
            Some(&self.admin),
            json!({"attendee_id": attendee}),
        )
        .await
    }

    /// Every row of every table, as text: a rejected request must leave this exactly as it was.
    pub fn snapshot(&self) -> String {
        snapshot(&self.dir.path().join("boxoffice.db"))
    }
}

pub fn snapshot(db: &std::path::Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
    let mut out = String::new();
    for table in [
        "events",
        "attendees",
        "registrations",
        "outbox",
        "tokens",
        "idempotency",
        "audit",
        "webhooks",
        "deliveries",
        "outbox_progress",
    ] {
        let mut st = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY 1"))
            .expect("prepare");
        let cols = st.column_count();
        let rows = st
            .query_map([], |r| {
                let mut line = String::new();
                for i in 0..cols {
                    let v: rusqlite::types::Value = r.get(i)?;
                    line.push_str(&format!("{v:?}|"));
                }
                Ok(line)
            })
            .expect("query")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows");
        out.push_str(&format!("{table}: {}\n{}\n", rows.len(), rows.join("\n")));
    }
    out
}

/// The real `boxoffice` binary, serving headless on a free loopback port.
pub struct Server {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub dir: std::path::PathBuf,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_boxoffice")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Server {
    /// Starts `boxoffice serve` on `dir` and waits until `/health` answers.
    pub async fn start(dir: &std::path::Path) -> Server {
        Server::start_with(dir, &[]).await
    }

    /// `start` with more arguments for `serve` (e.g. `--config FILE`). Standard output and error go
    /// to `dir/server.log`.
    pub async fn start_with(dir: &std::path::Path, extra: &[&str]) -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        Server::start_on(dir, addr, extra).await
    }

    /// `start_with` on a given address.
    pub async fn start_on(dir: &std::path::Path, addr: SocketAddr, extra: &[&str]) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("log");
        let child = std::process::Command::new(bin())
            .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(dir)
            .args(extra)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn boxoffice");
        let server = Server {
            child,
            addr,
            dir: dir.to_path_buf(),
        };
        server.wait_healthy().await;
        server
    }

    pub async fn wait_healthy(&self) {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = client
                .get(format!("http://{}/health", self.addr))
                .send()
                .await
            {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "server did not become healthy; log:\n{}",
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_string()
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.send_sigterm();
        self.wait_exit()
    }

    /// SIGTERM without waiting for the exit.
    pub fn send_sigterm(&self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    }

    /// The exit status, waiting up to 15 s for it (then SIGKILL and panic).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.kill9();
        panic!("server did not stop within 15 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill9();
        }
    }
}

/// Runs the binary with `args`; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run boxoffice");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Samples of a `/metrics` scrape: (name, labels, value).
pub type Samples = Vec<(String, serde_json::Map<String, Value>, f64)>;

/// A `/metrics` text parsed by the reference Prometheus parser (`tests/parse_metrics.py`, which also
/// checks every histogram is well formed): the samples, and each family's declared type.
pub fn parse_metrics(text: &[u8]) -> (Samples, std::collections::HashMap<String, String>) {
    let mut child = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/parse_metrics.py"
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed to parse /metrics");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text).expect("write metrics");
    }
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(text)
    );
    let mut samples = Vec::new();
    let mut families = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        if let Some(name) = v["family"].as_str() {
            let kind = v["type"].as_str().expect("type").to_string();
            families.insert(name.to_string(), kind);
            continue;
        }
        let labels = v[1].as_object().cloned().unwrap_or_default();
        samples.push((
            v[0].as_str().expect("name").to_string(),
            labels,
            v[2].as_f64().expect("value"),
        ));
    }
    (samples, families)
}

/// `GET /metrics` (anonymous, as Prometheus scrapes), parsed by the reference parser.
pub async fn scrape_families(t: &TestApp) -> (Samples, std::collections::HashMap<String, String>) {
    let r = t.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type().starts_with("text/plain; version=0.0.4"),
        "{}",
        r.content_type()
    );
    parse_metrics(&r.bytes)
}

/// `GET /metrics`, parsed by the reference Prometheus parser: (name, labels, value) per sample.
pub async fn scrape(t: &TestApp) -> Samples {
    scrape_families(t).await.0
}

/// The value of the sample with this name whose labels include `labels`.
pub fn sample(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
}

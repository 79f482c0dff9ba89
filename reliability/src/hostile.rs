//! Item 2, hostile clients (I8): each attack runs against a fresh server while a well-behaved client
//! (one keep-alive connection, a read or a write every 10 ms) measures its own latency. Reported per
//! attack: the process stayed up, the good client's p99 and errors during the attack, the server's
//! peak resident memory (VmHWM), and whether a new client is served normally right after.
//!
//! The attacks speak raw HTTP/1.1 over tokio sockets, since no well-behaved client library will send
//! a 64 MB header line or never read its responses. `RELIABILITY_ATTACK=slowloris` (any part of an
//! attack's name) runs only the matching attacks, for looking into one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::client::Api;
use crate::report::{ItemReport, Table};
use crate::server::{self, Server, Spec};
use crate::stats::{mib, Latency};
use crate::{Mode, Options};

/// Request logs at `info` would write a line per flooded request; the rest is the default config
/// (64 KiB bodies, 16 KiB heads of at most 64 headers, 10 s header/idle, body and write timeouts,
/// 1024 connections).
const CONFIG: &str = "log = \"warn\"\n";
/// The open-file limit of the server in the descriptor attack.
const LOW_NOFILE: u64 = 256;
const P99_TARGET_MS: f64 = 100.0;
const RSS_TARGET: u64 = 200 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    HugeContentLength,
    HugeHeaderLine,
    ManyHeaders,
    Slowloris,
    SlowReaders,
    PipelinedFlood,
    ConnectionFlood,
    DescriptorBurst,
}

const ATTACKS: &[Attack] = &[
    Attack::HugeContentLength,
    Attack::HugeHeaderLine,
    Attack::ManyHeaders,
    Attack::Slowloris,
    Attack::SlowReaders,
    Attack::PipelinedFlood,
    Attack::ConnectionFlood,
    Attack::DescriptorBurst,
];

impl Attack {
    fn name(self) -> &'static str {
        match self {
            Attack::HugeContentLength => "Content-Length: 100000000000",
            Attack::HugeHeaderLine => "64 MB header line",
            Attack::ManyHeaders => "10,000 headers",
            Attack::Slowloris => "slowloris",
            Attack::SlowReaders => "slow readers (never read)",
            Attack::PipelinedFlood => "pipelined flood",
            Attack::ConnectionFlood => "connection flood past the cap",
            Attack::DescriptorBurst => "connection burst past the open-file limit",
        }
    }

    /// The attacks that wait out a server timeout (10 s) run longer, so the timeout is seen to act.
    fn duration(self, mode: Mode) -> Duration {
        let waits_for_timeouts = matches!(
            self,
            Attack::Slowloris
                | Attack::SlowReaders
                | Attack::ConnectionFlood
                | Attack::DescriptorBurst
        );
        Duration::from_secs(match (mode, waits_for_timeouts) {
            (Mode::Short, false) => 6,
            (Mode::Short, true) => 14,
            (Mode::Long, _) => 30,
        })
    }
}

/// Counters an attack keeps (responses by status, connections refused, closed by the server, ...).
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn add(&self, key: impl Into<String>, n: u64) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(key.into()).or_default() += n;
        }
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AttackFigures {
    pub attack: String,
    pub seconds: f64,
    pub stayed_up: bool,
    pub good_client: Latency,
    /// The same, reads (a GET of the event) and writes (an attendee created, one fsync) apart.
    pub good_client_reads: Latency,
    pub good_client_writes: Latency,
    /// The good client alone, just before the attack.
    pub baseline: Latency,
    pub baseline_reads: Latency,
    pub baseline_writes: Latency,
    pub good_client_errors: u64,
    pub peak_rss_bytes: u64,
    /// CPU used during the attack, as a share of one core: the server, and this process (attackers
    /// and the good client).
    pub server_cpu_pct: f64,
    pub attacker_cpu_pct: f64,
    pub max_open_fds: u64,
    pub nofile_limit: Option<u64>,
    pub serves_after: bool,
    pub serves_after_ms: f64,
    pub attack_tally: BTreeMap<String, u64>,
}

pub async fn run(opts: &Options) -> anyhow::Result<ItemReport> {
    let work = server::work_dir("hostile")?;
    let mut all = Vec::new();
    // `RELIABILITY_ATTACK=slowloris` runs only the attacks whose name contains that text.
    let only = std::env::var("RELIABILITY_ATTACK").unwrap_or_default();
    for (i, attack) in ATTACKS.iter().enumerate() {
        if attack.name().contains(only.as_str()) {
            all.push(one(opts, &work, i, *attack).await?);
        }
    }

    let mut r = ItemReport::new("2. hostile clients");
    let mut t = Table::new(&[
        "attack",
        "stayed up",
        "good client p99: all (reads / writes)",
        "same, before the attack",
        "good client errors (requests)",
        "peak RSS",
        "CPU: server / attacker (% of a core)",
        "serves normally after",
        "what the attack saw",
    ]);
    for f in &all {
        t.row(vec![
            f.attack.clone(),
            yes(f.stayed_up).to_string(),
            format!(
                "{:.1} ms{} ({:.1} / {:.1})",
                f.good_client.p99_ms,
                if f.good_client.p99_ms < P99_TARGET_MS {
                    ""
                } else {
                    " over 100"
                },
                f.good_client_reads.p99_ms,
                f.good_client_writes.p99_ms,
            ),
            format!(
                "{:.1} ms ({:.1} / {:.1})",
                f.baseline.p99_ms, f.baseline_reads.p99_ms, f.baseline_writes.p99_ms,
            ),
            format!("{} ({})", f.good_client_errors, f.good_client.requests),
            format!(
                "{}{}",
                mib(f.peak_rss_bytes),
                if f.peak_rss_bytes < RSS_TARGET {
                    ""
                } else {
                    " (over 200 MB)"
                }
            ),
            format!("{:.0} / {:.0}", f.server_cpu_pct, f.attacker_cpu_pct),
            if f.serves_after {
                format!("yes ({:.0} ms)", f.serves_after_ms)
            } else {
                "NO".to_string()
            },
            format!(
                "{}; server's open files at most {}{}",
                tally_text(&f.attack_tally),
                f.max_open_fds,
                match f.nofile_limit {
                    Some(l) if l < 4096 => format!(" (limit {l})"),
                    _ => String::new(),
                }
            ),
        ]);
        r.must(f.stayed_up, format!("{}: the server died", f.attack));
        r.must(
            f.serves_after,
            format!("{}: not served normally after the attack", f.attack),
        );
        r.must(
            f.peak_rss_bytes < RSS_TARGET,
            format!(
                "{}: peak RSS {} over 200 MB",
                f.attack,
                mib(f.peak_rss_bytes)
            ),
        );
        r.must(
            f.good_client.requests > 0,
            format!("{}: the good client got nothing through", f.attack),
        );
    }
    r.table = t;
    r.note(format!(
        "a fresh server per attack with the default limits (log at warn); the descriptor burst runs \
         it with RLIMIT_NOFILE {LOW_NOFILE}; the good client's p99 target is {P99_TARGET_MS:.0} ms \
         (reported, not enforced: the machine's load moves it), peak RSS must stay under 200 MB"
    ));
    r.figures = serde_json::to_value(&all)?;
    if r.passed {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        r.note(format!("data kept in {}", work.display()));
    }
    Ok(r)
}

/// The tally for the table; the summed time connections were held becomes a mean per cut.
fn tally_text(tally: &BTreeMap<String, u64>) -> String {
    let cuts = tally.get("cut by the server").copied().unwrap_or(0);
    tally
        .iter()
        .map(|(k, v)| match k.as_str() {
            "ms held before the cut" => format!(
                "held {:.1} s on average before the cut",
                *v as f64 / 1000.0 / cuts.max(1) as f64
            ),
            _ => format!("{k}: {v}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

async fn one(
    opts: &Options,
    work: &std::path::Path,
    i: usize,
    attack: Attack,
) -> anyhow::Result<AttackFigures> {
    let spec = Spec {
        binary: opts.binary.clone(),
        data_dir: work.join(format!("data-{i}")),
        config: CONFIG.to_string(),
        nofile: (attack == Attack::DescriptorBurst).then_some(LOW_NOFILE),
    };
    let mut server = Server::start(&spec).await?;
    let token = server.admin_token()?;
    let api = Api::new(&server.url(""), &token, Duration::from_secs(10))?;
    let event = api.published_event("Hostile", 1_000_000).await?;
    if attack == Attack::SlowReaders {
        // Large answers fill the socket buffers sooner: 60 published events with long descriptions.
        for n in 0..60 {
            api.post(
                "/api/v1/events",
                serde_json::json!({"name": format!("Filler {n}"), "venue": "V", "starts_at": "2030-01-01T20:00:00Z",
                    "capacity": 10, "description": "x".repeat(900)}),
            )
            .await?;
        }
        let list = api.get("/api/v1/events?limit=500&status=draft").await?;
        for e in list.body["items"].as_array().cloned().unwrap_or_default() {
            if let Some(id) = e["id"].as_str() {
                api.post(
                    &format!("/api/v1/events/{id}/publish"),
                    serde_json::json!({}),
                )
                .await?;
            }
        }
    }

    // The good client starts first and holds its one keep-alive connection throughout. It runs on
    // its own thread and runtime, so the attackers' tasks in this process never delay its requests;
    // only the machine's CPU is shared.
    let good_stop = Arc::new(AtomicBool::new(false));
    let good = {
        let (base, token, event, stop) = (
            server.url(""),
            token.clone(),
            event.clone(),
            good_stop.clone(),
        );
        std::thread::spawn(move || -> anyhow::Result<(Vec<Sample>, u64)> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let api = Api::new(&base, &token, Duration::from_secs(10))?;
                Ok(good_client(api, event, stop).await)
            })
        })
    };
    // Its latency before the attack is the baseline on this machine at this moment.
    let baseline_from = Instant::now() + Duration::from_millis(300);
    tokio::time::sleep(match opts.mode {
        Mode::Short => Duration::from_secs(3),
        Mode::Long => Duration::from_secs(10),
    })
    .await;

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let ctx = Ctx {
        addr: server.addr,
        token: token.clone(),
        event: event.clone(),
        stop: stop.clone(),
        tally: tally.clone(),
    };
    let started = Instant::now();
    let cpu_before = (server.cpu_seconds(), server::cpu_seconds("/proc/self/stat"));
    let duration = attack.duration(opts.mode);
    let attackers = tokio::spawn(launch(attack, ctx));
    let mut max_fds = 0;
    let pid_fds = |s: &Server| s.open_fds().unwrap_or(0);
    while started.elapsed() < duration {
        max_fds = max_fds.max(pid_fds(&server));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    good_stop.store(true, Ordering::SeqCst);
    let (samples, errors) = good
        .join()
        .map_err(|_| anyhow::anyhow!("the good client panicked"))??;
    stop.store(true, Ordering::SeqCst);
    let _ = attackers.await;
    let seconds = started.elapsed().as_secs_f64();
    let before = split(&samples, baseline_from, started);
    let during = split(&samples, started, Instant::now());
    let pct = |before: Option<f64>, after: Option<f64>| match (before, after) {
        (Some(b), Some(a)) => ((a - b) / seconds * 1000.0).round() / 10.0,
        _ => 0.0,
    };
    let server_cpu_pct = pct(cpu_before.0, server.cpu_seconds());
    let attacker_cpu_pct = pct(cpu_before.1, server::cpu_seconds("/proc/self/stat"));
    let peak_rss = server.peak_rss().unwrap_or(0);
    let nofile_limit = server.nofile_limit();
    let stayed_up = server.alive();

    // Right after: a new client on a new connection must be served, a read and a write.
    let after = Instant::now();
    let mut serves_after = false;
    if stayed_up {
        while after.elapsed() < Duration::from_secs(10) {
            let fresh = Api::new(&server.url(""), &token, Duration::from_secs(5))?;
            let health = fresh.get_anonymous("/health").await;
            let write = fresh.new_attendee("after", u64::try_from(i)?).await;
            let read = fresh.get(&format!("/api/v1/events/{event}")).await;
            if matches!(&health, Ok(h) if h.status == 200)
                && matches!(&write, Ok(w) if w.status == 201 || w.status == 409)
                && matches!(&read, Ok(r) if r.status == 200)
            {
                serves_after = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let serves_after_ms = after.elapsed().as_secs_f64() * 1000.0;
    if stayed_up {
        server.stop().await?;
    }
    Ok(AttackFigures {
        attack: attack.name().to_string(),
        seconds,
        stayed_up,
        good_client: during[0],
        good_client_reads: during[1],
        good_client_writes: during[2],
        baseline: before[0],
        baseline_reads: before[1],
        baseline_writes: before[2],
        good_client_errors: errors,
        peak_rss_bytes: peak_rss,
        server_cpu_pct,
        attacker_cpu_pct,
        max_open_fds: max_fds,
        nofile_limit,
        serves_after,
        serves_after_ms,
        attack_tally: tally.snapshot(),
    })
}

/// One request of the good client: when it started, whether it was a write, how long it took.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    write: bool,
    took: Duration,
}

/// Latency of all, of reads only and of writes only, of the samples that started in `[from, to)`.
fn split(samples: &[Sample], from: Instant, to: Instant) -> [Latency; 3] {
    let pick = |f: &dyn Fn(&Sample) -> bool| {
        let mut v: Vec<Duration> = samples
            .iter()
            .filter(|s| s.at >= from && s.at < to && f(s))
            .map(|s| s.took)
            .collect();
        Latency::from_samples(&mut v)
    };
    [pick(&|_| true), pick(&|s| !s.write), pick(&|s| s.write)]
}

/// The well-behaved client: one connection, a read of the event four times out of five and an
/// attendee created the fifth, every 10 ms. Every request's latency is kept; a failed request counts
/// as an error with its latency.
async fn good_client(api: Api, event: String, stop: Arc<AtomicBool>) -> (Vec<Sample>, u64) {
    let mut samples = Vec::new();
    let mut errors = 0;
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let t = Instant::now();
        let write = n.is_multiple_of(5);
        let ok = if write {
            matches!(api.new_attendee("good", n).await, Ok(a) if a.status == 201)
        } else {
            matches!(api.get(&format!("/api/v1/events/{event}")).await, Ok(a) if a.status == 200)
        };
        samples.push(Sample {
            at: t,
            write,
            took: t.elapsed(),
        });
        if !ok && !stop.load(Ordering::SeqCst) {
            errors += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (samples, errors)
}

#[derive(Clone)]
struct Ctx {
    addr: SocketAddr,
    token: String,
    event: String,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
}

impl Ctx {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

async fn launch(attack: Attack, ctx: Ctx) {
    let mut set = JoinSet::new();
    match attack {
        Attack::HugeContentLength => {
            for _ in 0..8 {
                set.spawn(huge_content_length(ctx.clone()));
            }
        }
        Attack::HugeHeaderLine => {
            for _ in 0..4 {
                set.spawn(huge_header_line(ctx.clone()));
            }
        }
        Attack::ManyHeaders => {
            for _ in 0..4 {
                set.spawn(many_headers(ctx.clone()));
            }
        }
        Attack::Slowloris => {
            for _ in 0..400 {
                set.spawn(slowloris(ctx.clone()));
            }
        }
        Attack::SlowReaders => {
            for _ in 0..100 {
                set.spawn(slow_reader(ctx.clone()));
            }
        }
        Attack::PipelinedFlood => {
            for _ in 0..8 {
                set.spawn(pipelined_flood(ctx.clone()));
            }
        }
        Attack::ConnectionFlood => {
            // 1,500 connections, 500 a second: paced so the kernel's accept queue does not overflow
            // (a burst leaves most of them half-open in the kernel, never reaching the server). From
            // three addresses, 500 each: within one address's share (half of the 1,024 slots), so
            // what they run into is the cap on all connections.
            for i in 0..1500u64 {
                let from = [127, 0, 0, 2 + (i % 3) as u8];
                set.spawn(hold_idle(ctx.clone(), from, Duration::from_millis(i * 2)));
            }
        }
        Attack::DescriptorBurst => {
            for _ in 0..1000 {
                set.spawn(hold_idle(ctx.clone(), ATTACKER_ADDRESS, Duration::ZERO));
            }
        }
    }
    while set.join_next().await.is_some() {}
}

/// Reads the status code of the first response on `stream`, within `limit`.
async fn read_status(stream: &mut TcpStream, limit: Duration) -> Option<u16> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&buf[..end]).into_owned();
                return line.split_whitespace().nth(1)?.parse().ok();
            }
            if buf.len() > 8192 {
                return None;
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok().flatten()
}

fn status_key(s: Option<u16>) -> String {
    match s {
        Some(s) => format!("answered {s}"),
        None => "no answer".to_string(),
    }
}

async fn huge_content_length(ctx: Ctx) {
    let head = format!(
        "POST /api/v1/attendees HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n",
        ctx.addr, ctx.token
    );
    let body = vec![b'{'; 256 * 1024];
    while !ctx.stopped() {
        let Ok(mut s) = attacker_connect(ctx.addr).await else {
            ctx.tally.add("connect failed", 1);
            continue;
        };
        if s.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        // Then body bytes as fast as the server takes them, for a moment.
        let (mut rd, mut wr) = s.split();
        let send = async {
            for _ in 0..16 {
                if wr.write_all(&body).await.is_err() {
                    break;
                }
            }
        };
        let mut status = None;
        let read = async {
            let mut first = [0u8; 64];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_secs(5), rd.read(&mut first)).await
            {
                let line = String::from_utf8_lossy(&first[..n]).into_owned();
                status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
            }
        };
        tokio::join!(send, read);
        ctx.tally.add(status_key(status), 1);
    }
}

async fn huge_header_line(ctx: Ctx) {
    let chunk = vec![b'a'; 64 * 1024];
    while !ctx.stopped() {
        let Ok(mut s) = attacker_connect(ctx.addr).await else {
            ctx.tally.add("connect failed", 1);
            continue;
        };
        let head = format!(
            "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\nX-Big: ",
            ctx.addr
        );
        if s.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        let (mut rd, mut wr) = s.split();
        let mut sent = 0u64;
        let send = async {
            // 64 MB, unless the server hangs up first.
            for _ in 0..1024 {
                if wr.write_all(&chunk).await.is_err() {
                    return;
                }
                sent += chunk.len() as u64;
            }
            let _ = wr.write_all(b"\r\n\r\n").await;
        };
        let mut status = None;
        let read = async {
            let mut first = [0u8; 64];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_secs(10), rd.read(&mut first)).await
            {
                let line = String::from_utf8_lossy(&first[..n]).into_owned();
                status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
            }
        };
        tokio::join!(send, read);
        ctx.tally.add(status_key(status), 1);
        if sent >= 64 * 1024 * 1024 {
            ctx.tally.add("whole 64 MB accepted", 1);
        }
    }
}

async fn many_headers(ctx: Ctx) {
    let mut head = format!("GET /api/v1/events HTTP/1.1\r\nHost: {}\r\n", ctx.addr);
    for i in 0..10_000 {
        head.push_str(&format!("X-H{i}: v\r\n"));
    }
    head.push_str("\r\n");
    while !ctx.stopped() {
        let Ok(mut s) = attacker_connect(ctx.addr).await else {
            ctx.tally.add("connect failed", 1);
            continue;
        };
        let (mut rd, mut wr) = s.split();
        let send = async {
            let _ = wr.write_all(head.as_bytes()).await;
        };
        let mut status = None;
        let read = async {
            let mut first = [0u8; 64];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_secs(10), rd.read(&mut first)).await
            {
                let line = String::from_utf8_lossy(&first[..n]).into_owned();
                status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
            }
        };
        tokio::join!(send, read);
        ctx.tally.add(status_key(status), 1);
    }
}

/// A request head sent one byte every 2-3 s; when the server hangs up, it starts over.
async fn slowloris(ctx: Ctx) {
    let head = format!(
        "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\nX-Slow: {}",
        ctx.addr,
        "a".repeat(4096)
    );
    while !ctx.stopped() {
        let Ok(mut s) = attacker_connect(ctx.addr).await else {
            ctx.tally.add("connect failed", 1);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        ctx.tally.add("connections opened", 1);
        let opened = Instant::now();
        let mut cut = false;
        for b in head.bytes() {
            if ctx.stopped() {
                break;
            }
            if s.write_all(&[b]).await.is_err() {
                cut = true;
                break;
            }
            let pause = 2000 + u64::from(rand::random::<u16>() % 1000);
            // A closed connection shows as a readable EOF (or an answer, such as 408) meanwhile.
            let mut probe = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(pause), s.read(&mut probe)).await {
                Err(_) => {}
                Ok(Ok(n)) if n > 0 => {
                    let line = String::from_utf8_lossy(&probe[..n]).into_owned();
                    let code = line.split_whitespace().nth(1).unwrap_or("?").to_string();
                    ctx.tally.add(format!("answered {code}"), 1);
                    cut = true;
                    break;
                }
                Ok(_) => {
                    cut = true;
                    break;
                }
            }
        }
        if cut {
            ctx.tally.add("cut by the server", 1);
            ctx.tally.add(
                "ms held before the cut",
                u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX),
            );
        }
    }
}

/// A connection with a 4 KiB receive buffer: a reader that never reads stops the server's writes
/// after a few answers, as a slow phone on a bad network would, instead of first soaking up
/// megabytes of loopback buffers.
async fn small_window_connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = attacker_socket()?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect(addr).await
}

/// The attacker's own address on the loopback network. The attacks come from another host than the
/// good client (127.0.0.1), as a hostile laptop and a kiosk on a venue's LAN would: the box bans
/// an address that keeps sending what it must refuse, and must not shut out its neighbours.
const ATTACKER_ADDRESS: [u8; 4] = [127, 0, 0, 2];

fn attacker_socket() -> std::io::Result<tokio::net::TcpSocket> {
    socket_from(ATTACKER_ADDRESS)
}

fn socket_from(from: [u8; 4]) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    Ok(socket)
}

async fn attacker_connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    connect_from(ATTACKER_ADDRESS, addr).await
}

async fn connect_from(from: [u8; 4], addr: SocketAddr) -> std::io::Result<TcpStream> {
    socket_from(from)?.connect(addr).await
}

/// Pipelines many requests for a large list and never reads an answer. With the admin token (no
/// rate limit), so what ends these connections is the server's write timeout, not a ban for
/// flooding past an anonymous limit.
async fn slow_reader(ctx: Ctx) {
    let one = format!(
        "GET /api/v1/events?limit=500 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        ctx.addr, ctx.token
    );
    let batch = one.repeat(200);
    while !ctx.stopped() {
        let Ok(mut s) = small_window_connect(ctx.addr).await else {
            ctx.tally.add("connect failed", 1);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        ctx.tally.add("connections opened", 1);
        let opened = Instant::now();
        let mut cut = false;
        while !ctx.stopped() {
            // Once both directions are full the write blocks; the server's write timeout ends it.
            match tokio::time::timeout(Duration::from_millis(500), s.write_all(batch.as_bytes()))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    cut = true;
                    break;
                }
                Err(_) => {}
            }
        }
        if cut {
            ctx.tally.add("cut by the server", 1);
            ctx.tally.add(
                "ms held before the cut",
                u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX),
            );
        }
    }
}

/// Pipelines reads as fast as the server answers them (batches of 100 in flight), reading all.
async fn pipelined_flood(ctx: Ctx) {
    let one = format!(
        "GET /api/v1/events/{} HTTP/1.1\r\nHost: {}\r\n\r\n",
        ctx.event, ctx.addr
    );
    let batch = one.repeat(100);
    let answered = Arc::new(AtomicU64::new(0));
    while !ctx.stopped() {
        let Ok(s) = attacker_connect(ctx.addr).await else {
            ctx.tally.add("connect failed", 1);
            continue;
        };
        let (mut rd, mut wr) = s.into_split();
        let stop = ctx.stop.clone();
        let count = answered.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut carry = 0usize;
            loop {
                match rd.read(&mut buf[carry..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let end = carry + n;
                        let hits = buf[..end]
                            .windows(12)
                            .filter(|w| w == b"HTTP/1.1 200")
                            .count();
                        count.fetch_add(hits as u64, Ordering::Relaxed);
                        // Keep the last 11 bytes in case a status line straddles two reads.
                        let keep = end.min(11);
                        buf.copy_within(end - keep..end, 0);
                        carry = keep;
                    }
                }
            }
        });
        while !stop.load(Ordering::SeqCst) {
            if wr.write_all(batch.as_bytes()).await.is_err() {
                break;
            }
            ctx.tally.add("requests sent", 100);
        }
        drop(wr);
        reader.abort();
    }
    ctx.tally
        .add("answered 200", answered.load(Ordering::Relaxed));
}

/// Opens a connection and sends nothing; when the server answers (503 over the cap) or hangs up,
/// it opens another.
async fn hold_idle(ctx: Ctx, from: [u8; 4], start_after: Duration) {
    tokio::time::sleep(start_after).await;
    while !ctx.stopped() {
        let mut s = match connect_from(from, ctx.addr).await {
            Ok(s) => s,
            Err(_) => {
                ctx.tally.add("connect failed", 1);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        ctx.tally.add("connections opened", 1);
        loop {
            if ctx.stopped() {
                return;
            }
            match read_status(&mut s, Duration::from_millis(500)).await {
                Some(code) => {
                    ctx.tally.add(format!("answered {code}"), 1);
                    break;
                }
                None => {
                    // Either still open and silent (held) or closed: a zero-length peek tells.
                    let mut b = [0u8; 1];
                    match tokio::time::timeout(Duration::from_millis(1), s.peek(&mut b)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => {
                            ctx.tally.add("closed by the server", 1);
                            break;
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

//! Item 5, the soak: 16 clients run a mixed load, 80% reads (an event, a registration, a waitlist
//! position, the event list) and 20% writes (an attendee and its registration, or a cancel), each
//! client pausing 10 ms between requests. The server's resident memory, open descriptors, database
//! and WAL sizes are sampled every few seconds. Short: 45 s. Long: 30 minutes.
//!
//! Growth is judged by halves: the largest value of the second half against the first half's.
//! Memory may grow by at most 25% + 32 MiB (SQLite's page caches fill as the file grows: 32 MB for
//! the writer, 2 MB per reader), descriptors by at most 16, the WAL by at most 50% + 8 MiB (it is
//! checkpointed every 1000 pages, about 4 MiB). The database file grows with the data it stores;
//! its bytes per stored registration are reported, not judged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;

use crate::client::Api;
use crate::report::{ItemReport, Table};
use crate::server::{self, file_size, Server, Spec};
use crate::stats::{mib, Latency, Series};
use crate::{Mode, Options};

const CONFIG: &str = "log = \"warn\"\n";
const CLIENTS: usize = 16;
const EVENTS: usize = 3;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    pub seconds: f64,
    pub rss: u64,
    pub fds: u64,
    pub db: u64,
    pub wal: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub seconds: f64,
    pub requests: u64,
    pub reads: u64,
    pub writes: u64,
    pub errors: u64,
    pub latency: Latency,
    pub rss: Series,
    pub fds: Series,
    pub db: Series,
    pub wal: Series,
    pub registrations_stored: u64,
    pub db_bytes_per_registration: u64,
    pub samples: Vec<Sample>,
    pub growth: Vec<String>,
}

/// (first-half max, second-half max) of one field.
fn halves(samples: &[Sample], f: impl Fn(&Sample) -> u64) -> (u64, u64) {
    let mid = samples.len() / 2;
    let max = |s: &[Sample]| s.iter().map(&f).max().unwrap_or(0);
    (max(&samples[..mid]), max(&samples[mid..]))
}

pub async fn run(opts: &Options) -> anyhow::Result<ItemReport> {
    let (length, every) = match opts.mode {
        Mode::Short => (Duration::from_secs(45), Duration::from_secs(2)),
        Mode::Long => (Duration::from_secs(30 * 60), Duration::from_secs(10)),
    };
    let work = server::work_dir("soak")?;
    let spec = Spec {
        binary: opts.binary.clone(),
        data_dir: work.join("data"),
        config: CONFIG.to_string(),
        nofile: None,
    };
    let mut server = Server::start(&spec).await?;
    let token = server.admin_token()?;
    let api = Api::new(&server.url(""), &token, Duration::from_secs(15))?;
    let mut events = Vec::new();
    for i in 0..EVENTS {
        events.push(api.published_event(&format!("Soak {i}"), 2000).await?);
    }
    let events = Arc::new(events);

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let next = Arc::new(AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (api, events, stop, counts, latencies, next) = (
            api.clone(),
            events.clone(),
            stop.clone(),
            counts.clone(),
            latencies.clone(),
            next.clone(),
        );
        clients.spawn(async move { client(api, events, stop, counts, latencies, next).await });
    }

    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < length {
        let wal = spec.data_dir.join("boxoffice.db-wal");
        samples.push(Sample {
            seconds: started.elapsed().as_secs_f64(),
            rss: server.rss().unwrap_or(0),
            fds: server.open_fds().unwrap_or(0),
            db: file_size(&spec.data_dir.join("boxoffice.db")),
            wal: file_size(&wal),
        });
        tokio::time::sleep(every).await;
    }
    stop.store(true, Ordering::SeqCst);
    while clients.join_next().await.is_some() {}
    let stayed_up = server.alive();

    let mut f = Figures {
        seconds: started.elapsed().as_secs_f64(),
        reads: counts[0].load(Ordering::Relaxed),
        writes: counts[1].load(Ordering::Relaxed),
        errors: counts[2].load(Ordering::Relaxed),
        ..Figures::default()
    };
    f.requests = f.reads + f.writes;
    f.latency = Latency::from_samples(&mut latencies.lock().unwrap_or_else(|p| p.into_inner()));
    f.rss = Series::of(&samples.iter().map(|s| s.rss).collect::<Vec<_>>());
    f.fds = Series::of(&samples.iter().map(|s| s.fds).collect::<Vec<_>>());
    f.db = Series::of(&samples.iter().map(|s| s.db).collect::<Vec<_>>());
    f.wal = Series::of(&samples.iter().map(|s| s.wal).collect::<Vec<_>>());
    if let Ok(stats) = api.get("/api/v1/stats").await {
        f.registrations_stored = stats.body["registrations_total"].as_u64().unwrap_or(0);
    }
    f.db_bytes_per_registration = f.db.last / f.registrations_stored.max(1);

    let mut r = ItemReport::new("5. soak");
    let (rss1, rss2) = halves(&samples, |s| s.rss);
    let (fd1, fd2) = halves(&samples, |s| s.fds);
    let (wal1, wal2) = halves(&samples, |s| s.wal);
    let rss_ok = rss2 <= rss1 + rss1 / 4 + 32 * 1024 * 1024;
    let fds_ok = fd2 <= fd1 + 16;
    let wal_ok = wal2 <= wal1 + wal1 / 2 + 8 * 1024 * 1024;
    f.growth = vec![
        format!("RSS max {} then {}", mib(rss1), mib(rss2)),
        format!("open files max {fd1} then {fd2}"),
        format!("WAL max {} then {}", mib(wal1), mib(wal2)),
    ];
    let mut t = Table::new(&[
        "series (sampled every few seconds)",
        "first",
        "last",
        "max",
        "first half max -> second half max",
        "bounded",
    ]);
    let yes = |b: bool| if b { "yes" } else { "NO" }.to_string();
    t.row(vec![
        "resident memory".into(),
        mib(f.rss.first),
        mib(f.rss.last),
        mib(f.rss.max),
        format!("{} -> {}", mib(rss1), mib(rss2)),
        yes(rss_ok),
    ]);
    t.row(vec![
        "open file descriptors".into(),
        f.fds.first.to_string(),
        f.fds.last.to_string(),
        f.fds.max.to_string(),
        format!("{fd1} -> {fd2}"),
        yes(fds_ok),
    ]);
    t.row(vec![
        "WAL file".into(),
        mib(f.wal.first),
        mib(f.wal.last),
        mib(f.wal.max),
        format!("{} -> {}", mib(wal1), mib(wal2)),
        yes(wal_ok),
    ]);
    t.row(vec![
        "database file".into(),
        mib(f.db.first),
        mib(f.db.last),
        mib(f.db.max),
        format!(
            "{} registrations stored, {} bytes each with their attendees, outbox and audit rows",
            f.registrations_stored, f.db_bytes_per_registration
        ),
        "grows with the data".into(),
    ]);
    r.table = t;
    r.note(format!(
        "{:.0} s, {} requests ({} reads, {} writes), {} errors; latency p50 {:.1} ms, p99 {:.1} ms, max {:.0} ms",
        f.seconds, f.requests, f.reads, f.writes, f.errors, f.latency.p50_ms, f.latency.p99_ms, f.latency.max_ms
    ));
    r.must(stayed_up, "the server died");
    r.must(samples.len() >= 4, "too few samples");
    r.must(f.errors == 0, format!("{} requests failed", f.errors));
    r.must(
        rss_ok,
        format!("resident memory kept growing: {}", f.growth[0]),
    );
    r.must(fds_ok, format!("open files kept growing: {}", f.growth[1]));
    r.must(wal_ok, format!("the WAL kept growing: {}", f.growth[2]));
    let stopped = server.stop().await?;
    r.must(stopped, "the server did not stop cleanly on SIGTERM");
    let checked = server::check(&spec.binary, &spec.data_dir)?;
    r.must(
        checked.passed,
        format!("boxoffice check: {}", checked.output),
    );
    f.samples = samples;
    r.figures = serde_json::to_value(&f)?;
    if r.passed {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        r.note(format!("data kept in {}", work.display()));
    }
    Ok(r)
}

/// One client of the mixed load. `counts` are reads, writes, errors.
async fn client(
    api: Api,
    events: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
    counts: Arc<[AtomicU64; 3]>,
    latencies: Arc<Mutex<Vec<Duration>>>,
    next: Arc<AtomicU64>,
) {
    // This client's live registrations, for reads and cancels.
    let mut mine: Vec<String> = Vec::new();
    let mut local = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let (roll, pick_event, pick_mine) = {
            let mut rng = rand::rng();
            (
                rng.random_range(0..100u32),
                rng.random_range(0..events.len()),
                rng.random_range(0..usize::MAX),
            )
        };
        let event = &events[pick_event];
        let t = Instant::now();
        let (ok, write) = if roll < 80 {
            let path = match (roll, mine.is_empty()) {
                (0..=39, _) | (_, true) => format!("/api/v1/events/{event}"),
                (40..=59, false) => {
                    format!("/api/v1/registrations/{}", mine[pick_mine % mine.len()])
                }
                (60..=69, false) => format!(
                    "/api/v1/registrations/{}/position",
                    mine[pick_mine % mine.len()]
                ),
                _ => "/api/v1/events?limit=50".to_string(),
            };
            (
                matches!(api.get(&path).await, Ok(a) if a.status == 200),
                false,
            )
        } else if roll < 92 || mine.is_empty() {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let ok = match api.new_attendee("soak", n).await {
                Ok(a) if a.status == 201 => match a.str("id") {
                    Some(id) => match api.register(event, &id).await {
                        Ok(r) if r.status == 201 => {
                            if let Some(reg) = r.str("id") {
                                mine.push(reg);
                            }
                            true
                        }
                        _ => false,
                    },
                    None => false,
                },
                _ => false,
            };
            (ok, true)
        } else {
            let reg = mine.swap_remove(pick_mine % mine.len());
            (
                matches!(api.cancel(&reg).await, Ok(a) if a.status == 200),
                true,
            )
        };
        local.push(t.elapsed());
        counts[usize::from(write)].fetch_add(1, Ordering::Relaxed);
        if !ok {
            counts[2].fetch_add(1, Ordering::Relaxed);
        }
        if local.len() >= 1000 {
            latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(&mut local);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    latencies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .append(&mut local);
}

//! Item 1, the crash loop (I5, I6): 16 clients create attendees, register them, cancel one of their
//! registrations every fourth step and check in most confirmed ones, while the server is killed with SIGKILL at a
//! random moment. After each kill `boxoffice check` runs on the dead server's file, the server
//! restarts, and every write acknowledged in that round is looked up; every event's counts are
//! checked against its capacity. At the end every acknowledged write is looked up again, each
//! change is matched with its outbox row, the outbox drains to a real webhook receiver on loopback,
//! and the receiver must hold every message, per aggregate in outbox order.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use serde::Serialize;

use crate::client::Api;
use crate::receiver::{Receiver, Verdict};
use crate::report::{ItemReport, Table};
use crate::server::{self, Server, Spec};
use crate::{Mode, Options};

/// Retries come quickly so the outbox drains within seconds after the last restart; attempts are
/// many so nothing goes dead during the loop.
const CONFIG: &str =
    "log = \"warn\"\n\n[outbox]\nbackoff_initial_ms = 200\nbackoff_max_ms = 2000\n\
                      max_attempts = 100\nbreaker_cooldown_ms = 1000\n";
const CLIENTS: usize = 16;
/// Clients register for the newest `EVENTS` events; each round opens one more, so every round sees
/// seats being sold, a waitlist forming and cancels promoting from it.
const EVENTS: usize = 4;
const CAPACITY: u64 = 400;

#[derive(Debug, Clone)]
struct RegAck {
    status: String,
}

/// What the clients were told: only answered writes count.
#[derive(Default, Clone)]
struct Acked {
    attendees: Vec<String>,
    registrations: HashMap<String, RegAck>,
    cancelled: HashSet<String>,
    /// Cancels sent without an answer: they may or may not have happened.
    cancel_unknown: HashSet<String>,
    checked_in: HashSet<String>,
}

impl Acked {
    fn writes(&self) -> u64 {
        (self.attendees.len()
            + self.registrations.len()
            + self.cancelled.len()
            + self.checked_in.len()) as u64
    }

    fn merge(&mut self, other: Acked) {
        self.attendees.extend(other.attendees);
        self.registrations.extend(other.registrations);
        self.cancelled.extend(other.cancelled);
        self.cancel_unknown.extend(other.cancel_unknown);
        self.checked_in.extend(other.checked_in);
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub kills: usize,
    pub acknowledged_writes: u64,
    pub acknowledged_registrations: usize,
    pub acknowledged_cancels: usize,
    pub acknowledged_checkins: usize,
    pub acknowledged_writes_lost: u64,
    pub oversold_events: u64,
    pub check_violations: u64,
    pub outbox_rows_missing: u64,
    pub webhooks: Verdict,
    pub outbox_drained: bool,
    pub clean_shutdown: bool,
    pub examples: Vec<String>,
}

pub async fn run(opts: &Options) -> anyhow::Result<ItemReport> {
    let kills = match opts.mode {
        Mode::Short => 10,
        Mode::Long => 200,
    };
    let work = server::work_dir("crash")?;
    let spec = Spec {
        binary: opts.binary.clone(),
        data_dir: work.join("data"),
        config: CONFIG.to_string(),
        nofile: None,
    };
    let receiver = Receiver::start().await?;
    let mut server = Server::start(&spec).await?;
    let token = server.admin_token()?;
    let mut api = Api::new(&server.url(""), &token, Duration::from_secs(10))?;
    api.subscribe(&receiver.url()).await?;
    let mut events = Vec::new();
    for i in 0..EVENTS - 1 {
        events.push(api.published_event(&format!("Crash {i}"), CAPACITY).await?);
    }

    let mut f = Figures {
        kills,
        ..Figures::default()
    };
    let mut all = Acked::default();
    let next = Arc::new(AtomicU64::new(0));
    for round in 0..kills {
        events.push(
            api.published_event(&format!("Crash round {round}"), CAPACITY)
                .await?,
        );
        let newest = Arc::new(events[events.len() - EVENTS..].to_vec());
        let acked = Arc::new(Mutex::new(Acked::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..CLIENTS {
            let (api, events, acked, stop, next) = (
                api.clone(),
                newest.clone(),
                acked.clone(),
                stop.clone(),
                next.clone(),
            );
            clients.spawn(async move { client(api, events, acked, stop, next).await });
        }
        let wait = rand::rng().random_range(300..1500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        while clients.join_next().await.is_some() {}

        // The file as the kill left it, before anything else opens it.
        let checked = server::check(&spec.binary, &spec.data_dir)?;
        f.check_violations += checked.violations.len() as u64;
        if !checked.passed && f.examples.len() < 5 {
            f.examples.push(format!(
                "check after kill {}: {}",
                round + 1,
                checked.output
            ));
        }

        server = Server::start(&spec).await?;
        api = api.with_base(&server.url(""));
        let round_acked = Arc::new(std::mem::take(
            &mut *acked.lock().unwrap_or_else(|p| p.into_inner()),
        ));
        f.acknowledged_writes_lost += verify(&api, &round_acked, &mut f.examples).await?.lost;
        f.oversold_events += oversold(&api, &events, &mut f.examples).await?;
        all.merge(Arc::unwrap_or_clone(round_acked));
    }

    // Everything again, on the file as it stands after every kill, then the outbox and webhooks.
    let all = Arc::new(all);
    let looked = verify(&api, &all, &mut f.examples).await?;
    f.acknowledged_writes_lost = looked.lost;
    f.acknowledged_writes = all.writes();
    f.acknowledged_registrations = all.registrations.len();
    f.acknowledged_cancels = all.cancelled.len();
    f.acknowledged_checkins = all.checked_in.len();
    f.outbox_drained = api.wait_outbox_drained(Duration::from_secs(120)).await;
    let outbox = api.outbox().await?;
    f.outbox_rows_missing = missing_outbox_rows(&all, &looked.status_now, &outbox, &mut f.examples);
    f.webhooks = receiver.verify(&outbox);
    f.clean_shutdown = server.stop().await?;
    let checked = server::check(&spec.binary, &spec.data_dir)?;
    f.check_violations += checked.violations.len() as u64;
    if !checked.passed {
        f.examples.push(format!("final check: {}", checked.output));
    }

    let mut r = ItemReport::new("1. crash loop");
    let mut t = Table::new(&["figure", "value", "must be"]);
    let row = |t: &mut Table, name: &str, v: String, must: &str| {
        t.row(vec![name.to_string(), v, must.to_string()]);
    };
    row(&mut t, "SIGKILLs", f.kills.to_string(), "");
    row(
        &mut t,
        "acknowledged writes (attendees, registrations, cancels, check-ins)",
        format!(
            "{} ({}, {}, {}, {})",
            f.acknowledged_writes,
            all.attendees.len(),
            f.acknowledged_registrations,
            f.acknowledged_cancels,
            f.acknowledged_checkins
        ),
        "",
    );
    row(
        &mut t,
        "acknowledged writes lost",
        f.acknowledged_writes_lost.to_string(),
        "0",
    );
    row(
        &mut t,
        "oversold events",
        f.oversold_events.to_string(),
        "0",
    );
    row(
        &mut t,
        "`boxoffice check` violations (after every kill and at the end)",
        f.check_violations.to_string(),
        "0",
    );
    row(
        &mut t,
        "outbox rows missing for a change",
        f.outbox_rows_missing.to_string(),
        "0",
    );
    row(
        &mut t,
        "webhook deliveries lost after restart",
        format!(
            "{} (of {} messages; {} deliveries with repeats)",
            f.webhooks.lost, f.webhooks.outbox_messages, f.webhooks.deliveries
        ),
        "0",
    );
    row(
        &mut t,
        "aggregates delivered out of order",
        f.webhooks.out_of_order.to_string(),
        "0",
    );
    r.table = t;
    r.must(f.acknowledged_writes > 0, "no write was acknowledged");
    r.must(
        f.acknowledged_writes_lost == 0,
        format!("{} acknowledged writes lost", f.acknowledged_writes_lost),
    );
    r.must(f.oversold_events == 0, "an event was oversold");
    r.must(
        f.check_violations == 0,
        format!("`boxoffice check` found {} violations", f.check_violations),
    );
    r.must(
        f.outbox_rows_missing == 0,
        format!("{} outbox rows missing", f.outbox_rows_missing),
    );
    r.must(f.outbox_drained, "the outbox did not drain within 120 s");
    r.must(
        f.webhooks.lost == 0,
        format!("{} webhook messages never arrived", f.webhooks.lost),
    );
    r.must(
        f.webhooks.out_of_order == 0,
        "webhook order per aggregate broken",
    );
    r.must(
        f.clean_shutdown,
        "the last server did not stop cleanly on SIGTERM",
    );
    for e in f.examples.iter().take(5) {
        r.note(e.clone());
    }
    r.note(format!(
        "{CLIENTS} clients on the newest {EVENTS} events of {CAPACITY} seats (one more each round); \
         each kill 0.3-1.5 s into a round; outbox backoff 0.2-2 s for the run"
    ));
    r.figures = serde_json::to_value(&f)?;
    if r.passed {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        r.note(format!("data kept in {}", work.display()));
    }
    Ok(r)
}

/// One client: attendee, registration, then a cancel (every fourth) or a check-in (most confirmed).
async fn client(
    api: Api,
    events: Arc<Vec<String>>,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
    next: Arc<AtomicU64>,
) {
    let lock = || acked.lock().unwrap_or_else(|p| p.into_inner());
    // This client's registrations of this round that may still be cancelled.
    let mut mine: Vec<String> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let Ok(a) = api.new_attendee("crash", n).await else {
            continue;
        };
        if a.status != 201 {
            continue;
        }
        let Some(attendee) = a.str("id") else {
            continue;
        };
        lock().attendees.push(attendee.clone());
        // The event from `n / 4`, the action below from `n % 4`: every action reaches every event
        // (with both from `n % 4`, check-ins would only ever meet the same two, soon full, events).
        let event = &events[(n as usize / 4) % events.len()];
        let Ok(reg) = api.register(event, &attendee).await else {
            continue;
        };
        let (Some(id), Some(status)) = (reg.str("id"), reg.str("status")) else {
            continue;
        };
        if reg.status != 201 {
            continue;
        }
        lock().registrations.insert(
            id.clone(),
            RegAck {
                status: status.clone(),
            },
        );
        if n.is_multiple_of(4) {
            // One of this client's registrations of this round, at random (this one included): a
            // confirmed seat freed promotes the head of the waitlist, a second outbox row.
            mine.push(id);
            let cancel = mine.swap_remove(rand::random_range(0..mine.len()));
            lock().cancel_unknown.insert(cancel.clone());
            if let Ok(c) = api.cancel(&cancel).await {
                if c.status == 200 {
                    let mut l = lock();
                    l.cancel_unknown.remove(&cancel);
                    l.cancelled.insert(cancel);
                }
            }
        } else if status == "confirmed" && n % 4 != 3 {
            // Checked-in registrations are never cancelled here, so an acknowledged check-in has
            // one state to be found in.
            let Some(code) = reg.str("ticket_code") else {
                continue;
            };
            if let Ok(c) = api.check_in(&code).await {
                if c.status == 200 {
                    lock().checked_in.insert(id);
                }
            }
        } else {
            mine.push(id);
        }
    }
}

/// What a lookup of acknowledged writes found: how many are lost, a few examples, and every
/// acknowledged registration's status now.
#[derive(Default)]
struct Looked {
    lost: u64,
    examples: Vec<String>,
    status_now: HashMap<String, String>,
}

/// Lanes of lookups in parallel: the long form looks up hundreds of thousands of writes.
const LANES: usize = 16;

/// Looks up every acknowledged write, in `LANES` parallel lanes.
async fn verify(
    api: &Api,
    acked: &Arc<Acked>,
    examples: &mut Vec<String>,
) -> anyhow::Result<Looked> {
    let mut set = tokio::task::JoinSet::new();
    for lane in 0..LANES {
        let (api, acked) = (api.clone(), acked.clone());
        set.spawn(async move { verify_lane(&api, &acked, lane).await });
    }
    let mut all = Looked::default();
    while let Some(done) = set.join_next().await {
        let l = done??;
        all.lost += l.lost;
        all.status_now.extend(l.status_now);
        for e in l.examples {
            if examples.len() < 5 {
                examples.push(e);
            }
        }
    }
    Ok(all)
}

/// Every `LANES`-th attendee and registration, starting at `lane`.
async fn verify_lane(api: &Api, acked: &Acked, lane: usize) -> anyhow::Result<Looked> {
    let mut l = Looked::default();
    let say = |l: &mut Looked, what: String| {
        l.lost += 1;
        if l.examples.len() < 5 {
            l.examples.push(what);
        }
    };
    for a in acked.attendees.iter().skip(lane).step_by(LANES) {
        let r = api.get(&format!("/api/v1/attendees/{a}")).await?;
        if r.status != 200 {
            say(&mut l, format!("attendee {a}: {}", r.status));
        }
    }
    for (id, then) in acked.registrations.iter().skip(lane).step_by(LANES) {
        let r = api.get(&format!("/api/v1/registrations/{id}")).await?;
        if r.status != 200 {
            // The registration, and its cancel or check-in with it.
            l.lost +=
                u64::from(acked.cancelled.contains(id)) + u64::from(acked.checked_in.contains(id));
            say(&mut l, format!("registration {id}: {}", r.status));
            continue;
        }
        let now = r.str("status").unwrap_or_default();
        let ok = if acked.cancelled.contains(id) {
            now == "cancelled"
        } else if acked.cancel_unknown.contains(id) {
            true
        } else if then.status == "confirmed" {
            now == "confirmed"
        } else {
            // A waiting registration may have been promoted since.
            now == "waitlisted" || now == "confirmed"
        };
        if !ok {
            say(
                &mut l,
                format!("registration {id} was {}, now {now}", then.status),
            );
        }
        if acked.checked_in.contains(id) && r.body["checked_in_at"].is_null() {
            say(&mut l, format!("check-in of {id} is gone"));
        }
        l.status_now.insert(id.clone(), now);
    }
    Ok(l)
}

/// Events whose held seats exceed their capacity.
async fn oversold(api: &Api, events: &[String], examples: &mut Vec<String>) -> anyhow::Result<u64> {
    let mut n = 0;
    for e in events {
        let r = api.get(&format!("/api/v1/events/{e}")).await?;
        let held =
            r.body["confirmed"].as_u64().unwrap_or(0) + r.body["offered"].as_u64().unwrap_or(0);
        let cap = r.body["capacity"].as_u64().context("event capacity")?;
        if held > cap {
            n += 1;
            examples.push(format!("event {e}: {held} held, capacity {cap}"));
        }
    }
    Ok(n)
}

/// Acknowledged changes without their outbox row (I5): a registration's first row, a cancel's,
/// a check-in's, and a promotion's for a waiting registration that is confirmed now.
fn missing_outbox_rows(
    acked: &Acked,
    status_now: &HashMap<String, String>,
    outbox: &[crate::client::OutboxRow],
    examples: &mut Vec<String>,
) -> u64 {
    let mut kinds: HashMap<&str, Vec<&str>> = HashMap::new();
    for m in outbox {
        kinds
            .entry(m.aggregate_id.as_str())
            .or_default()
            .push(m.kind.as_str());
    }
    let mut missing = 0;
    let mut need = |id: &str, kind: &str, examples: &mut Vec<String>| {
        let has = kinds.get(id).is_some_and(|k| k.contains(&kind));
        if !has {
            missing += 1;
            if examples.len() < 5 {
                examples.push(format!("no {kind} row for {id}"));
            }
        }
    };
    for (id, then) in &acked.registrations {
        need(id, &format!("registration.{}", then.status), examples);
        if acked.cancelled.contains(id) {
            need(id, "registration.cancelled", examples);
        }
        if acked.checked_in.contains(id) {
            need(id, "attendee.checked_in", examples);
        }
        // A promotion that was cancelled again is not visible on the wire; a confirmed seat is.
        if then.status == "waitlisted"
            && status_now.get(id).map(String::as_str) == Some("confirmed")
        {
            need(id, "registration.promoted", examples);
        }
    }
    missing
}

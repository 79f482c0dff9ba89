//! Item 4, a webhook receiver outage during a rush: 16 clients register (every fourth step cancels
//! one of the client's registrations, promoting from the waitlist, so aggregates carry several
//! messages) while the receiver first
//! answers 503 to every delivery and then stops listening altogether; it comes back, the rush goes
//! on a little, the outbox drains. Every message the box recorded must have arrived (none lost,
//! none dead), and per aggregate in outbox order. Short: a 10 s outage in a full-speed rush. Long: a
//! 5-minute outage under a steady load of about 250 registrations a second.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::Api;
use crate::receiver::{Receiver, Verdict};
use crate::report::{ItemReport, Table};
use crate::server::{self, Server, Spec};
use crate::{Mode, Options};

/// Backoff capped at 5 s so the backlog follows the receiver's return within seconds, and enough
/// attempts (100, about 8 minutes at the cap) that nothing goes dead during a 5-minute outage.
const CONFIG: &str =
    "log = \"warn\"\n\n[outbox]\nbackoff_initial_ms = 500\nbackoff_max_ms = 5000\n\
                      max_attempts = 100\nbreaker_cooldown_ms = 2000\n";
const CLIENTS: usize = 16;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub outage_seconds: f64,
    pub registrations: u64,
    pub cancels: u64,
    pub deliveries_refused_during_outage: u64,
    pub max_pending: u64,
    pub drained: bool,
    pub drain_seconds_after_return: f64,
    pub dead_messages: u64,
    pub webhooks: Verdict,
}

pub async fn run(opts: &Options) -> anyhow::Result<ItemReport> {
    let (outage, pause) = match opts.mode {
        Mode::Short => (Duration::from_secs(10), Duration::ZERO),
        Mode::Long => (Duration::from_secs(300), Duration::from_millis(60)),
    };
    let work = server::work_dir("outage")?;
    let spec = Spec {
        binary: opts.binary.clone(),
        data_dir: work.join("data"),
        config: CONFIG.to_string(),
        nofile: None,
    };
    let mut receiver = Receiver::start().await?;
    let mut server = Server::start(&spec).await?;
    let token = server.admin_token()?;
    let api = Api::new(&server.url(""), &token, Duration::from_secs(15))?;
    api.subscribe(&receiver.url()).await?;
    let event = api.published_event("Outage", 500).await?;
    let mut f = Figures::default();

    let stop = Arc::new(AtomicBool::new(false));
    let (registrations, cancels) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let next = Arc::new(AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (api, event, stop, next, regs, cancels) = (
            api.clone(),
            event.clone(),
            stop.clone(),
            next.clone(),
            registrations.clone(),
            cancels.clone(),
        );
        clients.spawn(async move {
            // This client's registrations; every fourth round cancels one of them at random, so a
            // confirmed seat freed mid-rush promotes the head of the waitlist (a second message for
            // that registration, a third if it is cancelled later).
            let mut mine: Vec<String> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n % 4 == 0 && !mine.is_empty() {
                    let pick = rand::random_range(0..mine.len());
                    let id = mine.swap_remove(pick);
                    if matches!(api.cancel(&id).await, Ok(c) if c.status == 200) {
                        cancels.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                let Ok(a) = api.new_attendee("outage", n).await else {
                    continue;
                };
                let Some(attendee) = a.str("id") else {
                    continue;
                };
                let Ok(r) = api.register(&event, &attendee).await else {
                    continue;
                };
                if r.status == 201 {
                    regs.fetch_add(1, Ordering::Relaxed);
                    if let Some(id) = r.str("id") {
                        mine.push(id);
                    }
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        });
    }
    let pending_sampler = {
        let api = api.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut max = 0;
            while !stop.load(Ordering::SeqCst) {
                if let Ok(p) = api.outbox_pending().await {
                    max = max.max(p);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            max
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    // The outage: 503 to every delivery for the first half, then nobody listening.
    let down = Instant::now();
    receiver.set_failing(true);
    tokio::time::sleep(outage / 2).await;
    receiver.stop_listening();
    tokio::time::sleep(outage / 2).await;
    receiver.resume_listening().await?;
    receiver.set_failing(false);
    f.outage_seconds = down.elapsed().as_secs_f64();
    let back = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    while clients.join_next().await.is_some() {}
    f.max_pending = pending_sampler.await.unwrap_or(0);
    f.registrations = registrations.load(Ordering::Relaxed);
    f.cancels = cancels.load(Ordering::Relaxed);
    f.deliveries_refused_during_outage = receiver.refused();

    let limit = match opts.mode {
        Mode::Short => Duration::from_secs(120),
        Mode::Long => Duration::from_secs(600),
    };
    f.drained = api.wait_outbox_drained(limit).await;
    f.drain_seconds_after_return = back.elapsed().as_secs_f64();
    let outbox = api.outbox().await?;
    f.dead_messages = outbox.iter().filter(|m| m.state == "dead").count() as u64;
    f.webhooks = receiver.verify(&outbox);
    let stopped = server.stop().await?;
    let checked = server::check(&spec.binary, &spec.data_dir)?;

    let mut r = ItemReport::new("4. webhook receiver outage");
    let mut t = Table::new(&["figure", "value", "must be"]);
    let mut row =
        |name: &str, v: String, must: &str| t.row(vec![name.to_string(), v, must.to_string()]);
    row(
        "outage (503 answers, then not listening)",
        format!("{:.0} s", f.outage_seconds),
        "",
    );
    row(
        "registrations / cancels during the run",
        format!("{} / {}", f.registrations, f.cancels),
        "",
    );
    row(
        "aggregates with more than one message",
        f.webhooks.multi_message_aggregates.to_string(),
        "",
    );
    row(
        "deliveries refused with 503 during the outage",
        f.deliveries_refused_during_outage.to_string(),
        "",
    );
    row("most messages pending", f.max_pending.to_string(), "");
    row(
        "outbox drained, seconds after the receiver came back",
        if f.drained {
            format!("{:.1} s", f.drain_seconds_after_return)
        } else {
            "NO".to_string()
        },
        "",
    );
    row(
        "messages lost (of all recorded)",
        format!("{} (of {})", f.webhooks.lost, f.webhooks.outbox_messages),
        "0",
    );
    row("dead messages", f.dead_messages.to_string(), "0");
    row(
        "aggregates delivered out of order",
        f.webhooks.out_of_order.to_string(),
        "0",
    );
    row(
        "deliveries, with repeats",
        f.webhooks.deliveries.to_string(),
        "",
    );
    r.table = t;
    r.must(f.registrations > 0, "no registration was made");
    r.must(
        f.deliveries_refused_during_outage > 0,
        "no delivery was refused: the outage did not happen during the rush",
    );
    r.must(
        f.drained,
        format!("the outbox did not drain within {} s", limit.as_secs()),
    );
    r.must(
        f.webhooks.lost == 0,
        format!(
            "{} messages never arrived: {:?}",
            f.webhooks.lost, f.webhooks.examples
        ),
    );
    r.must(
        f.dead_messages == 0,
        format!("{} messages went dead", f.dead_messages),
    );
    r.must(
        f.webhooks.out_of_order == 0,
        format!("order per aggregate broken: {:?}", f.webhooks.examples),
    );
    r.must(stopped, "the server did not stop cleanly on SIGTERM");
    r.must(
        checked.passed,
        format!("boxoffice check: {}", checked.output),
    );
    r.note(format!(
        "{CLIENTS} clients on one event of 500 seats{}; outbox backoff 0.5-5 s, 100 attempts, breaker cooldown 2 s",
        if pause.is_zero() { ", full speed".to_string() } else { format!(", {} ms between a client's registrations", pause.as_millis()) }
    ));
    r.figures = serde_json::to_value(&f)?;
    if r.passed {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        r.note(format!("data kept in {}", work.display()));
    }
    Ok(r)
}

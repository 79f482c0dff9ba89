//! The operator console against real parts: the audit and stats routes it reads, its two backends
//! against a real headless box (the remote one over HTTP, the local one on the same SQLite file),
//! and the real binary in a real terminal (tmux): keys in, screen out.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice::app::{App, AppOptions};
use boxoffice::console::{Local, Remote};
use serde_json::json;
use tui::{
    traffic, Action, AuditFilter, Backend, Data, Done, DoorResult, EventFields, EventState, Query,
    Traffic,
};

use crate::support::{bin, free_port, run_cli, spawn_app, Server};

#[tokio::test]
async fn the_audit_route_lists_newest_first_filters_and_pages() {
    let t = spawn_app();
    let jazz = t.published_event(10).await;
    let r = t
        .send(
            "PATCH",
            &format!("/api/v1/events/{jazz}"),
            Some(&t.admin),
            Some(json!({"capacity": 12})),
        )
        .await;
    assert_eq!(r.status, 200);
    let door = t.token(boxoffice::domain::Role::Operator, "door-1");
    t.get("/api/v1/admin/audit", Some(&door))
        .await
        .assert_problem(403, "forbidden");

    let all = t.get("/api/v1/admin/audit", Some(&t.admin)).await.json();
    let actions: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["action"].as_str().expect("action"))
        .collect();
    // Newest first; the tokens were made by the test harness (`test`), the rest by `admin`.
    assert_eq!(
        actions,
        [
            "token.create",
            "event.capacity",
            "event.publish",
            "event.create",
            "token.create"
        ]
    );
    assert_eq!(all["items"][1]["actor"], "admin");
    assert_eq!(all["items"][1]["target"], jazz.as_str());
    assert_eq!(all["items"][1]["detail"], "capacity 10 -> 12");
    assert!(all["items"][1]["remote_addr"]
        .as_str()
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
    assert!(all["items"][1]["request_id"].is_string());

    // `action` matches exactly or as a dotted prefix; `actor` exactly.
    let events = t
        .get(
            "/api/v1/admin/audit?action=event&actor=admin",
            Some(&t.admin),
        )
        .await
        .json();
    assert_eq!(events["items"].as_array().map(Vec::len), Some(3));
    let none = t
        .get("/api/v1/admin/audit?action=even", Some(&t.admin))
        .await
        .json();
    assert_eq!(none["items"], json!([]));

    // Keyset pages: two, two, one, then no next.
    let mut seen = Vec::new();
    let mut path = "/api/v1/admin/audit?limit=2".to_string();
    loop {
        let page = t.get(&path, Some(&t.admin)).await.json();
        for a in page["items"].as_array().expect("items") {
            seen.push(a["seq"].as_i64().expect("seq"));
        }
        match page["next"].as_str() {
            Some(n) => path = format!("/api/v1/admin/audit?limit=2&after={n}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );

    t.get("/api/v1/admin/audit?limit=0", Some(&t.admin))
        .await
        .assert_problem(422, "validation_failed");
    t.get("/api/v1/admin/audit?after=nope", Some(&t.admin))
        .await
        .assert_problem(422, "validation_failed");
    t.get("/api/v1/admin/audit?colour=red", Some(&t.admin))
        .await
        .assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn the_stats_route_counts_sales_and_check_ins_and_names_the_caller() {
    let t = spawn_app();
    let ev = t.published_event(1).await;
    for n in 0..3 {
        let a = t.attendee(n).await;
        t.register(&ev, &a).await;
    }
    let door = t.token(boxoffice::domain::Role::Operator, "door-1");
    let s = t.get("/api/v1/stats", Some(&door)).await;
    assert_eq!(s.status, 200);
    let s = s.json();
    assert_eq!(s["registrations_total"], 3, "{s}");
    assert_eq!(s["checked_in_total"], 0);
    assert_eq!(s["caller"], json!({"name": "door-1", "role": "operator"}));
    assert!(s["db_bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(s["uptime_seconds"].is_u64());
    assert!(s["outbox"]["pending_count"].is_i64());
    assert!(
        s["outbox"].get("endpoints").is_none(),
        "no webhook URLs for operators"
    );
    let kiosk = t.token(boxoffice::domain::Role::Kiosk, "kiosk-1");
    t.get("/api/v1/stats", Some(&kiosk))
        .await
        .assert_problem(403, "forbidden");
}

fn load(b: &mut dyn Backend, q: Query) -> Data {
    b.load(&q).unwrap_or_else(|f| panic!("{q:?}: {f:?}"))
}

fn act(b: &mut dyn Backend, a: Action) -> Done {
    b.act(&a).unwrap_or_else(|f| panic!("{a:?}: {f:?}"))
}

fn door(b: &mut dyn Backend, code: &str) -> DoorResult {
    match act(b, Action::CheckIn { code: code.into() }) {
        Done::Door(r) => r,
        other => panic!("{other:?}"),
    }
}

/// Runs the comparisons that must hold between the two consoles: same rows, same counts.
fn assert_same_figures(remote: &mut dyn Backend, local: &mut dyn Backend, event: &str) {
    // The local console writes from another process, which does not wake the server's outbox
    // processor; it settles those messages on its next poll. Compare once it has, or the two reads
    // could straddle that moment.
    for _ in 0..200 {
        let Data::Deliveries(d) = load(remote, Query::Deliveries) else {
            panic!("not deliveries")
        };
        if d.figures.pending == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for q in [
        Query::Events,
        Query::EventDetail { id: event.into() },
        Query::Audit(AuditFilter::default()),
        Query::Audit(AuditFilter {
            actor: Some("front-desk".into()),
            action: Some("walkup".into()),
        }),
    ] {
        assert_eq!(load(remote, q.clone()), load(local, q.clone()), "{q:?}");
    }
    let (Data::Deliveries(mut r), Data::Deliveries(mut l)) = (
        load(remote, Query::Deliveries),
        load(local, Query::Deliveries),
    ) else {
        panic!("not deliveries")
    };
    // The age of the oldest pending message moves with the clock between the two reads.
    r.figures.oldest_pending_age_secs = 0.0;
    l.figures.oldest_pending_age_secs = 0.0;
    assert_eq!(r, l);
    // The file's size is read twice, a moment apart; a commit of the server's own (its outbox
    // processor settling what it delivered) may land between them, so read again until a pair
    // straddles none.
    let mut pair = None;
    for _ in 0..50 {
        let (Data::Dashboard(r), Data::Dashboard(l)) = (
            load(remote, Query::Dashboard),
            load(local, Query::Dashboard),
        ) else {
            panic!("not dashboards")
        };
        let same_file = r.db_bytes == l.db_bytes;
        pair = Some((r, l));
        if same_file {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (r, l) = pair.expect("loaded");
    assert_eq!(r.registrations_total, l.registrations_total);
    assert_eq!(r.checked_in_total, l.checked_in_total);
    assert_eq!(r.on_sale, l.on_sale);
    assert_eq!(r.db_bytes, l.db_bytes);
    assert_eq!(
        r.outbox.map(|o| (o.pending, o.dead)),
        l.outbox.map(|o| (o.pending, o.dead))
    );
    // Both read their box's request counters. The local console here is a second app on the file,
    // which answered no HTTP request and has its cache off: nothing to count, and no made-up number.
    for d in [&r, &l] {
        assert!(d.traffic.is_some(), "{d:?}");
        assert!(d.uptime_secs.is_some());
    }
    let l = l.traffic.expect("local traffic");
    assert_eq!((l.requests, l.cache_hits, l.cache_misses), (0, 0, 0));
}

fn traffic(b: &mut dyn Backend) -> (tui::Millis, Traffic) {
    let Data::Dashboard(d) = load(b, Query::Dashboard) else {
        panic!("not a dashboard")
    };
    (d.at, d.traffic.expect("the box's counters"))
}

/// Real requests over HTTP show on the remote console's dashboard: exactly those, not its own
/// polling, with percentiles inside the box's buckets and the reads' cache hits.
fn assert_requests_show(rt: &tokio::runtime::Runtime, remote: &mut dyn Backend, url: &str) {
    let mut window = traffic::Window::default();
    let (at, before) = traffic(remote);
    window.push(at, Some(&before));
    let client = reqwest::Client::new();
    let reads = 30;
    for _ in 0..reads {
        let r = rt.block_on(client.get(url).send()).expect("GET the event");
        assert_eq!(r.status(), 200);
        // The console polling meanwhile does not count.
        load(remote, Query::Dashboard);
    }
    // A rate needs a second of the box's time between two samples.
    std::thread::sleep(Duration::from_millis(1_100));
    let (at, after) = traffic(remote);
    window.push(at, Some(&after));
    assert_eq!(
        after.requests - before.requests,
        reads,
        "{before:?} {after:?}"
    );
    let hits = after.cache_hits - before.cache_hits;
    let lookups = hits + after.cache_misses - before.cache_misses;
    assert_eq!(lookups, reads, "one cache lookup per read");
    assert!(hits >= reads - 2, "the event's reads hit the cache: {hits}");

    let traffic::Recent::Known(f) = window.recent() else {
        panic!("{:?}", window.recent())
    };
    assert_eq!(f.requests, reads);
    assert!(f.span_ms >= 1_000, "{f:?}");
    let per_s = reads as f64 * 1000.0 / f.span_ms as f64;
    assert!((f.requests_per_s - per_s).abs() < 1e-9, "{f:?}");
    let l = f.latency.expect("percentiles of 30 requests");
    assert!(
        0.0 < l.p50_ms && l.p50_ms <= l.p95_ms && l.p95_ms <= l.p99_ms && l.p99_ms < 1_000.0,
        "{l:?}"
    );
    assert!(f.cache_hit_rate.is_some_and(|r| r >= 0.9), "{f:?}");
}

/// In the product the in-process console reads the serving box's own counters: with both consoles
/// on one box, the remote one (over HTTP) and the local one (in-process) show the very same request
/// and cache counters, since the remote one leaves its own requests out.
#[test]
fn both_consoles_read_the_same_request_counters_of_one_box() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let t = spawn_app();
    let ev = rt.block_on(t.published_event(10));
    let mut local = Local::local(t.app.clone());
    let mut remote = Remote::remote(&t.url(""), &t.admin).expect("remote console");
    let same = |remote: &mut Remote, local: &mut Local| {
        let (_, r) = traffic(remote);
        let (_, l) = traffic(local);
        assert_eq!(r, l);
        r
    };
    let before = same(&mut remote, &mut local);
    for _ in 0..20 {
        let r = rt.block_on(t.get(&format!("/api/v1/events/{ev}"), None));
        assert_eq!(r.status, 200);
        load(&mut remote, Query::Events);
    }
    let after = same(&mut remote, &mut local);
    assert_eq!(after.requests - before.requests, 20);
    assert_eq!(
        after.latency_buckets.last().map(|b| b.1),
        Some(after.requests),
        "every request in the histogram, none of the console's"
    );
    assert_eq!(
        (after.cache_hits + after.cache_misses) - (before.cache_hits + before.cache_misses),
        20
    );
}

/// The remote console (HTTP, a token) against a headless box shows what the in-process console
/// shows on the same file, and does the same things through the same use cases; the audit log
/// names the token for the remote console's actions and `console` for the local one's.
#[test]
fn the_remote_console_shows_the_same_figures_and_does_the_same_actions() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let server = rt.block_on(Server::start(dir.path()));
    let (code, token, err) = run_cli(
        &["token", "create", "--role", "admin", "--name", "front-desk"],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let mut remote = Remote::remote(&server.url(""), token.trim()).expect("remote console");
    assert_eq!(remote.origin().actor, "front-desk");
    assert_eq!(remote.origin().place, server.url(""));

    // Events: create, publish, change capacity.
    let Done::Event(gala) = act(
        &mut remote,
        Action::CreateEvent(EventFields {
            name: "Gala 2026".into(),
            venue: "Main Hall".into(),
            starts_at: "2030-12-31T20:00:00Z".into(),
            capacity: 2,
        }),
    ) else {
        panic!("no event")
    };
    assert_eq!(gala.status, EventState::Draft);
    let refused = remote
        .act(&Action::CreateEvent(EventFields {
            name: "".into(),
            venue: "Hall".into(),
            starts_at: "soon".into(),
            capacity: 1,
        }))
        .expect_err("invalid event");
    assert_eq!(refused.code, "validation_failed");
    assert!(refused.message.contains("starts_at"), "{refused:?}");
    act(
        &mut remote,
        Action::Publish {
            id: gala.id.clone(),
        },
    );
    act(
        &mut remote,
        Action::SetCapacity {
            id: gala.id.clone(),
            capacity: 3,
        },
    );

    // The counter and the door.
    let Done::Sold { name, ticket_code } = act(
        &mut remote,
        Action::WalkUp {
            event_id: gala.id.clone(),
            name: Some("Walk In".into()),
            override_waitlist: false,
        },
    ) else {
        panic!("not sold")
    };
    assert_eq!(name, "Walk In");
    let Done::Sold {
        ticket_code: second,
        ..
    } = act(
        &mut remote,
        Action::WalkUp {
            event_id: gala.id.clone(),
            name: None,
            override_waitlist: false,
        },
    )
    else {
        panic!("not sold")
    };
    match door(&mut remote, &ticket_code) {
        DoorResult::Admitted {
            name, checked_in, ..
        } => assert_eq!((name.as_str(), checked_in), ("Walk In", 1)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        door(&mut remote, &ticket_code.to_lowercase()),
        DoorResult::AlreadyCheckedIn { at: Some(_) }
    ));
    assert_eq!(door(&mut remote, "ABCD-EFGH"), DoorResult::Unknown);

    // The local console, on the same file, sees the same and acts as `console`.
    // In the product the local console runs inside the serving box; here it is a second app on the
    // file, which would notice the server's commits only within a second (see `cache`). It reads
    // uncached, so the comparison is of figures, not of that second.
    let opts = AppOptions {
        cache: boxoffice::cache::CacheOptions {
            enabled: false,
            ..Default::default()
        },
        ..AppOptions::default()
    };
    let app = Arc::new(App::open(&dir.path().join("boxoffice.db"), opts).expect("open"));
    let mut local = Local::local(app);
    let Data::EventDetail(d) = load(
        &mut local,
        Query::EventDetail {
            id: gala.id.clone(),
        },
    ) else {
        panic!("no detail")
    };
    let guest = d
        .seated
        .iter()
        .find(|s| s.ticket_code.as_deref() == Some(second.as_str()))
        .expect("the second sale");
    assert_eq!(guest.attendee, "Walk-up guest");
    act(
        &mut remote,
        Action::CancelRegistration {
            id: guest.id.clone(),
        },
    );
    assert_eq!(door(&mut local, &second), DoorResult::Cancelled);
    act(
        &mut local,
        Action::WalkUp {
            event_id: gala.id.clone(),
            name: Some("Local Sale".into()),
            override_waitlist: false,
        },
    );
    assert_same_figures(&mut remote, &mut local, &gala.id);
    assert_requests_show(
        &rt,
        &mut remote,
        &server.url(&format!("/api/v1/events/{}", gala.id)),
    );

    let Data::Audit(rows) = load(&mut remote, Query::Audit(AuditFilter::default())) else {
        panic!("no audit")
    };
    let by = |actor: &str| -> Vec<String> {
        rows.iter()
            .filter(|a| a.actor == actor)
            .map(|a| a.action.clone())
            .rev()
            .collect()
    };
    assert_eq!(
        by("front-desk"),
        [
            "event.create",
            "event.publish",
            "event.capacity",
            "walkup",
            "walkup",
            "checkin",
            "registration.cancel"
        ]
    );
    assert_eq!(by("console"), ["walkup"]);
    assert!(rows.iter().filter(|a| a.actor == "front-desk").all(|a| a
        .remote_addr
        .as_deref()
        .is_some_and(|r| r.starts_with("127.0.0.1:"))));

    // Deliveries: nothing is dead without subscriptions, and retrying all says so.
    assert_eq!(
        act(&mut remote, Action::RetryAllDead),
        Done::Retried { count: 0 }
    );

    // Cancelling the event cancels its registrations; both consoles see it.
    let Done::Event(cancelled) = act(
        &mut remote,
        Action::CancelEvent {
            id: gala.id.clone(),
        },
    ) else {
        panic!("not an event")
    };
    assert_eq!(cancelled.status, EventState::Cancelled);
    assert_eq!(cancelled.active(), 0);
    assert_same_figures(&mut remote, &mut local, &gala.id);
    assert!(matches!(
        door(&mut local, &ticket_code),
        DoorResult::NotOpen { .. }
    ));
    drop(server);
}

#[test]
fn the_remote_console_refuses_a_wrong_token_before_taking_the_terminal() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let server = rt.block_on(Server::start(dir.path()));
    let err = Remote::remote(&server.url(""), "bo_not_a_token")
        .err()
        .expect("refused");
    assert!(err.to_string().contains("unauthorized"), "{err}");
    let err = Remote::remote(&format!("http://127.0.0.1:{}", free_port()), "x")
        .err()
        .expect("nobody listens");
    assert!(err.to_string().contains("unreachable"), "{err}");
}

// ----- the real binary in a real terminal -----

/// A tmux server of its own (its own socket), with one 120x40 window running `sh`.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str) -> Tmux {
        let socket = format!("bo-{name}-{}", std::process::id());
        let t = Tmux { socket };
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
            "sh",
        ]);
        t
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .expect("tmux must be installed (.ci/run installs it)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types text literally (no key names).
    fn text(&self, s: &str) {
        self.run(&["send-keys", "-t", "main", "-l", s]);
    }

    /// Presses keys by name: `Enter`, `Escape`, `q`.
    fn key(&self, k: &str) {
        self.run(&["send-keys", "-t", "main", k]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "main"])
    }

    /// Waits (bounded) until the screen shows `what`; returns the screen.
    fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("the screen never showed {what:?}; it shows:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alternate_screen_on(&self) -> bool {
        self.run(&["display-message", "-p", "-t", "main", "#{alternate_on}"])
            .trim()
            == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// Starts a bare `boxoffice` (demo data, console) in the tmux window; its pid goes to `pid_file`.
fn start_console(t: &Tmux, dir: &Path, port: u16) {
    let pid_file = dir.join("console.pid");
    t.text(&format!(
        "sh -c 'echo $$ > {pid}; exec env BOXOFFICE_LISTEN=127.0.0.1:{port} {bin} --data-dir {dir}'",
        pid = pid_file.display(),
        bin = bin(),
        dir = dir.display()
    ));
    t.key("Enter");
    t.wait_for("[1 Dashboard]");
    t.wait_for("New Year's Gala");
}

/// The pid of the console `start_console` started.
fn console_pid(dir: &Path) -> i32 {
    std::fs::read_to_string(dir.join("console.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

/// Waits (bounded) until the process is gone: until then the console's input thread may still read,
/// and drop, what the test types into the shell.
fn wait_exit(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() {
        assert!(Instant::now() < deadline, "the console did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// GET on the box under test with its admin token.
fn api(port: u16, dir: &Path, path: &str) -> serde_json::Value {
    let token = std::fs::read_to_string(dir.join("admin.token")).expect("admin.token");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}{path}"))
            .bearer_auth(token.trim())
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    })
}

/// The script, on the real binary in tmux: start with demo data, open an event, sell a
/// walk-up ticket, check it in at the Door, see "already checked in" on the second scan, cancel a
/// registration with its confirmation, and quit with the terminal restored.
#[test]
fn the_console_runs_the_night_in_a_real_terminal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let t = Tmux::start("night");
    start_console(&t, dir.path(), port);
    assert!(t.alternate_screen_on());

    // Open Jazz Night from the events list (filter, then enter).
    t.key("2");
    t.wait_for("Spring Comedy Showcase");
    t.text("/Jazz");
    t.key("Enter");
    t.key("Enter");
    t.wait_for("Seated (15)");

    // Sell a walk-up ticket.
    t.key("w");
    t.wait_for("Walk-up sale for Jazz Night");
    t.text("Walk In");
    t.key("Enter");
    let screen = t.wait_for("Sold: ticket ");
    let code = screen
        .split("Sold: ticket ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("ticket code")
        .to_string();
    assert_eq!(code.len(), 34, "{code}");
    t.wait_for("Seated (16)");

    // Scan it at the door, twice.
    t.key("3");
    t.wait_for("Scan or type a ticket code");
    t.text(&code);
    t.key("Enter");
    t.wait_for("ADMITTED");
    t.wait_for("Walk In · Jazz Night · 1 of 16 in");
    t.text(&code);
    t.key("Enter");
    t.wait_for("ALREADY CHECKED IN");

    // Esc at the door clears the input and stays (a scan after it must be read whole); tab leaves.
    t.key("Escape");
    t.key("2");
    assert!(t.screen().contains("[3 Door]"), "{}", t.screen());
    t.key("Escape");
    t.key("BTab");
    // Cancel a registration, with its confirmation.
    t.key("Enter");
    t.wait_for("Seated (16)");
    // The title's count comes with the event; the rows arrive from the worker after it. A key
    // pressed before the rows are there has nothing selected to act on.
    t.wait_for("Ada Lovelace");
    t.key("x");
    t.wait_for("Cancel 1 registration of Jazz Night: Ada Lovelace (confirmed)?");
    t.key("y");
    t.wait_for("Cancelled the registration of Ada Lovelace");
    t.wait_for("Seated (15)");

    // The box agrees, over its API, and the audit log names the console.
    let events = api(port, dir.path(), "/api/v1/events?status=published");
    let jazz = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["name"] == "Jazz Night")
        .expect("Jazz Night")
        .clone();
    assert_eq!(
        (jazz["confirmed"].as_i64(), jazz["checked_in"].as_i64()),
        (Some(15), Some(1))
    );
    let audit = api(port, dir.path(), "/api/v1/admin/audit?actor=console");
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["registration.cancel", "checkin", "walkup"]);

    // Quit: the box stops, and the terminal is the shell's again (main screen, cooked mode).
    t.key("q");
    t.wait_for("boxoffice stopped");
    wait_exit(console_pid(dir.path()));
    assert!(!t.alternate_screen_on());
    t.text("echo restored-$((20+22))");
    t.key("Enter");
    t.wait_for("restored-42");
    let log = std::fs::read_to_string(dir.path().join("boxoffice.log")).expect("log file");
    assert!(log.contains("serving, with the console"), "{log}");
}

/// SIGTERM while the console owns the terminal: the box stops cleanly and the terminal is restored.
#[test]
fn sigterm_restores_the_terminal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let t = Tmux::start("term");
    start_console(&t, dir.path(), port);
    let pid = console_pid(dir.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    t.wait_for("boxoffice stopped");
    wait_exit(pid);
    assert!(!t.alternate_screen_on());
    t.text("echo restored-$((40+2))");
    t.key("Enter");
    t.wait_for("restored-42");
}

/// A terminal too small for the tables gets a message; making it larger brings the screen back.
#[test]
fn a_small_terminal_gets_a_message_and_resizing_redraws() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let t = Tmux::start("resize");
    start_console(&t, dir.path(), port);
    t.run(&["resize-window", "-t", "main", "-x", "60", "-y", "15"]);
    t.wait_for("Terminal too small");
    t.run(&["resize-window", "-t", "main", "-x", "100", "-y", "30"]);
    t.wait_for("[1 Dashboard]");
    t.key("q");
    t.wait_for("boxoffice stopped");
}

/// Tidy: the console crate knows nothing of the box. Its manifest depends on ratatui and
/// crossterm only, and no source file names `boxoffice`, SQL or HTTP.
#[test]
fn the_tui_crate_never_imports_boxoffice() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("tui/Cargo.toml")).expect("tui manifest");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dependencies] table");
    let names: Vec<&str> = deps
        .lines()
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .collect();
    assert_eq!(names, ["ratatui", "crossterm"], "tui depends on {names:?}");
    let mut files = 0;
    for dir in ["tui/src", "tui/tests", "tui/tests/fixtures"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("tui dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                files += 1;
                let text = std::fs::read_to_string(&path).expect("source");
                for banned in [
                    "boxoffice::",
                    "use boxoffice",
                    "rusqlite",
                    "reqwest",
                    "axum",
                    "tokio",
                    "SELECT ",
                ] {
                    assert!(
                        !text.contains(banned),
                        "{} mentions {banned:?}: the console talks to the box through its Backend trait",
                        path.display()
                    );
                }
            }
        }
    }
    assert!(files >= 8, "found only {files} source files under tui/");
    let adapter = std::fs::read_to_string(root.join("src/console.rs")).expect("console.rs");
    for banned in ["rusqlite", "SELECT ", "prepare_cached"] {
        assert!(!adapter.contains(banned), "src/console.rs runs SQL");
    }
}

//! The audit log over real HTTP: every kind of staff action leaves exactly one row naming the actor,
//! the action, the target, the caller's address and the request id the response carried; sales
//! leave none; the filters (actor, action, target, time window) and keyset pages agree with the
//! rows; and every filter is served by an index, in order, without sorting or scanning the log.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use boxoffice::app::{AppOptions, ManualClock, OutboxOptions, SystemClock};
use boxoffice::config::HttpConfig;
use boxoffice::domain::Role;
use boxoffice::store::audit::{ActionMatch, Cursor, Filter};
use serde_json::{json, Value};

use crate::support::{free_port, run_cli, spawn_app_opts, Resp, TestApp};

/// Sends a request with an optional `x-request-id`; returns the response and the request id it
/// carried back.
async fn send(
    t: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
    request_id: Option<&str>,
) -> (Resp, String) {
    let mut req = t
        .client
        .request(method.parse().expect("method"), t.url(path))
        .bearer_auth(token);
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let resp = Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        bytes: r.bytes().await.expect("body").to_vec(),
    };
    let id = resp
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("every response carries x-request-id")
        .to_string();
    if let Some(sent) = request_id {
        assert_eq!(id, sent, "a sane request id is echoed");
    }
    (resp, id)
}

fn ok(r: &Resp) -> Value {
    assert!(
        (200..300).contains(&r.status),
        "{} {}",
        r.status,
        String::from_utf8_lossy(&r.bytes)
    );
    if r.bytes.is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

/// Every audit row, oldest first, through the API.
async fn all_rows(t: &TestApp) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut path = "/api/v1/admin/audit?limit=500".to_string();
    loop {
        let page = t.get(&path, Some(&t.admin)).await.json();
        rows.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next"].as_str() {
            Some(n) => path = format!("/api/v1/admin/audit?limit=500&after={n}"),
            None => break,
        }
    }
    rows.reverse();
    rows
}

/// What one request is expected to leave: (actor, action, target), or nothing.
type Expect = Option<(&'static str, &'static str, String)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_kind_of_staff_action_leaves_one_row_with_address_and_request_id() {
    let t = spawn_app_opts(
        HttpConfig::default(),
        AppOptions {
            outbox: OutboxOptions {
                max_attempts: 1,
                ..OutboxOptions::default()
            },
            ..AppOptions::default()
        },
        Arc::new(SystemClock),
    );
    let admin = t.admin.clone();
    let op = t.token(Role::Operator, "door-1");
    let kiosk = t.token(Role::Kiosk, "kiosk-1");
    // request id -> what it must have left.
    let mut expect: Vec<(String, Expect)> = Vec::new();
    let mut n = 0;
    let mut rid = |what: &str| {
        n += 1;
        format!("t{n}-{what}")
    };

    // Events: create, update, capacity, publish.
    let (r, id) = send(&t, "POST", "/api/v1/events", &admin, Some(json!({"name": "Gala", "venue": "Hall", "starts_at": "2030-01-01T20:00:00Z", "capacity": 2})), Some(&rid("create"))).await;
    let ev = ok(&r)["id"].as_str().expect("id").to_string();
    expect.push((id, Some(("admin", "event.create", ev.clone()))));
    let (r, id) = send(
        &t,
        "PATCH",
        &format!("/api/v1/events/{ev}"),
        &admin,
        Some(json!({"venue": "Annex"})),
        Some(&rid("update")),
    )
    .await;
    ok(&r);
    expect.push((id, Some(("admin", "event.update", ev.clone()))));
    let (r, id) = send(
        &t,
        "PATCH",
        &format!("/api/v1/events/{ev}"),
        &admin,
        Some(json!({"capacity": 3})),
        Some(&rid("capacity")),
    )
    .await;
    ok(&r);
    expect.push((id, Some(("admin", "event.capacity", ev.clone()))));
    let (r, id) = send(
        &t,
        "POST",
        &format!("/api/v1/events/{ev}/publish"),
        &admin,
        None,
        Some(&rid("publish")),
    )
    .await;
    ok(&r);
    expect.push((id, Some(("admin", "event.publish", ev.clone()))));

    // Sales by a kiosk leave no row: an attendee, two registrations, a kiosk's own cancellation.
    let mut regs = Vec::new();
    for i in 0..3 {
        let (r, id) = send(
            &t,
            "POST",
            "/api/v1/attendees",
            &kiosk,
            Some(json!({"name": format!("Guest {i}"), "email": format!("g{i}@example.org")})),
            Some(&rid("attendee")),
        )
        .await;
        let a = ok(&r)["id"].as_str().expect("id").to_string();
        expect.push((id, None));
        let (r, id) = send(
            &t,
            "POST",
            &format!("/api/v1/events/{ev}/registrations"),
            &kiosk,
            Some(json!({"attendee_id": a})),
            Some(&rid("sale")),
        )
        .await;
        regs.push(ok(&r));
        expect.push((id, None));
    }
    let reg = |i: usize| regs[i]["id"].as_str().expect("id").to_string();
    let (r, id) = send(
        &t,
        "POST",
        &format!("/api/v1/registrations/{}/cancel", reg(2)),
        &kiosk,
        None,
        Some(&rid("kiosk-cancel")),
    )
    .await;
    ok(&r);
    expect.push((id, None));

    // The door: a scan through the blocking path (with an Idempotency-Key) ...
    let code = |i: usize| regs[i]["ticket_code"].as_str().expect("code").to_string();
    let r = t
        .client
        .post(t.url("/api/v1/checkins"))
        .bearer_auth(&op)
        .header("idempotency-key", "scan-0")
        .header("x-request-id", "t-scan-idem")
        .json(&json!({"ticket_code": code(0)}))
        .send()
        .await
        .expect("scan");
    assert_eq!(r.status(), 200);
    expect.push(("t-scan-idem".into(), Some(("door-1", "checkin", reg(0)))));
    // ... its revert, and a scan on the hot path (the token was just authenticated), without a
    // request id of its own: the one the box made up is in the response and in the row.
    let (r, id) = send(
        &t,
        "POST",
        &format!("/api/v1/checkins/{}/revert", reg(0)),
        &op,
        None,
        Some(&rid("revert")),
    )
    .await;
    ok(&r);
    expect.push((id, Some(("door-1", "checkin.revert", reg(0)))));
    let (r, id) = send(
        &t,
        "POST",
        "/api/v1/checkins",
        &op,
        Some(json!({"ticket_code": code(1)})),
        None,
    )
    .await;
    ok(&r);
    expect.push((id, Some(("door-1", "checkin", reg(1)))));

    // A staff cancellation, a walk-up sale.
    let (r, id) = send(
        &t,
        "POST",
        &format!("/api/v1/registrations/{}/cancel", reg(1)),
        &op,
        None,
        Some(&rid("staff-cancel")),
    )
    .await;
    ok(&r);
    expect.push((id, Some(("door-1", "registration.cancel", reg(1)))));
    let (r, id) = send(
        &t,
        "POST",
        &format!("/api/v1/events/{ev}/walkups"),
        &op,
        Some(json!({"name": "Counter"})),
        Some(&rid("walkup")),
    )
    .await;
    let walkup = ok(&r)["registration"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    expect.push((id, Some(("door-1", "walkup", walkup))));

    // Tokens over the API.
    let (r, id) = send(
        &t,
        "POST",
        "/api/v1/admin/tokens",
        &admin,
        Some(json!({"name": "kiosk-2", "role": "kiosk"})),
        Some(&rid("token-create")),
    )
    .await;
    let tok = ok(&r)["id"].as_str().expect("id").to_string();
    expect.push((id, Some(("admin", "token.create", "kiosk-2".into()))));
    let (r, id) = send(
        &t,
        "DELETE",
        &format!("/api/v1/admin/tokens/{tok}"),
        &admin,
        None,
        Some(&rid("token-revoke")),
    )
    .await;
    ok(&r);
    expect.push((id, Some(("admin", "token.revoke", "kiosk-2".into()))));

    // Webhooks, and a retry of the message that died at a closed port.
    let closed: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let (r, id) = send(
        &t,
        "POST",
        "/api/v1/admin/webhooks",
        &admin,
        Some(json!({"url": format!("http://{closed}/hook")})),
        Some(&rid("webhook-create")),
    )
    .await;
    let hook = ok(&r)["id"].as_str().expect("id").to_string();
    expect.push((id, Some(("admin", "webhook.create", hook.clone()))));
    let (r, id) = send(
        &t,
        "PATCH",
        &format!("/api/v1/admin/webhooks/{hook}"),
        &admin,
        Some(json!({"description": "door feed"})),
        Some(&rid("webhook-update")),
    )
    .await;
    ok(&r);
    expect.push((id, Some(("admin", "webhook.update", hook.clone()))));
    let (r, _) = send(
        &t,
        "POST",
        &format!("/api/v1/events/{ev}/walkups"),
        &op,
        None,
        None,
    )
    .await;
    ok(&r);
    let p = boxoffice::outbox::Processor::with_http(t.app.clone()).expect("processor");
    while boxoffice::outbox::run_once(&p)
        .await
        .expect("run_once")
        .did_work()
    {}
    let dead = t
        .get("/api/v1/admin/outbox?state=dead", Some(&admin))
        .await
        .json();
    let message = dead["items"][0]["id"]
        .as_str()
        .expect("a dead message")
        .to_string();
    let (r, id) = send(
        &t,
        "POST",
        &format!("/api/v1/admin/outbox/{message}/retry"),
        &admin,
        None,
        Some(&rid("retry")),
    )
    .await;
    ok(&r);
    expect.push((id, Some(("admin", "outbox.retry", message))));
    let (r, id) = send(
        &t,
        "DELETE",
        &format!("/api/v1/admin/webhooks/{hook}"),
        &admin,
        None,
        Some(&rid("webhook-delete")),
    )
    .await;
    ok(&r);
    expect.push((id, Some(("admin", "webhook.delete", hook))));

    // Personal data: an export and an erasure.
    let guest = regs[0]["attendee_id"]
        .as_str()
        .expect("attendee")
        .to_string();
    let (r, id) = send(
        &t,
        "GET",
        &format!("/api/v1/attendees/{guest}/export"),
        &admin,
        None,
        Some(&rid("export")),
    )
    .await;
    ok(&r);
    expect.push((id, Some(("admin", "attendee.export", guest.clone()))));
    let (r, id) = send(
        &t,
        "DELETE",
        &format!("/api/v1/attendees/{guest}"),
        &admin,
        None,
        Some(&rid("erase")),
    )
    .await;
    ok(&r);
    expect.push((id, Some(("admin", "attendee.erase", guest))));

    // Last, the event's cancellation.
    let (r, id) = send(
        &t,
        "POST",
        &format!("/api/v1/events/{ev}/cancel"),
        &admin,
        None,
        Some(&rid("cancel")),
    )
    .await;
    ok(&r);
    expect.push((id, Some(("admin", "event.cancel", ev))));

    let rows = all_rows(&t).await;
    let mut by_request: HashMap<String, Vec<&Value>> = HashMap::new();
    for row in &rows {
        if let Some(id) = row["request_id"].as_str() {
            by_request.entry(id.to_string()).or_default().push(row);
        }
    }
    for (request_id, want) in &expect {
        let got = by_request.get(request_id).cloned().unwrap_or_default();
        match want {
            None => assert!(
                got.is_empty(),
                "{request_id} is a sale, not audited: {got:?}"
            ),
            Some((actor, action, target)) => {
                assert_eq!(got.len(), 1, "{request_id}: exactly one row, got {got:?}");
                let row = got[0];
                assert_eq!(row["actor"], *actor, "{row}");
                assert_eq!(row["action"], *action, "{row}");
                assert_eq!(row["target"].as_str(), Some(target.as_str()), "{row}");
                let addr: SocketAddr = row["remote_addr"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("remote address of {row}"));
                assert!(addr.ip().is_loopback(), "{row}");
                assert!(
                    row["at"].as_str().is_some_and(|a| a.ends_with('Z')),
                    "{row}"
                );
            }
        }
    }
    // The actions listed are all there are: nothing else wrote a row with a request id.
    let audited = expect.iter().filter(|(_, w)| w.is_some()).count();
    assert_eq!(
        by_request.values().map(Vec::len).sum::<usize>(),
        audited + 1,
        "plus the walk-up whose message died"
    );
}

#[tokio::test]
async fn the_command_line_is_audited_as_cli() {
    let dir = tempfile::tempdir().expect("dir");
    // The first `serve` is what creates the database; the CLI's own `token create` needs it.
    {
        let _app =
            boxoffice::app::App::open(&dir.path().join("boxoffice.db"), AppOptions::default())
                .expect("create the database");
    }
    let (code, secret, err) = run_cli(
        &["token", "create", "--role", "kiosk", "--name", "till-3"],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(secret.trim().starts_with("bo_"));
    let (code, _, err) = run_cli(&["token", "revoke", "till-3"], dir.path());
    assert_eq!(code, 0, "{err}");
    let conn = rusqlite::Connection::open(dir.path().join("boxoffice.db")).expect("open");
    let rows: Vec<(String, String, Option<String>, Option<String>)> = conn
        .prepare("SELECT actor, action, target, remote_addr FROM audit ORDER BY seq")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        rows,
        [
            (
                "cli".into(),
                "token.create".into(),
                Some("till-3".into()),
                None
            ),
            (
                "cli".into(),
                "token.revoke".into(),
                Some("till-3".into()),
                None
            ),
        ]
    );
}

/// Five rows a minute apart, by two actors, on two targets.
async fn seeded() -> (TestApp, Arc<ManualClock>, Vec<Value>) {
    let clock = Arc::new(ManualClock::new(
        boxoffice::domain::Timestamp::parse("2030-06-01T18:00:00Z").expect("time"),
    ));
    let t = spawn_app_opts(HttpConfig::default(), AppOptions::default(), clock.clone());
    let ops = t.token(Role::Admin, "ops");
    let mut events = Vec::new();
    for (i, token) in [&t.admin, &ops].into_iter().enumerate() {
        clock.advance_millis(60_000);
        let r = t
            .post(
                "/api/v1/events",
                Some(token),
                json!({"name": format!("E{i}"), "venue": "V", "starts_at": "2030-07-01T20:00:00Z", "capacity": 5}),
            )
            .await;
        events.push(r.json()["id"].as_str().expect("id").to_string());
    }
    clock.advance_millis(60_000);
    let p = t
        .post(
            &format!("/api/v1/events/{}/publish", events[0]),
            Some(&ops),
            json!({}),
        )
        .await;
    assert_eq!(p.status, 200);
    clock.advance_millis(60_000);
    let r = t
        .send(
            "PATCH",
            &format!("/api/v1/events/{}", events[0]),
            Some(&t.admin),
            Some(json!({"capacity": 9})),
        )
        .await;
    assert_eq!(r.status, 200);
    clock.advance_millis(60_000);
    let r = t
        .send(
            "PATCH",
            &format!("/api/v1/events/{}", events[1]),
            Some(&ops),
            Some(json!({"name": "E1b"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let events = events.into_iter().map(Value::from).collect();
    (t, clock, events)
}

async fn actions(t: &TestApp, query: &str) -> Vec<String> {
    let r = t
        .get(&format!("/api/v1/admin/audit?{query}"), Some(&t.admin))
        .await;
    assert_eq!(
        r.status,
        200,
        "{query}: {}",
        String::from_utf8_lossy(&r.bytes)
    );
    r.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["actor"].as_str().unwrap_or("?"),
                a["action"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

#[tokio::test]
async fn filters_by_actor_action_target_and_time_and_pages_through_them() {
    let (t, _clock, events) = seeded().await;
    let (e0, e1) = (
        events[0].as_str().expect("id"),
        events[1].as_str().expect("id"),
    );
    // The two token.create rows come from the harness (`test`), 18:00; the rest a minute apart.
    assert_eq!(
        actions(&t, "").await,
        [
            "ops event.update",
            "admin event.capacity",
            "ops event.publish",
            "ops event.create",
            "admin event.create",
            "test token.create",
            "test token.create",
        ]
    );
    assert_eq!(
        actions(&t, "actor=ops").await,
        ["ops event.update", "ops event.publish", "ops event.create"]
    );
    // A noun takes all its actions; a whole action only itself; a part of a noun nothing.
    assert_eq!(
        actions(&t, "action=event&actor=admin").await,
        ["admin event.capacity", "admin event.create"]
    );
    assert_eq!(
        actions(&t, "action=event.capacity").await,
        ["admin event.capacity"]
    );
    assert_eq!(actions(&t, "action=token").await.len(), 2);
    assert!(actions(&t, "action=even").await.is_empty());
    assert_eq!(
        actions(&t, &format!("target={e0}")).await,
        [
            "admin event.capacity",
            "ops event.publish",
            "admin event.create"
        ]
    );
    assert_eq!(
        actions(&t, &format!("target={e1}&actor=ops")).await,
        ["ops event.update", "ops event.create"]
    );
    // The time window includes both ends; any offset is understood.
    assert_eq!(
        actions(&t, "since=2030-06-01T18:02:00Z&until=2030-06-01T18:04:00Z").await,
        [
            "admin event.capacity",
            "ops event.publish",
            "ops event.create"
        ]
    );
    assert_eq!(
        actions(&t, "since=2030-06-01T20:03:00%2B02:00&actor=ops").await,
        ["ops event.update", "ops event.publish"]
    );
    assert_eq!(
        actions(&t, "until=2030-06-01T18:00:59Z").await,
        ["test token.create", "test token.create"]
    );

    // Pages of one through a filter: every row once, newest first, then no next.
    let mut seen = Vec::new();
    let mut path = "/api/v1/admin/audit?action=event&limit=1".to_string();
    loop {
        let page = t.get(&path, Some(&t.admin)).await.json();
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 1);
        seen.extend(items.iter().map(|a| {
            (
                a["at"].as_str().unwrap_or("").to_string(),
                a["seq"].as_i64().unwrap_or(0),
            )
        }));
        match page["next"].as_str() {
            Some(n) => path = format!("/api/v1/admin/audit?action=event&limit=1&after={n}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );

    // Bad filters are refused and change nothing.
    let before = t.snapshot();
    for (q, field) in [
        ("since=yesterday", "since"),
        ("until=2030-13-01T00:00:00Z", "until"),
        (
            "since=2030-06-02T00:00:00Z&until=2030-06-01T00:00:00Z",
            "since",
        ),
        ("target=", "none"),
    ] {
        let r = t
            .get(&format!("/api/v1/admin/audit?{q}"), Some(&t.admin))
            .await;
        if field == "none" {
            // An empty filter means any.
            assert_eq!(r.status, 200, "{q}");
        } else {
            r.assert_problem(422, "validation_failed");
            assert_eq!(r.json()["errors"][0]["field"], field, "{q}");
        }
    }
    let long = "x".repeat(201);
    t.get(
        &format!("/api/v1/admin/audit?target={long}"),
        Some(&t.admin),
    )
    .await
    .assert_problem(422, "validation_failed");
    assert_eq!(t.snapshot(), before);
}

#[test]
fn every_filter_reads_one_index_in_order_without_sorting_or_scanning() {
    let dir = tempfile::tempdir().expect("dir");
    let app = boxoffice::app::App::open(&dir.path().join("boxoffice.db"), AppOptions::default())
        .expect("open");
    drop(app);
    let conn = rusqlite::Connection::open(dir.path().join("boxoffice.db")).expect("open");
    let cursor = Some(Cursor { at: 2, seq: 3 });
    let actions = [
        None,
        Some(ActionMatch::Exact("event.capacity")),
        Some(ActionMatch::Noun("event")),
    ];
    for actor in [None, Some("door-1")] {
        for action in actions {
            for target in [None, Some("some-id")] {
                for (since, until) in [
                    (None, None),
                    (Some(1), None),
                    (None, Some(9)),
                    (Some(1), Some(9)),
                ] {
                    for after in [None, cursor] {
                        let f = Filter {
                            actor,
                            action,
                            target,
                            since,
                            until,
                        };
                        let (sql, args) = boxoffice::store::audit::list_query(&f, after, 50);
                        let plan: Vec<String> = conn
                            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                            .expect("plan")
                            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
                            .expect("query")
                            .collect::<Result<_, _>>()
                            .expect("rows");
                        let plan = plan.join("; ");
                        assert!(!plan.contains("TEMP B-TREE"), "{f:?} sorts: {plan}");
                        let filtered = actor.is_some()
                            || action.is_some()
                            || target.is_some()
                            || since.is_some()
                            || until.is_some()
                            || after.is_some();
                        let equality = actor.is_some() || action.is_some() || target.is_some();
                        if equality {
                            // One of the filter's own indexes, never a walk along time that
                            // tests each row.
                            assert!(
                                plan.starts_with("SEARCH audit USING")
                                    && ["actor", "action", "noun", "target"]
                                        .iter()
                                        .any(|i| plan.contains(&format!("INDEX audit_by_{i} ("))),
                                "{f:?} {after:?}: {plan}"
                            );
                        } else if filtered {
                            assert!(
                                plan.starts_with("SEARCH audit USING")
                                    && plan.contains("INDEX audit_by_at ("),
                                "{f:?} {after:?}: {plan}"
                            );
                        } else {
                            // The unfiltered log is read newest first along `at`, `limit` rows.
                            assert!(plan.contains("INDEX audit_by_at"), "{plan}");
                        }
                    }
                }
            }
        }
    }
}

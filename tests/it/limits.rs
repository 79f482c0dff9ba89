//! Rate limits over real HTTP: per client address for anonymous callers, per token otherwise, with
//! the IETF `RateLimit-Policy` / `RateLimit` headers on every answer of a limited class and 429
//! `rate_limited` with `Retry-After` over the limit. The server runs on a manual clock, so "within a
//! minute" is exact: quotas refill only when the test moves the clock.

use std::net::IpAddr;
use std::sync::Arc;

use boxoffice::app::ManualClock;
use boxoffice::config::{HttpConfig, RateLimitConfig};
use boxoffice::domain::{Role, Timestamp};
use serde_json::json;

use crate::support::{sample, scrape, spawn_app_full, Resp, TestApp};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_millis(1_900_000_000_000)))
}

fn with_limits(limits: RateLimitConfig, clock: Arc<ManualClock>) -> TestApp {
    let cfg = HttpConfig {
        rate_limit: limits,
        ..HttpConfig::default()
    };
    spawn_app_full(cfg, clock)
}

fn header<'a>(r: &'a Resp, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_101st_anonymous_request_in_a_minute_is_refused_with_the_headers() {
    let clock = clock();
    let t = spawn_app_full(HttpConfig::default(), clock.clone());
    for i in 0..100 {
        // Every answer of a limited class has the headers, a 404 as much as a 200.
        let path = if i == 50 {
            "/no/such/page"
        } else {
            "/api/v1/events"
        };
        let r = t.get(path, None).await;
        assert_eq!(r.status, if i == 50 { 404 } else { 200 });
        assert_eq!(
            header(&r, "ratelimit-policy"),
            Some("\"anonymous\";q=100;w=60")
        );
        let state = header(&r, "ratelimit").expect("RateLimit");
        assert!(
            state.starts_with(&format!("\"anonymous\";r={};t=", 99 - i)),
            "request {}: {state}",
            i + 1
        );
    }
    let refused = t.get("/api/v1/events", None).await;
    refused.assert_problem(429, "rate_limited");
    assert_eq!(header(&refused, "retry-after"), Some("1"));
    assert_eq!(
        header(&refused, "ratelimit-policy"),
        Some("\"anonymous\";q=100;w=60")
    );
    assert_eq!(
        header(&refused, "ratelimit"),
        Some("\"anonymous\";r=0;t=60")
    );
    assert!(refused.headers.contains_key("x-request-id"));

    // One request comes back every 0.6 s.
    clock.advance_millis(600);
    assert_eq!(t.get("/api/v1/events", None).await.status, 200);
    t.get("/api/v1/events", None)
        .await
        .assert_problem(429, "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_kiosks_limit_does_not_touch_another_kiosk_and_a_refusal_changes_nothing() {
    let limits = RateLimitConfig {
        kiosk_per_minute: 5,
        ..RateLimitConfig::default()
    };
    let t = with_limits(limits, clock());
    let a = t.token(Role::Kiosk, "kiosk-a");
    let b = t.token(Role::Kiosk, "kiosk-b");
    for i in 0..5 {
        let r = t
            .post(
                "/api/v1/attendees",
                Some(&a),
                json!({"name": "A", "email": format!("a{i}@example.org")}),
            )
            .await;
        assert_eq!(r.status, 201);
        assert_eq!(header(&r, "ratelimit-policy"), Some("\"kiosk\";q=5;w=60"));
        let state = header(&r, "ratelimit").expect("RateLimit");
        assert!(
            state.starts_with(&format!("\"kiosk\";r={};", 4 - i)),
            "{state}"
        );
    }
    let before = t.snapshot();
    let refused = t
        .post(
            "/api/v1/attendees",
            Some(&a),
            json!({"name": "A", "email": "a-too-many@example.org"}),
        )
        .await;
    refused.assert_problem(429, "rate_limited");
    assert_eq!(header(&refused, "retry-after"), Some("12"));
    assert_eq!(
        t.snapshot(),
        before,
        "a refused request changed the database"
    );

    // Kiosk B has its whole quota; the address's anonymous quota is untouched too.
    let other = t.get("/api/v1/events", Some(&b)).await;
    assert_eq!(other.status, 200);
    assert_eq!(header(&other, "ratelimit"), Some("\"kiosk\";r=4;t=12"));
    let anonymous = t.get("/api/v1/events", None).await;
    assert_eq!(anonymous.status, 200);
    assert_eq!(
        header(&anonymous, "ratelimit"),
        Some("\"anonymous\";r=99;t=1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tokens_are_not_limited_by_default_and_operators_are() {
    let t = spawn_app_full(HttpConfig::default(), clock());
    for _ in 0..250 {
        let r = t.get("/api/v1/events", Some(&t.admin)).await;
        assert_eq!(r.status, 200);
        assert!(!r.headers.contains_key("ratelimit"));
        assert!(!r.headers.contains_key("ratelimit-policy"));
    }
    let op = t.token(Role::Operator, "door");
    let r = t.get("/api/v1/events", Some(&op)).await;
    assert_eq!(
        header(&r, "ratelimit-policy"),
        Some("\"operator\";q=6000;w=60")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tokens_spend_the_anonymous_quota_of_their_address() {
    let limits = RateLimitConfig {
        anonymous_per_minute: 3,
        ..RateLimitConfig::default()
    };
    let t = with_limits(limits, clock());
    for _ in 0..3 {
        let r = t
            .get("/api/v1/stats", Some("bo_guessedtokenguessedtoken"))
            .await;
        r.assert_problem(401, "unauthorized");
        assert_eq!(
            header(&r, "ratelimit-policy"),
            Some("\"anonymous\";q=3;w=60")
        );
    }
    t.get("/api/v1/stats", Some("bo_anotherguessanotherguess"))
        .await
        .assert_problem(429, "rate_limited");
    t.get("/health", None)
        .await
        .assert_problem(429, "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_address_has_its_own_anonymous_quota() {
    let limits = RateLimitConfig {
        anonymous_per_minute: 2,
        ..RateLimitConfig::default()
    };
    let t = with_limits(limits, clock());
    // Every 127.0.0.0/8 address is this machine: three clients from three addresses.
    for last in 2..5u8 {
        let from = IpAddr::from([127, 0, 0, last]);
        let client = reqwest::Client::builder()
            .local_address(from)
            .build()
            .expect("client");
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let r = client
                .get(t.url("/api/v1/events"))
                .send()
                .await
                .expect("send");
            statuses.push(r.status().as_u16());
        }
        assert_eq!(statuses, [200, 200, 429], "from {from}");
    }
}

/// One request over a new connection from `from` (an address of 127.0.0.0/8): the status of the
/// answer, or `None` when the server closed the connection without answering.
async fn raw_status(t: &TestApp, from: [u8; 4], head: &str) -> Option<u16> {
    let text = raw_answer(t, from, head).await?;
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

/// One request over a new connection from `from`: the whole answer up to the server's close, or
/// `None` when it closed (or reset) the connection without answering.
async fn raw_answer(t: &TestApp, from: [u8; 4], head: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = idle_from(t, from).await;
    // A closed connection may refuse the write; the read below tells what happened.
    let _ = s.write_all(head.as_bytes()).await;
    let mut out = Vec::new();
    // A reset after some bytes still leaves them to read; no bytes at all is no answer.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server answers or closes within 10 s");
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

fn banning(strikes: u32, limits: RateLimitConfig, clock: Arc<ManualClock>) -> TestApp {
    let cfg = HttpConfig {
        rate_limit: limits,
        ban_strikes: strikes,
        ban_window_secs: 10,
        ban_secs: 60,
        ..HttpConfig::default()
    };
    spawn_app_full(cfg, clock)
}

const HEALTH: &str = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_keeps_sending_oversized_heads_is_shut_out_and_its_neighbours_are_not() {
    let clock = clock();
    let t = banning(5, RateLimitConfig::default(), clock.clone());
    let hostile = [127, 0, 0, 2];
    // A head over the 16 KiB bound, five times: each is refused with 431, the fifth bans.
    let oversized = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    for i in 0..5 {
        assert_eq!(raw_status(&t, hostile, &oversized).await, Some(431), "#{i}");
    }
    // Now even a good request from that address is closed unanswered. (hyper answers a head over
    // the bound itself and the strike is counted when its connection ends, a moment after the
    // client has read the 431: a few requests may still get through.)
    let mut through = 0;
    while raw_status(&t, hostile, HEALTH).await.is_some() {
        through += 1;
        assert!(through < 100, "the address was never banned");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(raw_status(&t, hostile, HEALTH).await, None);
    // ...while its neighbours are served.
    assert_eq!(raw_status(&t, [127, 0, 0, 3], HEALTH).await, Some(200));
    assert_eq!(t.get("/health", None).await.status, 200);
    // The ban ends after ban_secs on the app's clock.
    clock.advance_millis(59_000);
    assert_eq!(raw_status(&t, hostile, HEALTH).await, None, "still banned");
    clock.advance_millis(1_001);
    assert_eq!(raw_status(&t, hostile, HEALTH).await, Some(200));

    // What the guard did shows in /metrics: five strikes, one ban, and the connections it closed
    // unread (the three `None`s above at least).
    let m = scrape(&t).await;
    assert_eq!(sample(&m, "http_strikes_total", &[]), Some(5.0));
    assert_eq!(sample(&m, "http_bans_total", &[]), Some(1.0));
    let refused = |reason| sample(&m, "http_connections_refused_total", &[("reason", reason)]);
    assert!(refused("banned").is_some_and(|n| n >= 3.0), "{m:?}");
    assert_eq!(refused("over_capacity"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_closes_the_addresss_other_open_connections_after_their_next_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = banning(3, RateLimitConfig::default(), clock());
    let hostile = [127, 0, 0, 12];
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from((hostile, 0)))
        .expect("bind");
    let mut kept = socket.connect(t.addr).await.expect("connect");
    let ask = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
    // One answer on a keep-alive connection: read up to its end (the body is JSON, `}` last).
    async fn answer(s: &mut tokio::net::TcpStream) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
                .await
                .expect("an answer within 10 s")
                .expect("read");
            out.extend_from_slice(&buf[..n]);
            if n == 0 || out.ends_with(b"}") {
                return String::from_utf8_lossy(&out).into_owned();
            }
        }
    }
    kept.write_all(ask.as_bytes()).await.expect("write");
    let first = answer(&mut kept).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        !first.to_lowercase().contains("connection: close"),
        "{first}"
    );
    // Three bodies over the limit from the same address, on other connections: banned.
    let oversized = "POST /api/v1/attendees HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 999999\r\nConnection: close\r\n\r\n";
    for i in 0..3 {
        assert_eq!(raw_status(&t, hostile, oversized).await, Some(413), "#{i}");
    }
    assert_eq!(raw_status(&t, hostile, HEALTH).await, None, "banned");
    // The connection opened before the ban gets its next answer, and it is the last.
    kept.write_all(ask.as_bytes()).await.expect("write");
    let last = answer(&mut kept).await;
    assert!(last.starts_with("HTTP/1.1 200"), "{last}");
    assert!(last.to_lowercase().contains("connection: close"), "{last}");
    let mut rest = Vec::new();
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        kept.read_to_end(&mut rest),
    )
    .await
    .expect("closed within 10 s");
    assert!(
        n.is_err() || rest.is_empty(),
        "nothing after the last answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_refusals_ban_the_address_and_a_tokens_refusals_do_not() {
    let limits = RateLimitConfig {
        anonymous_per_minute: 2,
        kiosk_per_minute: 2,
        ..RateLimitConfig::default()
    };
    let t = banning(3, limits, clock());
    // A kiosk over its limit: its 429s count against the token, never against its address (a web
    // shop behind one proxy address must not be shut out for one token's runaway loop).
    let kiosk = t.token(Role::Kiosk, "kiosk");
    let with_token = format!(
        "GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {kiosk}\r\nConnection: close\r\n\r\n"
    );
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(raw_status(&t, [127, 0, 0, 4], &with_token).await);
    }
    let (ok, limited) = (Some(200), Some(429));
    assert_eq!(
        statuses,
        [ok, ok, limited, limited, limited, limited, limited]
    );

    // Anonymous callers are counted by address: three refusals ban it.
    let anonymous = "GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(raw_status(&t, [127, 0, 0, 5], anonymous).await);
    }
    assert_eq!(statuses, [ok, ok, limited, limited, limited, None]);
    // A request with a valid token from the banned address is shut out too: the ban is decided
    // before anything is read.
    assert_eq!(raw_status(&t, [127, 0, 0, 5], &with_token).await, None);
}

/// A connection from `from`, opened and left idle (it holds its slot until the header read timeout).
async fn idle_from(t: &TestApp, from: [u8; 4]) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from((from, 0)))
        .expect("bind");
    socket.connect(t.addr).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holding_its_share_of_connections_cannot_shut_out_the_others() {
    let cfg = HttpConfig {
        max_connections: 8,
        max_connections_per_address: Some(3),
        header_read_timeout_secs: 60,
        ..HttpConfig::default()
    };
    let t = spawn_app_full(cfg, clock());
    let hog = [127, 0, 0, 21];
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(idle_from(&t, hog).await);
    }
    // Each new connection is counted when the server accepts it: wait until the three are in.
    let mut answer = None;
    for _ in 0..100 {
        answer = raw_status(&t, hog, HEALTH).await;
        if answer == Some(503) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        answer,
        Some(503),
        "a fourth connection from the address is refused"
    );
    // The refusal is the readable problem document, naming the setting.
    let text = raw_answer(&t, hog, HEALTH).await.expect("an answer");
    let body: serde_json::Value =
        serde_json::from_str(text.split_once("\r\n\r\n").expect("a head and a body").1)
            .expect("a problem document");
    assert_eq!(body["code"], "too_many_connections");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("http.max_connections_per_address")),
        "{body}"
    );
    // Five of eight slots are free, and other addresses get them.
    assert_eq!(raw_status(&t, [127, 0, 0, 22], HEALTH).await, Some(200));
    assert_eq!(t.get("/health", None).await.status, 200);
    // A connection closed gives its address its slot back.
    drop(held.pop());
    let mut back = None;
    for _ in 0..100 {
        back = raw_status(&t, hog, HEALTH).await;
        if back == Some(200) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(back, Some(200), "the address is served again");

    let m = scrape(&t).await;
    let refused = |reason| sample(&m, "http_connections_refused_total", &[("reason", reason)]);
    assert!(refused("address_full").is_some_and(|n| n >= 2.0), "{m:?}");
    assert_eq!(refused("over_capacity"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_answered_at_once_are_bounded_and_the_rest_are_closed_unanswered() {
    use tokio::io::AsyncReadExt;
    let cfg = HttpConfig {
        max_connections: 2,
        max_connections_per_address: Some(1),
        header_read_timeout_secs: 60,
        ..HttpConfig::default()
    };
    let t = spawn_app_full(cfg, clock());
    // The address's one slot, held.
    let _held = idle_from(&t, [127, 0, 0, 31]).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Connections past the cap, each kept open (so each refusal waits about a second for the
    // client to hang up): at most 64 are answered at a time.
    let mut refused = Vec::new();
    for _ in 0..200 {
        refused.push(idle_from(&t, [127, 0, 0, 31]).await);
    }
    let (mut answered, mut unanswered) = (0, 0);
    for s in &mut refused {
        let mut head = [0u8; 12];
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut head))
            .await
            .expect("answered or closed within 10 s");
        match read {
            Ok(n) if n > 0 => {
                assert!(head[..n].starts_with(b"HTTP/1.1 503"), "{:?}", &head[..n]);
                answered += 1;
            }
            _ => unanswered += 1,
        }
    }
    assert!(
        answered >= 1,
        "refusals are answered while few are in flight"
    );
    assert!(
        unanswered >= 1,
        "past 64 refusals in flight the rest are closed: {answered} answered"
    );
    drop(refused);
    // Other addresses are served throughout.
    assert_eq!(raw_status(&t, [127, 0, 0, 32], HEALTH).await, Some(200));
}

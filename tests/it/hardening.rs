//! The HTTP hardening of DESIGN.md section 3 (I8): the connection cap answers a readable 503; a client
//! that never reads its responses loses its slot after the write timeout; a body that stops arriving
//! gets 408; idle keep-alive and half-sent heads are closed. Timeouts are configured short here; each
//! check waits with a generous bound, never asserting how fast.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use boxoffice::app::Actor;
use boxoffice::config::HttpConfig;
use boxoffice::domain::NewEvent;

use crate::support::{spawn_app, spawn_app_with, TestApp};

fn read_all(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `/health` until it answers 200, for at most `bound`.
fn healthy_within(t: &TestApp, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(t.addr) {
            let _ = s
                .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            if read_all(&mut s).starts_with("HTTP/1.1 200") {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_connection_over_the_cap_gets_a_readable_503_and_slots_free_on_close() {
    let t = spawn_app_with(HttpConfig {
        max_connections: 2,
        max_connections_per_address: Some(2),
        ..HttpConfig::default()
    });
    let a = TcpStream::connect(t.addr).expect("a");
    let b = TcpStream::connect(t.addr).expect("b");
    std::thread::sleep(Duration::from_millis(200));
    let mut c = TcpStream::connect(t.addr).expect("c");
    let _ = c.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = read_all(&mut c);
    let (head, body) = resp.split_once("\r\n\r\n").expect("a whole response");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    assert_eq!(len, body.len(), "the length header matches the body");
    for header in [
        "x-content-type-options: nosniff",
        "cache-control: no-store",
        "content-security-policy: default-src 'none'; frame-ancestors 'none'",
        "x-frame-options: DENY",
    ] {
        assert!(head.lines().any(|l| l == header), "{header} in {head}");
    }
    let problem: serde_json::Value = serde_json::from_str(body).expect("a JSON problem document");
    assert_eq!(problem["code"], "too_many_connections");
    drop((a, b));
    assert!(healthy_within(&t, Duration::from_secs(10)));
    let mut m = TcpStream::connect(t.addr).expect("metrics");
    m.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("write");
    let text = read_all(&mut m);
    // At least c (the health checks above may have met the cap too, before a and b were closed).
    let refused: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("http_connections_refused_total{reason=\"over_capacity\"} "))
        .and_then(|v| v.parse().ok())
        .expect("the over-capacity series");
    assert!(refused >= 1.0, "the refusal is counted: {refused}");
}

#[test]
fn clients_that_never_read_lose_their_slots_after_the_write_timeout() {
    let t = spawn_app_with(HttpConfig {
        max_connections: 2,
        max_connections_per_address: Some(2),
        write_timeout_secs: 1,
        ..HttpConfig::default()
    });
    // Big answers: 300 events with long descriptions, about 1.3 MB per list page.
    let actor = Actor::local("test");
    for i in 0..300 {
        let new = NewEvent::parse(
            &format!("E{i}"),
            "V",
            Some(&"d".repeat(4000)),
            "2030-01-01T00:00:00Z",
            None,
            1,
            None,
            None,
            None,
        )
        .expect("event");
        t.app.create_event(&actor, new).expect("create");
    }
    let request = format!(
        "GET /api/v1/events?limit=500 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        t.admin
    );
    let stuck: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(t.addr).expect("connect");
            s.set_write_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            for _ in 0..40 {
                if s.write_all(request.as_bytes()).is_err() {
                    break;
                }
            }
            s
        })
        .collect();
    // Both slots are held by clients that read nothing; the write timeout must free them.
    assert!(
        healthy_within(&t, Duration::from_secs(20)),
        "slots stayed taken by clients that never read"
    );
    drop(stuck);
}

#[test]
fn a_body_that_stops_arriving_gets_408() {
    let t = spawn_app_with(HttpConfig {
        body_read_timeout_secs: 1,
        ..HttpConfig::default()
    });
    let before = t.snapshot();
    let mut s = TcpStream::connect(t.addr).expect("connect");
    let head = format!(
        "POST /api/v1/attendees HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"name\"",
        t.admin
    );
    s.write_all(head.as_bytes()).expect("write");
    let resp = read_all(&mut s);
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(resp.contains("request_timeout"), "{resp}");
    assert_eq!(t.snapshot(), before);
}

#[test]
fn a_body_that_trickles_in_gets_408_at_the_body_deadline_not_the_request_timeout() {
    let t = spawn_app_with(HttpConfig {
        body_read_timeout_secs: 2,
        request_timeout_secs: 6,
        ..HttpConfig::default()
    });
    let before = t.snapshot();
    let mut s = TcpStream::connect(t.addr).expect("connect");
    let head = format!(
        "POST /api/v1/attendees HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        t.admin
    );
    s.write_all(head.as_bytes()).expect("write");
    // A byte every 300 ms for 9 s: never a gap of 2 s, never the whole body. The writer stops
    // once the answer has come (the server may close the connection under it).
    let mut w = s.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        for _ in 0..30 {
            if w.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    // The bytes keep coming past the request timeout (6 s), so only a deadline on the whole body
    // answers 408; without it this was the request timeout's 503 "outcome unknown".
    let resp = read_all(&mut s);
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(resp.contains("request_timeout"), "{resp}");
    let _ = sender.join();
    assert_eq!(t.snapshot(), before);
}

#[test]
fn idle_and_half_sent_connections_are_closed() {
    let t = spawn_app_with(HttpConfig {
        header_read_timeout_secs: 1,
        ..HttpConfig::default()
    });
    // Idle after one request on a keep-alive connection.
    let mut idle = TcpStream::connect(t.addr).expect("connect");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    idle.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    assert!(rest.is_empty(), "closed without another byte");
    // Slowloris: a head that never completes.
    let mut slow = TcpStream::connect(t.addr).expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .expect("write");
    let resp = read_all(&mut slow);
    assert!(
        !resp.starts_with("HTTP/1.1 200"),
        "a half-sent head is never served: {resp}"
    );
    assert!(healthy_within(&t, Duration::from_secs(5)));
}

#[tokio::test]
async fn authentication_comes_before_everything_else() {
    let t = spawn_app();
    // An anonymous caller with a bad Idempotency-Key learns it needs a token, not what is wrong with the key.
    let r = t
        .client
        .post(t.url("/api/v1/attendees"))
        .header("idempotency-key", "")
        .json(&serde_json::json!({"name": "A", "email": "a@example.org"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    // The scheme is case-insensitive.
    let r = t
        .client
        .get(t.url("/api/v1/events?status=draft"))
        .header("authorization", format!("bearer {}", t.admin))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

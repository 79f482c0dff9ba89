//! Bad input gets the right 4xx problem document and changes nothing (I8); no input crashes the server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::support::{spawn_app, Resp, TestApp};

/// Sends raw bytes and reads the response head and body as text.
fn raw(t: &TestApp, request: &[u8]) -> String {
    let mut s = TcpStream::connect(t.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if response_complete(&out) {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn response_complete(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
    });
    len.is_some_and(|n| body.len() >= n)
}

async fn send_body(t: &TestApp, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
    let r = t
        .client
        .post(t.url(path))
        .bearer_auth(&t.admin)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        bytes: r.bytes().await.expect("body").to_vec(),
    }
}

#[tokio::test]
async fn malformed_and_misshapen_bodies_are_refused_and_change_nothing() {
    let t = spawn_app();
    let event = t.published_event(2).await;
    let reg_path = format!("/api/v1/events/{event}/registrations");
    let good_event =
        json!({"name": "N", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": 5});

    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        ("malformed JSON", "/api/v1/events".into(), b"{\"name\": ".to_vec(), 400, "malformed_json"),
        ("not JSON at all", "/api/v1/events".into(), b"name=x".to_vec(), 400, "malformed_json"),
        ("invalid UTF-8", "/api/v1/events".into(), b"{\"name\": \"\xff\xfe\"}".to_vec(), 400, "malformed_json"),
        ("empty body", "/api/v1/attendees".into(), Vec::new(), 400, "malformed_json"),
        ("wrong type", "/api/v1/events".into(), json!({"name": 5, "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": 5}).to_string().into_bytes(), 422, "validation_failed"),
        ("capacity as text", "/api/v1/events".into(), json!({"name": "N", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": "5"}).to_string().into_bytes(), 422, "validation_failed"),
        ("unknown field", "/api/v1/events".into(), json!({"name": "N", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": 5, "capacityy": 6}).to_string().into_bytes(), 422, "validation_failed"),
        ("missing field", "/api/v1/events".into(), json!({"name": "N", "venue": "V", "capacity": 5}).to_string().into_bytes(), 422, "validation_failed"),
        ("negative capacity", "/api/v1/events".into(), json!({"name": "N", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": -1}).to_string().into_bytes(), 422, "validation_failed"),
        ("huge capacity", "/api/v1/events".into(), b"{\"name\":\"N\",\"venue\":\"V\",\"starts_at\":\"2030-01-01T00:00:00Z\",\"capacity\":1e300}".to_vec(), 422, "validation_failed"),
        ("capacity beyond f64", "/api/v1/events".into(), b"{\"name\":\"N\",\"venue\":\"V\",\"starts_at\":\"2030-01-01T00:00:00Z\",\"capacity\":1e400}".to_vec(), 422, "validation_failed"),
        ("bad date", "/api/v1/events".into(), json!({"name": "N", "venue": "V", "starts_at": "next friday", "capacity": 5}).to_string().into_bytes(), 422, "validation_failed"),
        ("blank name", "/api/v1/events".into(), json!({"name": "  ", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": 5}).to_string().into_bytes(), 422, "validation_failed"),
        ("array instead of object", "/api/v1/events".into(), b"[1,2,3]".to_vec(), 422, "validation_failed"),
        ("deep nesting", "/api/v1/events".into(), format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(), 422, "validation_failed"),
        ("deep nesting, unclosed", "/api/v1/events".into(), format!("{{\"name\":{}", "{\"a\":".repeat(5000)).into_bytes(), 422, "validation_failed"),
        ("bad email", "/api/v1/attendees".into(), json!({"name": "A", "email": "not-an-email"}).to_string().into_bytes(), 422, "validation_failed"),
        ("attendee id not an id", reg_path.clone(), json!({"attendee_id": "nope"}).to_string().into_bytes(), 422, "validation_failed"),
        ("unknown attendee", reg_path.clone(), json!({"attendee_id": "00000000-0000-4000-8000-000000000000"}).to_string().into_bytes(), 404, "not_found"),
        ("unknown event", "/api/v1/events/00000000-0000-4000-8000-000000000000/registrations".into(), json!({"attendee_id": "00000000-0000-4000-8000-000000000000"}).to_string().into_bytes(), 404, "not_found"),
        ("event id not an id", "/api/v1/events/..%2F..%2Fetc/registrations".into(), json!({"attendee_id": "x"}).to_string().into_bytes(), 404, "not_found"),
    ];
    for (what, path, body, status, code) in cases {
        let before = t.snapshot();
        let r = send_body(&t, &path, "application/json", body).await;
        assert_eq!(
            r.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&r.bytes)
        );
        r.assert_problem(status, code);
        assert_eq!(t.snapshot(), before, "{what} changed the database");
    }
    // Validation names the offending field.
    let r = send_body(
        &t,
        "/api/v1/events",
        "application/json",
        json!({"name": "N", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": -1})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(r.json()["errors"][0]["field"], "capacity");

    // Wrong content type on a write with a body.
    let before = t.snapshot();
    let r = send_body(
        &t,
        "/api/v1/events",
        "text/plain",
        good_event.to_string().into_bytes(),
    )
    .await;
    r.assert_problem(415, "unsupported_media_type");
    let r = send_body(
        &t,
        "/api/v1/events",
        "application/x-www-form-urlencoded",
        b"name=x".to_vec(),
    )
    .await;
    r.assert_problem(415, "unsupported_media_type");
    assert_eq!(t.snapshot(), before);

    // Unknown routes, ids and methods.
    t.get("/api/v1/nothing-here", None)
        .await
        .assert_problem(404, "not_found");
    t.get("/api/v1/events/00000000-0000-4000-8000-000000000000", None)
        .await
        .assert_problem(404, "not_found");
    t.get("/api/v1/registrations/not-an-id", Some(&t.admin))
        .await
        .assert_problem(404, "not_found");
    t.get(
        "/api/v1/attendees/00000000-0000-4000-8000-000000000000",
        Some(&t.admin),
    )
    .await
    .assert_problem(404, "not_found");
    t.send("DELETE", "/api/v1/events", Some(&t.admin), None)
        .await
        .assert_problem(405, "method_not_allowed");
    t.get("/api/v1/events?bogus=1", None)
        .await
        .assert_problem(422, "validation_failed");
    t.get(
        &format!("/api/v1/events/{event}/registrations?status=maybe"),
        Some(&t.admin),
    )
    .await
    .assert_problem(422, "validation_failed");
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn oversized_bodies_and_heads_are_refused_before_they_are_read() {
    let t = spawn_app();
    let before = t.snapshot();
    let auth = format!("Authorization: Bearer {}\r\n", t.admin);

    // A Content-Length of 100000000000 with 60 bytes sent: 413 at once, nothing read, nothing changed.
    let resp = raw(
        &t,
        format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n{{\"name\":\"x\"}}"
        )
        .as_bytes(),
    );
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(
        resp.contains("application/problem+json") && resp.contains("payload_too_large"),
        "{resp}"
    );

    // A 10 MB body announced by its length: 413 before it is read.
    let resp = raw(
        &t,
        format!("POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n").as_bytes(),
    );
    assert!(
        resp.starts_with("HTTP/1.1 413") && resp.contains("payload_too_large"),
        "{resp}"
    );

    // A 10 MB body sent chunked (no length up front): cut off at the limit, 413.
    let t2 = &t;
    let chunked = tokio::task::spawn_blocking({
        let addr = t2.addr;
        let auth = auth.clone();
        move || {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            let head = format!("POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
            s.write_all(head.as_bytes()).expect("head");
            let chunk = format!("{:x}\r\n{}\r\n", 65536, "a".repeat(65536));
            for _ in 0..160 {
                if s.write_all(chunk.as_bytes()).is_err() {
                    break;
                }
            }
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        }
    })
    .await
    .expect("chunked sender");
    assert!(
        chunked.starts_with("HTTP/1.1 413") && chunked.contains("payload_too_large"),
        "{chunked:.300}"
    );

    // Request heads: too large or too many headers -> 431.
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert!(raw(&t, big.as_bytes()).starts_with("HTTP/1.1 431"));
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert!(raw(
        &t,
        format!("GET /health HTTP/1.1\r\nHost: localhost\r\n{many}\r\n").as_bytes()
    )
    .starts_with("HTTP/1.1 431"));
    // Garbage that is not HTTP at all.
    let _ = raw(
        &t,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    );

    assert_eq!(t.snapshot(), before);
    // The server is still there and serving.
    assert_eq!(t.get("/health", None).await.status, 200);
}

#[tokio::test]
async fn responses_carry_the_security_headers_and_no_banner() {
    let t = spawn_app();
    for r in [
        t.get("/health", None).await,
        t.get("/api/v1/events", None).await,
        t.get("/nope", None).await,
    ] {
        let h = &r.headers;
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(
            h["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'"
        );
        assert_eq!(h["cache-control"], "no-store");
        assert!(h.get("server").is_none());
        assert!(h.get("x-request-id").is_some());
    }
    // gzip when asked for, for bodies worth compressing.
    for _ in 0..3 {
        t.published_event(1).await;
    }
    let r = t
        .client
        .get(t.url("/api/v1/events"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let r = t
        .client
        .get(t.url("/api/v1/events"))
        .send()
        .await
        .expect("get");
    assert!(r.headers().get("content-encoding").is_none());
    let plain: serde_json::Value = r.json().await.expect("json");
    // Brotli when accepted, preferred over gzip, and it decodes to the same document.
    let r = t
        .client
        .get(t.url("/api/v1/events"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["content-encoding"], "br");
    let packed = r.bytes().await.expect("body");
    let mut unpacked = Vec::new();
    brotli::BrotliDecompress(&mut &packed[..], &mut unpacked).expect("valid brotli");
    assert!(packed.len() < unpacked.len(), "compressed");
    let decoded: serde_json::Value = serde_json::from_slice(&unpacked).expect("json");
    assert_eq!(decoded, plain);
}

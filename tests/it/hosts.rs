//! DNS-rebinding and cross-site defence over real HTTP: a request for a host the box does not serve is
//! answered 421 `host_not_allowed`, a write from a foreign web origin 403 `forbidden_origin`; both
//! change nothing. Loopback names, the listen address and configured names and origins pass, and so
//! do requests without `Host` or `Origin`.

use std::net::SocketAddr;

use boxoffice::config::HttpConfig;
use boxoffice::domain::Role;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{free_port, spawn_app, spawn_app_with, Server, TestApp};

/// Sends `head` (and nothing else) on a fresh connection and returns the status code.
async fn raw_status(addr: SocketAddr, head: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write");
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.expect("read");
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

async fn with_host(t: &TestApp, method: &str, path: &str, host: &str, token: Option<&str>) -> u16 {
    let mut req = t
        .client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            t.url(path),
        )
        .header("host", host);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if method != "GET" {
        req = req.json(&json!({"name": "Rebound", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": 1}));
    }
    req.send().await.expect("send").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_refused_421_and_changes_nothing() {
    let t = spawn_app();
    let before = t.snapshot();
    for host in [
        "attacker.example",
        "attacker.example:80",
        "10.0.0.9",
        "[::2]",
    ] {
        assert_eq!(
            with_host(&t, "GET", "/api/v1/events", host, None).await,
            421,
            "{host}"
        );
        assert_eq!(
            with_host(&t, "POST", "/api/v1/events", host, Some(&t.admin)).await,
            421,
            "{host}"
        );
    }
    assert_eq!(
        t.snapshot(),
        before,
        "a misdirected request changed the database"
    );

    // The answer is a problem document like any other.
    let r = t
        .client
        .get(t.url("/health"))
        .header("host", "rebind.attacker.example")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 421);
    assert!(r.headers().contains_key("x-request-id"));
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["code"], "host_not_allowed");
    assert_eq!(body["status"], 421);

    // Loopback names in any case and with any port, and a trailing dot, are the box itself.
    for host in [
        "localhost",
        "LocalHost:8080",
        "localhost.:1",
        "127.0.0.1:9",
        "[::1]",
        "[0:0::1]:80",
    ] {
        assert_eq!(
            with_host(&t, "GET", "/api/v1/events", host, None).await,
            200,
            "{host}"
        );
    }

    // The absolute form names the host too; a repeated Host header is refused; no Host at all is
    // not a browser, so not a rebinding attack.
    let addr = t.addr;
    assert_eq!(
        raw_status(
            addr,
            "GET http://attacker.example/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .await,
        421
    );
    assert_eq!(
        raw_status(
            addr,
            "GET /health HTTP/1.1\r\nHost: localhost\r\nHost: attacker.example\r\nConnection: close\r\n\r\n"
        )
        .await,
        421
    );
    assert_eq!(raw_status(addr, "GET /health HTTP/1.0\r\n\r\n").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_hosts_replace_the_loopback_names() {
    let cfg = HttpConfig {
        allowed_hosts: vec!["box.venue.lan".into(), "192.0.2.20".into()],
        ..HttpConfig::default()
    };
    let t = spawn_app_with(cfg);
    for host in ["box.venue.lan", "BOX.venue.lan:8080", "192.0.2.20:8080"] {
        assert_eq!(
            with_host(&t, "GET", "/api/v1/events", host, None).await,
            200,
            "{host}"
        );
    }
    assert_eq!(
        with_host(&t, "GET", "/api/v1/events", "localhost", None).await,
        421
    );
    assert_eq!(
        with_host(&t, "GET", "/api/v1/events", "venue.lan", None).await,
        421
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_answers_for_its_listen_address_besides_the_configured_hosts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("boxoffice.toml");
    std::fs::write(&config, "[http]\nallowed_hosts = [\"localhost\"]\n").expect("config");
    // 127.0.0.2 is this machine too, and in no default list.
    let addr: SocketAddr = format!("127.0.0.2:{}", free_port()).parse().expect("addr");
    let server = Server::start_on(
        dir.path(),
        addr,
        &["--config", config.to_str().expect("utf-8")],
    )
    .await;
    let client = reqwest::Client::new();
    let status = |host: &'static str| {
        let client = client.clone();
        let url = server.url("/api/v1/events");
        async move {
            client
                .get(url)
                .header("host", host)
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }
    };
    // `Server::start_on` already waited for /health by this address.
    assert_eq!(status("127.0.0.2").await, 200);
    assert_eq!(status("localhost:1").await, 200);
    assert_eq!(status("127.0.0.1").await, 421);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_from_a_foreign_origin_are_refused_and_change_nothing() {
    let cfg = HttpConfig {
        allowed_origins: vec!["https://shop.example.org".into()],
        ..HttpConfig::default()
    };
    let t = spawn_app_with(cfg);
    let kiosk = t.token(Role::Kiosk, "kiosk");
    let event = t.published_event(5).await;
    let post = |origin: &'static str, n: usize| {
        let req = t
            .client
            .post(t.url("/api/v1/attendees"))
            .bearer_auth(&kiosk)
            .header("origin", origin)
            .json(&json!({"name": "Web", "email": format!("web{n}@example.org")}));
        async move { req.send().await.expect("send").status().as_u16() }
    };

    let before = t.snapshot();
    for origin in [
        "https://attacker.example",
        "http://localhost.attacker.example",
        "null",
        "https://shop.example.org.attacker.example",
        "garbage",
    ] {
        assert_eq!(post(origin, 0).await, 403, "{origin}");
    }
    // PATCH and DELETE are writes too.
    let patch = t
        .client
        .patch(t.url(&format!("/api/v1/events/{event}")))
        .bearer_auth(&t.admin)
        .header("origin", "https://attacker.example")
        .json(&json!({"name": "Defaced"}))
        .send()
        .await
        .expect("send");
    assert_eq!(patch.status(), 403);
    let body: serde_json::Value = patch.json().await.expect("json");
    assert_eq!(body["code"], "forbidden_origin");
    let delete = t
        .client
        .delete(t.url("/api/v1/admin/webhooks/00000000-0000-4000-8000-000000000000"))
        .bearer_auth(&t.admin)
        .header("origin", "https://attacker.example")
        .send()
        .await
        .expect("send");
    assert_eq!(delete.status(), 403);
    assert_eq!(
        t.snapshot(),
        before,
        "a cross-site write changed the database"
    );

    // Reads are not writes; pages of the box's own hosts and the configured shop may write.
    let read = t
        .client
        .get(t.url(&format!("/api/v1/events/{event}")))
        .header("origin", "https://attacker.example")
        .send()
        .await
        .expect("send");
    assert_eq!(read.status(), 200);
    assert_eq!(post("http://localhost:3000", 1).await, 201);
    assert_eq!(post("http://127.0.0.1", 2).await, 201);
    assert_eq!(post("https://shop.example.org", 3).await, 201);
    assert_eq!(post("https://SHOP.example.org:443", 4).await, 201);
    assert_eq!(post("http://shop.example.org", 5).await, 403);
}

//! The server's log over a whole on-sale: one structured line per request (request id, method, route
//! template, status, latency), slow requests flagged, and never an email, a phone number, a token or a
//! ticket code, at the most verbose log level, whatever a client puts in a path, a query or a body.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{run_cli, Server};

/// One request as a client sees it: status, body, and the request id the server answered with.
struct Answer {
    status: u16,
    body: Value,
    request_id: String,
}

struct Client {
    http: reqwest::Client,
    server: String,
    request_ids: Vec<String>,
}

impl Client {
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.server));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.finish(req).await
    }

    async fn finish(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let request_id = r
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("x-request-id")
            .to_string();
        let bytes = r.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        self.request_ids.push(request_id.clone());
        Answer {
            status,
            body,
            request_id,
        }
    }
}

/// Sends a POST whose body arrives `delay` after its head, over a raw connection: the request takes
/// at least that long inside the box, however fast the machine.
async fn slow_post(addr: std::net::SocketAddr, token: &str, request_id: &str, delay: Duration) {
    let body = br#"{"name":"Slow Guest","email":"slow.guest@example.org"}"#;
    let head = format!(
        "POST /api/v1/attendees HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nx-request-id: {request_id}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("head");
    tokio::time::sleep(delay).await;
    s.write_all(body).await.expect("body");
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.expect("answer");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_onsale_logs_every_request_and_no_personal_data_or_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("boxoffice.toml");
    // The most verbose level there is, for every crate: nothing may leak even there.
    std::fs::write(
        &config,
        "log = \"trace\"\n\n[http]\nslow_request_ms = 100\n",
    )
    .expect("config");
    let mut server =
        Server::start_with(dir.path(), &["--config", config.to_str().expect("utf-8")]).await;
    let admin = server.admin_token();
    let (code, kiosk, _) = run_cli(
        &["token", "create", "--role", "kiosk", "--name", "kiosk-1"],
        dir.path(),
    );
    assert_eq!(code, 0);
    let kiosk = kiosk.trim().to_string();
    let (code, door, _) = run_cli(
        &["token", "create", "--role", "operator", "--name", "door-1"],
        dir.path(),
    );
    assert_eq!(code, 0);
    let door = door.trim().to_string();
    let forged = "bo_thisisnotatokenthisisnotatoken00";

    let mut c = Client {
        http: reqwest::Client::new(),
        server: server.url(""),
        request_ids: Vec::new(),
    };
    // Deliveries fail and are retried: the outbox logs its failures too.
    let dead_port = crate::support::free_port();
    let hook = c
        .send(
            "POST",
            "/api/v1/admin/webhooks",
            Some(&admin),
            Some(json!({"url": format!("http://127.0.0.1:{dead_port}/hook")})),
        )
        .await;
    assert_eq!(hook.status, 201);
    let event = c
        .send(
            "POST",
            "/api/v1/events",
            Some(&admin),
            Some(json!({"name": "Gala", "venue": "Hall", "starts_at": "2030-01-01T20:00:00Z", "capacity": 4})),
        )
        .await;
    assert_eq!(event.status, 201);
    let event = event.body["id"].as_str().expect("id").to_string();
    let publish = c
        .send(
            "POST",
            &format!("/api/v1/events/{event}/publish"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(publish.status, 200);

    let mut emails = vec!["slow.guest@example.org".to_string()];
    let mut phones = Vec::new();
    let mut codes = Vec::new();
    let mut registrations = Vec::new();
    for i in 0..6 {
        let email = format!("Guest.{i}.Privacy@Example.org");
        let phone = format!("+44 20 7946 09{i}{i}");
        let a = c
            .send(
                "POST",
                "/api/v1/attendees",
                Some(&kiosk),
                Some(json!({"name": format!("Guest {i}"), "email": email, "phone": phone})),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        let attendee = a.body["id"].as_str().expect("id").to_string();
        // The attendee's own reads answer with the email.
        assert_eq!(
            c.send(
                "GET",
                &format!("/api/v1/attendees/{attendee}"),
                Some(&kiosk),
                None
            )
            .await
            .status,
            200
        );
        let r = c
            .send(
                "POST",
                &format!("/api/v1/events/{event}/registrations"),
                Some(&kiosk),
                Some(json!({"attendee_id": attendee})),
            )
            .await;
        assert_eq!(r.status, 201);
        if let Some(code) = r.body["ticket_code"].as_str() {
            codes.push(code.to_string());
        }
        registrations.push(r.body["id"].as_str().expect("id").to_string());
        emails.push(email);
        phones.push(phone);
    }
    assert_eq!(codes.len(), 4);

    // Refusals that carry personal data in the request: a duplicate email, a bad one, malformed
    // JSON, an email as a path segment and a token in a query string.
    let dup = c
        .send(
            "POST",
            "/api/v1/attendees",
            Some(&kiosk),
            Some(json!({"name": "Again", "email": emails[1]})),
        )
        .await;
    assert_eq!(dup.status, 409);
    let bad_email = "not-an-address@@example.org".to_string();
    let bad = c
        .send(
            "POST",
            "/api/v1/attendees",
            Some(&kiosk),
            Some(json!({"name": "Bad", "email": bad_email})),
        )
        .await;
    assert_eq!(bad.status, 422);
    emails.push(bad_email);
    let malformed = c
        .finish(
            c.http
                .post(format!("{}/api/v1/attendees", c.server))
                .bearer_auth(&kiosk)
                .header("content-type", "application/json")
                .body(format!("{{\"email\": \"{}\", ", emails[2])),
        )
        .await;
    assert_eq!(malformed.status, 400);
    let by_email = c
        .send(
            "GET",
            &format!("/api/v1/attendees/{}", emails[3]),
            Some(&kiosk),
            None,
        )
        .await;
    assert_eq!(by_email.status, 404);
    let in_query = c
        .send(
            "GET",
            &format!("/api/v1/events?token={kiosk}&email={}", emails[4]),
            None,
            None,
        )
        .await;
    assert_eq!(in_query.status, 422);
    let forged_answer = c.send("GET", "/api/v1/stats", Some(forged), None).await;
    assert_eq!(forged_answer.status, 401);

    // The door: scans by code (as printed, and typed sloppily), a second scan, an unknown code.
    for code in &codes[..3] {
        let scan = c
            .send(
                "POST",
                "/api/v1/checkins",
                Some(&door),
                Some(json!({"ticket_code": code})),
            )
            .await;
        assert_eq!(scan.status, 200, "{}", scan.body);
    }
    let sloppy = codes[3].replace('-', " ").to_lowercase();
    let scan = c
        .send(
            "POST",
            "/api/v1/checkins",
            Some(&door),
            Some(json!({"ticket_code": sloppy})),
        )
        .await;
    assert_eq!(scan.status, 200, "{}", scan.body);
    let again = c
        .send(
            "POST",
            "/api/v1/checkins",
            Some(&door),
            Some(json!({"ticket_code": codes[0]})),
        )
        .await;
    assert_eq!(again.status, 409);
    let unknown_code = "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23".to_string();
    let unknown = c
        .send(
            "POST",
            "/api/v1/checkins",
            Some(&door),
            Some(json!({"ticket_code": unknown_code})),
        )
        .await;
    assert_eq!(unknown.status, 404);
    codes.push(unknown_code);

    // A cancellation promotes the head of the waitlist; the promoted ticket is read back.
    let cancel = c
        .send(
            "POST",
            &format!("/api/v1/registrations/{}/cancel", registrations[0]),
            Some(&kiosk),
            None,
        )
        .await;
    assert_eq!(cancel.status, 200);
    let promoted = c
        .send(
            "GET",
            &format!("/api/v1/registrations/{}", registrations[4]),
            Some(&kiosk),
            None,
        )
        .await;
    assert_eq!(promoted.body["status"], "confirmed");
    codes.push(
        promoted.body["ticket_code"]
            .as_str()
            .expect("code")
            .to_string(),
    );

    // Wait until the outbox has tried (and failed) a delivery, so its lines are in the log too.
    let mut tried = false;
    for _ in 0..200 {
        let pending = c
            .send(
                "GET",
                "/api/v1/admin/outbox?state=pending",
                Some(&admin),
                None,
            )
            .await;
        if pending.body["summary"]["failed_total"].as_u64() > Some(0) {
            tried = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tried, "no delivery was attempted");

    // One request is slow for sure: its body arrives 300 ms after its head.
    slow_post(server.addr, &kiosk, "slow-one", Duration::from_millis(300)).await;

    assert!(server.terminate().success());
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("server log");

    // Every request has its line, with what it needs to be found and read.
    for id in &c.request_ids {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("request_id={id} "))),
            "no line for request {id}"
        );
    }
    let sale = log
        .lines()
        .find(|l| l.contains(&format!("request_id={} ", promoted.request_id)))
        .expect("the line of the read");
    for field in [
        "method=GET",
        "route=/api/v1/registrations/{id}",
        "status=200",
        "latency_ms=",
    ] {
        assert!(sale.contains(field), "{field} missing in {sale}");
    }
    assert!(!sale.contains(&registrations[4]), "a raw path in {sale}");
    let slow = log
        .lines()
        .find(|l| l.contains("request_id=slow-one "))
        .expect("the slow request's line");
    assert!(
        slow.contains("WARN") && slow.contains("slow=true") && slow.contains("status=201"),
        "{slow}"
    );
    assert!(
        log.contains("webhook delivery failed"),
        "the outbox's trace lines are in the log too"
    );

    // Nothing personal and no secret, in any case or spacing a code was typed in.
    let lower = log.to_lowercase();
    let mut secrets: Vec<String> = Vec::new();
    secrets.extend(emails.iter().cloned());
    secrets.extend(phones.iter().cloned());
    secrets.extend(phones.iter().map(|p| p.replace(' ', "")));
    secrets.extend([
        admin.clone(),
        kiosk.clone(),
        door.clone(),
        forged.to_string(),
    ]);
    for code in &codes {
        secrets.push(code.clone());
        secrets.push(code.replace('-', ""));
        secrets.push(code.replace('-', " "));
    }
    for secret in &secrets {
        assert!(
            !lower.contains(&secret.to_lowercase()),
            "the log holds {secret:?}"
        );
    }
    // The local part of each email alone, too (a log could cut the domain off).
    for email in &emails {
        let local = email.split('@').next().expect("local part");
        assert!(
            !lower.contains(&local.to_lowercase()),
            "the log holds {local:?}"
        );
    }
}

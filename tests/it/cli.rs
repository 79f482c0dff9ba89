//! The command line, on the real binary: serve, token create/list/revoke, backup, check, and the bare
//! `boxoffice` with demo data in the platform data dir.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::support::{bin, free_port, run_cli, Server};

/// Creates a draft event on `server` with its admin token; answers its id.
async fn create_event(server: &Server, name: &str, capacity: i64) -> String {
    let r = reqwest::Client::new()
        .post(server.url("/api/v1/events"))
        .bearer_auth(server.admin_token())
        .json(&json!({"name": name, "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": capacity}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201);
    r.json::<serde_json::Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// Runs `serve` on `dir` to completion, for the starts that must fail; answers what it printed.
fn serve_once(dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .expect("run")
}

#[tokio::test]
async fn serve_writes_a_private_admin_token_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let mut server = Server::start(dir.path()).await;
    let token_file = dir.path().join("admin.token");
    assert_eq!(
        std::fs::metadata(&token_file)
            .expect("admin.token")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let token = server.admin_token();
    let client = reqwest::Client::new();
    let id = create_event(&server, "Kept", 3).await;

    let status = server.terminate();
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    let server = Server::start(dir.path()).await;
    assert_eq!(
        server.admin_token(),
        token,
        "the admin token is written on the first start only"
    );
    let r = client
        .get(server.url(&format!("/api/v1/events/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200, "the event survived the restart");
}

#[tokio::test]
async fn the_first_start_makes_its_admin_token_only_once_the_secret_is_on_disk_and_private() {
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("admin.token");
    // Something is in the way of the file: the start fails, and makes no token.
    std::fs::create_dir(&token_file).expect("a directory where the file goes");
    let out = serve_once(dir.path());
    assert!(!out.status.success(), "the start fails");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("admin.token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, list, _) = run_cli(&["token", "list"], dir.path());
    assert_eq!(code, 0);
    assert!(
        !list.contains("admin"),
        "no admin nobody could act as: {list}"
    );

    // The way cleared, and a file left there before, readable by all: the next start writes the
    // secret into it, owner-only, and the secret works.
    std::fs::remove_dir(&token_file).expect("clear");
    std::fs::write(&token_file, "stale\n").expect("stale file");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut server = Server::start(dir.path()).await;
    let mode = std::fs::metadata(&token_file)
        .expect("admin.token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let r = reqwest::Client::new()
        .get(server.url("/api/v1/admin/webhooks"))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "the written secret is the admin's");
    server.terminate();
}

#[tokio::test]
async fn a_second_serve_on_a_served_data_dir_is_refused_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().expect("dir");
    let mut first = Server::start(dir.path()).await;
    let out = serve_once(dir.path());
    assert_eq!(out.status.code(), Some(2), "refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already serving"), "{err}");
    let health = reqwest::get(first.url("/health")).await.expect("health");
    assert_eq!(health.status(), 200, "the first box is untouched");
    // Commands beside a serving box still work.
    let (code, _, _) = run_cli(&["token", "list"], dir.path());
    assert_eq!(code, 0);
    assert!(first.terminate().success());
    // The lock goes with the process: the data dir can be served again.
    let mut again = Server::start(dir.path()).await;
    assert!(again.terminate().success());
}

#[tokio::test]
async fn token_commands_print_only_the_secret_and_revoke_works() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(dir.path()).await;
    let (code, out, err) = run_cli(
        &["token", "create", "--role", "operator", "--name", "door-1"],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout is the token and nothing else: {out:?}"
    );
    let secret = lines[0];
    assert!(secret.starts_with("bo_") && secret.len() > 30);

    let client = reqwest::Client::new();
    let list = |t: &str| {
        client
            .get(server.url("/api/v1/events?status=draft"))
            .bearer_auth(t.to_string())
            .send()
    };
    assert_eq!(
        list(secret).await.expect("get").status(),
        200,
        "the new operator token works on the running server"
    );

    let (code, out, _) = run_cli(&["token", "list"], dir.path());
    assert_eq!(code, 0);
    assert!(
        out.contains("door-1") && out.contains("operator") && !out.contains(secret),
        "{out}"
    );

    let (code, _, err) = run_cli(
        &["token", "create", "--role", "root", "--name", "x"],
        dir.path(),
    );
    assert_ne!(code, 0, "an unknown role is refused: {err}");
    let (code, _, _) = run_cli(
        &["token", "create", "--role", "kiosk", "--name", "door-1"],
        dir.path(),
    );
    assert_ne!(code, 0, "an active name is not given twice");
    let (code, _, err) = run_cli(
        &["token", "create", "--role", "kiosk", "--name", "  "],
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("name: must be 1 to 100 printable characters"),
        "a refusal names the field and the rule: {err}"
    );

    // The door's hot path trusts a token it saw within the last second (no database read per scan).
    let scan = |t: &str| {
        client
            .post(server.url("/api/v1/checkins"))
            .bearer_auth(t.to_string())
            .json(&json!({"ticket_code": "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA"}))
            .send()
    };
    assert_eq!(
        scan(secret).await.expect("scan").status(),
        404,
        "unknown ticket, token fine"
    );
    assert_eq!(scan(secret).await.expect("scan").status(), 404);

    let (code, _, err) = run_cli(&["token", "revoke", "door-1"], dir.path());
    assert_eq!(code, 0, "{err}");
    // Revoked by another process: refused on the hot path too, within the second it may be trusted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = scan(secret).await.expect("scan").status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 404);
        assert!(
            std::time::Instant::now() < deadline,
            "a revoked token kept scanning"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        list(secret).await.expect("get").status(),
        401,
        "a revoked token stops working at once"
    );
}

#[tokio::test]
async fn backup_while_serving_gives_a_file_that_passes_check() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(dir.path()).await;
    let token = server.admin_token();
    let client = reqwest::Client::new();
    let event = create_event(&server, "B", 20).await;
    client
        .post(server.url(&format!("/api/v1/events/{event}/publish")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("publish");

    // Registrations keep landing while the backup runs.
    let writer = tokio::spawn({
        let (client, token, base) = (client.clone(), token.clone(), server.url(""));
        let event = event.clone();
        async move {
            for i in 0..60 {
                let a = client
                    .post(format!("{base}/api/v1/attendees"))
                    .bearer_auth(&token)
                    .json(&json!({"name": "P", "email": format!("b{i}@example.org")}))
                    .send()
                    .await
                    .expect("attendee")
                    .json::<serde_json::Value>()
                    .await
                    .expect("json");
                client
                    .post(format!("{base}/api/v1/events/{event}/registrations"))
                    .bearer_auth(&token)
                    .json(&json!({"attendee_id": a["id"]}))
                    .send()
                    .await
                    .expect("register");
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let copy_dir = tempfile::tempdir().expect("dir");
    let out = copy_dir.path().join("boxoffice.db");
    let (code, _, err) = run_cli(&["backup", out.to_str().expect("path")], dir.path());
    assert_eq!(code, 0, "{err}");
    writer.await.expect("writer");

    let (code, out, err) = run_cli(&["check"], copy_dir.path());
    assert_eq!(code, 0, "the backup passes check: {out} {err}");
    assert!(out.contains("integrity: ok"), "{out}");
    let (code, _, _) = run_cli(
        &[
            "backup",
            copy_dir.path().join("boxoffice.db").to_str().expect("p"),
        ],
        dir.path(),
    );
    assert_ne!(code, 0, "backup never overwrites a file");
}

#[tokio::test]
async fn check_exits_1_on_an_invariant_violation() {
    let dir = tempfile::tempdir().expect("dir");
    let mut server = Server::start(dir.path()).await;
    let event_id = create_event(&server, "C", 1).await;
    server.terminate();
    let (code, out, _) = run_cli(&["check"], dir.path());
    assert_eq!(code, 0, "{out}");

    // Oversell behind the app's back: two confirmed seats on a one-seat event.
    let conn = rusqlite::Connection::open(dir.path().join("boxoffice.db")).expect("open");
    for i in 0..2 {
        conn.execute(
            "INSERT INTO attendees (id, name, created_at) VALUES (?1, 'X', 0)",
            [format!("00000000-0000-4000-8000-00000000000{i}")],
        )
        .expect("attendee");
        conn.execute(
            "INSERT INTO registrations (id, event_seq, attendee_seq, status, ticket_code, created_at, updated_at)
             SELECT ?1, e.seq, a.seq, 'confirmed', ?2, 0, 0 FROM events e, attendees a WHERE e.id = ?3 AND a.id = ?4",
            [
                format!("10000000-0000-4000-8000-00000000000{i}"),
                format!("CODE{i}"),
                event_id.clone(),
                format!("00000000-0000-4000-8000-00000000000{i}"),
            ],
        )
        .expect("registration");
    }
    drop(conn);
    let (code, out, _) = run_cli(&["check"], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("VIOLATION I1 capacity"), "{out}");
    assert!(out.contains("VIOLATION counters"), "{out}");
    let (code, out, _) = run_cli(&["check", "--json"], dir.path());
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).expect("json report");
    assert!(report["violations"]
        .as_array()
        .is_some_and(|v| !v.is_empty()));
}

#[tokio::test]
async fn check_reports_a_damaged_file_as_a_violation_and_exits_1() {
    let dir = tempfile::tempdir().expect("dir");
    let mut server = Server::start(dir.path()).await;
    create_event(&server, "D", 5).await;
    server.terminate();
    let db = dir.path().join("boxoffice.db");
    // The last connection's close checkpointed the WAL into the file: the pages are all in it.
    let (page, page_size): (i64, i64) = {
        let conn = rusqlite::Connection::open(&db).expect("open");
        (
            conn.query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .expect("the table's page"),
            conn.query_row("PRAGMA page_size", [], |r| r.get(0))
                .expect("page size"),
        )
    };
    // Scribble over the start of the events table's page (its b-tree header), as a failing disk
    // might: every statement that reads events now meets a page SQLite cannot make sense of.
    let mut bytes = std::fs::read(&db).expect("read");
    let at = usize::try_from((page - 1) * page_size).expect("offset");
    bytes[at..at + 64].fill(0xA5);
    std::fs::write(&db, &bytes).expect("write");

    let (code, out, err) = run_cli(&["check"], dir.path());
    assert_eq!(code, 1, "a damaged file is a violation: {out} {err}");
    assert!(out.contains("VIOLATION integrity"), "{out}");
    assert!(out.trim_end().ends_with("FAILED"), "{out}");
    let (code, out, _) = run_cli(&["check", "--json"], dir.path());
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).expect("json report");
    assert_ne!(report["integrity"], "ok");
}

#[tokio::test]
async fn bare_boxoffice_serves_demo_data_from_the_platform_data_dir() {
    let home = tempfile::tempdir().expect("dir");
    let port = free_port();
    let log = std::fs::File::create(home.path().join("out.log")).expect("log");
    let child = std::process::Command::new(bin())
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("BOXOFFICE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn");
    let dir = home.path().join("data").join("boxoffice");
    let server = Server {
        child,
        addr: format!("127.0.0.1:{port}").parse().expect("addr"),
        dir: dir.clone(),
    };
    server.wait_healthy().await;
    assert!(dir.join("boxoffice.db").exists() && dir.join("admin.token").exists());
    let events: serde_json::Value = reqwest::get(server.url("/api/v1/events"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["Jazz Night", "New Year's Gala"],
        "the published demo events, by date"
    );
    let gala = &events["items"][1];
    assert_eq!(
        (gala["confirmed"].as_i64(), gala["waitlisted"].as_i64()),
        (Some(20), Some(4))
    );
    let out = std::fs::read_to_string(home.path().join("out.log")).expect("log");
    assert!(
        out.contains("loaded demo data") && out.contains("admin token:"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_in_flight_writes_and_keeps_every_answered_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("dir");
    let mut server = Server::start(dir.path()).await;
    let token = server.admin_token();

    // One request surely in flight: its headers are read (the server asked for the body with
    // 100 Continue) and its body is held back until after SIGTERM.
    let body = json!({"name": "Held", "email": "held@example.org"}).to_string();
    let mut held = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1/attendees HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        server.addr,
        body.len()
    );
    held.write_all(head.as_bytes()).await.expect("head");
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        held.read_exact(&mut byte).await.expect("interim answer");
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );

    // And a crowd of ordinary ones, some answered before SIGTERM, some in flight, some refused.
    let client = reqwest::Client::new();
    let mut pending = tokio::task::JoinSet::new();
    for i in 0..400 {
        let (client, token, url) = (
            client.clone(),
            token.clone(),
            server.url("/api/v1/attendees"),
        );
        pending.spawn(async move {
            let body = json!({"name": "P", "email": format!("drain{i}@example.org")});
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .ok()?;
            Some((
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.ok(),
            ))
        });
    }
    let mut answered = Vec::new();
    let mut keep = |r: Option<(u16, Option<serde_json::Value>)>| {
        // No answer at all is fine (the listener had closed); an answer must be a success.
        if let Some((code, body)) = r {
            assert_eq!(
                code, 201,
                "a request in flight at SIGTERM is finished, not failed"
            );
            answered.push(body.expect("json")["id"].as_str().expect("id").to_string());
        }
    };
    // SIGTERM as soon as the first of the crowd is answered.
    while let Some(r) = pending.join_next().await {
        let r = r.expect("task");
        let first = r.is_some();
        keep(r);
        if first {
            break;
        }
    }
    server.send_sigterm();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        server.child.try_wait().expect("wait").is_none(),
        "the server waits for the request whose body is still coming"
    );
    held.write_all(body.as_bytes()).await.expect("body");
    let mut reply = Vec::new();
    held.read_to_end(&mut reply).await.expect("reply");
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 201"),
        "the held request is answered after SIGTERM: {reply}"
    );
    let (_, json_body) = reply.split_once("\r\n\r\n").expect("body");
    let held_id = serde_json::from_str::<serde_json::Value>(json_body).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    while let Some(r) = pending.join_next().await {
        keep(r.expect("task"));
    }
    let status = server.wait_exit();
    assert!(status.success(), "{status:?}");

    answered.push(held_id);
    let server = Server::start(dir.path()).await;
    for id in &answered {
        let r = client
            .get(server.url(&format!("/api/v1/attendees/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        assert_eq!(
            r.status(),
            200,
            "answered write {id} was lost in the shutdown"
        );
    }
    eprintln!("drain: {} of 401 answered, all kept", answered.len());
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(at: &std::path::Path) -> Self {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(ok.success(), "mounting a tmpfs needs root (see README)");
        Self(at.to_path_buf())
    }

    fn read_only(&self) {
        let ok = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(ok.success(), "remount read-only");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn check_and_backup_read_a_copy_kept_on_a_read_only_disk() {
    let dir = tempfile::tempdir().expect("dir");
    let mut server = Server::start(dir.path()).await;
    create_event(&server, "Kept", 5).await;
    assert!(server.terminate().success());

    let disk = tempfile::tempdir().expect("mount point");
    let mount = Mount::tmpfs(disk.path());
    let data = disk.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    std::fs::copy(dir.path().join("boxoffice.db"), data.join("boxoffice.db")).expect("copy");
    // A copy with a write-ahead log beside it (and no -shm, which SQLite would have to make).
    let with_wal = disk.path().join("with-wal");
    std::fs::create_dir(&with_wal).expect("dir");
    std::fs::copy(
        dir.path().join("boxoffice.db"),
        with_wal.join("boxoffice.db"),
    )
    .expect("copy");
    std::fs::write(with_wal.join("boxoffice.db-wal"), b"").expect("wal");
    mount.read_only();

    let (code, out, err) = run_cli(&["check"], &data);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("events: 1,"), "{out}");
    assert!(out.trim_end().ends_with("ok"), "{out}");
    // The same file can be backed up from there, and the backup passes check.
    let saved = tempfile::tempdir().expect("backup dir");
    let copy = saved.path().join("boxoffice.db");
    let (code, _, err) = run_cli(&["backup", copy.to_str().expect("utf-8 path")], &data);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_cli(&["check"], saved.path());
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("events: 1,"), "{out}");
    // The log's pages may matter, so that copy is not read without it: the refusal says what to do.
    let never = saved.path().join("never.db");
    for command in [
        vec!["check"],
        vec!["backup", never.to_str().expect("utf-8 path")],
    ] {
        let (code, out, err) = run_cli(&command, &with_wal);
        assert_eq!(code, 2, "{command:?}: {out} {err}");
        assert!(
            err.contains("copy the file and its -wal"),
            "{command:?}: {err}"
        );
    }
    assert!(!never.exists());
    drop(mount);
}

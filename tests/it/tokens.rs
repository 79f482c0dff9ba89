//! API tokens over the admin API (issue 5, item 9): created with the secret shown once and stored
//! only as its SHA-256, listed in pages without secrets, revoked with effect on the very next
//! request (the hot path's one-second token cache included), and never the last admin token.

use boxoffice::domain::Role;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{run_cli, spawn_app, TestApp};

async fn create(t: &TestApp, name: &str, role: &str) -> Value {
    let r = t
        .post(
            "/api/v1/admin/tokens",
            Some(&t.admin),
            json!({"name": name, "role": role}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.bytes));
    r.json()
}

fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn tokens_table(t: &TestApp) -> Vec<(String, String, String, Option<i64>)> {
    let conn = rusqlite::Connection::open(t.dir.path().join("boxoffice.db")).expect("open");
    let mut st = conn
        .prepare("SELECT id, name, secret_hash, revoked_at FROM tokens ORDER BY seq")
        .expect("prepare");
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows
}

#[tokio::test]
async fn tokens_are_created_shown_once_stored_hashed_listed_and_revoked() {
    let t = spawn_app();
    let made = create(&t, "kiosk-7", "kiosk").await;
    let mut keys: Vec<&str> = made
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["created_at", "id", "name", "role", "token"]);
    assert_eq!(
        (made["name"].as_str(), made["role"].as_str()),
        (Some("kiosk-7"), Some("kiosk"))
    );
    let secret = made["token"].as_str().expect("token").to_string();
    let id = made["id"].as_str().expect("id").to_string();

    // It works at once, with its role and no more.
    let a = t
        .post(
            "/api/v1/attendees",
            Some(&secret),
            json!({"name": "Ada", "email": "ada@example.org"}),
        )
        .await;
    assert_eq!(a.status, 201);
    t.get("/api/v1/admin/tokens", Some(&secret))
        .await
        .assert_problem(403, "forbidden");

    // Stored only as the SHA-256 of the secret: the secret is in no table.
    let row = tokens_table(&t)
        .into_iter()
        .find(|r| r.0 == id)
        .expect("stored");
    assert_eq!(row.2, hex_sha256(&secret));
    let snapshot = t.snapshot();
    assert!(!snapshot.contains(&secret), "a secret in the database");

    // Listed without secrets, in the order they were made, a page at a time.
    for n in 0..3 {
        create(&t, &format!("till-{n}"), "operator").await;
    }
    let mut names = Vec::new();
    let mut path = "/api/v1/admin/tokens?limit=2".to_string();
    loop {
        let r = t.get(&path, Some(&t.admin)).await;
        assert_eq!(r.status, 200);
        let body = String::from_utf8_lossy(&r.bytes).into_owned();
        assert!(!body.contains(&secret) && !body.contains(&row.2), "{body}");
        let page = r.json();
        for item in page["items"].as_array().expect("items") {
            let mut k: Vec<&str> = item
                .as_object()
                .expect("item")
                .keys()
                .map(String::as_str)
                .collect();
            k.sort_unstable();
            assert_eq!(k, ["created_at", "id", "name", "revoked_at", "role"]);
            names.push(item["name"].as_str().expect("name").to_string());
        }
        match page["next"].as_str() {
            Some(n) => path = format!("/api/v1/admin/tokens?limit=2&after={n}"),
            None => break,
        }
    }
    assert_eq!(names, ["admin", "kiosk-7", "till-0", "till-1", "till-2"]);

    // Revoked: 204, listed as revoked, refused from the next request on.
    let r = t
        .send(
            "DELETE",
            &format!("/api/v1/admin/tokens/{id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(r.bytes.is_empty());
    t.post(
        "/api/v1/attendees",
        Some(&secret),
        json!({"name": "Grace", "email": "grace@example.org"}),
    )
    .await
    .assert_problem(401, "unauthorized");
    let revoked = t
        .get("/api/v1/admin/tokens?status=revoked", Some(&t.admin))
        .await
        .json();
    assert_eq!(revoked["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(revoked["items"][0]["id"], id.as_str());
    assert!(revoked["items"][0]["revoked_at"].is_string());
    let active = t
        .get("/api/v1/admin/tokens?status=active", Some(&t.admin))
        .await
        .json();
    assert_eq!(active["items"].as_array().map(Vec::len), Some(4));
    // Again: 204, nothing changes (no second audit row).
    let before = t.snapshot();
    let r = t
        .send(
            "DELETE",
            &format!("/api/v1/admin/tokens/{id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(t.snapshot(), before);
    // The name is free again for a new token.
    create(&t, "kiosk-7", "kiosk").await;

    // Unknown and malformed ids are 404; bad input is refused and changes nothing.
    let before = t.snapshot();
    t.send(
        "DELETE",
        "/api/v1/admin/tokens/00000000-0000-4000-8000-000000000000",
        Some(&t.admin),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    t.send("DELETE", "/api/v1/admin/tokens/admin", Some(&t.admin), None)
        .await
        .assert_problem(404, "not_found");
    for (body, status, code) in [
        (
            json!({"name": "till-0", "role": "operator"}),
            409,
            "token_name_taken",
        ),
        (
            json!({"name": "x", "role": "root"}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "", "role": "kiosk"}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "a\u{7}b", "role": "kiosk"}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "x".repeat(101), "role": "kiosk"}),
            422,
            "validation_failed",
        ),
        (json!({"role": "kiosk"}), 422, "validation_failed"),
        (
            json!({"name": "x", "role": "kiosk", "secret": "mine"}),
            422,
            "validation_failed",
        ),
        (json!(["x"]), 422, "validation_failed"),
    ] {
        t.post("/api/v1/admin/tokens", Some(&t.admin), body.clone())
            .await
            .assert_problem(status, code);
    }
    for q in ["status=expired", "limit=0", "after=nope", "colour=red"] {
        t.get(&format!("/api/v1/admin/tokens?{q}"), Some(&t.admin))
            .await
            .assert_problem(422, "validation_failed");
    }
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn a_revoked_token_fails_on_the_very_next_request_on_the_hot_path_too() {
    let t = spawn_app();
    let event = t.published_event(10).await;
    let mut codes = Vec::new();
    for n in 0..3 {
        let a = t.attendee(n).await;
        codes.push(t.register(&event, &a).await.json()["ticket_code"].clone());
    }
    let door = create(&t, "door-9", "operator").await;
    let (secret, id) = (
        door["token"].as_str().expect("token").to_string(),
        door["id"].as_str().expect("id").to_string(),
    );
    // Authenticated once, the token takes the hot path: the next scan goes straight to the writer
    // on the strength of the token cache (trusted for a second).
    assert_eq!(t.get("/api/v1/stats", Some(&secret)).await.status, 200);
    let scan = t
        .post(
            "/api/v1/checkins",
            Some(&secret),
            json!({"ticket_code": codes[0]}),
        )
        .await;
    assert_eq!(scan.status, 200);
    assert!(
        t.app.recently_authenticated(&secret).is_some(),
        "the cache holds it"
    );

    let r = t
        .send(
            "DELETE",
            &format!("/api/v1/admin/tokens/{id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    // Well within the cache's second: refused all the same, and nothing changed.
    assert!(
        t.app.recently_authenticated(&secret).is_none(),
        "revoking emptied the cache"
    );
    let before = t.snapshot();
    t.post(
        "/api/v1/checkins",
        Some(&secret),
        json!({"ticket_code": codes[1]}),
    )
    .await
    .assert_problem(401, "unauthorized");
    t.post(
        &format!("/api/v1/events/{event}/registrations"),
        Some(&secret),
        json!({"attendee_id": "00000000-0000-4000-8000-000000000000"}),
    )
    .await
    .assert_problem(401, "unauthorized");
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn the_last_admin_token_cannot_be_revoked() {
    let t = spawn_app();
    let me = t.get("/api/v1/admin/tokens", Some(&t.admin)).await.json()["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let before = t.snapshot();
    t.send(
        "DELETE",
        &format!("/api/v1/admin/tokens/{me}"),
        Some(&t.admin),
        None,
    )
    .await
    .assert_problem(409, "last_admin_token");
    assert_eq!(t.snapshot(), before);
    assert_eq!(
        t.get("/api/v1/admin/tokens", Some(&t.admin)).await.status,
        200
    );

    // With a second admin, the first may go, even by its own hand; then the second is the last.
    let other = create(&t, "admin-2", "admin").await;
    let r = t
        .send(
            "DELETE",
            &format!("/api/v1/admin/tokens/{me}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    t.get("/api/v1/admin/tokens", Some(&t.admin))
        .await
        .assert_problem(401, "unauthorized");
    let second = other["token"].as_str().expect("token");
    let second_id = other["id"].as_str().expect("id");
    t.send(
        "DELETE",
        &format!("/api/v1/admin/tokens/{second_id}"),
        Some(second),
        None,
    )
    .await
    .assert_problem(409, "last_admin_token");
    // Tokens of other roles go freely.
    let op = t.token(Role::Operator, "op");
    let op_id = t
        .get("/api/v1/admin/tokens?status=active", Some(second))
        .await
        .json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["name"] == "op")
        .map(|i| i["id"].as_str().expect("id").to_string())
        .expect("op");
    assert_eq!(
        t.send(
            "DELETE",
            &format!("/api/v1/admin/tokens/{op_id}"),
            Some(second),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(t.get("/api/v1/stats", Some(&op)).await.status, 401);
}

#[test]
fn the_command_line_will_not_revoke_the_last_admin_token_either() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let app = boxoffice::app::App::open(
            &dir.path().join("boxoffice.db"),
            boxoffice::app::AppOptions::default(),
        )
        .expect("open");
        app.create_token(&boxoffice::app::Actor::local("test"), Role::Admin, "admin")
            .expect("admin");
    }
    let (code, _, err) = run_cli(&["token", "revoke", "admin"], dir.path());
    assert_ne!(code, 0);
    assert!(err.contains("last active admin token"), "{err}");
    let (code, out, _) = run_cli(&["token", "list"], dir.path());
    assert_eq!(code, 0);
    let line = out.lines().find(|l| l.contains("admin")).expect("listed");
    assert!(line.trim_end().ends_with('-'), "still active: {line}");
}

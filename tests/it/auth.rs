//! The auth matrix: every route answers 401 without a token and 403 to a role that is too weak, and
//! works with the role it needs. Anonymous callers never see draft events.

use boxoffice::domain::Role;
use serde_json::{json, Value};

use crate::support::{spawn_app, TestApp};

/// One route: method, path, the role it needs (`None`: anyone), and a body.
struct Route {
    method: &'static str,
    path: String,
    need: Option<Role>,
    body: Option<Value>,
}

fn route(method: &'static str, path: String, need: Option<Role>, body: Option<Value>) -> Route {
    Route {
        method,
        path,
        need,
        body,
    }
}

/// Fresh resources for one route call, so that each call can succeed on its own.
async fn fixtures(t: &TestApp, n: usize) -> (String, String, String, String) {
    let event = t.published_event(5).await;
    let attendee = t.attendee(n).await;
    let reg = t.register(&event, &attendee).await.json();
    let id = reg["id"].as_str().expect("id").to_string();
    let code = reg["ticket_code"].as_str().expect("code").to_string();
    (event, attendee, id, code)
}

async fn routes(t: &TestApp, n: usize) -> Vec<Route> {
    let (event, attendee, reg, code) = fixtures(t, n * 10).await;
    let other = t.attendee(n * 10 + 1).await;
    let draft = t
        .post("/api/v1/events", Some(&t.admin), json!({"name": "Draft", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": 1}))
        .await
        .json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    let victim = t
        .app
        .create_token(
            &boxoffice::app::Actor::local("test"),
            Role::Kiosk,
            &format!("victim-{n}"),
        )
        .expect("token")
        .token
        .id;
    let e = |s: &str| format!("/api/v1/events/{event}{s}");
    vec![
        route("GET", "/health".into(), None, None),
        route("GET", "/metrics".into(), None, None),
        route("GET", "/api/v1/events".into(), None, None),
        route("GET", e(""), None, None),
        route(
            "POST",
            "/api/v1/events".into(),
            Some(Role::Admin),
            Some(
                json!({"name": "New", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": 1}),
            ),
        ),
        route(
            "PATCH",
            e(""),
            Some(Role::Admin),
            Some(json!({"name": "Renamed"})),
        ),
        route(
            "POST",
            format!("/api/v1/events/{draft}/publish"),
            Some(Role::Admin),
            None,
        ),
        route("GET", e("/registrations"), Some(Role::Operator), None),
        route("GET", e("/waitlist"), Some(Role::Operator), None),
        route(
            "POST",
            e("/registrations"),
            Some(Role::Kiosk),
            Some(json!({"attendee_id": other})),
        ),
        route(
            "POST",
            "/api/v1/attendees".into(),
            Some(Role::Kiosk),
            Some(json!({"name": "X", "email": format!("x{n}@example.org")})),
        ),
        route(
            "GET",
            format!("/api/v1/attendees/{attendee}"),
            Some(Role::Kiosk),
            None,
        ),
        route(
            "GET",
            format!("/api/v1/attendees/{attendee}/tickets"),
            Some(Role::Kiosk),
            None,
        ),
        route(
            "GET",
            format!("/api/v1/registrations/{reg}"),
            Some(Role::Kiosk),
            None,
        ),
        route(
            "GET",
            format!("/api/v1/registrations/{reg}/position"),
            Some(Role::Kiosk),
            None,
        ),
        // Accepting is harmless on a confirmed seat; the door scans and reverts it.
        route(
            "POST",
            format!("/api/v1/registrations/{reg}/accept"),
            Some(Role::Kiosk),
            None,
        ),
        route(
            "POST",
            "/api/v1/checkins".into(),
            Some(Role::Operator),
            Some(json!({"ticket_code": code})),
        ),
        route(
            "POST",
            format!("/api/v1/checkins/{reg}/revert"),
            Some(Role::Operator),
            None,
        ),
        route(
            "POST",
            e("/walkups"),
            Some(Role::Operator),
            Some(json!({"name": "Counter"})),
        ),
        route(
            "POST",
            format!("/api/v1/registrations/{reg}/cancel"),
            Some(Role::Kiosk),
            None,
        ),
        // Declining is harmless on a cancelled registration.
        route(
            "POST",
            format!("/api/v1/registrations/{reg}/decline"),
            Some(Role::Kiosk),
            None,
        ),
        route(
            "GET",
            "/api/v1/admin/tokens".into(),
            Some(Role::Admin),
            None,
        ),
        route(
            "POST",
            "/api/v1/admin/tokens".into(),
            Some(Role::Admin),
            Some(json!({"name": format!("made-{n}"), "role": "kiosk"})),
        ),
        route(
            "DELETE",
            format!("/api/v1/admin/tokens/{victim}"),
            Some(Role::Admin),
            None,
        ),
        route(
            "GET",
            format!("/api/v1/attendees/{attendee}/export"),
            Some(Role::Admin),
            None,
        ),
        // Late: it cancels the registration the others use.
        route(
            "DELETE",
            format!("/api/v1/attendees/{attendee}"),
            Some(Role::Admin),
            None,
        ),
        // Last: it cancels the event the others use.
        route("POST", e("/cancel"), Some(Role::Admin), None),
    ]
}

#[tokio::test]
async fn every_route_needs_its_role() {
    let t = spawn_app();
    let tokens = [
        (Role::Kiosk, t.token(Role::Kiosk, "kiosk")),
        (Role::Operator, t.token(Role::Operator, "operator")),
        (Role::Admin, t.admin.clone()),
    ];
    // Every role that may call a route gets its own fresh fixtures and must succeed.
    for (i, (role, token)) in tokens.iter().enumerate() {
        for r in routes(&t, i).await {
            let allowed = r.need.is_none_or(|need| role.allows(need));
            let before = t.snapshot();
            let resp = t.send(r.method, &r.path, Some(token), r.body.clone()).await;
            if allowed {
                assert!(
                    (200..300).contains(&resp.status),
                    "{} {} as {role}: {} {}",
                    r.method,
                    r.path,
                    resp.status,
                    String::from_utf8_lossy(&resp.bytes)
                );
            } else {
                resp.assert_problem(403, "forbidden");
                assert_eq!(t.snapshot(), before, "a refused call changes nothing");
            }
        }
    }
    // Without a token, with an unknown token, with a malformed header: 401 everywhere a role is needed.
    for r in routes(&t, 9).await {
        for auth in [
            None,
            Some("Bearer bo_not_a_real_token"),
            Some("Basic YWRtaW46YWRtaW4="),
        ] {
            let mut req = t
                .client
                .request(r.method.parse().expect("method"), t.url(&r.path));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if let Some(b) = &r.body {
                req = req.json(b);
            }
            let resp = req.send().await.expect("send");
            let status = resp.status().as_u16();
            let www = resp.headers().get("www-authenticate").cloned();
            match (r.need, auth) {
                (None, None) => assert_eq!(status, 200, "{} {}", r.method, r.path),
                // Monitoring does not authenticate: /health and /metrics ignore the header altogether.
                (None, Some(_)) if r.path == "/health" || r.path == "/metrics" => {
                    assert_eq!(status, 200)
                }
                _ => {
                    assert_eq!(status, 401, "{} {} with {auth:?}", r.method, r.path);
                    assert_eq!(www.as_ref().map(|v| v.as_bytes()), Some(&b"Bearer"[..]));
                }
            }
        }
    }
}

#[tokio::test]
async fn revoked_tokens_stop_working() {
    let t = spawn_app();
    let kiosk = t.token(Role::Kiosk, "door");
    let event = t.published_event(1).await;
    assert_eq!(
        t.get(
            &format!("/api/v1/events/{event}/registrations"),
            Some(&kiosk)
        )
        .await
        .status,
        403
    );
    let a = t.attendee(1).await;
    assert_eq!(
        t.get(&format!("/api/v1/attendees/{a}"), Some(&kiosk))
            .await
            .status,
        200
    );
    t.app
        .revoke_token(&boxoffice::app::Actor::local("test"), "door")
        .expect("revoke");
    t.get(&format!("/api/v1/attendees/{a}"), Some(&kiosk))
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn anonymous_callers_and_kiosks_never_see_drafts() {
    let t = spawn_app();
    let kiosk = t.token(Role::Kiosk, "kiosk");
    let operator = t.token(Role::Operator, "op");
    let published = t.published_event(1).await;
    let draft = t
        .post("/api/v1/events", Some(&t.admin), json!({"name": "Secret", "venue": "V", "starts_at": "2030-01-01T00:00:00Z", "capacity": 1}))
        .await
        .json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    for token in [None, Some(kiosk.as_str())] {
        let list = t.get("/api/v1/events", token).await.json();
        let ids: Vec<_> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["id"].clone())
            .collect();
        assert_eq!(ids, [json!(published)]);
        t.get(&format!("/api/v1/events/{draft}"), token)
            .await
            .assert_problem(404, "not_found");
        let filtered = t.get("/api/v1/events?status=draft", token).await.json();
        assert_eq!(
            filtered["items"],
            json!([]),
            "a status filter cannot reveal drafts"
        );
    }
    assert_eq!(
        t.get(&format!("/api/v1/events/{draft}"), Some(&operator))
            .await
            .status,
        200
    );
    let drafts = t
        .get("/api/v1/events?status=draft", Some(&operator))
        .await
        .json();
    assert_eq!(drafts["items"][0]["id"], json!(draft));
}

//! The OpenAPI document at `/api/v1/openapi.json` and the router are the same table.
//!
//! How equality is kept without a second, hand-kept list of routes: `http::table()` adds every route
//! through utoipa-axum's `routes!`, which takes the method and path from the handler's
//! `#[utoipa::path]` attribute and puts the operation into the document in the same step. What
//! could still break equality, and the test that catches it:
//! - a route added with plain axum (`.route`, `.nest`, `.merge`, ...), which serves without
//!   documenting: `routes_are_only_added_through_the_documented_table` reads the sources of
//!   `src/http` (axum cannot list a router's routes, so the live router cannot be asked);
//! - an operation in the document that the router does not serve (a path typed differently, a
//!   handler registered nowhere), or a method the router serves on a documented path that the
//!   document does not name: `every_documented_operation_is_served_and_nothing_else_on_its_path`
//!   probes the live server with every documented (method, path) and every other method.

use std::collections::BTreeSet;

use boxoffice::domain::Role;
use serde_json::Value;

use crate::support::{spawn_app, TestApp};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// (method, path template) of every operation in the served document.
async fn documented(t: &TestApp) -> (Value, BTreeSet<(String, String)>) {
    let r = t.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), "application/json");
    let doc = r.json();
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method.to_lowercase()).is_some() {
                ops.insert((method.to_string(), path.clone()));
            }
        }
    }
    (doc, ops)
}

/// A concrete path for a template: every `{param}` becomes a fresh, unknown UUID.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                uuid::Uuid::new_v4().to_string()
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_fallback(r: &crate::support::Resp) -> bool {
    r.status == 404 && r.json()["detail"] == "no such route"
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_is_what_the_code_generates() {
    let t = spawn_app();
    let (doc, ops) = documented(&t).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc, boxoffice::http::openapi_document());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // The routes of DESIGN.md that exist today, spot-checked, including the system and admin ones.
    for (m, p) in [
        ("GET", "/health"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/v1/events/{id}/registrations"),
        ("DELETE", "/api/v1/admin/webhooks/{id}"),
        ("GET", "/api/v1/admin/audit"),
    ] {
        assert!(ops.contains(&(m.into(), p.into())), "{m} {p} missing");
    }
    for (m, p) in &ops {
        let op = &doc["paths"][p][m.to_lowercase()];
        let role = op["x-required-role"].as_str().expect("x-required-role");
        assert!(
            ["anyone", "kiosk", "operator", "admin"].contains(&role),
            "{m} {p}: {role}"
        );
        assert!(
            op["description"]
                .as_str()
                .is_some_and(|d| d.contains("Role: ")),
            "{m} {p}: the description names the role"
        );
        if role != "anyone" {
            assert_eq!(
                op["security"],
                serde_json::json!([{"bearer": []}]),
                "{m} {p}"
            );
        }
        // Every operation documents the answers any request can get.
        for status in ["429", "431", "500", "503"] {
            assert!(op["responses"].get(status).is_some(), "{m} {p}: {status}");
        }
        let problem = &op["responses"]["429"]["content"]["application/problem+json"]["schema"];
        assert!(problem.to_string().contains("rate_limited"), "{m} {p}");
    }
}

#[tokio::test]
async fn every_documented_operation_is_served_and_nothing_else_on_its_path() {
    let t = spawn_app();
    let (_, ops) = documented(&t).await;
    let paths: BTreeSet<&String> = ops.iter().map(|(_, p)| p).collect();
    for path in paths {
        let url = concrete(path);
        let documented_here: BTreeSet<&str> = METHODS
            .into_iter()
            .filter(|m| ops.contains(&(m.to_string(), path.clone())))
            .collect();
        for method in METHODS {
            let r = t.send(method, &url, Some(&t.admin), None).await;
            if documented_here.contains(method) {
                assert!(
                    !is_fallback(&r) && r.status != 405,
                    "{method} {path} is documented but not served: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.bytes)
                );
            } else {
                assert_eq!(
                    r.status, 405,
                    "{method} {path} is served but not documented (or the path is unknown)"
                );
                let allow: BTreeSet<String> = r
                    .headers
                    .get("allow")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .split(',')
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty() && m != "HEAD")
                    .collect();
                let expected: BTreeSet<String> =
                    documented_here.iter().map(|m| m.to_string()).collect();
                assert_eq!(allow, expected, "Allow of {path}");
            }
        }
    }
}

#[test]
fn routes_are_only_added_through_the_documented_table() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut offences = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/http") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        for needle in [
            ".route(",
            ".route_service(",
            ".nest(",
            ".nest_service(",
            ".merge(",
            "Router::new()",
        ] {
            if text.contains(needle) {
                offences.push(format!("{} uses {needle}", path.display()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "add routes with `.routes(routes!(handler))` in http::table() so they are documented: \
         {offences:#?}"
    );
}

/// The role each operation names is the role the server enforces: no token is 401, the role just
/// below is 403, the named role gets past authorization.
#[tokio::test]
async fn the_role_in_the_document_is_the_role_enforced() {
    let t = spawn_app();
    let (doc, ops) = documented(&t).await;
    let kiosk = t.token(Role::Kiosk, "kiosk");
    let operator = t.token(Role::Operator, "operator");
    let token_of = |role: &str| match role {
        "kiosk" => kiosk.clone(),
        "operator" => operator.clone(),
        _ => t.admin.clone(),
    };
    for (method, path) in &ops {
        let role = doc["paths"][path][method.to_lowercase()]["x-required-role"]
            .as_str()
            .expect("role")
            .to_string();
        let url = concrete(path);
        let body = (method != "GET").then(|| serde_json::json!({}));
        let anonymous = t.send(method, &url, None, body.clone()).await;
        if role == "anyone" {
            assert_ne!(anonymous.status, 401, "{method} {path}");
            continue;
        }
        anonymous.assert_problem(401, "unauthorized");
        let below = match role.as_str() {
            "operator" => Some(&kiosk),
            "admin" => Some(&operator),
            _ => None,
        };
        if let Some(below) = below {
            t.send(method, &url, Some(below), body.clone())
                .await
                .assert_problem(403, "forbidden");
        }
        let allowed = t.send(method, &url, Some(&token_of(&role)), body).await;
        assert!(
            ![401, 403].contains(&allowed.status),
            "{method} {path} with a {role} token: {}",
            allowed.status
        );
    }
}

// ----- the server keeps the rules the document states (each found by comparing the two) -----

/// JSON Schema counts `5.0` as the integer 5; the server used to refuse it with 422.
#[tokio::test]
async fn whole_numbers_written_as_floats_are_integers() {
    let t = spawn_app();
    let event = serde_json::json!({"name": "Gala", "venue": "Hall",
        "starts_at": "2030-01-01T20:00:00Z", "capacity": 5.0, "offer_minutes": 60.0});
    let r = t.post("/api/v1/events", Some(&t.admin), event).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.bytes));
    assert_eq!(r.json()["capacity"], 5);
    let id = r.json()["id"].as_str().expect("id").to_string();
    let r = t
        .send(
            "PATCH",
            &format!("/api/v1/events/{id}"),
            Some(&t.admin),
            Some(serde_json::json!({"capacity": 7.0})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["capacity"], 7);
    let hook = serde_json::json!({"url": "http://127.0.0.1:9/hook", "timeout_ms": 1000.0});
    let r = t.post("/api/v1/admin/webhooks", Some(&t.admin), hook).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.bytes));
    assert_eq!(r.json()["timeout_ms"], 1000);

    // A fraction, or a number past 64 bits, is still refused and changes nothing.
    let before = t.snapshot();
    for capacity in [serde_json::json!(5.5), serde_json::json!(1e300)] {
        t.post(
            "/api/v1/events",
            Some(&t.admin),
            serde_json::json!({"name": "Gala", "venue": "Hall",
                "starts_at": "2030-01-01T20:00:00Z", "capacity": capacity}),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
    assert_eq!(t.snapshot(), before);
}

/// In a change, `null` means "clear": a field that cannot be cleared refuses it instead of silently
/// leaving the field as it was (the document does not allow `null` there).
#[tokio::test]
async fn null_is_refused_where_a_field_cannot_be_cleared() {
    let t = spawn_app();
    let id = t.published_event(3).await;
    let before = t.snapshot();
    for field in [
        "name",
        "venue",
        "capacity",
        "starts_at",
        "waitlist_enabled",
        "promotion",
    ] {
        let mut body = serde_json::json!({"description": "new"});
        body[field] = Value::Null;
        t.send(
            "PATCH",
            &format!("/api/v1/events/{id}"),
            Some(&t.admin),
            Some(body),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
    assert_eq!(t.snapshot(), before);
    // `ends_at: null` clears the end time, as documented.
    let r = t
        .send(
            "PATCH",
            &format!("/api/v1/events/{id}"),
            Some(&t.admin),
            Some(serde_json::json!({"ends_at": null})),
        )
        .await;
    assert_eq!(r.status, 200);
}

/// `maxLength` and the no-control-characters pattern apply to the text as sent: padding with spaces
/// or a newline that trimming would drop no longer slips past them.
#[tokio::test]
async fn text_bounds_apply_to_the_text_as_sent() {
    let t = spawn_app();
    let before = t.snapshot();
    let padded = format!(" {} ", "a".repeat(200));
    for (field, value) in [
        ("name", padded.as_str()),
        ("name", "\nAda"),
        ("venue", "Hall\t"),
    ] {
        let mut body = serde_json::json!({"name": "Gala", "venue": "Hall",
            "starts_at": "2030-01-01T20:00:00Z", "capacity": 5});
        body[field] = Value::String(value.to_string());
        t.post("/api/v1/events", Some(&t.admin), body)
            .await
            .assert_problem(422, "validation_failed");
    }
    for phone in ["\t+49 30 123", &format!("{}123", " ".repeat(30))] {
        t.post(
            "/api/v1/attendees",
            Some(&t.admin),
            serde_json::json!({"name": "Ada", "email": "ada@example.org", "phone": phone}),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
    let long_actor = format!(" {} ", "a".repeat(200));
    t.get(
        &format!(
            "/api/v1/admin/audit?actor={}",
            long_actor.replace(' ', "%20")
        ),
        Some(&t.admin),
    )
    .await
    .assert_problem(422, "validation_failed");
    assert_eq!(t.snapshot(), before);
    // Surrounding spaces are still trimmed from what is accepted.
    let r = t
        .post(
            "/api/v1/attendees",
            Some(&t.admin),
            serde_json::json!({"name": " Ada ", "email": "ada@example.org", "phone": " +49 (30) 123-456 "}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["name"], "Ada");
    assert_eq!(r.json()["phone"], "+49 (30) 123-456");
}

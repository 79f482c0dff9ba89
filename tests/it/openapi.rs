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

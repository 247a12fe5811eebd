//! The OpenAPI document served at /openapi.json matches the routes the server really has.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Every admin route the server serves (keep in step with `app.rs`).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/links"),
    ("get", "/v1/plugins"),
    ("get", "/v1/providers"),
    ("post", "/v1/links/resolve"),
    ("post", "/v1/oauth/callback"),
    ("post", "/v1/tenant-sessions"),
    ("get", "/v1/audit"),
    ("get", "/v1/backup"),
    ("get", "/v1/vault/data-key"),
    ("post", "/v1/vault/data-key/rotate"),
    ("get", "/v1/events"),
    ("get", "/v1/webhooks/deliveries"),
    ("post", "/v1/webhooks/deliveries/{id}/replay"),
    ("get", "/v1/connections"),
    ("post", "/v1/connections"),
    ("get", "/v1/connections/{id}"),
    ("delete", "/v1/connections/{id}"),
    ("get", "/v1/connections/{id}/token"),
    ("post", "/v1/connections/{id}/revoke"),
    ("post", "/v1/connections/{id}/request"),
    ("get", "/v1/connections/{id}/proxy/{path}"),
    ("post", "/v1/connections/{id}/proxy/{path}"),
    ("put", "/v1/connections/{id}/proxy/{path}"),
    ("patch", "/v1/connections/{id}/proxy/{path}"),
    ("delete", "/v1/connections/{id}/proxy/{path}"),
    ("get", "/v1/tenants/{tenant_id}/plugins/{plugin}/connection"),
    ("get", "/v1/tenants/{tenant_id}/plugins/{plugin}/token"),
    (
        "get",
        "/v1/tenants/{tenant_id}/plugins/{plugin}/proxy/{path}",
    ),
    (
        "post",
        "/v1/tenants/{tenant_id}/plugins/{plugin}/proxy/{path}",
    ),
    (
        "put",
        "/v1/tenants/{tenant_id}/plugins/{plugin}/proxy/{path}",
    ),
    (
        "patch",
        "/v1/tenants/{tenant_id}/plugins/{plugin}/proxy/{path}",
    ),
    (
        "delete",
        "/v1/tenants/{tenant_id}/plugins/{plugin}/proxy/{path}",
    ),
];

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let server = Server::start_with(TestConfig {
        extra: "[limits]\nfailed_auth_per_minute = 10000\n".into(),
        ..TestConfig::default()
    });
    let r = plain_client()
        .get(server.url("/openapi.json"))
        .send()
        .expect("GET");
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_key"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is not in /openapi.json"
        );
    }
    let mut documented = 0;
    for (path, ops) in paths {
        for method in ops.as_object().expect("operations").keys() {
            documented += 1;
            assert!(
                ROUTES.contains(&(method.as_str(), path.as_str())),
                "{method} {path} is documented but not listed here"
            );
            // The route exists and is protected: 401, never the router's 404.
            let url = server.url(
                &path
                    .replace("{id}", "conn_x")
                    .replace("{path}", "me")
                    .replace("{tenant_id}", "t")
                    .replace("{plugin}", "sandbox"),
            );
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let r = plain_client().request(m, url).send().expect("request");
            assert_json_error(r, StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
    assert_eq!(documented, ROUTES.len());
}

//! Tenant sessions: a browser token that lists its own tenant's connections and creates links
//! for its own tenant, and can do nothing else.

mod common;

use common::*;
use reqwest::blocking::Response;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn session(admin: &Admin, tenant: &str, ttl: Option<i64>) -> String {
    let mut body = json!({"tenant_id": tenant});
    if let Some(t) = ttl {
        body["ttl_seconds"] = json!(t);
    }
    let r = admin.post_json("/v1/tenant-sessions", &body);
    let status = r.status();
    let v: Value = r.json().expect("JSON");
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["tenant_id"], tenant);
    assert!(v["expires_at"].is_string());
    v["token"].as_str().expect("token").to_string()
}

fn call(server: &Server, token: &str, method: Method, path: &str, body: Option<Value>) -> Response {
    let mut req = plain_client()
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().expect("request")
}

#[test]
fn a_session_sees_and_links_only_its_own_tenant() {
    let server = Server::start();
    let admin = server.admin();
    let own = connect(&server, "tenant-a");
    let other = connect(&server, "tenant-b");
    let token = session(&admin, "tenant-a", None);

    let r = call(&server, &token, Method::GET, "/v1/connections", None);
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().expect("JSON");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, vec![own.as_str()]);
    assert!(!v.to_string().contains(&other));
    assert_json_error(
        call(
            &server,
            &token,
            Method::GET,
            "/v1/connections?tenant_id=tenant-b",
            None,
        ),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let r = call(
        &server,
        &token,
        Method::GET,
        "/v1/connections?tenant_id=tenant-a&status=connected",
        None,
    );
    assert_eq!(r.status(), StatusCode::OK);

    // Links: for its own tenant, by default or by name; never another's, never shared.
    let r = call(
        &server,
        &token,
        Method::POST,
        "/v1/links",
        Some(json!({"plugin": "sandbox"})),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    let link: Value = r.json().expect("JSON");
    let c = admin.connection(link["connection_id"].as_str().expect("id"));
    assert_eq!(c["tenant_id"], "tenant-a");
    for (body, status) in [
        (
            json!({"plugin": "sandbox", "tenant_id": "tenant-b"}),
            StatusCode::FORBIDDEN,
        ),
        (
            json!({"plugin": "sandbox", "shared": true}),
            StatusCode::FORBIDDEN,
        ),
        (
            json!({"plugin": "sandbox", "tenant_id": "tenant-a", "connection_id": other}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = call(
            &server,
            &token,
            Method::POST,
            "/v1/links",
            Some(body.clone()),
        );
        assert_eq!(r.status(), status, "{body}");
    }
}

#[test]
fn a_session_can_call_no_other_route() {
    let server = Server::start();
    let admin = server.admin();
    let own = connect(&server, "tenant-a");
    let token = session(&admin, "tenant-a", Some(600));
    let routes = [
        (Method::GET, format!("/v1/connections/{own}")),
        (Method::GET, format!("/v1/connections/{own}/token")),
        (Method::GET, format!("/v1/connections/{own}/proxy/me")),
        (Method::POST, format!("/v1/connections/{own}/request")),
        (Method::POST, format!("/v1/connections/{own}/revoke")),
        (Method::DELETE, format!("/v1/connections/{own}")),
        (Method::POST, "/v1/connections".to_string()),
        (Method::GET, "/v1/plugins".to_string()),
        (Method::GET, "/v1/providers".to_string()),
        (Method::GET, "/v1/events".to_string()),
        (Method::POST, "/v1/tenant-sessions".to_string()),
        (Method::POST, "/v1/links/resolve".to_string()),
        (Method::POST, "/v1/oauth/callback".to_string()),
        (
            Method::GET,
            "/v1/tenants/tenant-a/plugins/sandbox/token".to_string(),
        ),
        (
            Method::GET,
            "/v1/tenants/tenant-a/plugins/sandbox/connection".to_string(),
        ),
        (Method::GET, "/v1/webhooks/deliveries".to_string()),
        (Method::GET, "/v1/vault/data-key".to_string()),
        (Method::POST, "/v1/vault/data-key/rotate".to_string()),
        (Method::GET, "/v1/backup".to_string()),
        (Method::GET, "/v1/audit".to_string()),
        (Method::GET, "/v1/connections/".to_string()),
        (Method::GET, "/v1/links".to_string()),
    ];
    for (method, path) in routes {
        let r = call(
            &server,
            &token,
            method.clone(),
            &path,
            Some(json!({"tenant_id": "tenant-a"})),
        );
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
        let v: Value = r.json().expect("JSON error");
        assert_eq!(v["error"], "forbidden", "{method} {path}");
    }
    // Nothing changed: the connection is still there and connected.
    assert_eq!(admin.connection(&own)["status"], "connected");
}

#[test]
fn sessions_expire_resist_tampering_survive_restarts_and_validate_input() {
    let server = Server::start();
    let admin = server.admin();
    let token = session(&admin, "tenant-a", Some(1));
    let long = session(&admin, "tenant-a", Some(3600));
    let (payload, sig) = long.split_once('.').expect("dot");
    for bad in [
        format!("{payload}.{}", sig.chars().rev().collect::<String>()),
        format!("{}x.{sig}", payload),
        "ts_".to_string(),
        "ts_a.b".to_string(),
    ] {
        assert_json_error(
            call(&server, &bad, Method::GET, "/v1/connections", None),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_json_error(
        call(&server, &token, Method::GET, "/v1/connections", None),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    for body in [
        json!({}),
        json!({"tenant_id": ""}),
        json!({"tenant_id": "t", "ttl_seconds": 0}),
        json!({"tenant_id": "t", "ttl_seconds": 100000}),
        json!({"tenant_id": "t", "admin": true}),
    ] {
        let r = admin.post_json("/v1/tenant-sessions", &body);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    assert!(
        !server.stderr().contains(&long),
        "session tokens are never logged"
    );

    // The signing key is derived from the vault: a restarted appliance accepts the session.
    let dir = server.stop();
    let server = Server::start_in(dir, TestConfig::default());
    let r = call(&server, &long, Method::GET, "/v1/connections", None);
    assert_eq!(r.status(), StatusCode::OK);
}

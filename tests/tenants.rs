//! Tenant-addressed routes and `skip_if_connected`.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[test]
fn a_tenant_without_a_connection_gets_a_fresh_link_then_its_connection_after_connecting() {
    let server = Server::start();
    let admin = server.admin();
    let r = admin.get("/v1/tenants/user%2042/plugins/sandbox/token");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let v: Value = r.json().expect("JSON");
    assert_eq!(v["error"], "needs_connection");
    let connect_url = v["connect_url"].as_str().expect("connect_url");
    assert!(connect_url.starts_with(&server.url("/connect/")), "{v}");
    assert!(v["expires_at"].is_string());
    let pending = v["connection_id"]
        .as_str()
        .expect("connection_id")
        .to_string();
    assert_eq!(admin.connection(&pending)["status"], "pending");
    assert_eq!(admin.connection(&pending)["tenant_id"], "user 42");

    // The end user follows that very link.
    let token = connect_url.rsplit('/').next().expect("token").to_string();
    let link = Link {
        token,
        connect_url: connect_url.to_string(),
        connection_id: pending.clone(),
    };
    let flow = run_flow_for(&server, link, true, "user42");
    assert_eq!(flow.callback_status, StatusCode::SEE_OTHER);

    let conn = admin.get_json("/v1/tenants/user%2042/plugins/sandbox/connection");
    assert_eq!(conn["id"], pending.as_str());
    assert_eq!(conn["status"], "connected");
    let t = admin.get_json("/v1/tenants/user%2042/plugins/sandbox/token");
    let access = t["access_token"].as_str().expect("token");
    assert_eq!(server.sandbox_me(access).status(), StatusCode::OK);
    let me = admin.get_json("/v1/tenants/user%2042/plugins/sandbox/proxy/me");
    assert_eq!(me["sub"], "user42");

    // Another tenant sees nothing of it.
    let r = admin.get("/v1/tenants/someone-else/plugins/sandbox/connection");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let v: Value = r.json().expect("JSON");
    assert_ne!(v["connection_id"], pending.as_str());

    // skip_if_connected answers with the existing connection instead of a link.
    let r = admin.post_json(
        "/v1/links",
        &json!({"tenant_id": "user 42", "plugin": "sandbox", "skip_if_connected": true}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().expect("JSON");
    assert_eq!(v, json!({"connected": true, "connection_id": pending}));
    let r = admin.post_json(
        "/v1/links",
        &json!({"tenant_id": "someone-new", "plugin": "sandbox", "skip_if_connected": true}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);

    // After a revocation the tenant needs a connection again.
    assert_eq!(
        admin
            .post(&format!("/v1/connections/{pending}/revoke"))
            .status(),
        StatusCode::OK
    );
    let r = admin.get("/v1/tenants/user%2042/plugins/sandbox/proxy/me");
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

#[test]
fn tenant_routes_validate_their_input() {
    let server = Server::start();
    let admin = server.admin();
    let r = admin.get("/v1/tenants/t/plugins/nope/connection");
    assert_json_error(r, StatusCode::NOT_FOUND, "unknown_plugin");
    let long = "x".repeat(300);
    let r = admin.get(&format!("/v1/tenants/{long}/plugins/sandbox/connection"));
    assert_json_error(r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(
        admin.get_json("/v1/connections")["data"]
            .as_array()
            .expect("data")
            .len(),
        0
    );
}

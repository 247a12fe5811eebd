//! The API proxy, the JSON request endpoint, credential import, API-key plugins and the
//! background refresher, against a small recording upstream on loopback.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::upstream::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A server with a sandbox-backed plugin whose API is the upstream, and an API-key plugin.
fn server_with(upstream: &Upstream, extra: &str) -> Server {
    server_with_config(upstream, extra, TestConfig::default())
}

fn server_with_config(upstream: &Upstream, extra: &str, base: TestConfig) -> Server {
    let config = TestConfig {
        extra: format!(
            r#"[plugins.echo]
provider = "sandbox"
client_id = {id}
client_secret = {secret}
api_base_url = "{base}"

[plugins.keyed]
auth = "api_key"
api_base_url = "{base}"
api_key_header = "X-Api-Key"

[plugins.keyed_query]
auth = "api_key"
api_base_url = "{base}"
api_key_query = "key"
{extra}"#,
            id = toml_str(SANDBOX_CLIENT_ID),
            secret = toml_str(SANDBOX_SECRET),
            base = upstream.base(),
        ),
        ..base
    };
    Server::start_with(config)
}

/// A GET sent byte for byte as given; returns status and body.
fn raw_get(server: &Server, path: &str) -> (u16, String) {
    let addr = server
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_KEY}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

fn import(admin: &Admin, plugin: &str, credentials: Value) -> String {
    let r = admin.post_json(
        "/v1/connections",
        &json!({"tenant_id": "tenant-import", "plugin": plugin, "credentials": credentials}),
    );
    let status = r.status();
    let v: Value = r.json().expect("JSON");
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "connected", "{v}");
    v["id"].as_str().expect("id").to_string()
}

#[test]
fn proxy_forwards_under_the_base_with_the_token_and_strips_what_it_must() {
    let upstream = Upstream::start();
    let server = server_with(&upstream, "");
    let admin = server.admin();
    let id = import(
        &admin,
        "echo",
        json!({"access_token": "imported-at-1", "expires_in": 3600}),
    );

    let r = admin
        .client
        .post(server.url(&format!("/v1/connections/{id}/proxy/items/a%20b?x=1&y=two")))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "text/plain")
        .header("x-custom", "kept")
        .header("cookie", "session=secret")
        .header("x-forwarded-for", "1.2.3.4")
        .body("hello upstream")
        .send()
        .expect("proxy");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers().get("set-cookie").is_none(),
        "Set-Cookie must not pass back"
    );
    assert_eq!(r.text().expect("body"), "{\"ok\":true}");

    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.request_line, "POST /base/items/a%20b?x=1&y=two HTTP/1.1");
    assert_eq!(s.header("authorization"), Some("Bearer imported-at-1"));
    assert_eq!(s.header("x-custom"), Some("kept"));
    assert_eq!(s.header("content-type"), Some("text/plain"));
    assert_eq!(s.header("cookie"), None);
    assert_eq!(s.header("x-forwarded-for"), None);
    assert_eq!(s.body, b"hello upstream");
}

#[test]
fn proxy_refuses_paths_that_leave_the_base_without_calling_upstream() {
    let upstream = Upstream::start();
    let server = server_with(&upstream, "");
    let admin = server.admin();
    let id = import(
        &admin,
        "echo",
        json!({"access_token": "at", "expires_in": 3600}),
    );
    for path in [
        "%2e%2e/secret",
        "a/%2E%2E/%2e%2e/secret",
        "a%2f..%2fsecret",
        "a//b",
        "http:%2F%2Fevil.example",
        "a/./b",
    ] {
        // Sent raw: URL libraries (reqwest's included) would normalise `.` and `%2e%2e` away.
        let (status, body) = raw_get(&server, &format!("/v1/connections/{id}/proxy/{path}"));
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("\"invalid_proxy_path\""), "{path}: {body}");
    }
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
    // A plugin without api_base_url cannot proxy.
    let sandbox_conn = connect(&server, "t-proxy");
    let r = admin.get(&format!("/v1/connections/{sandbox_conn}/proxy/me"));
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the sandbox plugin proxies to its own API"
    );
    let v: Value = r.json().expect("JSON");
    assert_eq!(v["sub"], "sandbox-user");
}

#[test]
fn a_401_refreshes_once_and_retries_once_and_429_passes_through() {
    let upstream = Upstream::start();
    let server = server_with(&upstream, "");
    let admin = server.admin();
    let link = admin.create_link("t-401", "echo", None);
    let flow = run_flow_for(&server, link, true, "alice");
    assert_eq!(flow.callback_status, StatusCode::SEE_OTHER);
    let id = flow.link.connection_id;
    let before = admin.token(&id);
    assert_eq!(server.token_requests(), 1);

    upstream.then(401, &[], "{\"error\":\"expired\"}");
    let r = admin.get(&format!("/v1/connections/{id}/proxy/me"));
    assert_eq!(r.status(), StatusCode::OK, "retried after refresh");
    assert_eq!(server.token_requests(), 2, "exactly one refresh");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {before}").as_str())
    );
    let after = admin.token(&id);
    assert_ne!(after, before);
    assert_eq!(
        seen[1].header("authorization"),
        Some(format!("Bearer {after}").as_str())
    );

    // Two 401s: one retry only, and the 401 goes back to the caller.
    upstream.then(401, &[], "{}");
    upstream.then(401, &[], "{}");
    let r = admin.get(&format!("/v1/connections/{id}/proxy/me"));
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.seen().len(), 4);

    upstream.then(429, &[("retry-after", "17")], "{\"error\":\"slow down\"}");
    let r = admin.get(&format!("/v1/connections/{id}/proxy/me"));
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(r.headers(), "retry-after"), "17");
    assert_eq!(admin.connection(&id)["status"], "connected");
}

#[test]
fn json_request_endpoint_follows_the_same_rules() {
    let upstream = Upstream::start();
    let server = server_with(&upstream, "");
    let admin = server.admin();
    let id = import(
        &admin,
        "echo",
        json!({"access_token": "at-json", "expires_in": 3600}),
    );
    let r = admin.post_json(
        &format!("/v1/connections/{id}/request"),
        &json!({
            "method": "put",
            "path": "/things/1",
            "query": {"q": "a b"},
            "headers": {"X-Trace": "t1", "Authorization": "Bearer caller-token"},
            "body": {"name": "x"}
        }),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let s = &upstream.seen()[0];
    assert_eq!(s.request_line, "PUT /base/things/1?q=a+b HTTP/1.1");
    assert_eq!(
        s.header("authorization"),
        Some("Bearer at-json"),
        "caller's Authorization dropped"
    );
    assert_eq!(s.header("x-trace"), Some("t1"));
    assert_eq!(s.header("content-type"), Some("application/json"));
    assert_eq!(s.body, br#"{"name":"x"}"#);

    let r = admin.post_json(
        &format!("/v1/connections/{id}/request"),
        &json!({"method": "GET", "path": "../escape"}),
    );
    assert_json_error(r, StatusCode::BAD_REQUEST, "invalid_proxy_path");
    let r = admin.post_json(
        &format!("/v1/connections/{id}/request"),
        &json!({"method": "GET", "path": "x", "headers": {"bad header": "v"}}),
    );
    assert_json_error(r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(upstream.seen().len(), 1);
}

#[test]
fn api_key_plugins_inject_the_key_by_header_or_query() {
    let upstream = Upstream::start();
    let server = server_with(&upstream, "");
    let admin = server.admin();
    let r = admin.post_json("/v1/links", &json!({"tenant_id": "t", "plugin": "keyed"}));
    assert_json_error(r, StatusCode::BAD_REQUEST, "invalid_request");

    let id = import(&admin, "keyed", json!({"access_token": "key-123"}));
    let conn = admin.connection(&id);
    assert_eq!(conn["expires_at"], Value::Null);
    assert_eq!(conn["refreshable"], false);
    let t = admin.get_json(&format!("/v1/connections/{id}/token"));
    assert_eq!(t["access_token"], "key-123");
    assert_eq!(t["token_type"], "api_key");
    let r = admin.get(&format!("/v1/connections/{id}/proxy/forecast"));
    assert_eq!(r.status(), StatusCode::OK);
    let q = import(&admin, "keyed_query", json!({"access_token": "key-456"}));
    let r = admin.get(&format!("/v1/connections/{q}/proxy/forecast?city=x"));
    assert_eq!(r.status(), StatusCode::OK);

    let seen = upstream.seen();
    assert_eq!(seen[0].header("x-api-key"), Some("key-123"));
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(
        seen[1].request_line,
        "GET /base/forecast?city=x&key=key-456 HTTP/1.1"
    );
    assert_eq!(seen[1].header("authorization"), None);

    let plugins = admin.get_json("/v1/plugins");
    let keyed = plugins["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|p| p["id"] == "keyed")
        .expect("keyed listed")
        .clone();
    assert_eq!(keyed["auth"], "api_key");
}

#[test]
fn import_validates_its_input_and_changes_nothing_on_error() {
    let upstream = Upstream::start();
    let server = server_with(&upstream, "");
    let admin = server.admin();
    let bad = [
        json!({"tenant_id": "t", "plugin": "echo", "credentials": {"access_token": ""}}),
        json!({"tenant_id": "t", "plugin": "echo", "credentials": {"access_token": "a", "expires_in": 10, "expires_at": "2030-01-01T00:00:00Z"}}),
        json!({"tenant_id": "t", "plugin": "echo", "credentials": {"access_token": "a", "expires_in": -5}}),
        json!({"tenant_id": "t", "plugin": "echo", "credentials": {"access_token": "a", "expires_at": "tomorrow"}}),
        json!({"tenant_id": "", "plugin": "echo", "credentials": {"access_token": "a"}}),
        json!({"tenant_id": "t", "plugin": "echo", "credentials": {"access_token": "a", "scopes": ["bad scope"]}}),
    ];
    for body in bad {
        let r = admin.post_json("/v1/connections", &body);
        assert_json_error(r, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let r = admin.post_json(
        "/v1/connections",
        &json!({"tenant_id": "t", "plugin": "nope", "credentials": {"access_token": "a"}}),
    );
    assert_json_error(r, StatusCode::NOT_FOUND, "unknown_plugin");
    let list = admin.get_json("/v1/connections");
    assert_eq!(list["data"].as_array().expect("data").len(), 0, "{list}");

    let id = import(
        &admin,
        "echo",
        json!({"access_token": "a", "refresh_token": "r", "expires_at": "2030-01-01T00:00:00Z", "scopes": ["read"]}),
    );
    let conn = admin.connection(&id);
    assert_eq!(conn["expires_at"], "2030-01-01T00:00:00Z");
    assert_eq!(conn["scopes"], json!(["read"]));
    assert_eq!(conn["refreshable"], true);
}

#[test]
fn the_background_refresher_refreshes_before_expiry_without_any_caller() {
    let config = TestConfig {
        token_ttl_seconds: 4,
        extra: "[refresh]\ninterval_seconds = 1\nlead_seconds = 600\n".into(),
        ..TestConfig::default()
    };
    let server = Server::start_with(config);
    let admin = server.admin();
    let id = connect(&server, "t-background");
    assert_eq!(server.token_requests(), 1);
    let first = admin.connection(&id);
    assert_eq!(first["last_refreshed_at"], Value::Null);
    // Refreshed at half the 4 s lifetime by the scheduler, without any token fetch.
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    loop {
        if server.token_requests() >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no background refresh happened"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let conn = admin.connection(&id);
    assert_eq!(conn["status"], "connected");
    assert!(conn["last_refreshed_at"].is_string(), "{conn}");
    assert_ne!(conn["expires_at"], first["expires_at"]);
    let token = admin.token(&id);
    assert_eq!(server.sandbox_me(&token).status(), StatusCode::OK);
}

#[test]
fn refresh_failures_are_classified_transient_or_permanent() {
    let upstream = Upstream::start();
    let extra = custom_plugin("flaky", &upstream, "client_id = \"flaky-client\"\nclient_secret = \"flaky-secret-LEAKCHECK\"\ntoken_auth_method = \"client_secret_post\"");
    let server = server_with(&upstream, &extra);
    let admin = server.admin();
    let id = import(
        &admin,
        "flaky",
        json!({"access_token": "old-at", "refresh_token": "rt-1", "expires_in": 3600}),
    );
    let force = format!("/v1/connections/{id}/token?force_refresh=true");

    // 500, 429, 503 with an OAuth body, a redirect and a non-JSON 200: the provider is failing,
    // the grant is not dead. The connection stays connected and the old token stays stored.
    upstream.then(500, &[], "oops");
    upstream.then(429, &[("retry-after", "5")], "{\"error\":\"slow_down\"}");
    upstream.then(503, &[], "{\"error\":\"temporarily_unavailable\"}");
    for _ in 0..3 {
        let r = admin.get(&force);
        assert!(r.headers().get("retry-after").is_some());
        assert_json_error(r, StatusCode::SERVICE_UNAVAILABLE, "refresh_failed");
        assert_eq!(admin.connection(&id)["status"], "connected");
    }
    upstream.then(302, &[("location", "http://127.0.0.1:9/elsewhere")], "");
    upstream.then(200, &[("content-type", "text/html")], "<html>");
    for _ in 0..2 {
        let r = admin.get(&force);
        assert_json_error(r, StatusCode::SERVICE_UNAVAILABLE, "refresh_failed");
        assert_eq!(admin.connection(&id)["status"], "connected");
    }
    let seen = upstream.seen();
    assert_eq!(
        seen.len(),
        5,
        "one request per attempt, no redirect followed"
    );
    let body = String::from_utf8_lossy(&seen[0].body).to_string();
    assert!(
        body.contains("grant_type=refresh_token") && body.contains("refresh_token=rt-1"),
        "{body}"
    );
    assert!(
        body.contains("client_id=flaky-client"),
        "client_secret_post: {body}"
    );

    // A success without a refresh token keeps the old one; one with a new one replaces it.
    upstream.then(
        200,
        &[],
        r#"{"access_token":"at-2","token_type":"Bearer","expires_in":3600}"#,
    );
    assert_eq!(admin.get_json(&force)["access_token"], "at-2");
    upstream.then(
        200,
        &[],
        r#"{"access_token":"at-3","token_type":"bearer","refresh_token":"rt-2"}"#,
    );
    let t = admin.get_json(&force);
    assert_eq!(t["access_token"], "at-3");
    assert_eq!(
        t["expires_at"],
        Value::Null,
        "no expires_in: a non-expiring token"
    );
    upstream.then(
        400,
        &[],
        r#"{"error":"invalid_grant","error_description":"revoked"}"#,
    );
    let r = admin.get(&force);
    assert_json_error(r, StatusCode::CONFLICT, "connection_expired");
    let seen = upstream.seen();
    assert!(
        String::from_utf8_lossy(&seen[6].body).contains("refresh_token=rt-1"),
        "kept rt-1"
    );
    assert!(
        String::from_utf8_lossy(&seen[7].body).contains("refresh_token=rt-2"),
        "rotated to rt-2"
    );
    let conn = admin.connection(&id);
    assert_eq!(conn["status"], "expired");
    assert_eq!(conn["last_error"]["code"], "invalid_grant");
    assert!(conn["expired_at"].is_string());
    // No retry loop: an expired connection does not call the provider again.
    let r = admin.get(&force);
    assert_json_error(r, StatusCode::CONFLICT, "not_connected");
    assert_eq!(upstream.seen().len(), 8);
    assert!(!server.stderr().contains("flaky-secret-LEAKCHECK"));
}

#[test]
fn large_uploads_stream_through_and_are_not_replayed() {
    let upstream = Upstream::start();
    let server = server_with(&upstream, "");
    let admin = server.admin();
    let id = import(
        &admin,
        "echo",
        json!({"access_token": "at-big", "expires_in": 3600}),
    );
    // Far over max_body_bytes (64 KiB): the proxy streams instead of buffering.
    let big: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let r = admin
        .client
        .put(server.url(&format!("/v1/connections/{id}/proxy/upload")))
        .bearer_auth(ADMIN_KEY)
        .body(big.clone())
        .send()
        .expect("upload");
    assert_eq!(r.status(), StatusCode::OK);
    let seen = upstream.seen();
    assert_eq!(seen[0].header("content-length"), Some("5242880"));
    assert!(seen[0].body == big, "the body arrived intact");

    // A streamed body cannot be replayed: a 401 goes back to the caller, no refresh attempt.
    upstream.then(401, &[], "{}");
    let r = admin
        .client
        .post(server.url(&format!("/v1/connections/{id}/proxy/upload")))
        .bearer_auth(ADMIN_KEY)
        .body("payload")
        .send()
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.seen().len(), 2);
    assert_eq!(upstream.seen()[1].body, b"payload");
}

#[test]
fn a_failing_provider_revocation_still_deletes_local_credentials() {
    let upstream = Upstream::start();
    let revocation = format!(
        "revocation_url = \"http://127.0.0.1:{}/revoke\"\nclient_id = \"rev-client\"\nclient_secret = \"rev-secret\"",
        upstream.port
    );
    let extra = custom_plugin("revocable", &upstream, &revocation);
    let server = server_with(&upstream, &extra);
    let admin = server.admin();
    let id = import(
        &admin,
        "revocable",
        json!({"access_token": "at-r", "refresh_token": "rt-r", "expires_in": 3600}),
    );
    upstream.then(503, &[], "down");
    let r = admin.post(&format!("/v1/connections/{id}/revoke"));
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().expect("JSON");
    assert_eq!(v["status"], "revoked");
    assert_eq!(v["provider_revocation"], "failed");
    assert!(
        v["provider_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{v}"
    );
    assert!(v["revoked_at"].is_string());
    let r = admin.get(&format!("/v1/connections/{id}/token"));
    assert_json_error(r, StatusCode::CONFLICT, "not_connected");
    // The refresh token was offered first, with its hint and HTTP Basic client authentication.
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "stopped at the first failure");
    let body = String::from_utf8_lossy(&seen[0].body).to_string();
    assert!(
        body.contains("token=rt-r") && body.contains("token_type_hint=refresh_token"),
        "{body}"
    );
    assert!(seen[0]
        .header("authorization")
        .is_some_and(|a| a.starts_with("Basic ")));

    // A working endpoint: both tokens are revoked, refresh token first.
    let id = import(
        &admin,
        "revocable",
        json!({"access_token": "at-s", "refresh_token": "rt-s", "expires_in": 3600}),
    );
    let v: Value = admin
        .post(&format!("/v1/connections/{id}/revoke"))
        .json()
        .expect("JSON");
    assert_eq!(v["provider_revocation"], "revoked");
    let seen = upstream.seen();
    assert!(String::from_utf8_lossy(&seen[1].body).contains("token=rt-s"));
    assert!(String::from_utf8_lossy(&seen[2].body).contains("token=at-s"));
    assert!(String::from_utf8_lossy(&seen[2].body).contains("token_type_hint=access_token"));
}

#[test]
fn a_slow_provider_times_out_as_transient_and_expiry_without_refresh_token_expires() {
    let upstream = Upstream::start();
    let extra = custom_plugin(
        "slow",
        &upstream,
        "client_id = \"slow-client\"\nclient_secret = \"slow-secret\"",
    );
    let base = TestConfig {
        server_extra: "outbound_timeout_seconds = 1".into(),
        ..TestConfig::default()
    };
    let server = server_with_config(&upstream, &extra, base);
    let admin = server.admin();
    let id = import(
        &admin,
        "slow",
        json!({"access_token": "at-slow", "refresh_token": "rt-slow", "expires_in": 3600}),
    );
    upstream.then(
        200,
        &[("x-delay-ms", "2500")],
        r#"{"access_token":"late","token_type":"Bearer"}"#,
    );
    let r = admin.get(&format!("/v1/connections/{id}/token?force_refresh=true"));
    let v = assert_json_error(r, StatusCode::SERVICE_UNAVAILABLE, "refresh_failed");
    assert!(v["message"].is_string());
    let conn = admin.connection(&id);
    assert_eq!(
        conn["status"], "connected",
        "a timeout never expires a connection"
    );
    assert_eq!(admin.token(&id), "at-slow", "the stored token is untouched");

    // No refresh token: used until it expires, then the connection says so.
    let short = import(
        &admin,
        "slow",
        json!({"access_token": "at-short", "expires_in": 1}),
    );
    assert_eq!(admin.connection(&short)["refreshable"], false);
    std::thread::sleep(Duration::from_millis(1300));
    let r = admin.get(&format!("/v1/connections/{short}/token"));
    assert_json_error(r, StatusCode::CONFLICT, "not_connected");
    let conn = admin.connection(&short);
    assert_eq!(conn["status"], "expired");
    assert_eq!(conn["last_error"]["code"], "token_expired");
}

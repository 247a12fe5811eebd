//! Connect links: creation and its validation (`POST /v1/links`), and the hosted pages for
//! expired, used and unknown links.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[test]
fn link_response_has_token_url_expiry_and_a_pending_connection() {
    let server = Server::start();
    let admin = server.admin();
    let r = admin.post_json(
        "/v1/links",
        &json!({"tenant_id": "t-1", "plugin": "sandbox", "scopes": ["profile"]}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: serde_json::Value = r.json().expect("JSON");
    let token = v["link_token"].as_str().expect("link_token");
    assert!(b64url_decode(token).len() >= 16, "link token entropy");
    assert_eq!(v["connect_url"], server.url(&format!("/connect/{token}")));
    assert!(v["expires_at"].as_str().expect("expires_at").ends_with('Z'));
    let id = v["connection_id"].as_str().expect("connection_id");
    let conn = admin.connection(id);
    assert_eq!(conn["status"], "pending");
    assert_eq!(conn["scopes"], json!(["profile"]));

    // The requested scopes reach the provider.
    let auth = start_authorize(&server, &browser(), token);
    assert_eq!(query_param(&auth.url, "scope").as_deref(), Some("profile"));
}

#[test]
fn expired_link_shows_link_expired() {
    let server = Server::start_with(TestConfig {
        link_ttl_seconds: 1,
        ..TestConfig::default()
    });
    let link = server.admin().create_link("t-exp", "sandbox", None);
    std::thread::sleep(Duration::from_millis(2100));
    let client = browser();
    assert_error_page(
        client.get(&link.connect_url).send().expect("page"),
        StatusCode::GONE,
        "link_expired",
    );
    let r = client
        .get(server.url(&format!("/connect/{}/authorize", link.token)))
        .send()
        .expect("authorize");
    assert!(r.headers().get("set-cookie").is_none(), "no flow started");
    assert_error_page(r, StatusCode::GONE, "link_expired");
}

#[test]
fn used_link_shows_link_used() {
    let server = Server::start();
    let flow = run_flow(&server, "t-used", None, true, "u");
    assert_eq!(flow.callback_status, StatusCode::SEE_OTHER);
    assert_error_page(
        flow.browser
            .get(&flow.link.connect_url)
            .send()
            .expect("page"),
        StatusCode::GONE,
        "link_used",
    );
    let r = flow
        .browser
        .get(server.url(&format!("/connect/{}/authorize", flow.link.token)))
        .send()
        .expect("authorize");
    assert_error_page(r, StatusCode::GONE, "link_used");
}

#[test]
fn unknown_link_is_404() {
    let server = Server::start();
    let client = browser();
    for path in [
        "/connect/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/connect/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/authorize",
    ] {
        assert_error_page(
            client.get(server.url(path)).send().expect("page"),
            StatusCode::NOT_FOUND,
            "link_not_found",
        );
    }
    let long = format!("/connect/{}", "A".repeat(300));
    assert_error_page(
        client.get(server.url(&long)).send().expect("page"),
        StatusCode::NOT_FOUND,
        "link_not_found",
    );
}

#[test]
fn redirect_url_must_be_under_the_allow_list() {
    let server = Server::start();
    let admin = server.admin();
    for ok in [
        "http://localhost:3000/",
        "http://localhost:3000/cb",
        "http://localhost:3000/a/b?x=1",
    ] {
        let r = admin.post_json(
            "/v1/links",
            &json!({"tenant_id": "t", "plugin": "sandbox", "redirect_url": ok}),
        );
        assert_eq!(r.status(), StatusCode::CREATED, "{ok}");
    }
    for bad in [
        "https://evil.example/",
        "http://localhost:3000.evil.com/",
        "http://localhost.evil.com:3000/",
        "http://user@localhost:3000/",
        "http://user:pw@localhost:3000/",
        "http://localhost:3001/",
        "http://localhost/",
        "https://localhost:3000/",
        "http://127.0.0.1:3000/",
        "http://localhost:3000/#frag",
        "//localhost:3000/",
        "/relative",
        "javascript:alert(1)",
        "",
    ] {
        let r = admin.post_json(
            "/v1/links",
            &json!({"tenant_id": "t", "plugin": "sandbox", "redirect_url": bad}),
        );
        assert_json_error(r, StatusCode::BAD_REQUEST, "invalid_redirect_url");
    }
}

#[test]
fn redirect_url_is_refused_when_the_allow_list_is_empty() {
    let server = Server::start_with(TestConfig {
        allowed_redirect_urls: vec![],
        ..TestConfig::default()
    });
    let r = server.admin().post_json(
        "/v1/links",
        &json!({"tenant_id": "t", "plugin": "sandbox", "redirect_url": REDIRECT_URL}),
    );
    assert_json_error(r, StatusCode::BAD_REQUEST, "invalid_redirect_url");
}

#[test]
fn redirect_url_prefix_path_is_respected() {
    let server = Server::start_with(TestConfig {
        allowed_redirect_urls: vec!["https://app.example.com/connect".into()],
        ..TestConfig::default()
    });
    let admin = server.admin();
    for (url, ok) in [
        ("https://app.example.com/connect", true),
        ("https://app.example.com/connect/done", true),
        ("https://app.example.com/connected", false),
        ("https://app.example.com/other", false),
        ("https://app.example.com:443/connect/x", true),
        ("https://app.example.com:8443/connect/x", false),
    ] {
        let r = admin.post_json(
            "/v1/links",
            &json!({"tenant_id": "t", "plugin": "sandbox", "redirect_url": url}),
        );
        if ok {
            assert_eq!(r.status(), StatusCode::CREATED, "{url}");
        } else {
            assert_json_error(r, StatusCode::BAD_REQUEST, "invalid_redirect_url");
        }
    }
}

#[test]
fn unknown_plugin_and_missing_credentials() {
    let unset = "CA_TEST_SURELY_UNSET_ACME_SECRET";
    let server = Server::start_with(TestConfig {
        extra: format!(
            r#"[plugins.acme]
authorization_url = "https://idp.acme.test/authorize"
token_url = "https://idp.acme.test/token"
client_id = "acme-client"
client_secret_env = "{unset}"
"#
        ),
        ..TestConfig::default()
    });
    let admin = server.admin();
    assert_json_error(
        admin.post_json("/v1/links", &json!({"tenant_id": "t", "plugin": "nope"})),
        StatusCode::NOT_FOUND,
        "unknown_plugin",
    );
    assert_json_error(
        admin.post_json("/v1/links", &json!({"tenant_id": "t", "plugin": "acme"})),
        StatusCode::BAD_REQUEST,
        "missing_credentials",
    );
    let plugins = admin.get_json("/v1/plugins");
    let acme = plugins["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|p| p["id"] == "acme")
        .expect("acme listed");
    assert_eq!(acme["credentials_present"], false);
    // Nothing was stored for the refused links.
    let list = admin.get_json("/v1/connections");
    assert_eq!(list["data"].as_array().expect("data").len(), 0);
}

#[test]
fn malformed_bodies_are_refused() {
    let server = Server::start_with(TestConfig {
        max_body_bytes: 1024,
        ..TestConfig::default()
    });
    let admin = server.admin();
    let post_raw = |body: String, ctype: Option<&str>| {
        let mut req = admin
            .client
            .post(server.url("/v1/links"))
            .bearer_auth(ADMIN_KEY)
            .body(body);
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        req.send().expect("POST")
    };
    assert_json_error(
        post_raw("{\"tenant_id\": ".into(), Some("application/json")),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    assert_json_error(
        post_raw("[1,2]".into(), Some("application/json")),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    let v = assert_json_error(
        post_raw(
            json!({"tenant_id": "t", "plugin": "sandbox", "admin": true}).to_string(),
            Some("application/json"),
        ),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    assert!(
        v["message"].as_str().unwrap_or_default().contains("admin"),
        "{v}"
    );
    // tenant_id is optional only for a shared connection's link.
    let v = assert_json_error(
        post_raw(
            json!({"plugin": "sandbox"}).to_string(),
            Some("application/json"),
        ),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert!(v["message"]
        .as_str()
        .is_some_and(|m| m.contains("tenant_id")));
    let big = json!({"tenant_id": "x".repeat(2000), "plugin": "sandbox"}).to_string();
    assert_json_error(
        post_raw(big, Some("application/json")),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let ok_body = json!({"tenant_id": "t", "plugin": "sandbox"}).to_string();
    assert_json_error(
        post_raw(ok_body.clone(), Some("text/plain")),
        StatusCode::BAD_REQUEST,
        "invalid_content_type",
    );
    assert_json_error(
        post_raw(ok_body.clone(), Some("application/x-www-form-urlencoded")),
        StatusCode::BAD_REQUEST,
        "invalid_content_type",
    );
    assert_json_error(
        post_raw(ok_body.clone(), None),
        StatusCode::BAD_REQUEST,
        "invalid_content_type",
    );
    // The same body with the right type is accepted.
    assert_eq!(
        post_raw(ok_body, Some("application/json")).status(),
        StatusCode::CREATED
    );
}

#[test]
fn invalid_field_values_are_refused() {
    let server = Server::start();
    let admin = server.admin();
    for body in [
        json!({"tenant_id": "", "plugin": "sandbox"}),
        json!({"tenant_id": "a\u{0007}b", "plugin": "sandbox"}),
        json!({"tenant_id": "x".repeat(257), "plugin": "sandbox"}),
        json!({"tenant_id": "t", "plugin": "sandbox", "scopes": ["has space"]}),
        json!({"tenant_id": "t", "plugin": "sandbox", "scopes": ["quote\"d"]}),
    ] {
        assert_json_error(
            admin.post_json("/v1/links", &body),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        );
    }
    assert_json_error(
        admin.post_json(
            "/v1/links",
            &json!({"tenant_id": "t", "plugin": "sandbox", "connection_id": "conn_nope"}),
        ),
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[test]
fn a_reauthorisation_link_reuses_its_connection_but_not_across_tenants() {
    let server = Server::start();
    let admin = server.admin();
    let id = connect(&server, "t-reauth");
    let r = admin.post_json(
        "/v1/links",
        &json!({"tenant_id": "t-other", "plugin": "sandbox", "connection_id": id}),
    );
    assert_json_error(r, StatusCode::BAD_REQUEST, "invalid_request");
    let r = admin.post_json(
        "/v1/links",
        &json!({"tenant_id": "t-reauth", "plugin": "sandbox", "connection_id": id}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: serde_json::Value = r.json().expect("JSON");
    assert_eq!(v["connection_id"], id.as_str());
    let link = Link {
        token: v["link_token"].as_str().expect("token").into(),
        connect_url: v["connect_url"].as_str().expect("url").into(),
        connection_id: id.clone(),
    };
    let old = admin.token(&id);
    let flow = run_flow_for(&server, link, true, "again");
    assert_eq!(flow.callback_status, StatusCode::SEE_OTHER);
    assert_eq!(admin.connection(&id)["status"], "connected");
    assert_ne!(admin.token(&id), old, "new credentials replace the old");
    assert_eq!(
        admin.get_json("/v1/connections?tenant_id=t-reauth")["data"]
            .as_array()
            .expect("data")
            .len(),
        1
    );
}

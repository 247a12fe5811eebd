//! Manual connect mode (the team's own connect page and callback route, driving the flow with
//! `POST /v1/links/resolve` and `POST /v1/oauth/callback`) and shared connections, against the
//! built-in sandbox provider.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const OWN_CALLBACK: &str = "http://localhost:3000/my/callback";

fn server() -> Server {
    Server::start_with(TestConfig {
        extra: format!(
            "[plugins.own]\nprovider = \"sandbox\"\nclient_id = {id}\nclient_secret = {secret}\nscopes = [\"profile\", \"offline_access\"]\nredirect_uri = \"{OWN_CALLBACK}\"\n\n[plugins.team]\nprovider = \"sandbox\"\nclient_id = {id}\nclient_secret = {secret}\nscopes = [\"profile\"]\nshared = true\n",
            id = toml_str(SANDBOX_CLIENT_ID),
            secret = toml_str(SANDBOX_SECRET),
        ),
        ..TestConfig::default()
    })
}

fn link(server: &Server, body: Value) -> Value {
    let r = server.admin().post_json("/v1/links", &body);
    let status = r.status();
    let v: Value = r.json().expect("JSON");
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

fn resolve(server: &Server, link_token: &str) -> reqwest::blocking::Response {
    server
        .admin()
        .post_json("/v1/links/resolve", &json!({"link_token": link_token}))
}

fn resolved_url(server: &Server, link_token: &str) -> url::Url {
    let r = resolve(server, link_token);
    let status = r.status();
    let v: Value = r.json().expect("JSON");
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["expires_at"].is_string());
    url::Url::parse(v["authorize_url"].as_str().expect("authorize_url")).expect("URL")
}

/// The callback's query as the team's route would forward it.
fn callback_body(callback: &url::Url) -> Value {
    let mut body = json!({});
    for (k, v) in callback.query_pairs() {
        body[k.as_ref()] = json!(v);
    }
    body
}

#[test]
fn a_manual_flow_runs_through_the_admin_api_once() {
    let server = server();
    let admin = server.admin();
    let link = link(&server, json!({"tenant_id": "tenant-m", "plugin": "own"}));
    let token = link["link_token"].as_str().expect("token");
    let authorize = resolved_url(&server, token);
    assert_eq!(
        query_param(&authorize, "redirect_uri").as_deref(),
        Some(OWN_CALLBACK)
    );
    assert!(
        query_param(&authorize, "code_challenge").is_some(),
        "PKCE as usual"
    );

    let callback = sandbox_decide(&server, &authorize, true, "manual-user");
    assert!(callback.as_str().starts_with(OWN_CALLBACK), "{callback}");
    let body = callback_body(&callback);

    // The hosted route refuses a manual attempt and leaves it usable.
    let hosted = browser()
        .get(server.url(&format!(
            "/oauth/callback?{}",
            callback.query().unwrap_or_default()
        )))
        .send()
        .expect("hosted callback");
    assert_error_page(hosted, StatusCode::BAD_REQUEST, "resolve_failed");

    let r = admin.post_json("/v1/oauth/callback", &body);
    let status = r.status();
    let c: Value = r.json().expect("JSON");
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "connected");
    assert_eq!(c["tenant_id"], "tenant-m");
    assert_eq!(c["display_name"], "manual-user");
    let id = c["id"].as_str().expect("id");
    let access = admin.token(id);
    assert_eq!(server.sandbox_me(&access).status(), StatusCode::OK);

    // One use: the same callback again, and the used link, are refused.
    assert_json_error(
        admin.post_json("/v1/oauth/callback", &body),
        StatusCode::BAD_REQUEST,
        "resolve_failed",
    );
    assert_json_error(
        resolve(&server, token),
        StatusCode::BAD_REQUEST,
        "resolve_failed",
    );
    assert_eq!(server.token_requests(), 1, "the code was redeemed once");
}

#[test]
fn link_level_redirect_uri_errors_and_a_denial() {
    let server = server();
    let admin = server.admin();
    // The plain sandbox plugin has no redirect_uri: manual mode cannot work for it.
    let plain = link(&server, json!({"tenant_id": "t", "plugin": "sandbox"}));
    assert_json_error(
        resolve(&server, plain["link_token"].as_str().expect("token")),
        StatusCode::CONFLICT,
        "connect_misconfigured",
    );
    assert_json_error(
        admin.post_json(
            "/v1/links",
            &json!({"tenant_id": "t", "plugin": "sandbox", "redirect_uri": "https://evil.test/cb"}),
        ),
        StatusCode::BAD_REQUEST,
        "invalid_redirect_url",
    );
    assert_json_error(
        resolve(&server, "no-such-link"),
        StatusCode::BAD_REQUEST,
        "resolve_failed",
    );

    let own = "http://localhost:3000/per-link/cb";
    let l = link(
        &server,
        json!({"tenant_id": "t", "plugin": "sandbox", "redirect_uri": own}),
    );
    let authorize = resolved_url(&server, l["link_token"].as_str().expect("token"));
    assert_eq!(
        query_param(&authorize, "redirect_uri").as_deref(),
        Some(own)
    );
    let callback = sandbox_decide(&server, &authorize, false, "x");
    let v = assert_json_error(
        admin.post_json("/v1/oauth/callback", &callback_body(&callback)),
        StatusCode::BAD_REQUEST,
        "oauth_callback_failed",
    );
    assert!(v["message"]
        .as_str()
        .is_some_and(|m| m.contains("access_denied")));
    let c = admin.connection(l["connection_id"].as_str().expect("id"));
    assert_eq!(c["status"], "failed");
    assert_eq!(c["last_error"]["code"], "access_denied");
    assert_eq!(server.token_requests(), 0);
}

#[test]
fn hosted_attempts_cannot_be_completed_through_the_api_and_bad_bodies_are_refused() {
    let server = server();
    let admin = server.admin();
    let l = admin.create_link("t", "sandbox", None);
    let browser = browser();
    let started = start_authorize(&server, &browser, &l.token);
    let callback = sandbox_decide(&server, &started.url, true, "u");
    assert_json_error(
        admin.post_json("/v1/oauth/callback", &callback_body(&callback)),
        StatusCode::BAD_REQUEST,
        "resolve_failed",
    );
    // ...and the hosted route still completes it.
    let r = browser.get(callback.as_str()).send().expect("callback");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(admin.connection(&l.connection_id)["status"], "connected");

    for body in [
        json!({}),
        json!({"state": 5}),
        json!({"state": "s", "code": "c", "extra": 1}),
    ] {
        let r = admin.post_json("/v1/oauth/callback", &body);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = r.json().expect("JSON error");
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
    assert_json_error(
        admin.post_json(
            "/v1/oauth/callback",
            &json!({"state": "unknown", "code": "c"}),
        ),
        StatusCode::BAD_REQUEST,
        "resolve_failed",
    );
    assert_json_error(
        admin.post_json("/v1/links/resolve", &json!({"link": "x"})),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
}

#[test]
fn a_shared_connection_serves_tenants_without_their_own() {
    let server = server();
    let admin = server.admin();
    // Tenant-addressed before anything is connected: a link for the tenant itself.
    let r = admin.get("/v1/tenants/t-1/plugins/team/token");
    assert_eq!(r.status(), StatusCode::CONFLICT);

    for (body, code) in [
        (json!({"plugin": "team"}), "invalid_request"),
        (
            json!({"plugin": "team", "shared": true, "tenant_id": "t"}),
            "invalid_request",
        ),
        (
            json!({"plugin": "sandbox", "shared": true}),
            "invalid_request",
        ),
    ] {
        assert_json_error(
            admin.post_json("/v1/links", &body),
            StatusCode::BAD_REQUEST,
            code,
        );
    }

    let shared = link(&server, json!({"plugin": "team", "shared": true}));
    let flow = run_flow_for(
        &server,
        Link {
            token: shared["link_token"].as_str().expect("t").into(),
            connect_url: shared["connect_url"].as_str().expect("u").into(),
            connection_id: shared["connection_id"].as_str().expect("id").into(),
        },
        true,
        "team-bot",
    );
    assert_eq!(flow.callback_status, StatusCode::SEE_OTHER);
    let shared_id = flow.link.connection_id.clone();
    let c = admin.connection(&shared_id);
    assert_eq!(c["shared"], true);
    assert_eq!(c["tenant_id"], Value::Null);
    let listed = admin.get_json("/v1/connections?plugin=team&status=connected");
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["data"][0]["shared"], true);

    // Any tenant without its own connection uses the shared one.
    let shared_token = admin.token(&shared_id);
    let v = admin.get_json("/v1/tenants/t-1/plugins/team/token");
    assert_eq!(v["access_token"], shared_token.as_str());
    let v = admin.get_json("/v1/tenants/t-2/plugins/team/connection");
    assert_eq!(v["id"], shared_id.as_str());
    // skip_if_connected looks at the tenant's own connections only.
    let r = admin.post_json(
        "/v1/links",
        &json!({"tenant_id": "t-1", "plugin": "team", "skip_if_connected": true}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    // A tenant's own connection wins over the shared one.
    let own = run_flow_for(
        &server,
        admin.create_link("t-3", "team", None),
        true,
        "t3-user",
    );
    assert_eq!(own.callback_status, StatusCode::SEE_OTHER);
    let v = admin.get_json("/v1/tenants/t-3/plugins/team/connection");
    assert_eq!(v["id"], own.link.connection_id.as_str());
    assert_eq!(v["shared"], false);

    // Revoked, the shared connection serves no one.
    let r = admin.post(&format!("/v1/connections/{shared_id}/revoke"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        admin.get("/v1/tenants/t-1/plugins/team/token").status(),
        StatusCode::CONFLICT
    );
}

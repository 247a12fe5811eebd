//! The admin API: authentication on every route (S20), plugins, listing with filters and
//! pagination, and the security headers on pages and API responses.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const OTHER_SECRET: &str = "beta-inline-secret-LEAKCHECK-93b1";

/// Every /v1 route, with a body where one is needed.
fn routes(conn: &str) -> Vec<(Method, String)> {
    vec![
        (Method::POST, "/v1/links".into()),
        (Method::GET, "/v1/plugins".into()),
        (Method::GET, "/v1/events".into()),
        (Method::GET, "/v1/connections".into()),
        (Method::POST, "/v1/connections".into()),
        (Method::GET, format!("/v1/connections/{conn}")),
        (Method::DELETE, format!("/v1/connections/{conn}")),
        (Method::GET, format!("/v1/connections/{conn}/token")),
        (Method::POST, format!("/v1/connections/{conn}/revoke")),
        (Method::POST, format!("/v1/connections/{conn}/request")),
        (Method::GET, format!("/v1/connections/{conn}/proxy/me")),
        (
            Method::GET,
            "/v1/tenants/t/plugins/sandbox/connection".into(),
        ),
        (Method::GET, "/v1/tenants/t/plugins/sandbox/token".into()),
        (Method::GET, "/v1/tenants/t/plugins/sandbox/proxy/me".into()),
        (Method::GET, "/v1/xyz".into()),
        (Method::POST, "/v1/xyz".into()),
        (Method::GET, "/v1".into()),
        (Method::GET, "/v1/".into()),
    ]
}

fn request(server: &Server, method: &Method, path: &str) -> RequestBuilder {
    let client = plain_client();
    let req = client.request(method.clone(), server.url(path));
    if *method == Method::POST {
        req.json(&json!({"tenant_id": "t", "plugin": "sandbox"}))
    } else {
        req
    }
}

fn assert_unauthorized(r: Response, what: &str) {
    let status = r.status();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    let body: Value = r.json().unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert!(ctype.starts_with("application/json"), "{what}: {ctype}");
    assert_eq!(body["error"], "unauthorized", "{what}: {body}");
}

#[test]
fn every_v1_route_requires_the_admin_key() {
    // Many failures from one IP: lift the failed-auth limit (tests/limits.rs covers it).
    let server = Server::start_with(TestConfig {
        extra: "[limits]\nfailed_auth_per_minute = 10000\n".into(),
        ..TestConfig::default()
    });
    let id = connect(&server, "t-auth");
    let token = server.admin().token(&id);
    for (method, path) in routes(&id) {
        let what = format!("{method} {path}");
        assert_unauthorized(
            request(&server, &method, &path).send().expect("send"),
            &format!("{what} without a key"),
        );
        for bad in [
            "Bearer wrong-key-0123456789abcdef".to_string(),
            format!("Bearer {ADMIN_KEY}x"),
            format!("bearer {ADMIN_KEY}"),
            format!("Basic {ADMIN_KEY}"),
            ADMIN_KEY.to_string(),
            "Bearer ".to_string(),
        ] {
            assert_unauthorized(
                request(&server, &method, &path)
                    .header("authorization", &bad)
                    .send()
                    .expect("send"),
                &format!("{what} with {bad:?}"),
            );
        }
    }
    // None of the refused calls changed anything.
    let admin = server.admin();
    assert_eq!(admin.connection(&id)["status"], "connected");
    assert_eq!(admin.token(&id), token);
    assert_eq!(server.sandbox_me(&token).status(), StatusCode::OK);
    assert_eq!(
        admin.get_json("/v1/connections")["data"]
            .as_array()
            .expect("data")
            .len(),
        1,
        "no link was created without a key"
    );
    // With the key, unknown routes are a JSON 404.
    assert_json_error(admin.get("/v1/xyz"), StatusCode::NOT_FOUND, "not_found");
}

#[test]
fn hashed_admin_keys_are_accepted() {
    let key = "a-hashed-admin-key-0123456789";
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    let server = Server::start_with(TestConfig {
        admin_keys: vec![format!("sha256:{hash}"), ADMIN_KEY.to_string()],
        ..TestConfig::default()
    });
    let get = |auth: &str| {
        plain_client()
            .get(server.url("/v1/plugins"))
            .header("authorization", format!("Bearer {auth}"))
            .send()
            .expect("send")
    };
    assert_eq!(get(key).status(), StatusCode::OK);
    assert_eq!(get(ADMIN_KEY).status(), StatusCode::OK);
    // The configured hash itself is not a key.
    assert_unauthorized(get(&format!("sha256:{hash}")), "the hash as a key");
    assert_unauthorized(get(&hash), "the bare hash as a key");
}

#[test]
fn unknown_connection_is_not_found() {
    let server = Server::start();
    let admin = server.admin();
    for (method, path) in [
        (Method::GET, "/v1/connections/conn_nope"),
        (Method::DELETE, "/v1/connections/conn_nope"),
        (Method::GET, "/v1/connections/conn_nope/token"),
        (Method::POST, "/v1/connections/conn_nope/revoke"),
    ] {
        let r = admin
            .client
            .request(method, server.url(path))
            .bearer_auth(ADMIN_KEY)
            .send()
            .expect("send");
        assert_json_error(r, StatusCode::NOT_FOUND, "not_found");
    }
}

#[test]
fn plugins_are_listed_without_secrets() {
    let server = Server::start_with(TestConfig {
        extra: format!(
            r#"[plugins.beta]
authorization_url = "https://idp.beta.test/authorize"
token_url = "https://idp.beta.test/token"
revocation_url = "https://idp.beta.test/revoke"
client_id = "beta-client"
client_secret = "{OTHER_SECRET}"
token_auth_method = "client_secret_post"
scopes = ["read"]
"#
        ),
        ..TestConfig::default()
    });
    let r = server.admin().get("/v1/plugins");
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().expect("body");
    assert!(!text.contains(SANDBOX_SECRET), "{text}");
    assert!(!text.contains(OTHER_SECRET), "{text}");
    assert!(!text.contains("secret\":"), "no secret field: {text}");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    let beta = data.iter().find(|p| p["id"] == "beta").expect("beta");
    assert_eq!(beta["display_name"], "beta");
    assert_eq!(beta["provider"], "custom");
    assert_eq!(beta["token_auth_method"], "client_secret_post");
    assert_eq!(beta["credentials_present"], true);
    assert_eq!(beta["revocation_supported"], true);
    assert_eq!(beta["scopes"], json!(["read"]));
    let sandbox = data.iter().find(|p| p["id"] == "sandbox").expect("sandbox");
    assert_eq!(sandbox["display_name"], "Sandbox Test Provider");
    assert_eq!(sandbox["provider"], "sandbox");
    assert_eq!(sandbox["pkce"], true);
    assert_eq!(sandbox["credentials_present"], true);
}

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

/// Follows `next_cursor` with `limit`, checking every page's size, and returns all ids in order.
fn all_pages(admin: &Admin, query: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/v1/connections?limit={limit}");
        if !query.is_empty() {
            path.push('&');
            path.push_str(query);
        }
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = admin.get_json(&path);
        let page_ids = ids(&page);
        assert!(page_ids.len() <= limit, "page larger than limit");
        out.extend(page_ids.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(page_ids.len(), limit, "a non-final page is full");
                cursor = Some(c.to_string());
            }
            None => return out,
        }
    }
    panic!("pagination did not end");
}

#[test]
fn listing_filters_and_paginates() {
    let server = Server::start_with(TestConfig {
        extra: r#"[plugins.sandbox2]
provider = "sandbox"
client_id = "sandbox-client-2"
client_secret = "sandbox-secret-2-0123456789"
"#
        .into(),
        ..TestConfig::default()
    });
    let admin = server.admin();
    let mut a_ids = Vec::new();
    let mut b_ids = Vec::new();
    for i in 0..5 {
        a_ids.push(admin.create_link("tenant-a", "sandbox", None).connection_id);
        let plugin = if i % 2 == 0 { "sandbox" } else { "sandbox2" };
        b_ids.push(admin.create_link("tenant-b", plugin, None).connection_id);
    }
    let connected = connect(&server, "tenant-a");
    a_ids.push(connected.clone());
    let denied = run_flow(&server, "tenant-b", None, false, "x");
    b_ids.push(denied.link.connection_id.clone());
    let all: BTreeSet<String> = a_ids.iter().chain(&b_ids).cloned().collect();
    assert_eq!(all.len(), 12);

    // Everything, in creation order, each exactly once, across pages of several sizes.
    for limit in [1, 2, 5, 12, 50] {
        let got = all_pages(&admin, "", limit);
        assert_eq!(got.len(), 12, "limit {limit}: {got:?}");
        assert_eq!(
            got.iter().cloned().collect::<BTreeSet<_>>(),
            all,
            "limit {limit}"
        );
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted, "ordered by id");
    }
    // By tenant (the blind-index path), also paginated.
    for limit in [1, 4, 50] {
        let got = all_pages(&admin, "tenant_id=tenant-a", limit);
        assert_eq!(
            got.iter().cloned().collect::<BTreeSet<_>>(),
            a_ids.iter().cloned().collect(),
            "limit {limit}"
        );
        assert_eq!(got.len(), a_ids.len());
        let got = all_pages(&admin, "tenant_id=tenant-b", limit);
        assert_eq!(
            got.iter().cloned().collect::<BTreeSet<_>>(),
            b_ids.iter().cloned().collect()
        );
    }
    assert!(ids(&admin.get_json("/v1/connections?tenant_id=tenant-c")).is_empty());
    assert!(ids(&admin.get_json("/v1/connections?tenant_id=tenant")).is_empty());

    // By plugin and by status, alone and combined.
    let s2 = ids(&admin.get_json("/v1/connections?plugin=sandbox2"));
    assert_eq!(s2.len(), 2);
    assert!(s2.iter().all(|id| b_ids.contains(id)));
    assert_eq!(
        ids(&admin.get_json("/v1/connections?status=connected")),
        vec![connected.clone()]
    );
    assert_eq!(
        ids(&admin.get_json("/v1/connections?status=failed")),
        vec![denied.link.connection_id.clone()]
    );
    assert_eq!(
        ids(&admin.get_json("/v1/connections?status=pending")).len(),
        10
    );
    assert_eq!(
        ids(&admin.get_json("/v1/connections?tenant_id=tenant-a&status=connected&plugin=sandbox")),
        vec![connected.clone()]
    );
    assert!(ids(&admin.get_json("/v1/connections?tenant_id=tenant-b&status=connected")).is_empty());
    let got = all_pages(
        &admin,
        "tenant_id=tenant-b&plugin=sandbox&status=pending",
        1,
    );
    assert_eq!(got.len(), 3);
    let got = all_pages(&admin, "status=pending", 3);
    assert_eq!(got.len(), 10);

    // The listing never carries tokens.
    let text = admin.get("/v1/connections").text().expect("body");
    assert!(!text.contains("sbx_"), "{text}");

    // Bad queries.
    for q in [
        "status=bogus",
        "status=CONNECTED",
        "limit=0",
        "limit=201",
        "limit=abc",
        "unknown=1",
    ] {
        assert_json_error(
            admin.get(&format!("/v1/connections?{q}")),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        );
    }
}

fn assert_security_headers(r: &Response, what: &str) {
    let h = r.headers();
    let csp = header(h, "content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(header(h, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(h, "referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header(h, "cache-control"), "no-store", "{what}");
    assert_eq!(header(h, "x-content-type-options"), "nosniff", "{what}");
}

#[test]
fn pages_and_api_carry_the_security_headers() {
    let server = Server::start();
    let admin = server.admin();
    let link = admin.create_link("t-headers", "sandbox", Some(REDIRECT_URL));
    let browser = browser();

    let page = browser.get(&link.connect_url).send().expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert_security_headers(&page, "connect page");
    let authorize = browser
        .get(server.url(&format!("/connect/{}/authorize", link.token)))
        .send()
        .expect("authorize");
    assert_eq!(authorize.status(), StatusCode::FOUND);
    assert_security_headers(&authorize, "authorize redirect");
    let auth_url = url::Url::parse(&location(&authorize)).expect("URL");
    let callback = sandbox_decide(&server, &auth_url, true, "h");
    let cb = browser.get(callback.as_str()).send().expect("callback");
    assert_eq!(cb.status(), StatusCode::FOUND);
    assert_security_headers(&cb, "callback redirect");
    let gone = browser.get(&link.connect_url).send().expect("page");
    assert_eq!(gone.status(), StatusCode::GONE);
    assert_security_headers(&gone, "error page");
    let refused = browser.get(callback.as_str()).send().expect("replay");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_security_headers(&refused, "refused callback");
    let missing = browser.get(server.url("/nope")).send().expect("404");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_security_headers(&missing, "unknown route");

    let list = admin.get("/v1/connections");
    assert_eq!(list.status(), StatusCode::OK);
    assert_security_headers(&list, "GET /v1/connections");
    let token = admin.get(&format!("/v1/connections/{}/token", link.connection_id));
    assert_eq!(token.status(), StatusCode::OK);
    assert_security_headers(&token, "token response");
    assert!(header(token.headers(), "content-type").starts_with("application/json"));

    // Assets are the one cacheable exception, and are still typed and nosniff.
    let css = browser
        .get(server.url("/assets/style.css"))
        .send()
        .expect("css");
    assert_eq!(css.status(), StatusCode::OK);
    assert!(header(css.headers(), "content-type").starts_with("text/css"));
    assert_eq!(header(css.headers(), "x-content-type-options"), "nosniff");
}

/// The 401 comes from the `/v1` middleware rather than a handler; it must carry the same
/// headers (notably `Cache-Control: no-store`) as every other response.
#[test]
fn unauthorized_responses_carry_the_security_headers() {
    let server = Server::start();
    let unauth = plain_client()
        .get(server.url("/v1/connections"))
        .send()
        .expect("401");
    assert_eq!(unauth.status(), StatusCode::UNAUTHORIZED);
    assert_security_headers(&unauth, "401");
}

#[test]
fn healthz_reports_ok() {
    let server = Server::start();
    let r = plain_client()
        .get(server.url("/healthz"))
        .send()
        .expect("healthz");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().expect("JSON");
    assert_eq!(v["status"], "ok");
}

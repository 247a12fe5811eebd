//! The built-in provider catalog: plugins configured by provider name, template values given
//! per link, and token-response quirks, against a loopback fake that answers in each
//! provider's real wire format. Catalog URLs are overridden to point at the fake, which is
//! itself the override mechanism under test.

mod common;

use common::upstream::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const SECRET: &str = "catalog-secret-LEAKCHECK-91d2";

/// A server with one catalog plugin `p` (provider `provider`) whose endpoints are the fake;
/// `urls` lists `key = "path"` overrides, relative to the fake's root.
fn server(provider: &str, upstream: &Upstream, urls: &[(&str, &str)], more: &str) -> Server {
    let mut table = format!(
        "[plugins.p]\nprovider = \"{provider}\"\nclient_id = \"client-1\"\nclient_secret = \"{SECRET}\"\n"
    );
    for (key, path) in urls {
        table.push_str(&format!(
            "{key} = \"http://127.0.0.1:{}{path}\"\n",
            upstream.port
        ));
    }
    table.push_str(more);
    Server::start_with(TestConfig {
        extra: table,
        ..TestConfig::default()
    })
}

const OAUTH_URLS: &[(&str, &str)] = &[
    ("authorization_url", "/authorize"),
    ("token_url", "/token"),
    ("userinfo_url", "/userinfo"),
    ("api_base_url", "/api"),
];

/// Link → authorize → callback with a code; returns the connection id, the provider's
/// authorization URL and the callback's status.
fn connect_with(server: &Server, params: Value) -> (String, url::Url, StatusCode) {
    let r = server.admin().post_json(
        "/v1/links",
        &json!({"tenant_id": "tenant-1", "plugin": "p", "params": params}),
    );
    let status = r.status();
    let v: Value = r.json().expect("JSON");
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let browser = browser();
    let token = v["link_token"].as_str().expect("link_token");
    let authorize = start_authorize(server, &browser, token);
    let callback = browser
        .get(server.url(&format!(
            "/oauth/callback?code=the-code&state={}",
            authorize.state
        )))
        .send()
        .expect("callback");
    let id = v["connection_id"].as_str().expect("id").to_string();
    (id, authorize.url, callback.status())
}

fn form(seen: &Seen) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&seen.body)
        .into_owned()
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn github_form_encoded_non_expiring_token_and_login_as_display_name() {
    let upstream = Upstream::start();
    upstream.then(
        200,
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        "access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cgist&token_type=bearer",
    );
    upstream.then(200, &[], r#"{"login":"octocat","id":1,"type":"User"}"#);
    let server = server("github", &upstream, OAUTH_URLS, "");
    let (id, authorize_url, status) = connect_with(&server, json!({}));
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        query_param(&authorize_url, "scope").as_deref(),
        Some("read:user")
    );
    assert_eq!(
        query_param(&authorize_url, "client_id").as_deref(),
        Some("client-1")
    );

    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "token request then userinfo");
    assert!(seen[0].request_line.starts_with("POST /token "));
    let body = form(&seen[0]);
    // GitHub's catalog entry authenticates in the body.
    assert_eq!(field(&body, "client_secret"), Some(SECRET));
    assert_eq!(field(&body, "code"), Some("the-code"));
    assert!(seen[0].header("authorization").is_none());
    assert!(seen[1].request_line.starts_with("GET /userinfo "));
    assert_eq!(
        seen[1].header("authorization"),
        Some("Bearer gho_16C7e42F292c6912E7710c838347Ae178B4a")
    );

    let admin = server.admin();
    let c = admin.connection(&id);
    assert_eq!(c["status"], "connected", "{c}");
    assert_eq!(c["display_name"], "octocat");
    assert_eq!(c["scopes"], json!(["repo", "gist"]));
    assert_eq!(
        c["expires_at"],
        Value::Null,
        "GitHub OAuth tokens do not expire"
    );
    assert_eq!(c["refreshable"], false);
    assert_eq!(admin.token(&id), "gho_16C7e42F292c6912E7710c838347Ae178B4a");
    assert_eq!(
        upstream.seen().len(),
        2,
        "a non-expiring token is never refreshed"
    );
}

#[test]
fn an_error_sent_with_http_200_fails_the_callback_and_stores_nothing() {
    let upstream = Upstream::start();
    upstream.then(
        200,
        &[],
        r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired.","error_uri":"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"}"#,
    );
    let server = server("github", &upstream, OAUTH_URLS, "");
    let (id, _, status) = connect_with(&server, json!({}));
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let c = server.admin().connection(&id);
    assert_eq!(c["status"], "failed", "{c}");
    assert_eq!(c["last_error"]["code"], "oauth_callback_failed");
    assert!(
        c["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("bad_verification_code")),
        "{c}"
    );
    assert_eq!(upstream.seen().len(), 1, "no userinfo call without a token");
    assert_json_error(
        server.admin().get(&format!("/v1/connections/{id}/token")),
        StatusCode::CONFLICT,
        "not_connected",
    );
}

#[test]
fn slack_user_tokens_nested_in_authed_user_connect_and_rotate() {
    let upstream = Upstream::start();
    upstream.then(
        200,
        &[],
        r#"{"ok":true,"app_id":"A0KRD7HC3","authed_user":{"id":"U1234","scope":"users:read,chat:write","access_token":"xoxp-1111","token_type":"user","refresh_token":"xoxe-1-first","expires_in":43200},"team":{"id":"T9TK3CUKW","name":"Slack Softball Team"},"enterprise":null,"is_enterprise_install":false}"#,
    );
    upstream.then(
        200,
        &[],
        r#"{"ok":true,"access_token":"xoxe.xoxp-2222","expires_in":43200,"refresh_token":"xoxe-1-second","token_type":"user","scope":"users:read,chat:write"}"#,
    );
    let server = server(
        "slack",
        &upstream,
        &[("authorization_url", "/authorize"), ("token_url", "/token")],
        "",
    );
    let (id, authorize_url, status) = connect_with(&server, json!({}));
    assert_eq!(status, StatusCode::SEE_OTHER);
    // Slack asks for user scopes in `user_scope`, comma-separated, and takes no PKCE.
    assert_eq!(
        query_param(&authorize_url, "user_scope").as_deref(),
        Some("users:read")
    );
    assert_eq!(query_param(&authorize_url, "scope"), None);
    assert_eq!(query_param(&authorize_url, "code_challenge"), None);

    let admin = server.admin();
    let c = admin.connection(&id);
    assert_eq!(c["status"], "connected", "{c}");
    assert_eq!(c["display_name"], "Slack Softball Team");
    assert_eq!(c["refreshable"], true);
    assert_eq!(c["scopes"], json!(["users:read", "chat:write"]));
    assert_eq!(admin.token(&id), "xoxp-1111");

    let v = admin.get_json(&format!("/v1/connections/{id}/token?force_refresh=true"));
    assert_eq!(v["access_token"], "xoxe.xoxp-2222");
    let refresh = form(&upstream.seen()[1]);
    assert_eq!(field(&refresh, "grant_type"), Some("refresh_token"));
    assert_eq!(field(&refresh, "refresh_token"), Some("xoxe-1-first"));
    // The rotated refresh token was kept: the next refresh sends it.
    upstream.then(
        200,
        &[],
        r#"{"ok":true,"access_token":"xoxe.xoxp-3333","expires_in":43200,"refresh_token":"xoxe-1-third","token_type":"user"}"#,
    );
    admin.get_json(&format!("/v1/connections/{id}/token?force_refresh=true"));
    let refresh = form(&upstream.seen()[2]);
    assert_eq!(field(&refresh, "refresh_token"), Some("xoxe-1-second"));
}

#[test]
fn slack_ok_false_is_an_error() {
    let upstream = Upstream::start();
    upstream.then(200, &[], r#"{"ok":false,"error":"invalid_code"}"#);
    let server = server(
        "slack",
        &upstream,
        &[("authorization_url", "/authorize"), ("token_url", "/token")],
        "",
    );
    let (id, _, status) = connect_with(&server, json!({}));
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let c = server.admin().connection(&id);
    assert_eq!(c["status"], "failed");
    assert!(c["last_error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("invalid_code")));
}

#[test]
fn salesforce_instance_url_becomes_the_proxy_base_and_survives_refresh() {
    let upstream = Upstream::start();
    let instance = format!("http://127.0.0.1:{}/instance", upstream.port);
    upstream.then(
        200,
        &[],
        &json!({
            "access_token": "00Dxx0000001gPL!AR8AQJXg5oj8jXSgxJfA0lBog",
            "signature": "d/SxeYBxH0GSVko0HMgcUxuZy0PA2cDDz1u7g7JtDHw=",
            "scope": "refresh_token openid api",
            "instance_url": instance,
            "id": "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P",
            "token_type": "Bearer",
            "issued_at": "1278448101416",
            "refresh_token": "5Aep8614iLM.Dq661ePDmPEgaAW9Oh_L3JKkDpB4xReb54_pZebnUG0h6Sb4KUVDpNtWEofWM39yg=="
        })
        .to_string(),
    );
    upstream.then(
        200,
        &[],
        r#"{"preferred_username":"admin@acme.example","name":"Ada Admin"}"#,
    );
    let server = server(
        "salesforce",
        &upstream,
        &[
            ("authorization_url", "/authorize"),
            ("token_url", "/token"),
            ("userinfo_url", "/userinfo"),
        ],
        "",
    );
    let (id, _, status) = connect_with(&server, json!({}));
    assert_eq!(status, StatusCode::SEE_OTHER);
    let admin = server.admin();
    let c = admin.connection(&id);
    assert_eq!(c["display_name"], "admin@acme.example", "{c}");
    assert_eq!(
        c["expires_at"],
        Value::Null,
        "Salesforce sends no expires_in"
    );

    let r = admin.get(&format!(
        "/v1/connections/{id}/proxy/services/data/v60.0/limits"
    ));
    assert_eq!(r.status(), StatusCode::OK);
    let seen = upstream.seen();
    let last = seen.last().expect("proxied request");
    assert!(
        last.request_line
            .starts_with("GET /instance/services/data/v60.0/limits "),
        "{}",
        last.request_line
    );
    assert_eq!(
        last.header("authorization"),
        Some("Bearer 00Dxx0000001gPL!AR8AQJXg5oj8jXSgxJfA0lBog")
    );

    // Salesforce's refresh response repeats instance_url but no refresh token: both are kept.
    upstream.then(
        200,
        &[],
        &json!({"access_token": "00Dxx-second", "instance_url": instance, "token_type": "Bearer", "issued_at": "1278448384422", "scope": "refresh_token openid api"}).to_string(),
    );
    admin.get_json(&format!("/v1/connections/{id}/token?force_refresh=true"));
    upstream.then(
        200,
        &[],
        r#"{"access_token":"00Dxx-third","token_type":"Bearer"}"#,
    );
    admin.get_json(&format!("/v1/connections/{id}/token?force_refresh=true"));
    let seen = upstream.seen();
    let third = form(&seen[seen.len() - 1]);
    assert_eq!(
        field(&third, "refresh_token"),
        Some("5Aep8614iLM.Dq661ePDmPEgaAW9Oh_L3JKkDpB4xReb54_pZebnUG0h6Sb4KUVDpNtWEofWM39yg==")
    );
    admin.get(&format!("/v1/connections/{id}/proxy/x"));
    let seen = upstream.seen();
    assert!(seen
        .last()
        .expect("req")
        .request_line
        .starts_with("GET /instance/x "));
}

#[test]
fn stripe_connect_names_the_account_by_stripe_user_id() {
    let upstream = Upstream::start();
    upstream.then(
        200,
        &[],
        r#"{"access_token":"sk_test_LEAK_stripe","livemode":false,"refresh_token":"rt_H4vEobvMnwmM","token_type":"bearer","stripe_publishable_key":"pk_test_abc","stripe_user_id":"acct_1032D82eZvKYlo2C","scope":"read_only"}"#,
    );
    let server = server("stripe", &upstream, OAUTH_URLS, "");
    let (id, authorize_url, status) = connect_with(&server, json!({}));
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        query_param(&authorize_url, "scope").as_deref(),
        Some("read_only")
    );
    let c = server.admin().connection(&id);
    assert_eq!(c["display_name"], "acct_1032D82eZvKYlo2C");
    assert_eq!(
        upstream.seen().len(),
        1,
        "the token response named the account"
    );
}

#[test]
fn shopify_shop_is_required_validated_stored_and_used_in_every_url() {
    let upstream = Upstream::start();
    let urls = [
        ("authorization_url", "/{shop}/admin/oauth/authorize"),
        ("token_url", "/{shop}/admin/oauth/access_token"),
        ("userinfo_url", "/{shop}/admin/api/shop.json"),
        ("api_base_url", "/{shop}/admin/api"),
    ];
    let server = server("shopify", &upstream, &urls, "");
    let admin = server.admin();
    for (params, why) in [
        (json!({}), "params.shop is required"),
        (json!({"shop": "evil.test/x"}), "params.shop must be"),
        (json!({"shop": "-bad"}), "params.shop must be"),
        (
            json!({"shop": "acme", "region": "eu"}),
            "params.region is not",
        ),
    ] {
        let v = assert_json_error(
            admin.post_json(
                "/v1/links",
                &json!({"tenant_id": "t", "plugin": "p", "params": params}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_params",
        );
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains(why)),
            "{v}"
        );
    }
    let before = admin.get_json("/v1/connections");
    assert_eq!(before["data"], json!([]), "refused links create nothing");

    upstream.then(
        200,
        &[],
        r#"{"access_token":"shpat_LEAK_token","scope":"read_products"}"#,
    );
    upstream.then(
        200,
        &[],
        r#"{"shop":{"id":548380009,"name":"Acme Store","myshopify_domain":"acme-store.myshopify.com"}}"#,
    );
    let (id, authorize_url, status) = connect_with(&server, json!({"shop": "acme-store"}));
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(authorize_url.path(), "/acme-store/admin/oauth/authorize");
    let seen = upstream.seen();
    assert!(seen[0]
        .request_line
        .starts_with("POST /acme-store/admin/oauth/access_token "));
    // Shopify takes the token in its own header, with no scheme.
    assert_eq!(
        seen[1].header("x-shopify-access-token"),
        Some("shpat_LEAK_token")
    );
    assert!(seen[1].header("authorization").is_none());

    let c = admin.connection(&id);
    assert_eq!(c["params"], json!({"shop": "acme-store"}));
    assert_eq!(c["display_name"], "acme-store.myshopify.com");
    admin.get(&format!("/v1/connections/{id}/proxy/products.json"));
    let last = upstream.seen().last().cloned().expect("proxied");
    assert!(last
        .request_line
        .starts_with("GET /acme-store/admin/api/products.json "));
    assert_eq!(
        last.header("x-shopify-access-token"),
        Some("shpat_LEAK_token")
    );
}

#[test]
fn providers_are_listed_and_plugins_say_what_they_need() {
    let upstream = Upstream::start();
    let server = server("shopify", &upstream, &[], "");
    let admin = server.admin();
    let providers = admin.get_json("/v1/providers");
    let data = providers["data"].as_array().expect("data");
    assert!(data.len() >= 50, "{} providers", data.len());
    let github = data.iter().find(|p| p["id"] == "github").expect("github");
    assert_eq!(
        github["token_url"],
        "https://github.com/login/oauth/access_token"
    );
    assert_eq!(github["token_auth_method"], "client_secret_post");
    assert!(github["docs_url"]
        .as_str()
        .is_some_and(|u| u.starts_with("https://")));
    let shopify = data.iter().find(|p| p["id"] == "shopify").expect("shopify");
    assert_eq!(shopify["params"]["shop"]["example"], "acme-store");
    let google = data
        .iter()
        .find(|p| p["id"] == "google-drive")
        .expect("drive");
    assert_eq!(google["authorize_params"]["access_type"], "offline");

    let plugins = admin.get_json("/v1/plugins");
    let p = plugins["data"]
        .as_array()
        .and_then(|d| d.iter().find(|p| p["id"] == "p"))
        .cloned()
        .expect("plugin p");
    assert_eq!(p["provider"], "shopify");
    assert_eq!(p["display_name"], "Shopify");
    assert_eq!(p["link_params"], json!(["shop"]));
    assert_eq!(p["problems"], json!([]));
    assert_eq!(p["scopes"], json!(["read_products"]));
    assert!(!plugins.to_string().contains(SECRET));

    let anonymous = plain_client()
        .get(server.url("/v1/providers"))
        .send()
        .expect("GET");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn plugin_wide_params_fill_templates_and_links_cannot_override_them() {
    let upstream = Upstream::start();
    let server = server(
        "okta",
        &upstream,
        &[],
        "params = { domain = \"acme.okta.com\" }\n",
    );
    let admin = server.admin();
    let r = admin.post_json("/v1/links", &json!({"tenant_id": "t", "plugin": "p"}));
    assert_eq!(r.status(), StatusCode::CREATED);
    let link: Value = r.json().expect("JSON");
    let authorize = start_authorize(
        &server,
        &browser(),
        link["link_token"].as_str().expect("token"),
    );
    assert_eq!(
        authorize.url.as_str().split('?').next(),
        Some("https://acme.okta.com/oauth2/v1/authorize")
    );
    assert_eq!(
        query_param(&authorize.url, "scope").as_deref(),
        Some("openid profile email offline_access")
    );
    assert_json_error(
        admin.post_json(
            "/v1/links",
            &json!({"tenant_id": "t", "plugin": "p", "params": {"domain": "evil.example"}}),
        ),
        StatusCode::BAD_REQUEST,
        "invalid_params",
    );
}

#[test]
fn catalog_config_errors_name_the_key_and_check_flags_what_is_missing() {
    let dir = tempfile::TempDir::new().expect("dir");
    let base = TestConfig::default().to_toml();
    for (table, key) in [
        ("provider = \"githubb\"\nclient_id = \"c\"\nclient_secret = \"s\"\n", "plugins.p.provider"),
        (
            "provider = \"okta\"\nclient_id = \"c\"\nclient_secret = \"s\"\nparams = { domain = \"a/b\" }\n",
            "plugins.p.params",
        ),
        (
            "provider = \"github\"\nclient_id = \"c\"\nclient_secret = \"s\"\nparams = { nope = \"x\" }\n",
            "plugins.p.params",
        ),
        (
            "provider = \"github\"\nclient_id = \"c\"\nclient_secret = \"s\"\ntoken_url = \"http://idp.example/token\"\n",
            "plugins.p.token_url",
        ),
    ] {
        let text = format!("{base}\n[plugins.p]\n{table}");
        let exit = serve_expect_exit(dir.path(), &text);
        assert!(exit.stderr.contains(key), "{key}: {}", exit.stderr);
    }

    let text = format!(
        "{base}\n[plugins.shop]\nprovider = \"shopify\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\n[plugins.ms]\nprovider = \"microsoft\"\nclient_id = \"c\"\nclient_secret = \"s\"\nscopes = []\nparams = {{ tenant = \"common\" }}\n"
    );
    let path = write_config(dir.path(), &text);
    let exit = run_to_exit(
        dir.path(),
        &["check", "--config", path.to_str().expect("utf-8")],
        &[],
    );
    assert!(
        !exit.status.success(),
        "a provider that needs scopes fails check"
    );
    assert!(
        exit.stdout.contains("plugin shop: Shopify (shopify)")
            && exit.stdout.contains("each link must give params: shop"),
        "{}",
        exit.stdout
    );
    assert!(
        exit.stdout.contains("plugin ms: Microsoft (microsoft)")
            && exit.stdout.contains("needs scopes"),
        "{}",
        exit.stdout
    );
}

#[test]
fn the_sandbox_names_its_accounts_too() {
    let server = Server::start();
    let flow = run_flow(&server, "tenant-ada", None, true, "ada-lovelace");
    assert_eq!(flow.callback_status, StatusCode::SEE_OTHER);
    let c = server.admin().connection(&flow.link.connection_id);
    assert_eq!(c["display_name"], "ada-lovelace", "{c}");
}

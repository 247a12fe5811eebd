//! The admin dashboard over HTTP against the real binary: sign-in (wrong keys refused, then
//! locked out), the session cookie, CSRF and origin checks on every form (a refused form changes
//! nothing), revoke and delete, test links, filters and paging, no secret on any page, sign-out.

mod common;
mod dash;

use common::*;
use dash::*;
use reqwest::StatusCode;
use serde_json::Value;

#[test]
fn unauthenticated_requests_go_to_sign_in_and_change_nothing() {
    let server = Server::start();
    let id = connect(&server, "tenant-a");
    let client = plain_client();
    for path in [
        "/admin",
        "/admin/",
        "/admin/connections",
        &format!("/admin/connections/{id}"),
        &format!("/admin/connections/{id}/delete"),
        "/admin/events",
        "/admin/no-such-page",
    ] {
        assert_redirected_to_sign_in(client.get(server.url(path)).send().expect("GET"));
        assert_redirected_to_sign_in(
            client
                .get(server.url(path))
                .header("cookie", "ca_admin=forged-session-id")
                .send()
                .expect("GET"),
        );
    }
    let before = connection_count(&server);
    for path in [
        format!("/admin/connections/{id}/revoke"),
        format!("/admin/connections/{id}/delete"),
        "/admin/links".to_string(),
    ] {
        let r = client
            .post(server.url(&path))
            .header("origin", &server.base)
            .form(&[("csrf", "x"), ("tenant_id", "t"), ("plugin", "sandbox")])
            .send()
            .expect("POST");
        assert_redirected_to_sign_in(r);
    }
    assert_eq!(status_of(&server, &id), "connected");
    assert_eq!(connection_count(&server), before);
}

#[test]
fn wrong_keys_are_refused_then_the_address_is_locked_out() {
    let server = Server::start_with(TestConfig {
        extra: "[limits]\nfailed_auth_per_minute = 3\n".into(),
        ..TestConfig::default()
    });
    for i in 0..3 {
        let r = try_sign_in(&server, &format!("wrong-key-{i}-0123456789"));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            set_cookie(&r, "ca_admin").is_none(),
            "no session on failure"
        );
        let html = r.text().expect("body");
        assert!(html.contains("That admin key is not valid."), "{html}");
        assert!(hidden(&html, "csrf").is_some(), "the form is shown again");
    }
    let r = try_sign_in(&server, "wrong-key-again-0123456789");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(r.headers(), "retry-after"), "60");
    assert_eq!(
        error_code(&r.text().expect("body")).as_deref(),
        Some("rate_limited")
    );
    // Locked out: even the right key is not looked at.
    let r = try_sign_in(&server, ADMIN_KEY);
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(set_cookie(&r, "ca_admin").is_none());
    // The admin API with a valid key is unaffected.
    assert_eq!(server.admin().get("/v1/plugins").status(), StatusCode::OK);
}

#[test]
fn the_session_cookie_is_opaque_http_only_and_strict() {
    let server = Server::start();
    let r = try_sign_in(&server, ADMIN_KEY);
    let cookie = set_cookie(&r, "ca_admin").expect("session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback: {cookie}"
    );
    let value = pair(&cookie)["ca_admin=".len()..].to_string();
    assert!(value.len() >= 43, "256 random bits: {cookie}");
    assert!(!cookie.contains(ADMIN_KEY) && !cookie.contains("LEAKCHECK"));
    let again = set_cookie(&try_sign_in(&server, ADMIN_KEY), "ca_admin").expect("cookie");
    assert_ne!(pair(&again), pair(&cookie), "every sign-in gets a fresh id");

    // Behind https: the __Host- prefix and Secure.
    let server = Server::start_with(TestConfig {
        server_extra: "public_url = \"https://dash.example.test\"".into(),
        ..TestConfig::default()
    });
    let (form_cookie, token) = sign_in_form(&server, "__Host-ca_admin_signin");
    let r = plain_client()
        .post(server.url("/admin/sign-in"))
        .header("cookie", form_cookie)
        .header("origin", "https://dash.example.test")
        .form(&[("csrf", token.as_str()), ("admin_key", ADMIN_KEY)])
        .send()
        .expect("POST sign-in");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(&r, "__Host-ca_admin").expect("__Host- session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    let r = plain_client()
        .get(server.url("/admin"))
        .header("cookie", pair(&cookie))
        .send()
        .expect("GET");
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn forms_without_the_token_or_from_elsewhere_are_refused_and_change_nothing() {
    let server = Server::start();
    let id = connect(&server, "tenant-a");
    let dash = sign_in(&server);
    let other = sign_in(&server);
    let revoke = format!("/admin/connections/{id}/revoke");
    let good = dash.csrf.as_str();
    // (form fields, request headers)
    let cases: Vec<(Fields, Fields)> = vec![
        (vec![], vec![("origin", &server.base)]),
        (vec![("csrf", "")], vec![("origin", &server.base)]),
        (
            vec![("csrf", "wrong-token")],
            vec![("origin", &server.base)],
        ),
        (vec![("csrf", &other.csrf)], vec![("origin", &server.base)]),
        (
            vec![("csrf", good)],
            vec![("origin", "http://evil.example")],
        ),
        (vec![("csrf", good)], vec![("origin", "null")]),
        (
            vec![("csrf", good)],
            vec![("referer", "http://evil.example/page")],
        ),
        (
            vec![("csrf", good)],
            vec![("origin", &server.base), ("sec-fetch-site", "cross-site")],
        ),
    ];
    for (fields, headers) in &cases {
        let r = dash.post_with(&revoke, fields, headers);
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{fields:?} {headers:?}");
        assert_eq!(
            error_code(&r.text().expect("body")).as_deref(),
            Some("csrf_failed")
        );
        assert_eq!(
            status_of(&server, &id),
            "connected",
            "{fields:?} {headers:?}"
        );
    }
    let before = connection_count(&server);
    for path in [
        format!("/admin/connections/{id}/delete"),
        "/admin/links".into(),
    ] {
        let r = dash.post(
            &path,
            &[
                ("csrf", &other.csrf),
                ("tenant_id", "t-new"),
                ("plugin", "sandbox"),
            ],
        );
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(connection_count(&server), before);
    assert_eq!(status_of(&server, &id), "connected");
    // A refused sign-out leaves the session alive.
    let r = dash.post("/admin/sign-out", &[("csrf", "wrong")]);
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    dash.page("/admin");

    // The sign-in form too: no cookie, a wrong token, another origin.
    let (cookie, token) = sign_in_form(&server, "ca_admin_signin");
    let attempts: Vec<(Option<&str>, &str, &str)> = vec![
        (None, token.as_str(), server.base.as_str()),
        (Some(cookie.as_str()), "wrong", server.base.as_str()),
        (Some(cookie.as_str()), token.as_str(), "http://evil.example"),
    ];
    for (cookie, token, origin) in attempts {
        let mut req = plain_client()
            .post(server.url("/admin/sign-in"))
            .header("origin", origin)
            .form(&[("csrf", token), ("admin_key", ADMIN_KEY)]);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().expect("POST sign-in");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(set_cookie(&r, "ca_admin").is_none());
    }
}

#[test]
fn revoke_and_delete_through_the_forms() {
    let server = Server::start();
    let id = connect(&server, "tenant-a");
    let dash = sign_in(&server);
    let detail = format!("/admin/connections/{id}");
    let html = dash.page(&detail);
    assert!(html.contains("id=\"revoke\""), "{html}");

    let r = dash.post(&format!("{detail}/revoke"), &[("csrf", &dash.csrf)]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&r),
        format!("{detail}?done=revoked&provider=revoked")
    );
    assert_eq!(status_of(&server, &id), "revoked");
    assert_ne!(
        server
            .admin()
            .get(&format!("/v1/connections/{id}/token"))
            .status(),
        StatusCode::OK
    );
    let html = dash.page(&location(&r));
    assert!(html.contains("Connection revoked"), "{html}");
    assert!(html.contains("id=\"connection-status\">revoked<"), "{html}");
    assert!(
        !html.contains("id=\"revoke\""),
        "no revoke button once revoked"
    );
    assert!(
        html.contains("connection.revoked"),
        "history shows it: {html}"
    );

    let html = dash.page(&format!("{detail}/delete"));
    assert!(html.contains("id=\"confirm-delete\""), "{html}");
    assert_eq!(
        status_of(&server, &id),
        "revoked",
        "the confirm page changes nothing"
    );
    let r = dash.post(&format!("{detail}/delete"), &[("csrf", &dash.csrf)]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/admin/connections?done=deleted");
    assert_eq!(
        server
            .admin()
            .get(&format!("/v1/connections/{id}"))
            .status(),
        StatusCode::NOT_FOUND
    );
    assert!(dash.page(&location(&r)).contains("Connection deleted."));
    let r = dash.get(&detail);
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        error_code(&r.text().expect("body")).as_deref(),
        Some("not_found")
    );

    // Both actions are in the audit log, under the key that signed in (written within ~1 s).
    let started = std::time::Instant::now();
    let actions = loop {
        let v = server.admin().get_json("/v1/audit?limit=500");
        let mine: Vec<Value> = v["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| {
                r["actor"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("dashboard:key:"))
            })
            .collect();
        if mine.len() >= 2 || started.elapsed() > std::time::Duration::from_secs(10) {
            break mine;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let names: Vec<&str> = actions
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "POST /admin/connections/{id}/revoke",
            "POST /admin/connections/{id}/delete"
        ]
    );
    assert!(actions.iter().all(|r| r["connection_id"] == id.as_str()));
}

#[test]
fn test_links_from_the_dashboard_and_bad_input() {
    let server = Server::start();
    let dash = sign_in(&server);
    let r = dash.post(
        "/admin/links",
        &[
            ("csrf", &dash.csrf),
            ("tenant_id", "tenant-z"),
            ("plugin", "sandbox"),
        ],
    );
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().expect("body");
    let url = href(&html, "connect-url").expect("connect URL on the page");
    assert!(url.starts_with(&server.url("/connect/")), "{url}");
    let page = plain_client().get(&url).send().expect("GET connect URL");
    assert_eq!(page.status(), StatusCode::OK);
    let list = server
        .admin()
        .get_json("/v1/connections?tenant_id=tenant-z");
    assert_eq!(list["data"][0]["status"], "pending");

    let before = connection_count(&server);
    for (tenant, plugin, params, status, code) in [
        (
            "tenant-z",
            "no-such-plugin",
            "",
            StatusCode::NOT_FOUND,
            "unknown_plugin",
        ),
        (
            "",
            "sandbox",
            "",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "tenant-z",
            "sandbox",
            "not-a-pair",
            StatusCode::BAD_REQUEST,
            "invalid_params",
        ),
    ] {
        let r = dash.post(
            "/admin/links",
            &[
                ("csrf", &dash.csrf),
                ("tenant_id", tenant),
                ("plugin", plugin),
                ("params", params),
            ],
        );
        assert_eq!(r.status(), status, "{plugin} {params}");
        let html = r.text().expect("body");
        assert_eq!(error_code(&html).as_deref(), Some(code), "{html}");
    }
    assert_eq!(
        connection_count(&server),
        before,
        "bad input creates nothing"
    );
}

#[test]
fn connections_filter_and_page() {
    let server = Server::start_with(TestConfig {
        extra: r#"[plugins.acme]
authorization_url = "https://idp.acme.test/authorize"
token_url = "https://idp.acme.test/token"
client_id = "acme-client"
client_secret = "acme-secret-LEAKCHECK"
"#
        .into(),
        ..TestConfig::default()
    });
    let admin = server.admin();
    for (tenant, plugin, n) in [
        ("tenant-a", "sandbox", 3),
        ("tenant-b", "sandbox", 2),
        ("tenant-a", "acme", 2),
    ] {
        for _ in 0..n {
            admin.create_link(tenant, plugin, None);
        }
    }
    let connected = connect(&server, "tenant-c");
    let dash = sign_in(&server);
    let count = |q: &str| rows(&dash.page(&format!("/admin/connections{q}"))).len();
    assert_eq!(count(""), 8);
    assert_eq!(count("?tenant=tenant-a"), 5);
    assert_eq!(count("?plugin=acme"), 2);
    assert_eq!(count("?tenant=tenant-a&plugin=sandbox&status=pending"), 3);
    assert_eq!(
        rows(&dash.page("/admin/connections?status=connected")),
        vec![connected.clone()]
    );
    assert_eq!(count("?tenant=nobody"), 0);

    // Pages of 3, following the links, see every connection once and in order.
    let mut seen = Vec::new();
    let mut path = "/admin/connections?limit=3".to_string();
    let mut pages = 0;
    loop {
        let html = dash.page(&path);
        let page = rows(&html);
        assert!(page.len() <= 3);
        seen.extend(page);
        pages += 1;
        if pages > 1 {
            assert!(href(&html, "first-page").is_some(), "{html}");
        }
        match href(&html, "next-page") {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let all = rows(&dash.page("/admin/connections"));
    assert_eq!(seen, all);

    for bad in ["?status=bogus", "?limit=0", "?limit=x"] {
        let r = dash.get(&format!("/admin/connections{bad}"));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            error_code(&r.text().expect("body")).as_deref(),
            Some("invalid_query")
        );
    }
}

#[test]
fn overview_detail_and_events_show_state_and_history() {
    let server = Server::start();
    let id = connect(&server, "tenant-a");
    let dash = sign_in(&server);
    let overview = dash.page("/admin");
    assert!(overview.contains("id=\"plugin-sandbox\""), "{overview}");
    assert!(overview.contains("Sandbox Test Provider"));
    assert!(overview.contains("<span class=\"badge ok\">present</span>"));
    assert!(overview.contains(&id), "recent events name the connection");
    assert!(
        overview.contains("Data key <strong>1</strong>"),
        "{overview}"
    );
    // After a rotation the overview names the new key and the outcome.
    let r = server.admin().post("/v1/vault/data-key/rotate");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.admin().get_json("/v1/vault/data-key")["state"] == "running" {
        assert!(std::time::Instant::now() < deadline, "rotation did not end");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let overview = dash.page("/admin");
    assert!(
        overview.contains("Data key <strong>2</strong>"),
        "{overview}"
    );
    assert!(overview.contains(">rotated</span>"), "{overview}");

    let detail = dash.page(&format!("/admin/connections/{id}"));
    for needle in [
        "id=\"connection-status\">connected<",
        "sandbox-user",
        "Sandbox Test Provider",
        "data-type=\"link.created\"",
        "data-type=\"connection.connected\"",
    ] {
        assert!(detail.contains(needle), "{needle} missing:\n{detail}");
    }
    let events = dash.page("/admin/events?type=connection.connected");
    assert!(events.contains("data-type=\"connection.connected\""));
    assert!(!events.contains("data-type=\"link.created\""), "{events}");
    let r = dash.get("/admin/events?type=bogus");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn no_token_or_secret_on_any_page_and_strict_headers() {
    let server = Server::start();
    let id = connect(&server, "tenant-a");
    let access_token = server.admin().token(&id);
    let wrong = try_sign_in(&server, "wrong-key-LEAKCHECK-0123456789");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let dash = sign_in(&server);
    let link = dash.post(
        "/admin/links",
        &[
            ("csrf", &dash.csrf),
            ("tenant_id", "tenant-b"),
            ("plugin", "sandbox"),
        ],
    );
    let mut pages = vec![link.text().expect("body")];
    for path in [
        "/admin".to_string(),
        "/admin/connections".into(),
        format!("/admin/connections/{id}"),
        format!("/admin/connections/{id}/delete"),
        "/admin/events".into(),
        "/admin/no-such-page".into(),
    ] {
        let r = dash.get(&path);
        let headers = r.headers().clone();
        assert!(header(&headers, "content-security-policy").contains("script-src 'self'"));
        assert_eq!(header(&headers, "referrer-policy"), "same-origin");
        assert_eq!(header(&headers, "cache-control"), "no-store");
        assert_eq!(header(&headers, "x-frame-options"), "DENY");
        pages.push(r.text().expect("body"));
    }
    pages.push(
        plain_client()
            .get(server.url("/admin/sign-in"))
            .send()
            .expect("GET")
            .text()
            .expect("body"),
    );
    for html in &pages {
        assert!(!html.contains(&access_token), "access token on a page");
        assert!(
            !html.contains("LEAKCHECK"),
            "admin key or client secret on a page"
        );
        // The CSP allows neither: the pages must not need them.
        assert!(!html.contains("style=\""), "inline style");
        assert!(!html.contains("<script"), "script tag");
    }
    // Nor in the log: keys (right or wrong), the session id, the CSRF token.
    let log = server.stderr();
    assert!(log.contains("dashboard sign-in"), "{log}");
    for secret in [
        "LEAKCHECK",
        &dash.cookie["ca_admin=".len()..],
        &dash.csrf,
        &access_token,
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[test]
fn sign_out_ends_the_session_on_the_server() {
    let server = Server::start();
    let id = connect(&server, "tenant-a");
    let dash = sign_in(&server);
    let r = dash.post("/admin/sign-out", &[("csrf", &dash.csrf)]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/admin/sign-in?signed_out=1");
    let removal = set_cookie(&r, "ca_admin").expect("removal cookie");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    // The old cookie is worthless now, for pages and forms alike.
    assert_redirected_to_sign_in(dash.get("/admin"));
    assert_redirected_to_sign_in(dash.post(
        &format!("/admin/connections/{id}/revoke"),
        &[("csrf", &dash.csrf)],
    ));
    assert_eq!(status_of(&server, &id), "connected");
    let html = plain_client()
        .get(server.url("/admin/sign-in?signed_out=1"))
        .send()
        .expect("GET")
        .text()
        .expect("body");
    assert!(html.contains("You are signed out."));
}

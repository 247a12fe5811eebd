//! The end-user flow against the built-in sandbox provider: connect page → authorize → provider
//! decision → callback, every hop asserted; and the callback's refusals (S1, S4, S5).

mod common;

use common::*;
use reqwest::StatusCode;
use url::Url;

#[test]
fn full_flow_with_redirect_url_connects_and_hands_out_a_working_token() {
    let server = Server::start();
    let admin = server.admin();
    let link = admin.create_link("tenant-flow", "sandbox", Some(REDIRECT_URL));
    assert_eq!(
        link.connect_url,
        server.url(&format!("/connect/{}", link.token))
    );
    assert_eq!(admin.connection(&link.connection_id)["status"], "pending");

    // The hosted page names the plugin and has the continue button.
    let browser = browser();
    let r = browser.get(&link.connect_url).send().expect("connect page");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(r.headers(), "content-type").starts_with("text/html"));
    let html = r.text().expect("body");
    assert!(html.contains("Sandbox Test Provider"), "{html}");
    assert!(html.contains("id=\"continue\""), "{html}");
    assert!(
        html.contains(&format!("href=\"{}/authorize\"", link.token)),
        "{html}"
    );

    // The hop to the provider: an exact authorization request and a browser-binding cookie.
    let auth = start_authorize(&server, &browser, &link.token);
    assert_eq!(
        auth.url.origin(),
        Url::parse(&server.base).expect("base").origin()
    );
    assert_eq!(auth.url.path(), "/sandbox/authorize");
    assert_eq!(
        query_param(&auth.url, "response_type").as_deref(),
        Some("code")
    );
    assert_eq!(
        query_param(&auth.url, "client_id").as_deref(),
        Some(SANDBOX_CLIENT_ID)
    );
    assert_eq!(
        query_param(&auth.url, "redirect_uri"),
        Some(format!("{}/oauth/callback", server.base))
    );
    assert_eq!(
        query_param(&auth.url, "scope").as_deref(),
        Some("profile offline_access")
    );
    assert!(
        b64url_decode(&auth.state).len() >= 16,
        "state must carry at least 128 bits: {}",
        auth.state
    );
    let challenge = query_param(&auth.url, "code_challenge").expect("code_challenge");
    assert_eq!(b64url_decode(&challenge).len(), 32, "S256 challenge");
    assert_eq!(
        query_param(&auth.url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let cookie_attrs: Vec<String> = auth
        .set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(
        cookie_attrs.iter().any(|a| a == "httponly"),
        "{}",
        auth.set_cookie
    );
    assert!(
        cookie_attrs.iter().any(|a| a == "samesite=lax"),
        "{}",
        auth.set_cookie
    );
    assert!(
        cookie_attrs.iter().any(|a| a == "path=/"),
        "{}",
        auth.set_cookie
    );
    assert!(
        !cookie_attrs.iter().any(|a| a == "secure"),
        "no Secure on plain-http loopback: {}",
        auth.set_cookie
    );
    assert!(
        b64url_decode(&auth.cookie_value).len() >= 16,
        "cookie value must be unguessable"
    );
    assert!(
        !auth.cookie_value.contains(&auth.state),
        "cookie is not the state"
    );

    // The provider's page and the user's approval.
    let callback = sandbox_decide(&server, &auth.url, true, "alice");
    assert_eq!(
        format!(
            "{}{}",
            callback.origin().ascii_serialization(),
            callback.path()
        ),
        format!("{}/oauth/callback", server.base)
    );
    assert_eq!(
        query_param(&callback, "state").as_deref(),
        Some(auth.state.as_str())
    );
    assert!(query_param(&callback, "code").is_some());
    assert_eq!(server.token_requests(), 0, "no token call before callback");

    // The callback: code redeemed once, browser sent to the team's app on a clean URL.
    let r = browser.get(callback.as_str()).send().expect("callback");
    assert_eq!(r.status(), StatusCode::FOUND);
    let removal = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ASCII").to_string())
        .find(|c| c.starts_with(&format!("{}=", auth.cookie_name)))
        .expect("the flow cookie is cleared");
    assert!(
        removal.to_ascii_lowercase().contains("max-age=0"),
        "{removal}"
    );
    let dest = Url::parse(&location(&r)).expect("redirect URL");
    assert_eq!(dest.host_str(), Some("localhost"));
    assert_eq!(dest.port(), Some(3000));
    assert_eq!(dest.path(), "/done");
    assert_eq!(query_param(&dest, "from").as_deref(), Some("test"));
    assert_eq!(query_param(&dest, "status").as_deref(), Some("connected"));
    assert_eq!(
        query_param(&dest, "connection_id").as_deref(),
        Some(link.connection_id.as_str())
    );
    for leaked in ["code", "state", "iss", "error"] {
        assert!(query_param(&dest, leaked).is_none(), "{leaked} in {dest}");
    }
    assert_eq!(server.token_requests(), 1);

    let conn = admin.connection(&link.connection_id);
    assert_eq!(conn["status"], "connected");
    assert_eq!(conn["tenant_id"], "tenant-flow");
    assert_eq!(conn["plugin"], "sandbox");
    assert!(conn["connected_at"].is_string());
    assert!(conn["last_error"].is_null());
    assert!(
        !conn.to_string().contains("sbx_"),
        "no token in the connection view"
    );

    let token = admin.token(&link.connection_id);
    assert!(token.starts_with("sbx_at_"), "{token}");
    let me = server.sandbox_me(&token);
    assert_eq!(me.status(), StatusCode::OK);
    let me: serde_json::Value = me.json().expect("JSON");
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["scope"], "profile offline_access");
}

#[test]
fn without_redirect_url_the_callback_shows_a_success_page() {
    let server = Server::start();
    let flow = run_flow(&server, "tenant-page", None, true, "bob");
    assert_eq!(flow.callback_status, StatusCode::SEE_OTHER);
    let dest = flow.callback_location.expect("Location");
    assert_eq!(
        dest,
        server.url(&format!(
            "/connect/result?status=connected&connection_id={}",
            flow.link.connection_id
        )),
        "a clean URL: no code, no state"
    );
    let admin = server.admin();
    assert_eq!(
        admin.connection(&flow.link.connection_id)["status"],
        "connected"
    );
    let token = admin.token(&flow.link.connection_id);
    assert_eq!(server.sandbox_me(&token).status(), StatusCode::OK);
}

#[test]
fn success_page_is_html_with_the_result() {
    let server = Server::start();
    let link = server.admin().create_link("tenant-html", "sandbox", None);
    let browser = browser();
    let auth = start_authorize(&server, &browser, &link.token);
    let callback = sandbox_decide(&server, &auth.url, true, "carol");
    let r = browser.get(callback.as_str()).send().expect("callback");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = browser.get(location(&r)).send().expect("result page");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(r.headers(), "content-type").starts_with("text/html"));
    let html = r.text().expect("body");
    assert!(html.contains("id=\"result-title\">Connected<"), "{html}");
    assert!(!html.contains(&auth.state), "no state on the page");
}

#[test]
fn deny_with_redirect_url_reports_access_denied_and_fails_the_connection() {
    let server = Server::start();
    let flow = run_flow(&server, "tenant-deny", Some(REDIRECT_URL), false, "dave");
    assert_eq!(flow.callback_status, StatusCode::FOUND);
    let dest = Url::parse(flow.callback_location.as_deref().expect("Location")).expect("URL");
    assert_eq!(dest.host_str(), Some("localhost"));
    assert_eq!(query_param(&dest, "status").as_deref(), Some("error"));
    assert_eq!(
        query_param(&dest, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        query_param(&dest, "connection_id").as_deref(),
        Some(flow.link.connection_id.as_str())
    );
    assert!(query_param(&dest, "state").is_none());
    assert!(query_param(&dest, "code").is_none());
    assert_eq!(
        server.token_requests(),
        0,
        "a denial calls no token endpoint"
    );

    let admin = server.admin();
    let conn = admin.connection(&flow.link.connection_id);
    assert_eq!(conn["status"], "failed");
    assert_eq!(conn["last_error"]["code"], "access_denied");
    assert!(conn["last_error"]["message"].is_string());
    assert!(conn["last_error"]["at"].is_string());
    assert_json_error(
        admin.get(&format!(
            "/v1/connections/{}/token",
            flow.link.connection_id
        )),
        StatusCode::CONFLICT,
        "not_connected",
    );
    // The link is spent by the denial.
    let r = plain_client()
        .get(&flow.link.connect_url)
        .send()
        .expect("page");
    assert_error_page(r, StatusCode::GONE, "link_used");
}

#[test]
fn deny_without_redirect_url_shows_an_error_page() {
    let server = Server::start();
    let flow_link = server.admin().create_link("tenant-deny2", "sandbox", None);
    let browser = browser();
    let auth = start_authorize(&server, &browser, &flow_link.token);
    let callback = sandbox_decide(&server, &auth.url, false, "erin");
    assert_eq!(
        query_param(&callback, "error").as_deref(),
        Some("access_denied")
    );
    let r = browser.get(callback.as_str()).send().expect("callback");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let dest = location(&r);
    assert!(
        dest.starts_with(&server.url("/connect/result?status=error&error=access_denied")),
        "{dest}"
    );
    assert!(
        !dest.contains("state=") && !dest.contains(&auth.state),
        "a clean URL: {dest}"
    );
    let r = browser.get(&dest).send().expect("result page");
    let html = assert_error_page(r, StatusCode::OK, "access_denied");
    assert!(
        html.contains("denied the request at the sandbox provider"),
        "the provider's description is shown (escaped):\n{html}"
    );
    assert_eq!(
        server.admin().connection(&flow_link.connection_id)["status"],
        "failed"
    );
}

// ---- S1 / S4 / S5: callbacks that must be refused without a token call or a write ----

/// A started flow whose callback URL (with a genuine code) has not been delivered yet.
struct Pending {
    link: Link,
    browser: reqwest::blocking::Client,
    auth: Authorize,
    callback: Url,
}

fn pending_callback(server: &Server) -> Pending {
    let link = server
        .admin()
        .create_link("tenant-s1", "sandbox", Some(REDIRECT_URL));
    let browser = browser();
    let auth = start_authorize(server, &browser, &link.token);
    let callback = sandbox_decide(server, &auth.url, true, "mallory-target");
    Pending {
        link,
        browser,
        auth,
        callback,
    }
}

fn assert_resolve_failed(r: reqwest::blocking::Response) {
    let html = assert_error_page(r, StatusCode::BAD_REQUEST, "resolve_failed");
    assert!(html.contains("could not be verified"), "{html}");
}

fn assert_untouched(server: &Server, p: &Pending) {
    assert_eq!(server.token_requests(), 0, "no call to the token endpoint");
    let conn = server.admin().connection(&p.link.connection_id);
    assert_eq!(conn["status"], "pending", "no write: {conn}");
    assert!(conn["last_error"].is_null(), "no write: {conn}");
}

/// The right browser can still finish the flow afterwards: the refused attempt burnt nothing.
fn assert_right_browser_completes(server: &Server, p: &Pending) {
    let r = p.browser.get(p.callback.as_str()).send().expect("callback");
    assert_eq!(r.status(), StatusCode::FOUND);
    let dest = Url::parse(&location(&r)).expect("URL");
    assert_eq!(query_param(&dest, "status").as_deref(), Some("connected"));
    assert_eq!(server.token_requests(), 1);
    assert_eq!(
        server.admin().connection(&p.link.connection_id)["status"],
        "connected"
    );
}

#[test]
fn unknown_state_is_refused() {
    let server = Server::start();
    let p = pending_callback(&server);
    let mut forged = p.callback.clone();
    forged
        .query_pairs_mut()
        .clear()
        .append_pair("code", &query_param(&p.callback, "code").expect("code"))
        .append_pair("state", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    // Even in the browser holding a flow cookie.
    assert_resolve_failed(p.browser.get(forged.as_str()).send().expect("callback"));
    // And with no state at all.
    assert_resolve_failed(
        p.browser
            .get(server.url("/oauth/callback?code=abc"))
            .send()
            .expect("callback"),
    );
    assert_untouched(&server, &p);
    assert_right_browser_completes(&server, &p);
}

#[test]
fn missing_cookie_is_refused_and_does_not_burn_the_flow() {
    let server = Server::start();
    let p = pending_callback(&server);
    // Another browser (no cookie) delivers the genuine callback URL.
    assert_resolve_failed(browser().get(p.callback.as_str()).send().expect("callback"));
    assert_resolve_failed(
        plain_client()
            .get(p.callback.as_str())
            .send()
            .expect("callback"),
    );
    assert_untouched(&server, &p);
    assert_right_browser_completes(&server, &p);
}

#[test]
fn wrong_cookie_value_is_refused() {
    let server = Server::start();
    let p = pending_callback(&server);
    let wrong = format!("{}={}", p.auth.cookie_name, "x".repeat(43));
    assert_resolve_failed(
        plain_client()
            .get(p.callback.as_str())
            .header("cookie", wrong)
            .send()
            .expect("callback"),
    );
    // The right value under another flow's cookie name does not help either.
    let misnamed = format!("ca_flow_0000000000000000={}", p.auth.cookie_value);
    assert_resolve_failed(
        plain_client()
            .get(p.callback.as_str())
            .header("cookie", misnamed)
            .send()
            .expect("callback"),
    );
    assert_untouched(&server, &p);
    assert_right_browser_completes(&server, &p);
}

#[test]
fn replayed_callback_is_refused_without_a_second_token_call() {
    let server = Server::start();
    let p = pending_callback(&server);
    assert_right_browser_completes(&server, &p);
    let admin = server.admin();
    let token = admin.token(&p.link.connection_id);
    let before = admin.connection(&p.link.connection_id);

    // Replayed with the original cookie value (the browser's own cookie was cleared).
    let cookie = format!("{}={}", p.auth.cookie_name, p.auth.cookie_value);
    assert_resolve_failed(
        plain_client()
            .get(p.callback.as_str())
            .header("cookie", cookie)
            .send()
            .expect("replay"),
    );
    assert_resolve_failed(p.browser.get(p.callback.as_str()).send().expect("replay"));
    assert_eq!(server.token_requests(), 1, "the code is redeemed only once");
    let after = admin.connection(&p.link.connection_id);
    assert_eq!(after["status"], "connected");
    assert_eq!(after["updated_at"], before["updated_at"], "no write");
    assert_eq!(admin.token(&p.link.connection_id), token);
    assert_eq!(server.sandbox_me(&token).status(), StatusCode::OK);
}

#[test]
fn provider_error_for_an_unknown_state_or_foreign_browser_changes_nothing() {
    let server = Server::start();
    let p = pending_callback(&server);
    // An error callback for a state nobody issued.
    assert_resolve_failed(
        p.browser
            .get(server.url(
                "/oauth/callback?error=access_denied&state=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
            ))
            .send()
            .expect("callback"),
    );
    // An error callback for the genuine state, from a browser without the cookie: it must not
    // be able to mark the victim's connection failed.
    let mut forged = server.url("/oauth/callback").parse::<Url>().expect("URL");
    forged
        .query_pairs_mut()
        .append_pair("error", "access_denied")
        .append_pair("state", &p.auth.state);
    assert_resolve_failed(
        plain_client()
            .get(forged.as_str())
            .send()
            .expect("callback"),
    );
    assert_untouched(&server, &p);
    assert_right_browser_completes(&server, &p);
}

#[test]
fn issuer_mismatch_is_refused_before_the_token_call() {
    let server = Server::start();
    let p = pending_callback(&server);
    assert_eq!(
        query_param(&p.callback, "iss"),
        Some(format!("{}/sandbox", server.base))
    );
    let mut mixed_up = p.callback.clone();
    let pairs: Vec<(String, String)> = p
        .callback
        .query_pairs()
        .filter(|(k, _)| k != "iss")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = mixed_up.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        q.append_pair("iss", "https://idp.attacker.test");
    }
    assert_resolve_failed(p.browser.get(mixed_up.as_str()).send().expect("callback"));
    assert_untouched(&server, &p);
    assert_right_browser_completes(&server, &p);
}

#[test]
fn two_attempts_get_distinct_states_and_cookies() {
    let server = Server::start();
    let link = server.admin().create_link("tenant-twice", "sandbox", None);
    let browser = browser();
    let first = start_authorize(&server, &browser, &link.token);
    let second = start_authorize(&server, &browser, &link.token);
    assert_ne!(first.state, second.state);
    assert_ne!(first.cookie_name, second.cookie_name);
    assert_ne!(first.cookie_value, second.cookie_value);
    assert_ne!(
        query_param(&first.url, "code_challenge"),
        query_param(&second.url, "code_challenge"),
        "a fresh PKCE verifier per attempt"
    );
}

/// A link works once: when two attempts were started from it, completing one must spend the
/// link, and the other attempt's callback must then be refused without a token call (otherwise
/// a stale attempt re-connects the connection, e.g. undoing a revocation, and orphans a grant).
#[test]
fn a_link_completes_only_once_even_with_two_pending_attempts() {
    let server = Server::start();
    let admin = server.admin();
    let link = admin.create_link("tenant-twice", "sandbox", None);
    let browser = browser();
    let first = start_authorize(&server, &browser, &link.token);
    let second = start_authorize(&server, &browser, &link.token);
    let second_callback = sandbox_decide(&server, &second.url, true, "frank");
    let first_callback = sandbox_decide(&server, &first.url, true, "frank");

    let r = browser
        .get(second_callback.as_str())
        .send()
        .expect("callback");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.token_requests(), 1);
    let token = admin.token(&link.connection_id);

    // The end user opts out; then the stale first attempt is delivered.
    let r = admin.post(&format!("/v1/connections/{}/revoke", link.connection_id));
    assert_eq!(r.status(), StatusCode::OK);
    let r = browser
        .get(first_callback.as_str())
        .send()
        .expect("callback");
    let status = r.status();
    assert!(
        status.is_client_error(),
        "a second completion of a used link must be refused, got {status}; token calls: {}; \
         connection afterwards: {}",
        server.token_requests(),
        admin.connection(&link.connection_id)
    );
    assert_eq!(server.token_requests(), 1, "no token call for a spent link");
    assert_eq!(admin.connection(&link.connection_id)["status"], "revoked");
    assert_ne!(server.sandbox_me(&token).status(), StatusCode::OK);
}

#[test]
fn the_result_page_escapes_what_its_query_says() {
    let server = Server::start();
    let r = plain_client()
        .get(server.url("/connect/result"))
        .query(&[
            ("status", "error"),
            ("error", "<script>x</script>"),
            ("error_description", "<img src=x onerror=alert(1)>"),
        ])
        .send()
        .expect("result page");
    let html = assert_error_page(r, StatusCode::OK, "scriptxscript");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("&#60;img src=x"), "escaped: {html}");
}

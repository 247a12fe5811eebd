//! `/connect.js` and what the popup's result pages need from the server: the opener script with
//! the allowed origins only, a CSP that allows scripts from 'self' and nothing inline, and an
//! opener policy that keeps the popup linked to the team's page only when CORS is configured.
//! The browser side is tested in tests/e2e/connect-js.test.mjs.

mod common;

use common::*;
use reqwest::blocking::Response;
use reqwest::StatusCode;

const APP: &str = "https://app.example.com";

fn with_cors() -> Server {
    Server::start_with(TestConfig {
        extra: format!("[cors]\nallowed_origins = [\"{APP}\", \"http://127.0.0.1:5173/\"]\n"),
        ..TestConfig::default()
    })
}

fn get(server: &Server, path: &str) -> Response {
    plain_client().get(server.url(path)).send().expect("GET")
}

fn assert_strict_csp(r: &Response, what: &str) {
    let csp = header(r.headers(), "content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-"), "{what}: {csp}");
    assert!(!csp.contains('*'), "{what}: {csp}");
}

#[test]
fn connect_js_is_served_as_cacheable_javascript() {
    let server = Server::start();
    let r = get(&server, "/connect.js");
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers();
    assert!(
        header(h, "content-type").starts_with("application/javascript"),
        "{}",
        header(h, "content-type")
    );
    assert!(header(h, "cache-control").contains("max-age="));
    assert_eq!(header(h, "cross-origin-resource-policy"), "cross-origin");
    let body = r.text().expect("body");
    assert!(body.contains("ConnectAppliance"), "{body}");
    assert!(!body.contains("import ") && !body.contains("require("));
}

#[test]
fn the_opener_script_names_the_allowed_origins_only() {
    let server = with_cors();
    let r = get(&server, "/connect/opener.js");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(r.headers(), "content-type").starts_with("application/javascript"));
    assert_eq!(header(r.headers(), "cache-control"), "no-store");
    let body = r.text().expect("body");
    assert!(
        body.contains(r#"const origins = ["https://app.example.com","http://127.0.0.1:5173"];"#),
        "{body}"
    );

    let server = Server::start();
    let body = get(&server, "/connect/opener.js").text().expect("body");
    assert!(body.contains("const origins = [];"), "{body}");
}

#[test]
fn result_pages_load_the_opener_script_under_a_strict_csp() {
    let server = with_cors();
    let flow = run_flow(&server, "tenant-js", None, true, "js-user");
    assert_eq!(flow.callback_status, StatusCode::SEE_OTHER);
    let dest = flow.callback_location.expect("Location");
    assert_eq!(
        dest,
        server.url(&format!(
            "/connect/result?status=connected&connection_id={}",
            flow.link.connection_id
        ))
    );
    let r = flow.browser.get(&dest).send().expect("result page");
    assert_strict_csp(&r, "result page");
    let html = r.text().expect("body");
    assert!(
        html.contains(
            r#"<script src="/connect/opener.js" data-status="connected" defer></script>"#
        ),
        "{html}"
    );
    assert!(!html.contains("<script>"), "no inline script: {html}");
    let token = server.admin().token(&flow.link.connection_id);
    assert!(!html.contains(&token) && !dest.contains(&token));

    // A denied flow ends on the error page, which reports the provider's code.
    let flow = run_flow(&server, "tenant-js", None, false, "js-user");
    let dest = flow.callback_location.expect("Location");
    assert!(dest.contains(&format!("connection_id={}", flow.link.connection_id)));
    let r = flow.browser.get(&dest).send().expect("error page");
    assert_strict_csp(&r, "error page");
    let html = r.text().expect("body");
    assert!(
        html.contains(r#"data-status="error" data-error="access_denied""#),
        "{html}"
    );
    // Error pages outside /connect/result report too (here: an unknown link).
    let html = get(&server, "/connect/no-such-link").text().expect("body");
    assert!(html.contains(r#"data-error="link_not_found""#), "{html}");
}

#[test]
fn the_opener_policy_is_relaxed_on_flow_pages_only_when_cors_is_configured() {
    let coop = |r: &Response| header(r.headers(), "cross-origin-opener-policy").to_string();
    let server = with_cors();
    let link = server.admin().create_link("tenant-coop", "sandbox", None);
    let browser = browser();
    let page = browser.get(&link.connect_url).send().expect("page");
    assert_eq!(coop(&page), "unsafe-none", "connect page");
    let auth = start_authorize(&server, &browser, &link.token);
    let r = browser
        .get(server.url(&format!("/connect/{}/authorize", link.token)))
        .send()
        .expect("authorize");
    assert_eq!(coop(&r), "unsafe-none", "authorize redirect");
    let r = plain_client()
        .get(auth.url.as_str())
        .send()
        .expect("sandbox");
    assert_eq!(coop(&r), "unsafe-none", "sandbox page");
    assert_eq!(
        coop(&get(&server, "/connect/result?status=connected")),
        "unsafe-none"
    );
    assert_eq!(coop(&get(&server, "/oauth/callback")), "unsafe-none");
    // Everything else keeps same-origin.
    assert_eq!(coop(&get(&server, "/healthz")), "same-origin");
    assert_eq!(coop(&get(&server, "/connect.js")), "same-origin");
    assert_eq!(coop(&server.admin().get("/v1/connections")), "same-origin");

    let server = Server::start();
    let link = server.admin().create_link("tenant-coop", "sandbox", None);
    let page = plain_client().get(&link.connect_url).send().expect("page");
    assert_eq!(coop(&page), "same-origin", "default config");
    assert_eq!(
        coop(&get(&server, "/connect/result?status=connected")),
        "same-origin"
    );
}

//! Per-IP rate limits (S21): public pages and failed admin authentication.

mod common;

use common::*;
use reqwest::StatusCode;

fn limited(public: u32, failed_auth: u32) -> Server {
    Server::start_with(TestConfig {
        extra: format!(
            "[limits]\npublic_requests_per_minute = {public}\nfailed_auth_per_minute = {failed_auth}\n"
        ),
        ..TestConfig::default()
    })
}

#[test]
fn public_pages_are_rate_limited_per_ip_without_touching_the_admin_api() {
    let server = limited(5, 30);
    let client = plain_client();
    let statuses: Vec<StatusCode> = (0..7)
        .map(|_| {
            client
                .get(server.url("/connect/no-such-link"))
                .send()
                .expect("GET")
                .status()
        })
        .collect();
    assert!(
        statuses[..5].iter().all(|s| *s == StatusCode::NOT_FOUND),
        "{statuses:?}"
    );
    let r = client
        .get(server.url("/oauth/callback?state=x"))
        .send()
        .expect("GET");
    assert_eq!(header(r.headers(), "retry-after"), "60");
    assert_json_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // The admin API and health stay available to the same IP.
    let admin = server.admin();
    assert_eq!(admin.get("/v1/plugins").status(), StatusCode::OK);
    assert_eq!(
        client
            .get(server.url("/healthz"))
            .send()
            .expect("GET")
            .status(),
        StatusCode::OK
    );
}

#[test]
fn failed_admin_authentication_is_rate_limited_but_a_valid_key_still_works() {
    let server = limited(300, 3);
    let client = plain_client();
    for i in 0..3 {
        let r = client
            .get(server.url("/v1/connections"))
            .bearer_auth(format!("wrong-key-{i}"))
            .send()
            .expect("GET");
        assert_json_error(r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let r = client
        .get(server.url("/v1/connections"))
        .bearer_auth("wrong-key-again")
        .send()
        .expect("GET");
    assert_json_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(
        server.admin().get("/v1/connections").status(),
        StatusCode::OK
    );
}

#[test]
fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let server = Server::start_with(TestConfig {
        extra: "[limits]\npublic_requests_per_minute = 2\ntrusted_proxies = [\"127.0.0.1\"]\n"
            .into(),
        ..TestConfig::default()
    });
    let client = plain_client();
    let get = |forwarded: &str| {
        client
            .get(server.url("/connect/no-such-link"))
            .header("x-forwarded-for", forwarded)
            .send()
            .expect("GET")
            .status()
    };
    assert_eq!(get("203.0.113.7"), StatusCode::NOT_FOUND);
    assert_eq!(get("203.0.113.7"), StatusCode::NOT_FOUND);
    assert_eq!(get("203.0.113.7"), StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy is unaffected.
    assert_eq!(get("198.51.100.9"), StatusCode::NOT_FOUND);
    // A client cannot dodge its budget by prepending addresses of its own choosing: only the
    // right-most untrusted entry counts.
    assert_eq!(get("192.0.2.1, 203.0.113.7"), StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn without_trusted_proxies_forwarded_headers_are_ignored() {
    let server = limited(2, 30);
    let client = plain_client();
    let get = |forwarded: &str| {
        client
            .get(server.url("/connect/no-such-link"))
            .header("x-forwarded-for", forwarded)
            .send()
            .expect("GET")
            .status()
    };
    assert_eq!(get("203.0.113.1"), StatusCode::NOT_FOUND);
    assert_eq!(get("203.0.113.2"), StatusCode::NOT_FOUND);
    assert_eq!(
        get("203.0.113.3"),
        StatusCode::TOO_MANY_REQUESTS,
        "the peer's budget"
    );
}

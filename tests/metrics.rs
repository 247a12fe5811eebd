//! `/metrics`: Prometheus text with request, connection, refresh, link and webhook figures,
//! behind the admin key by default, and never a tenant id, path or token.

mod common;

use common::*;
use reqwest::StatusCode;

fn scrape(server: &Server, key: Option<&str>) -> (StatusCode, String, String) {
    let mut req = plain_client().get(server.url("/metrics"));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().expect("GET /metrics");
    let status = r.status();
    let ctype = header(r.headers(), "content-type").to_string();
    (status, ctype, r.text().expect("body"))
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_count_requests_connections_refreshes_and_conversions() {
    let server = Server::start();
    let (status, _, _) = scrape(&server, None);
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "behind the admin key by default"
    );

    let id = connect(&server, "tenant-metrics-LEAKCHECK");
    let admin = server.admin();
    let token = admin.token(&id);
    admin.get_json(&format!("/v1/connections/{id}/token?force_refresh=true"));
    admin.create_link("tenant-metrics-LEAKCHECK", "sandbox", None);

    let (status, ctype, text) = scrape(&server, Some(ADMIN_KEY));
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let get =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} in:\n{text}"));
    assert_eq!(
        get(r#"connect_appliance_links_created_total{plugin="sandbox"}"#),
        2.0
    );
    assert_eq!(
        get(r#"connect_appliance_connect_completions_total{plugin="sandbox",outcome="connected"}"#),
        1.0
    );
    assert_eq!(
        get(r#"connect_appliance_refreshes_total{plugin="sandbox",outcome="refreshed"}"#),
        1.0
    );
    assert_eq!(
        get(r#"connect_appliance_connections{plugin="sandbox",status="connected"}"#),
        1.0
    );
    assert_eq!(
        get(r#"connect_appliance_connections{plugin="sandbox",status="pending"}"#),
        1.0
    );
    assert!(
        get(
            r#"connect_appliance_http_requests_total{method="GET",route="/v1/connections/{id}/token",status="200"}"#
        ) >= 2.0
    );
    assert!(text.contains(
        r#"connect_appliance_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/v1/connections/{id}/token"}"#
    ) || text.contains(
        r#"connect_appliance_http_request_duration_seconds_bucket{method="GET",route="/v1/connections/{id}/token",le="+Inf"}"#
    ), "{text}");
    for secret in ["LEAKCHECK", token.as_str(), id.as_str(), ADMIN_KEY] {
        assert!(!text.contains(secret), "{secret} leaked into /metrics");
    }
}

#[test]
fn metrics_can_be_public_or_off() {
    let open = Server::start_with(TestConfig {
        extra: "[metrics]\nrequire_admin_key = false\n".into(),
        ..TestConfig::default()
    });
    plain_client()
        .get(open.url("/healthz"))
        .send()
        .expect("healthz");
    let (status, _, text) = scrape(&open, None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sample(
            &text,
            r#"connect_appliance_http_requests_total{method="GET",route="/healthz",status="200"}"#
        ),
        Some(1.0),
        "{text}"
    );
    let off = Server::start_with(TestConfig {
        extra: "[metrics]\nenabled = false\n".into(),
        ..TestConfig::default()
    });
    assert_eq!(scrape(&off, Some(ADMIN_KEY)).0, StatusCode::NOT_FOUND);
}

//! CORS on `/v1` for `[cors] allowed_origins` only: preflights answered without a key and
//! without reaching auth, the allowed origin echoed (never `*`), nothing for anyone else, and
//! nothing at all by default.

mod common;

use common::*;
use reqwest::blocking::Response;
use reqwest::{Method, StatusCode};

const APP: &str = "https://app.example.com";
const OTHER: &str = "https://evil.example.net";

fn with_cors(extra: &str) -> Server {
    Server::start_with(TestConfig {
        extra: format!(
            "[cors]\nallowed_origins = [\"{APP}/\", \"http://127.0.0.1:5173\"]\n{extra}"
        ),
        ..TestConfig::default()
    })
}

fn preflight(server: &Server, path: &str, origin: &str) -> Response {
    plain_client()
        .request(Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .expect("preflight")
}

fn get_with_origin(server: &Server, path: &str, origin: &str, auth: bool) -> Response {
    let mut req = plain_client()
        .get(server.url(path))
        .header("origin", origin);
    if auth {
        req = req.bearer_auth(ADMIN_KEY);
    }
    req.send().expect("GET")
}

fn cors_headers(r: &Response) -> Vec<String> {
    r.headers()
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

fn vary(r: &Response) -> String {
    r.headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().expect("ASCII").to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn an_allowed_origin_gets_headers_on_preflight_and_on_real_requests() {
    let server = with_cors("");
    let r = preflight(&server, "/v1/links", APP);
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let h = r.headers();
    assert_eq!(header(h, "access-control-allow-origin"), APP);
    assert_eq!(header(h, "access-control-allow-methods"), "GET, POST");
    assert_eq!(
        header(h, "access-control-allow-headers"),
        "Authorization, Content-Type"
    );
    assert!(header(h, "access-control-max-age").parse::<u32>().is_ok());
    assert!(h.get("access-control-allow-credentials").is_none());
    assert!(vary(&r).contains("Origin"), "{}", vary(&r));
    assert!(r.text().expect("body").is_empty());

    let r = get_with_origin(&server, "/v1/connections", APP, true);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(r.headers(), "access-control-allow-origin"), APP);
    assert!(vary(&r).contains("Origin"));
    assert!(header(r.headers(), "access-control-expose-headers").contains("Retry-After"));

    // The second configured origin, and an error a browser page must be able to read.
    let loopback = "http://127.0.0.1:5173";
    let r = get_with_origin(&server, "/v1/connections", loopback, false);
    assert_eq!(header(r.headers(), "access-control-allow-origin"), loopback);
    assert_json_error(r, StatusCode::UNAUTHORIZED, "unauthorized");

    // A link created from the browser's origin works like any other.
    let r = plain_client()
        .post(server.url("/v1/links"))
        .header("origin", APP)
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({"tenant_id": "t-cors", "plugin": "sandbox"}))
        .send()
        .expect("POST");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(r.headers(), "access-control-allow-origin"), APP);
}

#[test]
fn other_origins_get_no_cors_headers() {
    let server = with_cors("");
    for origin in [
        OTHER,
        "https://app.example.com.evil.net",
        "null",
        "http://app.example.com",
    ] {
        let r = preflight(&server, "/v1/links", origin);
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{origin}");
        assert_eq!(cors_headers(&r), Vec::<String>::new(), "{origin}");
        let r = get_with_origin(&server, "/v1/connections", origin, true);
        assert_eq!(r.status(), StatusCode::OK, "{origin}");
        assert_eq!(cors_headers(&r), Vec::<String>::new(), "{origin}");
    }
    // Pages outside /v1 get none either.
    let r = get_with_origin(&server, "/healthz", APP, false);
    assert_eq!(cors_headers(&r), Vec::<String>::new());
}

#[test]
fn preflights_need_no_key_and_never_count_as_failed_auth() {
    let server = with_cors("[limits]\nfailed_auth_per_minute = 2\n");
    for path in [
        "/v1/links",
        "/v1/connections/conn_x/token",
        "/v1/no-such-route",
    ] {
        for _ in 0..4 {
            let r = preflight(&server, path, APP);
            assert_eq!(r.status(), StatusCode::NO_CONTENT, "{path}");
            assert_eq!(header(r.headers(), "access-control-allow-origin"), APP);
        }
    }
    let r = preflight(&server, "/v1/links", OTHER);
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Twelve keyless preflights later the failed-auth budget (2) is untouched...
    let r = get_with_origin(&server, "/v1/connections", APP, false);
    assert_json_error(r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = get_with_origin(&server, "/v1/connections", APP, false);
    assert_json_error(r, StatusCode::UNAUTHORIZED, "unauthorized");
    // ...and is spent by real failures only.
    let r = get_with_origin(&server, "/v1/connections", APP, false);
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(r.headers(), "access-control-allow-origin"), APP);
    // No preflight reached a handler: no link was created.
    let events = server.admin().get_json("/v1/events");
    assert_eq!(events["data"].as_array().map(Vec::len), Some(0), "{events}");
    // An OPTIONS that is not a preflight is not answered as one.
    let r = plain_client()
        .request(Method::OPTIONS, server.url("/v1/links"))
        .send()
        .expect("OPTIONS");
    assert_ne!(r.status(), StatusCode::NO_CONTENT);
}

#[test]
fn the_default_config_sends_no_cors_headers() {
    let server = Server::start();
    let r = preflight(&server, "/v1/links", APP);
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(cors_headers(&r), Vec::<String>::new());
    assert!(r.headers().get("vary").is_none());
    let r = get_with_origin(&server, "/v1/connections", APP, true);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(cors_headers(&r), Vec::<String>::new());
    assert!(r.headers().get("vary").is_none());
}

#[test]
fn a_bad_origin_stops_the_start_naming_file_and_key() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    for (origin, says) in [
        ("https://app.example.com/path", "without a path"),
        (
            "http://app.example.com",
            "plain http is only allowed on loopback",
        ),
        ("*", "expected an origin"),
    ] {
        let text = TestConfig {
            extra: format!("[cors]\nallowed_origins = [\"{origin}\"]\n"),
            ..TestConfig::default()
        }
        .to_toml();
        let exit = serve_expect_exit(dir.path(), &text);
        assert_eq!(exit.status.code(), Some(2), "{origin}: {}", exit.stderr);
        assert!(
            exit.stderr
                .contains("config.toml: cors.allowed_origins[0]: "),
            "{origin}: {}",
            exit.stderr
        );
        assert!(exit.stderr.contains(says), "{origin}: {}", exit.stderr);
    }
}

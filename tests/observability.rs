//! Health probes, request ids and JSON logs.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

#[test]
fn probes_and_request_ids() {
    let server = Server::start();
    let client = plain_client();
    for path in ["/healthz", "/readyz", "/livez"] {
        let r = client.get(server.url(path)).send().expect("probe");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let r = client.get(server.url("/v1/plugins")).send().expect("GET");
    let generated = header(r.headers(), "x-request-id").to_string();
    assert_eq!(generated.len(), 16, "{generated}");
    let r = client
        .get(server.url("/connect/nope"))
        .header("x-request-id", "caller-id-42")
        .send()
        .expect("GET");
    assert_eq!(header(r.headers(), "x-request-id"), "caller-id-42");
    let r = client
        .get(server.url("/connect/nope"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .expect("GET");
    assert_ne!(header(r.headers(), "x-request-id"), "bad id with spaces");
    assert!(
        server.stderr().contains("caller-id-42"),
        "the id is in the access log"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let server = Server::start_with(TestConfig {
        server_extra: "log_format = \"json\"".into(),
        ..TestConfig::default()
    });
    let id = connect(&server, "tenant-json-log");
    let token = server.admin().token(&id);
    let log = server.stderr();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 3, "{log}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(log.contains("\"route\":\"/oauth/callback\""), "{log}");
    assert!(!log.contains(&token), "no token in the log");
}

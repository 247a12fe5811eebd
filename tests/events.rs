//! The durable event log: every state change, in order, paged, filtered, surviving restarts.

mod common;

use std::time::Duration;

use common::receiver::{Reply, Upstream};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn kinds(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_string())
        .collect()
}

#[test]
fn every_state_change_is_an_ordered_durable_event() {
    let server = Server::start();
    let admin = server.admin();
    let id = connect(&server, "tenant-events");
    admin.get_json(&format!("/v1/connections/{id}/token?force_refresh=true"));
    let denied = run_flow(&server, "tenant-other", None, false, "x");
    assert_eq!(denied.callback_status, StatusCode::SEE_OTHER);
    assert_eq!(
        admin.post(&format!("/v1/connections/{id}/revoke")).status(),
        StatusCode::OK
    );
    assert_eq!(
        admin.delete(&format!("/v1/connections/{id}")).status(),
        StatusCode::NO_CONTENT
    );

    let all = admin.get_json("/v1/events");
    assert_eq!(
        kinds(&all),
        [
            "link.created",
            "connection.connected",
            "connection.refreshed",
            "link.created",
            "connection.failed",
            "connection.revoked",
            "connection.deleted",
        ]
    );
    let data = all["data"].as_array().expect("data");
    let ids: Vec<u64> = data.iter().map(|e| e["id"].as_u64().expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(data[4]["error_code"], "access_denied");
    assert_eq!(data[4]["tenant_id"], "tenant-other");
    assert!(data[0]["at"].is_string());

    // Filters and paging.
    let mine = admin.get_json("/v1/events?tenant_id=tenant-events");
    assert_eq!(kinds(&mine).len(), 5);
    let failed = admin.get_json("/v1/events?type=connection.failed");
    assert_eq!(kinds(&failed), ["connection.failed"]);
    let first = admin.get_json("/v1/events?limit=3");
    assert_eq!(kinds(&first).len(), 3);
    let cursor = first["next_cursor"].as_u64().expect("cursor");
    let rest = admin.get_json(&format!("/v1/events?after={cursor}"));
    assert_eq!(kinds(&rest).len(), 4);
    let end = rest["next_cursor"].as_u64().expect("cursor");
    let none = admin.get_json(&format!("/v1/events?after={end}"));
    assert!(kinds(&none).is_empty());
    assert_eq!(none["next_cursor"].as_u64(), Some(end));
    assert_json_error(
        admin.get("/v1/events?type=nope"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_json_error(
        admin.get("/v1/events?limit=0"),
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );

    // Durable: still there after a restart.
    let config = server.config.clone();
    let dir = server.stop();
    let raw = std::fs::read(dir.path().join("data/connect.redb")).expect("db");
    assert!(
        !raw.windows(13).any(|w| w == b"tenant-events"),
        "events are sealed"
    );
    let server = Server::start_in(dir, config);
    assert_eq!(kinds(&server.admin().get_json("/v1/events")).len(), 7);
}

/// A custom OAuth plugin whose token endpoint is `upstream`, with one imported connection.
fn flaky_connection(upstream: &Upstream) -> (Server, String) {
    let server = Server::start_with(TestConfig {
        extra: format!(
            "[plugins.flaky]\nauthorization_url = {}\ntoken_url = {}\nclient_id = \"flaky\"\nclient_secret = \"flaky-secret\"\n",
            toml_str(&upstream.url("/authorize")),
            toml_str(&upstream.url("/token")),
        ),
        ..TestConfig::default()
    });
    let r = server.admin().post_json(
        "/v1/connections",
        &json!({"tenant_id": "tenant-flaky", "plugin": "flaky",
            "credentials": {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600}}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_string();
    (server, id)
}

#[test]
fn a_transient_refresh_failure_is_one_event_per_attempt_and_the_connection_stays_connected() {
    let upstream = Upstream::start();
    upstream.by_default(Reply {
        delay: Duration::from_millis(800),
        ..Reply::status(503)
    });
    let (server, id) = flaky_connection(&upstream);
    let force = format!("/v1/connections/{id}/token?force_refresh=true");

    // Five callers at once: one refresh reaches the provider, all five get its failure.
    let callers: Vec<_> = (0..5)
        .map(|_| {
            let admin = server.admin();
            let force = force.clone();
            std::thread::spawn(move || admin.get(&force).status())
        })
        .collect();
    for caller in callers {
        assert_eq!(
            caller.join().expect("caller"),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(
        upstream.seen().len(),
        1,
        "one refresh for concurrent callers"
    );

    // A later caller tries again (while the connection backs off): no second event.
    assert_json_error(
        server.admin().get(&force),
        StatusCode::SERVICE_UNAVAILABLE,
        "refresh_failed",
    );
    assert_eq!(upstream.seen().len(), 2);

    let admin = server.admin();
    let events = admin.get_json("/v1/events?type=connection.refresh_failed");
    let data = events["data"].as_array().expect("data");
    assert_eq!(data.len(), 1, "{events}");
    assert_eq!(data[0]["connection_id"], id.as_str());
    assert_eq!(data[0]["tenant_id"], "tenant-flaky");
    assert_eq!(data[0]["error_code"], "provider_unavailable");
    let conn = admin.connection(&id);
    assert_eq!(conn["status"], "connected");
    assert_eq!(conn["last_error"], Value::Null);
    assert_eq!(admin.token(&id), "at-1", "the old token is still served");
}

//! The durable event log: every state change, in order, paged, filtered, surviving restarts.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

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

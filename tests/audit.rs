//! The audit log: admin actions and credential accesses, who (key id or tenant session), what,
//! when and on which connection; batched, durable, flushed at shutdown, sealed at rest.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const SECOND_KEY: &str = "second-admin-key-5d1f0a7e9b";

fn key_id(key: &str) -> String {
    format!("key:{}", &hex::encode(Sha256::digest(key.as_bytes()))[..12])
}

/// Polls `GET /v1/audit` until `pred` holds for the records (they are written within ~1 s).
fn audit_until(admin: &Admin, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let v = admin.get_json("/v1/audit?limit=500");
        let data = v["data"].as_array().cloned().unwrap_or_default();
        if pred(&data) {
            return data;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "audit records never appeared: {data:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn find<'a>(records: &'a [Value], action: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["action"] == action).collect()
}

#[test]
fn admin_actions_and_credential_accesses_are_recorded_with_who_and_which() {
    let server = Server::start_with(TestConfig {
        admin_keys: vec![ADMIN_KEY.into(), SECOND_KEY.into()],
        ..TestConfig::default()
    });
    let admin = server.admin();
    let id = connect(&server, "tenant-audit-LEAKCHECK");
    admin.token(&id);
    let proxied = admin.get(&format!("/v1/connections/{id}/proxy/me"));
    assert_eq!(proxied.status(), StatusCode::OK);
    let second = Admin {
        key: SECOND_KEY.into(),
        ..server.admin()
    };
    second.get_json("/v1/tenants/tenant-audit-LEAKCHECK/plugins/sandbox/token");
    let r = admin.post_json(
        "/v1/tenant-sessions",
        &json!({"tenant_id": "tenant-audit-LEAKCHECK"}),
    );
    let session = r.json::<Value>().expect("JSON")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let r = plain_client()
        .get(server.url("/v1/connections"))
        .bearer_auth(&session)
        .send()
        .expect("list");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        admin.post(&format!("/v1/connections/{id}/revoke")).status(),
        StatusCode::OK
    );

    let records = audit_until(&admin, |d| {
        !find(d, "POST /v1/connections/{id}/revoke").is_empty()
    });
    let link = find(&records, "POST /v1/links")[0];
    assert_eq!(link["actor"], key_id(ADMIN_KEY));
    assert_eq!(link["status"], 201);
    assert_eq!(link["connection_id"], id.as_str());
    assert_eq!(link["tenant_id"], "tenant-audit-LEAKCHECK");
    assert_eq!(link["plugin"], "sandbox");
    let fetch = find(&records, "GET /v1/connections/{id}/token")[0];
    assert_eq!(fetch["connection_id"], id.as_str());
    assert_eq!(fetch["status"], 200);
    // Named by their handlers (no regex walk), in the same words as every other route.
    let proxy = find(&records, "GET /v1/connections/{id}/proxy/{path:.*}")[0];
    assert_eq!(proxy["connection_id"], id.as_str());
    let tenant = find(
        &records,
        "GET /v1/tenants/{tenant_id}/plugins/{plugin}/token",
    )[0];
    assert_eq!(
        tenant["actor"],
        key_id(SECOND_KEY),
        "each key is told apart"
    );
    assert_eq!(tenant["tenant_id"], "tenant-audit-LEAKCHECK");
    let listed = find(&records, "GET /v1/connections")[0];
    assert_eq!(listed["actor"], "tenant-session");
    assert_eq!(
        find(&records, "POST /v1/tenant-sessions")[0]["tenant_id"],
        "tenant-audit-LEAKCHECK"
    );
    for r in &records {
        assert!(r["at"].as_i64().is_some_and(|t| t > 0));
    }
    let text = serde_json::to_string(&records).expect("JSON");
    assert!(!text.contains(ADMIN_KEY) && !text.contains(SECOND_KEY) && !text.contains(&session));

    // Paging.
    let page = admin.get_json("/v1/audit?limit=2");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2));
    let cursor = page["next_cursor"].as_u64().expect("cursor");
    let next = admin.get_json(&format!("/v1/audit?after={cursor}&limit=2"));
    assert!(next["data"][0]["id"].as_u64().expect("id") > cursor);
    for bad in [
        "/v1/audit?limit=0",
        "/v1/audit?limit=501",
        "/v1/audit?after=x",
    ] {
        assert_eq!(admin.get(bad).status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    // Sealed at rest: the tenant id never appears in the database file.
    let dir = server.stop();
    let raw = std::fs::read(dir.path().join("data/connect.redb")).expect("db");
    assert!(!raw.windows(9).any(|w| w == b"LEAKCHECK"));
}

#[test]
fn records_still_queued_at_shutdown_are_written() {
    let server = Server::start();
    let admin = server.admin();
    admin.create_link("tenant-shutdown", "sandbox", None);
    // Stop at once, inside the batch window: the graceful shutdown flushes the queue.
    let dir = server.stop();
    let server = Server::start_in(dir, TestConfig::default());
    let v = server.admin().get_json("/v1/audit");
    let first = &v["data"][0];
    assert_eq!(first["action"], "POST /v1/links", "{v}");
    assert_eq!(first["tenant_id"], "tenant-shutdown");
}

//! Data-key rotation while the appliance serves: `POST /v1/vault/data-key/rotate` re-seals every
//! stored value in the background while tokens are read and links written; nothing becomes
//! unreadable, the old key is retired, a restart reads everything, an unfinished rotation
//! resumes at start-up, and `rotate-data-key` goes through a running appliance.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Imports `n` connected sandbox connections; returns (id, access token) pairs.
fn import(admin: &Admin, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let token = format!("rotation-token-{i}");
            let r = admin.post_json(
                "/v1/connections",
                &json!({"tenant_id": format!("tenant-{i}"), "plugin": "sandbox",
                        "credentials": {"access_token": token, "expires_in": 86400}}),
            );
            let status = r.status();
            let v: Value = r.json().expect("JSON");
            assert_eq!(status, StatusCode::CREATED, "{v}");
            (v["id"].as_str().expect("id").to_string(), token)
        })
        .collect()
}

/// Polls `GET /v1/vault/data-key` until the rotation is no longer running.
fn wait_for_rotation(admin: &Admin) -> Value {
    let started = Instant::now();
    loop {
        let status = admin.get_json("/v1/vault/data-key");
        if status["state"] != "running" {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the rotation did not finish: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_all_tokens(admin: &Admin, connections: &[(String, String)]) {
    for (id, token) in connections {
        assert_eq!(&admin.token(id), token, "token of {id}");
    }
}

#[test]
fn a_rotation_under_load_keeps_every_value_readable_and_retires_the_old_key() {
    let server = Server::start();
    let admin = server.admin();
    // Enough values (connections, credentials, events, audit records) for several steps.
    let connections = import(&admin, 800);
    let before = admin.get_json("/v1/vault/data-key");
    assert_eq!(before["state"], "idle", "{before}");
    assert_eq!(before["active_key"], 1);
    assert_eq!(before["old_keys"], json!([]));

    // Readers and writers keep going for the whole rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = Arc::clone(&stop);
        let admin = server.admin();
        let sample = connections[..50].to_vec();
        std::thread::spawn(move || {
            let mut links = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let (id, token) = &sample[i % sample.len()];
                assert_eq!(&admin.token(id), token, "token during the rotation");
                links.push(admin.create_link(&format!("during-{i}"), "sandbox", None));
                i += 1;
            }
            links
        })
    };
    let started = admin.post("/v1/vault/data-key/rotate");
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let started: Value = started.json().expect("JSON");
    assert_eq!(started["active_key"], 2, "{started}");
    let done = wait_for_rotation(&admin);
    stop.store(true, Ordering::SeqCst);
    let links = load.join().expect("the load thread saw every read succeed");
    assert!(!links.is_empty());

    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["active_key"], 2);
    assert_eq!(done["old_keys"], json!([]), "the old key is retired");
    assert!(done["error"].is_null(), "{done}");
    // Connections, their credentials and events at least; audit records and links on top.
    assert!(
        done["reencrypted"].as_u64().expect("count") >= 3 * 800,
        "{done}"
    );
    assert_all_tokens(&admin, &connections);

    // After a restart only key 2 is stored, and every value opens with it.
    let config = server.config.clone();
    let server = Server::start_in(server.stop(), config);
    let admin = server.admin();
    let after = admin.get_json("/v1/vault/data-key");
    assert_eq!(after["state"], "idle", "{after}");
    assert_eq!(after["active_key"], 2);
    assert_eq!(after["old_keys"], json!([]));
    assert_all_tokens(&admin, &connections);
    for link in links.iter().step_by(7) {
        let page = plain_client()
            .get(server.url(&format!("/connect/{}", link.token)))
            .send()
            .expect("connect page");
        assert_eq!(
            page.status(),
            StatusCode::OK,
            "a link written during the rotation"
        );
    }
    let by_tenant = admin.get_json("/v1/connections?tenant_id=tenant-7");
    assert_eq!(by_tenant["data"][0]["id"], connections[7].0.as_str());
}

#[test]
fn an_unfinished_rotation_resumes_at_start_up() {
    let server = Server::start();
    let admin = server.admin();
    let connections = import(&admin, 50);
    let config = server.config.clone();
    let dir = server.stop();
    {
        // What a process stopped right after adding the key leaves: key 2 active, every value
        // still under key 1.
        use connect_appliance::vault::{RedbStore, Store};
        let (store, _) = RedbStore::open(
            &dir.path().join("data/connect.redb"),
            &dir.path().join("data/vault-identity.txt"),
        )
        .expect("open");
        assert_eq!(store.add_data_key().expect("add"), 2);
        assert!(
            store.retire_old_data_keys().is_err(),
            "values are still under key 1"
        );
    }
    let server = Server::start_in(dir, config);
    let admin = server.admin();
    let done = wait_for_rotation(&admin);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["active_key"], 2);
    assert_eq!(done["old_keys"], json!([]));
    assert_all_tokens(&admin, &connections);
    assert!(
        server
            .stderr()
            .contains("resuming an unfinished data-key rotation"),
        "{}",
        server.stderr()
    );
}

#[test]
fn the_command_rotates_through_a_running_appliance() {
    let server = Server::start();
    let admin = server.admin();
    let connections = import(&admin, 30);
    let cfg = server.dir().join("config.toml");
    let cfg = cfg.to_str().expect("utf-8");
    let args = ["rotate-data-key", "--config", cfg, "--url", &server.base];
    let exit = run_to_exit(server.dir(), &args, &[]);
    assert!(exit.status.success(), "{}\n{}", exit.stdout, exit.stderr);
    assert!(
        exit.stdout
            .contains("the running appliance is rotating to data key 2"),
        "{}",
        exit.stdout
    );
    assert!(
        exit.stdout.contains("old data keys are retired"),
        "{}",
        exit.stdout
    );
    let status = admin.get_json("/v1/vault/data-key");
    assert_eq!(status["active_key"], 2);
    assert_eq!(status["old_keys"], json!([]));
    assert_all_tokens(&admin, &connections);
    // The start is in the audit log (written in batches within about a second).
    let started = Instant::now();
    while !admin.get_json("/v1/audit?limit=500")["data"]
        .as_array()
        .expect("data")
        .iter()
        .any(|r| r["action"] == "POST /v1/vault/data-key/rotate" && r["status"] == 202)
    {
        assert!(started.elapsed() < Duration::from_secs(10), "not audited");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A wrong key is refused clearly, and nothing changes.
    let refused = run_to_exit(
        server.dir(),
        &args,
        &[(
            "CONNECT_APPLIANCE_ADMIN_KEY".into(),
            "not-the-admin-key-0123456789".into(),
        )],
    );
    assert!(!refused.status.success());
    assert!(refused.stderr.contains("HTTP 401"), "{}", refused.stderr);
    assert_eq!(admin.get_json("/v1/vault/data-key")["active_key"], 2);
}

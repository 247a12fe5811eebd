//! Group commit through the real binary: many concurrent link creations all succeed and are all
//! there after a restart, bad requests among them fail alone, and listing by plugin/status
//! (served by the index) agrees with the full list before and after the restart.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Every id the listing returns for `query`, following `next_cursor`, 7 per page.
fn list_all(admin: &Admin, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = admin.get_json(&format!("/v1/connections?limit=7&{query}{cursor}"));
        for c in page["data"].as_array().expect("data") {
            ids.push(c["id"].as_str().expect("id").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return ids,
        }
    }
}

#[test]
fn concurrent_link_creations_are_all_durable_and_bad_requests_fail_alone() {
    let server = Server::start();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let admin = server.admin();
            std::thread::spawn(move || {
                let mut created = Vec::new();
                for i in 0..15 {
                    // Every fifth request is bad in one of three ways.
                    let body = match (i % 5, i % 3) {
                        (4, 0) => json!({"tenant_id": "t", "plugin": "no-such-plugin"}),
                        (4, 1) => json!({"tenant_id": "", "plugin": "sandbox"}),
                        (4, _) => json!({"tenant_id": "t", "plugin": "sandbox", "connection_id": "conn_missing"}),
                        _ => json!({"tenant_id": format!("tenant-{t}"), "plugin": "sandbox"}),
                    };
                    let r = admin.post_json("/v1/links", &body);
                    let status = r.status();
                    let v: Value = r.json().expect("JSON");
                    if i % 5 == 4 {
                        assert!(status.is_client_error(), "{body}: {status} {v}");
                    } else {
                        assert_eq!(status, StatusCode::CREATED, "{v}");
                        created.push(v["connection_id"].as_str().expect("id").to_string());
                    }
                }
                created
            })
        })
        .collect();
    let created: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    assert_eq!(created.len(), 16 * 12);
    // A few connected ones, so the status filter has two answers.
    let admin = server.admin();
    for i in 0..5 {
        let r = admin.post_json(
            "/v1/connections",
            &json!({"tenant_id": format!("imported-{i}"), "plugin": "sandbox",
                    "credentials": {"access_token": format!("token-{i}"), "expires_in": 3600}}),
        );
        assert_eq!(r.status(), StatusCode::CREATED);
    }

    let check = |admin: &Admin| {
        let all = list_all(admin, "");
        assert_eq!(all.len(), 16 * 12 + 5);
        let pending = list_all(admin, "plugin=sandbox&status=pending");
        let connected = list_all(admin, "status=connected");
        assert_eq!(pending.len(), 16 * 12);
        assert_eq!(connected.len(), 5);
        assert_eq!(list_all(admin, "plugin=sandbox"), all);
        assert!(list_all(admin, "plugin=other").is_empty());
        let want: BTreeSet<&String> = created.iter().collect();
        assert_eq!(pending.iter().collect::<BTreeSet<_>>(), want);
        let link_events = admin.get_json("/v1/events?type=link.created&limit=500");
        assert_eq!(link_events["data"].as_array().expect("data").len(), 16 * 12);
    };
    check(&admin);

    let config = server.config.clone();
    let dir = server.stop();
    let server = Server::start_in(dir, config);
    let admin = server.admin();
    check(&admin);
    for id in &created {
        assert_eq!(admin.connection(id)["status"], "pending");
    }
}

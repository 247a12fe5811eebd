//! The store's read cache of hot connections must never hand out what a write has replaced:
//! every fetch that starts after a refresh, a reconnect, a revocation or a deletion has been
//! answered sees its result, also while other callers keep the cache busy.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn forced_refresh(admin: &Admin, id: &str) -> String {
    admin.get_json(&format!("/v1/connections/{id}/token?force_refresh=true"))["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Runs `body` while two threads fetch `id`'s token in a loop (filling and hitting the cache,
/// racing every write), accepting only 200 or the given refusal.
fn with_busy_readers(server: &Server, id: &str, body: impl FnOnce()) {
    /// Stops the readers also when `body` fails an assertion, so the test fails, not hangs.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let admin = server.admin();
                while !stop.load(Ordering::Relaxed) {
                    let status = admin.get(&format!("/v1/connections/{id}/token")).status();
                    assert!(
                        [StatusCode::OK, StatusCode::CONFLICT, StatusCode::NOT_FOUND]
                            .contains(&status),
                        "{status}"
                    );
                }
            });
        }
        let _stop = StopOnDrop(&stop);
        body();
    });
}

#[test]
fn a_fetch_after_a_refresh_never_returns_the_old_token() {
    let server = Server::start();
    let admin = server.admin();
    let id = connect(&server, "t-cache-refresh");
    let mut current = admin.token(&id);
    assert_eq!(
        admin.token(&id),
        current,
        "a second fetch (a cache hit) agrees"
    );
    with_busy_readers(&server, &id, || {
        for _ in 0..10 {
            let next = forced_refresh(&admin, &id);
            assert_ne!(next, current);
            for _ in 0..3 {
                assert_eq!(
                    admin.token(&id),
                    next,
                    "a fetch after the refresh got the old token"
                );
            }
            current = next;
        }
    });
    assert_eq!(server.sandbox_me(&current).status(), StatusCode::OK);
}

#[test]
fn a_reconnect_through_a_new_link_is_seen_at_once() {
    let server = Server::start();
    let admin = server.admin();
    let id = connect(&server, "t-cache-reconnect");
    let before = admin.token(&id);
    let r = admin.post_json(
        "/v1/links",
        &json!({"tenant_id": "t-cache-reconnect", "plugin": "sandbox", "connection_id": id}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().expect("JSON");
    let link = Link {
        token: v["link_token"].as_str().expect("link_token").to_string(),
        connect_url: v["connect_url"].as_str().expect("connect_url").to_string(),
        connection_id: id.clone(),
    };
    // The link write touched the connection: still connected, same token.
    assert_eq!(admin.token(&id), before);
    let flow = run_flow_for(&server, link, true, "sandbox-user");
    assert_eq!(flow.callback_status, StatusCode::SEE_OTHER);
    let after = admin.token(&id);
    assert_ne!(
        after, before,
        "the reconnect's token replaces the cached one"
    );
    assert_eq!(server.sandbox_me(&after).status(), StatusCode::OK);
}

/// Connects, fills the cache, then runs `end` (revoke or delete, answered with `ended`) among
/// busy readers: every fetch after it is refused with `status` and `code`.
fn refused_after(
    end: fn(&Admin, &str) -> reqwest::blocking::Response,
    ended: StatusCode,
    status: StatusCode,
    code: &str,
) {
    let server = Server::start();
    let admin = server.admin();
    let id = connect(&server, "t-cache-end");
    admin.token(&id);
    with_busy_readers(&server, &id, || {
        assert_eq!(end(&admin, &id).status(), ended);
        for _ in 0..5 {
            assert_json_error(
                admin.get(&format!("/v1/connections/{id}/token")),
                status,
                code,
            );
        }
    });
}

#[test]
fn a_fetch_after_a_revocation_is_refused() {
    refused_after(
        |admin, id| admin.post(&format!("/v1/connections/{id}/revoke")),
        StatusCode::OK,
        StatusCode::CONFLICT,
        "not_connected",
    );
}

#[test]
fn a_fetch_after_a_deletion_is_not_found() {
    refused_after(
        |admin, id| admin.delete(&format!("/v1/connections/{id}")),
        StatusCode::NO_CONTENT,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

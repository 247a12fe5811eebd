//! Token lifecycle against the sandbox provider: forced and expiry-driven refresh (with
//! rotation), revocation and deletion.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

#[test]
fn force_refresh_returns_a_new_token_and_rotates_the_refresh_token() {
    let server = Server::start();
    let admin = server.admin();
    let id = connect(&server, "t-refresh");
    let first = admin.token(&id);
    // A plain fetch of a fresh token does not call the provider.
    assert_eq!(admin.token(&id), first);
    assert_eq!(server.token_requests(), 1);

    let r = admin.get(&format!("/v1/connections/{id}/token?force_refresh=true"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(r.headers(), "cache-control"), "no-store");
    let v: Value = r.json().expect("JSON");
    let second = v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["expires_at"].is_string());
    assert_ne!(second, first);
    assert_eq!(server.token_requests(), 2);
    assert_eq!(server.sandbox_me(&second).status(), StatusCode::OK);
    // The new token is the stored one now.
    assert_eq!(admin.token(&id), second);
    let conn = admin.connection(&id);
    assert_eq!(conn["status"], "connected");
    assert!(conn["last_refreshed_at"].is_string(), "{conn}");

    // The rotated refresh token was stored: the sandbox kills the whole grant when an old
    // refresh token is presented again, so a second refresh only works if rotation was kept.
    let third = admin.get_json(&format!("/v1/connections/{id}/token?force_refresh=true"))
        ["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    assert_ne!(third, second);
    assert_eq!(server.sandbox_me(&third).status(), StatusCode::OK);
    assert_eq!(admin.connection(&id)["status"], "connected");
    assert_eq!(server.token_requests(), 3);
}

/// The brief expects a refreshed-away access token to stop working at the provider.
#[test]
fn force_refresh_retires_the_old_access_token_at_the_sandbox() {
    let server = Server::start();
    let admin = server.admin();
    let id = connect(&server, "t-refresh-old");
    let first = admin.token(&id);
    assert_eq!(server.sandbox_me(&first).status(), StatusCode::OK);
    let second = admin.get_json(&format!("/v1/connections/{id}/token?force_refresh=true"))
        ["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    assert_ne!(second, first);
    assert_eq!(server.sandbox_me(&second).status(), StatusCode::OK);
    let old = server.sandbox_me(&first);
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    assert!(header(old.headers(), "www-authenticate").contains("invalid_token"));
}

#[test]
fn an_expiring_token_is_refreshed_on_fetch() {
    let server = Server::start_with(TestConfig {
        token_ttl_seconds: 2,
        ..TestConfig::default()
    });
    let admin = server.admin();
    let id = connect(&server, "t-ttl");
    let first = admin.token(&id);
    assert_eq!(server.sandbox_me(&first).status(), StatusCode::OK);
    std::thread::sleep(Duration::from_millis(2200));
    assert_ne!(
        server.sandbox_me(&first).status(),
        StatusCode::OK,
        "the sandbox token has expired"
    );
    let second = admin.token(&id);
    assert_ne!(second, first, "a plain fetch refreshed the expired token");
    assert_eq!(server.sandbox_me(&second).status(), StatusCode::OK);
    assert!(server.token_requests() >= 2);
    assert_eq!(admin.connection(&id)["status"], "connected");
}

#[test]
fn revoke_kills_the_grant_and_the_token_endpoint_refuses() {
    let server = Server::start();
    let admin = server.admin();
    let id = connect(&server, "t-revoke");
    let token = admin.token(&id);
    assert_eq!(server.sandbox_me(&token).status(), StatusCode::OK);

    let r = admin.post(&format!("/v1/connections/{id}/revoke"));
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().expect("JSON");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["status"], "revoked");
    assert_eq!(v["provider_revocation"], "revoked");
    assert!(v["provider_error"].is_null());
    assert!(v["revoked_at"].is_string());
    assert!(!v.to_string().contains("sbx_"), "no token in the answer");

    assert_eq!(server.sandbox_me(&token).status(), StatusCode::UNAUTHORIZED);
    assert_eq!(admin.connection(&id)["status"], "revoked");
    assert_json_error(
        admin.get(&format!("/v1/connections/{id}/token")),
        StatusCode::CONFLICT,
        "not_connected",
    );
    assert_json_error(
        admin.get(&format!("/v1/connections/{id}/token?force_refresh=true")),
        StatusCode::CONFLICT,
        "not_connected",
    );
    // Revoking again has nothing left to send.
    let again: Value = admin
        .post(&format!("/v1/connections/{id}/revoke"))
        .json()
        .expect("JSON");
    assert_eq!(again["status"], "revoked");
    assert_eq!(again["provider_revocation"], "no_credentials");
    let listed = admin.get_json("/v1/connections?status=revoked");
    assert_eq!(listed["data"][0]["id"], id.as_str());
}

#[test]
fn delete_revokes_and_removes_the_connection() {
    let server = Server::start();
    let admin = server.admin();
    let id = connect(&server, "t-delete");
    let token = admin.token(&id);
    let r = admin.delete(&format!("/v1/connections/{id}"));
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.text().expect("body").is_empty());
    assert_eq!(
        server.sandbox_me(&token).status(),
        StatusCode::UNAUTHORIZED,
        "deleting a live connection revokes its grant"
    );
    assert_json_error(
        admin.get(&format!("/v1/connections/{id}")),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_json_error(
        admin.get(&format!("/v1/connections/{id}/token")),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_json_error(
        admin.delete(&format!("/v1/connections/{id}")),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert!(admin.get_json("/v1/connections?tenant_id=t-delete")["data"]
        .as_array()
        .expect("data")
        .is_empty());
}

#[test]
fn pending_and_failed_connections_have_no_token() {
    let server = Server::start();
    let admin = server.admin();
    let pending = admin.create_link("t-none", "sandbox", None).connection_id;
    assert_json_error(
        admin.get(&format!("/v1/connections/{pending}/token")),
        StatusCode::CONFLICT,
        "not_connected",
    );
    let denied = run_flow(&server, "t-none", None, false, "x")
        .link
        .connection_id;
    assert_json_error(
        admin.get(&format!("/v1/connections/{denied}/token")),
        StatusCode::CONFLICT,
        "not_connected",
    );
    // Deleting a connection that never connected works without a provider call.
    assert_eq!(
        admin.delete(&format!("/v1/connections/{pending}")).status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(server.token_requests(), 0);
}

#[test]
fn concurrent_callers_needing_a_refresh_share_one_provider_call() {
    let server = Server::start_with(TestConfig {
        token_ttl_seconds: 6,
        ..TestConfig::default()
    });
    let id = connect(&server, "t-single-flight");
    assert_eq!(server.token_requests(), 1);
    // Past half its 6 s lifetime, every fetch needs a refresh; the refreshed token stays good
    // for 3 s, ample for 16 callers even on a loaded machine.
    std::thread::sleep(Duration::from_millis(3100));
    let tokens: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| server.admin().token(&id)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("caller thread"))
            .collect()
    });
    assert_eq!(
        server.token_requests(),
        2,
        "exactly one refresh for 16 callers"
    );
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "all callers got the refreshed token"
    );
    assert_eq!(server.sandbox_me(&tokens[0]).status(), StatusCode::OK);
}

//! The vault at rest (S15, S19): nothing readable in the raw database file, data survives a
//! restart with the same identity, and a wrong or missing identity stops the start.

mod common;

use std::fs;

use common::*;
use reqwest::StatusCode;

const TENANT: &str = "tenant-SECRET-MARKER-42";

fn contains(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.as_bytes();
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_database_file_holds_no_secret_in_the_clear() {
    let server = Server::start();
    let admin = server.admin();
    let flow = run_flow(&server, TENANT, Some(REDIRECT_URL), true, "login-MARKER-77");
    assert_eq!(flow.callback_status, StatusCode::FOUND);
    let id = flow.link.connection_id.clone();
    let access = admin.token(&id);
    // A refresh writes a second credentials record (and a rotated refresh token).
    let refreshed = admin.get_json(&format!("/v1/connections/{id}/token?force_refresh=true"))
        ["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    // A pending link for the same tenant, so a link record is on disk too.
    let pending = admin.create_link(TENANT, "sandbox", Some(REDIRECT_URL));
    let identity = fs::read_to_string(server.identity_path()).expect("identity");
    let secret_key = identity
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("identity line")
        .to_string();
    let db_path = server.db_path();
    let dir = server.stop();

    let raw = fs::read(&db_path).expect("database file");
    assert!(raw.len() > 1000, "the database has content");
    // Positive control, so the scan below cannot pass vacuously: redb keeps table names and
    // keys (connection ids are random, not secret) in the clear.
    assert!(contains(&raw, "credentials"), "table names are visible");
    assert!(contains(&raw, &id), "connection ids are visible");
    for (what, needle) in [
        ("tenant id", TENANT),
        ("tenant id marker", "SECRET-MARKER"),
        ("provider login", "login-MARKER-77"),
        ("access token", access.as_str()),
        ("refreshed access token", refreshed.as_str()),
        ("any sandbox access token", "sbx_at_"),
        ("any sandbox refresh token", "sbx_rt_"),
        ("client secret", SANDBOX_SECRET),
        ("admin key", ADMIN_KEY),
        ("link token", flow.link.token.as_str()),
        ("pending link token", pending.token.as_str()),
        ("state", flow.authorize.state.as_str()),
        ("flow cookie", flow.authorize.cookie_value.as_str()),
        ("redirect url", "localhost:3000"),
        ("vault identity", secret_key.as_str()),
        ("age key prefix", "AGE-SECRET-KEY"),
    ] {
        assert!(
            !contains(&raw, needle),
            "{what} ({needle}) found in the raw database file"
        );
    }
    drop(dir);
}

#[test]
fn identity_file_is_created_with_mode_0600() {
    let server = Server::start();
    let path = server.identity_path();
    let text = fs::read_to_string(&path).expect("identity file");
    assert!(
        text.lines().any(|l| l.starts_with("AGE-SECRET-KEY-1")),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "identity mode {mode:o}");
    }
    assert!(server.db_path().is_file());
}

#[test]
fn a_restart_with_the_same_identity_keeps_everything() {
    let server = Server::start();
    let admin = server.admin();
    let id = connect(&server, TENANT);
    let token = admin.token(&id);
    let pending = admin.create_link("tenant-pending", "sandbox", None);
    let identity_before = fs::read(server.identity_path()).expect("identity");
    let config = server.config.clone();
    let dir = server.stop();

    let server = Server::start_in(dir, config);
    assert_eq!(
        fs::read(server.identity_path()).expect("identity"),
        identity_before,
        "the identity is never regenerated"
    );
    let admin = server.admin();
    let conn = admin.connection(&id);
    assert_eq!(conn["status"], "connected");
    assert_eq!(conn["tenant_id"], TENANT);
    assert_eq!(admin.token(&id), token, "the token is still readable");
    let by_tenant = admin.get_json(&format!("/v1/connections?tenant_id={TENANT}"));
    assert_eq!(by_tenant["data"][0]["id"], id.as_str(), "blind index works");
    // The pending link still works after the restart; the used one is still used.
    let page = plain_client()
        .get(server.url(&format!("/connect/{}", pending.token)))
        .send()
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(server.stderr().contains("opened the vault"));
}

#[test]
fn a_different_identity_is_refused() {
    let server = Server::start();
    let id = connect(&server, TENANT);
    let config = server.config.clone();
    let dir = server.stop();
    let identity_path = dir.path().join("data/vault-identity.txt");
    let saved = fs::read(&identity_path).expect("identity");

    // Another appliance's (valid) identity.
    let other = Server::start();
    let other_identity = fs::read(other.identity_path()).expect("identity");
    drop(other);
    fs::write(&identity_path, &other_identity).expect("write identity");

    let exit = serve_expect_exit(dir.path(), &config.to_toml());
    assert!(!exit.status.success(), "must not start: {}", exit.stderr);
    assert!(
        exit.stderr.to_lowercase().contains("identity"),
        "the message names the identity: {}",
        exit.stderr
    );
    assert!(!exit.stdout.contains("listening on"));
    // The database was not re-initialised: the right identity still opens it.
    fs::write(&identity_path, saved).expect("restore identity");
    let server = Server::start_in(dir, config);
    assert_eq!(server.admin().connection(&id)["status"], "connected");
    server.admin().token(&id);
}

#[test]
fn a_missing_identity_with_an_existing_database_is_refused() {
    let server = Server::start();
    let id = connect(&server, TENANT);
    let config = server.config.clone();
    let dir = server.stop();
    let identity_path = dir.path().join("data/vault-identity.txt");
    let saved = fs::read(&identity_path).expect("identity");
    fs::remove_file(&identity_path).expect("remove identity");

    let exit = serve_expect_exit(dir.path(), &config.to_toml());
    assert!(!exit.status.success(), "must not start: {}", exit.stderr);
    assert!(
        exit.stderr.contains(&identity_path.display().to_string()),
        "the message names the identity file: {}",
        exit.stderr
    );
    assert!(
        !identity_path.exists(),
        "no new identity is generated over an existing database"
    );

    // Restoring the identity from backup brings everything back.
    fs::write(&identity_path, saved).expect("restore identity");
    let server = Server::start_in(dir, config);
    assert_eq!(server.admin().connection(&id)["status"], "connected");
    server.admin().token(&id);
}

#[test]
fn check_reports_a_wrong_identity() {
    let server = Server::start();
    let config_path = server.dir().join("config.toml");
    let dir = server.stop();
    let other = Server::start();
    let other_identity = fs::read(other.identity_path()).expect("identity");
    drop(other);

    let path = config_path.to_str().expect("utf-8").to_string();
    let ok = run_to_exit(dir.path(), &["check", "--config", &path], &[]);
    assert!(ok.status.success(), "{}\n{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("opens with"), "{}", ok.stdout);

    fs::write(dir.path().join("data/vault-identity.txt"), other_identity).expect("write");
    let bad = run_to_exit(dir.path(), &["check", "--config", &path], &[]);
    assert!(!bad.status.success(), "{}\n{}", bad.stdout, bad.stderr);
    assert!(
        format!("{}{}", bad.stdout, bad.stderr).contains("identity"),
        "{}\n{}",
        bad.stdout,
        bad.stderr
    );
}

#[test]
fn rotate_key_rewraps_under_a_new_identity_and_retires_the_old_one() {
    let server = Server::start();
    let admin = server.admin();
    let id = connect(&server, TENANT);
    let token = admin.token(&id);
    let config = server.config.clone();
    // rotate-key refuses while the server holds the database.
    let config_path = server.dir().join("config.toml");
    let cfg = config_path.to_str().expect("utf-8").to_string();
    let busy = run_to_exit(
        server.dir(),
        &[
            "rotate-key",
            "--config",
            &cfg,
            "--new-identity",
            "/nonexistent/x",
        ],
        &[],
    );
    assert!(!busy.status.success(), "{}", busy.stdout);
    assert!(busy.stderr.contains("stop it first"), "{}", busy.stderr);
    let dir = server.stop();
    let old_identity = dir.path().join("data/vault-identity.txt");
    let old_bytes = fs::read(&old_identity).expect("identity");
    let new_identity = dir.path().join("data/new-identity.txt");

    let exit = run_to_exit(
        dir.path(),
        &[
            "rotate-key",
            "--config",
            &cfg,
            "--new-identity",
            new_identity.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(exit.status.success(), "{}\n{}", exit.stdout, exit.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&new_identity)
            .expect("new identity")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    // The old identity no longer opens the database...
    let refused = serve_expect_exit(dir.path(), &config.to_toml());
    assert!(!refused.status.success());
    assert!(refused.stderr.contains("identity"), "{}", refused.stderr);
    // ...the new one does, and every value is still readable (nothing was re-encrypted).
    fs::write(
        &old_identity,
        fs::read(&new_identity).expect("new identity"),
    )
    .expect("swap");
    assert_ne!(fs::read(&old_identity).expect("identity"), old_bytes);
    let server = Server::start_in(dir, config);
    let admin = server.admin();
    assert_eq!(admin.connection(&id)["tenant_id"], TENANT);
    assert_eq!(admin.token(&id), token);
}

#[test]
fn rotate_data_key_reencrypts_every_value_and_keeps_them_readable() {
    let server = Server::start();
    let admin = server.admin();
    let id = connect(&server, TENANT);
    let token = admin.token(&id);
    let pending = admin.create_link("tenant-pending", "sandbox", None);
    let events_before = admin.get_json("/v1/events")["data"]
        .as_array()
        .expect("data")
        .len();
    let config = server.config.clone();
    let dir = server.stop();
    let db = dir.path().join("data/connect.redb");
    let before = fs::read(&db).expect("db");
    let cfg = dir.path().join("config.toml");
    let cfg = cfg.to_str().expect("utf-8");

    let exit = run_to_exit(dir.path(), &["rotate-data-key", "--config", cfg], &[]);
    assert!(exit.status.success(), "{}\n{}", exit.stdout, exit.stderr);
    assert!(exit.stdout.contains("under data key 2"), "{}", exit.stdout);
    assert!(
        exit.stdout.contains("old data keys are retired"),
        "{}",
        exit.stdout
    );
    assert_ne!(fs::read(&db).expect("db"), before);
    // Run again: a second rotation to key 3 works the same way.
    let again = run_to_exit(dir.path(), &["rotate-data-key", "--config", cfg], &[]);
    assert!(
        again.stdout.contains("under data key 3"),
        "{}",
        again.stdout
    );

    let server = Server::start_in(dir, config);
    let admin = server.admin();
    assert_eq!(admin.connection(&id)["tenant_id"], TENANT);
    assert_eq!(admin.token(&id), token);
    let page = plain_client()
        .get(server.url(&format!("/connect/{}", pending.token)))
        .send()
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let by_tenant = admin.get_json(&format!("/v1/connections?tenant_id={TENANT}"));
    assert_eq!(
        by_tenant["data"][0]["id"],
        id.as_str(),
        "blind index unchanged"
    );
    assert_eq!(
        admin.get_json("/v1/events")["data"]
            .as_array()
            .expect("data")
            .len(),
        events_before
    );
}

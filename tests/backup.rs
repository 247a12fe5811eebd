//! `backup` (from a running or a stopped appliance) and `restore`: a point-in-time round trip,
//! still sealed, refused with the wrong identity or over a running appliance.

mod common;

use std::path::Path;

use common::*;
use reqwest::StatusCode;
use tempfile::TempDir;

fn cli(dir: &Path, args: &[&str]) -> Exit {
    let config = dir.join("config.toml");
    let mut all = vec!["--config", config.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    run_to_exit(dir, &all, &[])
}

#[test]
fn a_backup_of_a_running_appliance_restores_to_that_point_in_time() {
    let server = Server::start();
    let kept = connect(&server, "tenant-kept-LEAKCHECK");
    let token = server.admin().token(&kept);
    let out_dir = TempDir::new().expect("dir");
    let out = out_dir.path().join("backup.redb");
    let out_s = out.to_str().expect("utf-8");

    let exit = cli(
        server.dir(),
        &["backup", "--out", out_s, "--url", &server.url("")],
    );
    assert!(exit.status.success(), "{}\n{}", exit.stdout, exit.stderr);
    assert!(exit.stdout.contains("running appliance"), "{}", exit.stdout);
    let raw = std::fs::read(&out).expect("backup file");
    for secret in [token.as_bytes(), b"LEAKCHECK".as_slice()] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret),
            "backup holds a secret in clear"
        );
    }
    // A second backup to the same file is refused.
    let again = cli(
        server.dir(),
        &["backup", "--out", out_s, "--url", &server.url("")],
    );
    assert!(!again.status.success());

    // A change after the backup, which the restore will undo.
    let later = connect(&server, "tenant-later");
    let refused = cli(server.dir(), &["restore", "--from", out_s]);
    assert!(
        !refused.status.success(),
        "restore over a running appliance"
    );
    assert!(refused.stderr.contains("running"), "{}", refused.stderr);

    let dir = server.stop();
    let exit = cli(dir.path(), &["restore", "--from", out_s]);
    assert!(exit.status.success(), "{}\n{}", exit.stdout, exit.stderr);
    assert!(exit.stdout.contains("pre-restore"), "{}", exit.stdout);

    let server = Server::start_in(dir, TestConfig::default());
    let admin = server.admin();
    assert_eq!(admin.token(&kept), token, "the backed-up token decrypts");
    assert_json_error(
        admin.get(&format!("/v1/connections/{later}")),
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[test]
fn offline_backups_and_restores_need_the_same_identity() {
    let server = Server::start();
    let id = connect(&server, "tenant-offline");
    let token = server.admin().token(&id);
    let dir = server.stop();
    let out = dir.path().join("offline.redb");
    let out_s = out.to_str().expect("utf-8");
    let exit = cli(dir.path(), &["backup", "--out", out_s]);
    assert!(exit.status.success(), "{}\n{}", exit.stdout, exit.stderr);
    assert!(exit.stdout.contains("directly"), "{}", exit.stdout);

    // Another appliance (its own identity) cannot restore it, and keeps its own data.
    let other = Server::start();
    let other_id = connect(&other, "tenant-other");
    let other_dir = other.stop();
    let exit = cli(other_dir.path(), &["restore", "--from", out_s]);
    assert!(!exit.status.success());
    assert!(
        exit.stderr.contains("not a usable backup"),
        "{}",
        exit.stderr
    );
    let other = Server::start_in(other_dir, TestConfig::default());
    assert_eq!(other.admin().connection(&other_id)["status"], "connected");
    drop(other);

    // Garbage is refused too; the real one restores.
    let junk = dir.path().join("junk.redb");
    std::fs::write(&junk, b"not a database").expect("write");
    let exit = cli(
        dir.path(),
        &["restore", "--from", junk.to_str().expect("utf-8")],
    );
    assert!(!exit.status.success());
    let exit = cli(dir.path(), &["restore", "--from", out_s]);
    assert!(exit.status.success(), "{}\n{}", exit.stdout, exit.stderr);
    let server = Server::start_in(dir, TestConfig::default());
    assert_eq!(server.admin().token(&id), token);
}

#[test]
fn the_backup_route_is_admin_only() {
    let server = Server::start();
    let r = plain_client()
        .get(server.url("/v1/backup"))
        .send()
        .expect("GET");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = server.admin().get("/v1/backup");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(r.headers(), "content-type"),
        "application/octet-stream"
    );
    assert!(r.bytes().expect("body").len() > 1024);
    // No snapshot file is left behind next to the database.
    let leftovers: Vec<_> = std::fs::read_dir(server.dir().join("data"))
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("snapshot"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn compact_shrinks_a_stopped_appliances_file_and_keeps_every_value() {
    let server = Server::start();
    let admin = server.admin();
    let kept = connect(&server, "tenant-kept");
    let token = admin.token(&kept);
    let big = "x".repeat(4000);
    let ids: Vec<String> = (0..300)
        .map(|i| {
            let r = admin.post_json(
                "/v1/connections",
                &serde_json::json!({"tenant_id": format!("bulk-{i}"), "plugin": "sandbox",
                    "credentials": {"access_token": format!("{big}{i}")}}),
            );
            assert_eq!(r.status(), StatusCode::CREATED);
            let v: serde_json::Value = r.json().expect("JSON");
            v["id"].as_str().expect("id").to_string()
        })
        .collect();
    for id in &ids {
        let r = admin.delete(&format!("/v1/connections/{id}"));
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    let busy = cli(server.dir(), &["compact"]);
    assert!(!busy.status.success());
    assert!(
        busy.stderr.contains("stop it before compacting"),
        "{}",
        busy.stderr
    );

    let config = server.config.clone();
    let dir = server.stop();
    let db = dir.path().join("data/connect.redb");
    let before = std::fs::metadata(&db).expect("db").len();
    let exit = cli(dir.path(), &["compact"]);
    assert!(exit.status.success(), "{}\n{}", exit.stdout, exit.stderr);
    let after = std::fs::metadata(&db).expect("db").len();
    assert!(after < before / 2, "{before} -> {after}");
    assert!(
        exit.stdout
            .contains(&format!("{before} bytes before, {after} after")),
        "{}",
        exit.stdout
    );

    let server = Server::start_in(dir, config);
    let admin = server.admin();
    assert_eq!(admin.token(&kept), token);
    let r = admin.get(&format!("/v1/connections/{}", ids[0]));
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

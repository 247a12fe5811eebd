//! Storage faults: a database that stops accepting writes while the server runs, and one that is
//! read-only at start. The running fault is a file size limit (`RLIMIT_FSIZE`, set on the live
//! process with `prlimit`, with SIGXFSZ ignored): writes that grow the file fail with EFBIG, as
//! they would with ENOSPC on a full disk, and it works the same for root and other users.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use reqwest::blocking::Response;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn import(server: &Server, tenant: &str, token: &str) -> Response {
    server.admin().post_json(
        "/v1/connections",
        &json!({"tenant_id": tenant, "plugin": "sandbox", "credentials": {"access_token": token}}),
    )
}

/// Sets (or with `None` lifts) the soft file size limit of the running process.
fn limit_file_size(pid: u32, bytes: Option<u64>) {
    let soft = bytes.map_or("unlimited".to_string(), |b| b.to_string());
    let status = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--fsize={soft}:"))
        .status()
        .expect("running prlimit (util-linux) to set RLIMIT_FSIZE");
    assert!(status.success(), "prlimit --fsize={soft}: failed");
}

/// A fresh unique token of `len` characters.
fn token(tag: &str, len: usize) -> String {
    let mut t = format!("tok-{tag}-");
    while t.len() < len {
        t.push_str(&hex::encode(connect_appliance::vault::random_bytes::<16>()));
    }
    t.truncate(len);
    t
}

/// Every acknowledged connection is there with the token that was acknowledged, and no refused
/// write left anything behind.
fn assert_data(server: &Server, acked: &[(String, String)], refused: &[String]) {
    let admin = server.admin();
    for (id, tok) in acked {
        assert_eq!(
            &admin.token(id),
            tok,
            "token of acknowledged connection {id}"
        );
    }
    for tenant in refused {
        let v = admin.get_json(&format!("/v1/connections?tenant_id={tenant}"));
        assert_eq!(
            v["data"],
            json!([]),
            "refused write for {tenant} left a row"
        );
    }
}

#[test]
fn writes_answer_503_while_storage_fails_reads_go_on_and_writes_recover() {
    let server = Server::start_with(TestConfig {
        exec_prefix: Some("trap '' XFSZ".into()),
        ..TestConfig::default()
    });
    let mut acked = Vec::new();
    for i in 0..5 {
        let tok = token(&format!("before-{i}"), 64);
        let r = import(&server, &format!("before-{i}"), &tok);
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().expect("JSON");
        acked.push((v["id"].as_str().expect("id").to_string(), tok));
    }
    let link = server.admin().create_link("flow-tenant", "sandbox", None);

    let size = std::fs::metadata(server.db_path()).expect("db file").len();
    limit_file_size(server.pid(), Some(size));
    // The file may have free pages left: write until it has to grow.
    let mut refused = Vec::new();
    for i in 0..500 {
        let tenant = format!("during-{i}");
        let tok = token(&tenant, 4096);
        let r = import(&server, &tenant, &tok);
        if r.status() == StatusCode::CREATED {
            let v: Value = r.json().expect("JSON");
            acked.push((v["id"].as_str().expect("id").to_string(), tok));
            continue;
        }
        assert_json_error(r, StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable");
        refused.push(tenant);
        break;
    }
    assert_eq!(refused.len(), 1, "no write failed under a file size limit");

    // The fault persists: every kind of write is refused cleanly, reads still work.
    for i in 0..5 {
        let tenant = format!("refused-{i}");
        let r = import(&server, &tenant, &token(&tenant, 64));
        assert_json_error(r, StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable");
        refused.push(tenant);
    }
    let r = server
        .admin()
        .post_json("/v1/links", &json!({"tenant_id": "t", "plugin": "sandbox"}));
    assert_json_error(r, StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable");
    let r = browser()
        .get(server.url(&format!("/connect/{}/authorize", link.token)))
        .send()
        .expect("GET authorize");
    assert_error_page(r, StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable");
    assert_data(&server, &acked, &refused);
    let r = plain_client()
        .get(server.url("/livez"))
        .send()
        .expect("livez");
    assert_eq!(r.status(), StatusCode::OK);
    // Not ready while writes fail (a load balancer stops sending work), though reads work.
    for path in ["/readyz", "/healthz"] {
        let r = plain_client().get(server.url(path)).send().expect(path);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
    }

    // The fault clears: writes succeed again without a restart (after at most one retry
    // interval of the reopen), and the flow that failed at its first write now completes.
    limit_file_size(server.pid(), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        let tenant = format!("after-{n}");
        let tok = token(&tenant, 64);
        let r = import(&server, &tenant, &tok);
        n += 1;
        if r.status() == StatusCode::CREATED {
            let v: Value = r.json().expect("JSON");
            acked.push((v["id"].as_str().expect("id").to_string(), tok));
            break;
        }
        assert_json_error(r, StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable");
        refused.push(tenant);
        assert!(Instant::now() < deadline, "writes did not recover");
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..5 {
        let tok = token(&format!("later-{i}"), 64);
        let r = import(&server, &format!("later-{i}"), &tok);
        assert_eq!(r.status(), StatusCode::CREATED, "write after recovery");
        let v: Value = r.json().expect("JSON");
        acked.push((v["id"].as_str().expect("id").to_string(), tok));
    }
    let r = plain_client()
        .get(server.url("/readyz"))
        .send()
        .expect("readyz");
    assert_eq!(r.status(), StatusCode::OK, "ready again");
    let flow = run_flow_for(&server, link.clone(), true, "sandbox-user");
    assert_eq!(flow.callback_status, StatusCode::SEE_OTHER);
    assert_eq!(
        server.admin().connection(&link.connection_id)["status"],
        "connected"
    );
    assert_data(&server, &acked, &refused);
    assert!(server
        .stderr()
        .contains("reopened the database after an I/O error"));

    // And nothing is lost or corrupted across a restart.
    let dir = server.stop();
    let server = Server::start_in(dir, TestConfig::default());
    assert_data(&server, &acked, &refused);
    assert_eq!(
        server.admin().connection(&link.connection_id)["status"],
        "connected"
    );
    assert!(!server.stderr().contains("panicked"));
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// Makes the data directory read-only until dropped: a read-only bind mount for root (which file
/// modes do not stop), file modes for anyone else.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(data: &Path) -> ReadOnly {
        if is_root() {
            run("mount", &["--bind", path_str(data), path_str(data)]);
            run("mount", &["-o", "remount,ro,bind", path_str(data)]);
        } else {
            run("chmod", &["0444", path_str(&data.join("connect.redb"))]);
            run("chmod", &["0555", path_str(data)]);
        }
        let probe = std::fs::OpenOptions::new()
            .write(true)
            .open(data.join("connect.redb"));
        assert!(probe.is_err(), "the database is still writable");
        ReadOnly(data.to_path_buf())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if is_root() {
            let _ = Command::new("umount").arg(&self.0).status();
        } else {
            let _ = Command::new("chmod").arg("0755").arg(&self.0).status();
            let _ = Command::new("chmod")
                .arg("0644")
                .arg(self.0.join("connect.redb"))
                .status();
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

#[test]
fn a_read_only_database_stops_the_start_with_a_message_naming_it() {
    let server = Server::start();
    let tok = token("ro", 64);
    let r = import(&server, "ro-tenant", &tok);
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let db = server.db_path();
    let dir = server.stop();

    let config = TestConfig::default();
    {
        let _ro = ReadOnly::new(&dir.path().join("data"));
        let exit = serve_expect_exit(dir.path(), &config.to_toml());
        assert!(!exit.status.success(), "served on a read-only database");
        let named = format!("cannot open the database {}", db.display());
        assert!(
            exit.stderr.contains(&named) && exit.stderr.contains("must be writable"),
            "stderr:\n{}",
            exit.stderr
        );
        assert!(!exit.stderr.contains("panicked"), "{}", exit.stderr);
    }
    let server = Server::start_in(dir, config);
    assert_eq!(server.admin().token(&id), tok);
}

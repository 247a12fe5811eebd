//! `[server.tls]`: the appliance serves HTTPS itself, with Secure `__Host-` flow cookies and
//! https connect URLs; bad certificate or key files stop the start naming the key.

mod common;

use std::fs::{self, File};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

/// A self-signed certificate for 127.0.0.1; returns its PEM.
fn write_cert(dir: &Path) -> String {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    let pem = cert.cert.pem();
    fs::write(dir.join("cert.pem"), &pem).expect("cert");
    fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).expect("key");
    pem
}

fn config() -> String {
    TestConfig::default().to_toml()
}

struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, text: &str) -> Running {
    let path = write_config(dir, text);
    let stdout = dir.join("tls.stdout");
    let child = command(&[])
        .arg("--config")
        .arg(&path)
        .stdout(File::create(&stdout).expect("stdout"))
        .stderr(File::create(dir.join("tls.stderr")).expect("stderr"))
        .spawn()
        .expect("spawn");
    let mut running = Running {
        child,
        base: String::new(),
    };
    let started = Instant::now();
    loop {
        let out = fs::read_to_string(&stdout).unwrap_or_default();
        if let Some(line) = out.lines().find(|l| l.starts_with("listening on ")) {
            running.base = line["listening on ".len()..].trim().to_string();
            return running;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no `listening on`: {}",
            fs::read_to_string(dir.join("tls.stderr")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tls_table() -> String {
    "[server.tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n".into()
}

#[test]
fn the_appliance_serves_https_with_secure_cookies() {
    let dir = TempDir::new().expect("dir");
    let pem = write_cert(dir.path());
    let text = format!("{}\n{}", config(), tls_table());
    let server = start(dir.path(), &text);
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let client = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("root"))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client");
    let r = client
        .get(format!("{}/healthz", server.base))
        .send()
        .expect("https GET");
    assert_eq!(r.status(), StatusCode::OK);

    let r = client
        .post(format!("{}/v1/links", server.base))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"tenant_id": "t", "plugin": "sandbox"}))
        .send()
        .expect("link");
    assert_eq!(r.status(), StatusCode::CREATED);
    let link: Value = r.json().expect("JSON");
    let connect_url = link["connect_url"].as_str().expect("connect_url");
    assert!(
        connect_url.starts_with("https://127.0.0.1:"),
        "{connect_url}"
    );
    let r = client
        .get(format!("{connect_url}/authorize"))
        .send()
        .expect("authorize");
    assert_eq!(r.status(), StatusCode::FOUND);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.contains("ca_flow_"))
        .expect("flow cookie")
        .to_string();
    assert!(cookie.starts_with("__Host-ca_flow_"), "{cookie}");
    assert!(cookie.contains("Secure"), "{cookie}");
    let location = header(r.headers(), "location");
    assert!(
        location.contains("redirect_uri=https%3A%2F%2F127.0.0.1"),
        "{location}"
    );

    // Plain HTTP to the TLS port gets no answer it could use.
    let plain = plain_client()
        .get(server.base.replacen("https://", "http://", 1) + "/healthz")
        .timeout(Duration::from_secs(5))
        .send();
    assert!(plain.is_err() || !plain.expect("response").status().is_success());
}

#[test]
fn unusable_certificate_or_key_files_name_the_key() {
    let dir = TempDir::new().expect("dir");
    write_cert(dir.path());
    let missing = format!(
        "{}\n[server.tls]\ncert_file = \"nope.pem\"\nkey_file = \"key.pem\"\n",
        config()
    );
    let exit = serve_expect_exit(dir.path(), &missing);
    assert_eq!(exit.status.code(), Some(2), "{}", exit.stderr);
    assert!(
        exit.stderr.contains("server.tls.cert_file"),
        "{}",
        exit.stderr
    );

    // A key that is not the certificate's.
    let other = rcgen::KeyPair::generate().expect("key");
    fs::write(dir.path().join("other.pem"), other.serialize_pem()).expect("write");
    let mismatch = format!(
        "{}\n[server.tls]\ncert_file = \"cert.pem\"\nkey_file = \"other.pem\"\n",
        config()
    );
    let exit = serve_expect_exit(dir.path(), &mismatch);
    assert_eq!(exit.status.code(), Some(2), "{}", exit.stderr);
    assert!(
        exit.stderr.contains("server.tls.key_file"),
        "{}",
        exit.stderr
    );
    assert!(
        !exit.stderr.contains("PRIVATE KEY"),
        "no key material in errors"
    );
}

//! Webhooks against the real binary and real loopback receivers: Standard Webhooks signatures
//! checked independently, filtering, retries with a stable id, a durable outbox across a
//! restart, listing and replay, credential delivery, and isolation from a hanging receiver.

mod common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::receiver::{free_port, Reply, Seen, Upstream};
use common::*;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Sha256;

/// 32 bytes that spell a marker, so a leak of the raw key is as findable as the encoded one.
const KEY: &[u8; 32] = b"whk-LEAKCHECK-0123456789abcdefgh";

fn secret() -> String {
    format!("whsec_{}", STANDARD.encode(KEY))
}

/// A `[[webhooks]]` table with fast retries, plus `more` lines.
fn hook(id: &str, url: &str, more: &str) -> String {
    format!(
        "\n[[webhooks]]\nid = {}\nurl = {}\nsecret = {}\nfirst_retry_seconds = 1\n{more}\n",
        toml_str(id),
        toml_str(url),
        toml_str(&secret())
    )
}

fn start(hooks: &str) -> Server {
    Server::start_with(TestConfig {
        extra: hooks.to_string(),
        ..TestConfig::default()
    })
}

/// Checks the Standard Webhooks headers of `seen` with our own HMAC and returns the body.
fn verified(seen: &Seen) -> Value {
    let id = seen.header("webhook-id").expect("webhook-id");
    let ts = seen.header("webhook-timestamp").expect("webhook-timestamp");
    let signature = seen.header("webhook-signature").expect("webhook-signature");
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).expect("key");
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&seen.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert!(
        signature.split(' ').any(|s| s == expected),
        "bad signature {signature} for {id}"
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sent: i64 = ts.parse().expect("unix seconds");
    assert!((now - sent).abs() < 300, "timestamp {sent} vs now {now}");
    assert_eq!(seen.header("content-type"), Some("application/json"));
    serde_json::from_slice(&seen.body).expect("JSON body")
}

fn types(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| verified(s)["type"].as_str().expect("type").to_string())
        .collect()
}

/// Polls `GET path` until `done` holds for its JSON; returns it.
fn poll(admin: &Admin, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let v = admin.get_json(path);
        if done(&v) {
            return v;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{path}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn deliveries(v: &Value) -> &Vec<Value> {
    v["data"].as_array().expect("data")
}

#[test]
fn receivers_get_signed_filtered_events_and_the_outbox_can_be_listed_and_replayed() {
    let all = Upstream::start();
    let connected_only = Upstream::start();
    let server = start(&format!(
        "{}{}",
        hook("all", &all.url("/hook"), "events = [\"*\"]"),
        hook(
            "connected",
            &connected_only.url("/in?token=receiver-own-token"),
            "events = [\"connection.connected\"]"
        ),
    ));
    let admin = server.admin();
    let id = connect(&server, "tenant-hooks");

    let seen = all.wait_for(2, Duration::from_secs(10));
    assert_eq!(types(&seen), ["link.created", "connection.connected"]);
    let body = verified(&seen[1]);
    assert_eq!(body["data"]["connection_id"], id.as_str());
    assert_eq!(body["data"]["tenant_id"], "tenant-hooks");
    assert_eq!(body["data"]["plugin"], "sandbox");
    assert!(body["timestamp"]
        .as_str()
        .expect("timestamp")
        .ends_with('Z'));
    assert!(body["data"].get("credentials").is_none(), "{body}");
    let seen = connected_only.wait_for(1, Duration::from_secs(10));
    assert_eq!(types(&seen), ["connection.connected"]);
    assert!(seen[0]
        .request_line
        .starts_with("POST /in?token=receiver-own-token "));
    let webhook_id = seen[0].header("webhook-id").expect("id").to_string();

    // The listing: outcomes, never payloads or URLs.
    let listed = poll(&admin, "/v1/webhooks/deliveries", |v| {
        deliveries(v).len() == 3 && deliveries(v).iter().all(|d| d["status"] == "delivered")
    });
    let text = listed.to_string();
    assert!(
        !text.contains("receiver-own-token") && !text.contains("tenant-hooks"),
        "{text}"
    );
    let mine = admin.get_json("/v1/webhooks/deliveries?webhook=connected");
    let d = &deliveries(&mine)[0];
    assert_eq!(deliveries(&mine).len(), 1);
    assert_eq!(d["id"], webhook_id.as_str());
    assert_eq!(d["event_type"], "connection.connected");
    assert_eq!(
        (d["attempts"].as_u64(), d["last_status_code"].as_u64()),
        (Some(1), Some(200))
    );
    assert!(
        d["delivered_at"].is_string() && d["next_attempt_at"].is_null(),
        "{d}"
    );
    let failed = admin.get_json("/v1/webhooks/deliveries?status=failed");
    assert!(deliveries(&failed).is_empty());
    let first = admin.get_json("/v1/webhooks/deliveries?limit=2");
    assert_eq!(deliveries(&first).len(), 2);
    let cursor = first["next_cursor"].as_str().expect("cursor");
    let rest = admin.get_json(&format!("/v1/webhooks/deliveries?after={cursor}"));
    assert_eq!(deliveries(&rest).len(), 1);
    assert!(rest["next_cursor"].is_null());
    for (query, code) in [
        ("limit=0", "invalid_query"),
        ("limit=501", "invalid_query"),
        ("status=lost", "invalid_query"),
        ("bogus=1", "invalid_query"),
        ("webhook=nope", "invalid_request"),
        ("after=nope", "invalid_request"),
    ] {
        let r = admin.get(&format!("/v1/webhooks/deliveries?{query}"));
        assert_json_error(r, StatusCode::BAD_REQUEST, code);
    }

    // Replay: the same webhook-id again, correctly signed with a fresh timestamp.
    let r = admin.post(&format!("/v1/webhooks/deliveries/{webhook_id}/replay"));
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.json::<Value>().expect("JSON")["status"], "pending");
    let seen = connected_only.wait_for(2, Duration::from_secs(10));
    assert_eq!(seen[1].header("webhook-id"), Some(webhook_id.as_str()));
    assert_eq!(
        verified(&seen[1])["data"]["id"],
        verified(&seen[0])["data"]["id"]
    );
    poll(&admin, "/v1/webhooks/deliveries?webhook=connected", |v| {
        deliveries(v)[0]["status"] == "delivered" && deliveries(v)[0]["attempts"] == 2
    });
    assert_json_error(
        admin.post("/v1/webhooks/deliveries/msg_0000000000000999_all/replay"),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert!(!server.stderr().contains("receiver-own-token"));
}

#[test]
fn a_failed_attempt_is_retried_with_the_same_webhook_id() {
    let receiver = Upstream::start();
    receiver.then(Reply::status(500));
    let server = start(&hook(
        "flaky",
        &receiver.url("/hook"),
        "events = [\"connection.connected\"]",
    ));
    connect(&server, "tenant-retry");
    let seen = receiver.wait_for(2, Duration::from_secs(15));
    assert_eq!(seen[0].header("webhook-id"), seen[1].header("webhook-id"));
    assert_eq!(verified(&seen[0]), verified(&seen[1]), "the same message");
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_millis(500),
        "retried after a backoff, not at once: {gap:?}"
    );
    let listed = poll(&server.admin(), "/v1/webhooks/deliveries", |v| {
        deliveries(v)[0]["status"] == "delivered"
    });
    let d = &deliveries(&listed)[0];
    assert_eq!(
        (d["attempts"].as_u64(), d["last_status_code"].as_u64()),
        (Some(2), Some(200))
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(receiver.seen().len(), 2, "nothing after success");
}

#[test]
fn deliveries_survive_a_restart_and_a_failed_one_can_be_replayed() {
    let (later_port, gone_port) = (free_port(), free_port());
    let config = TestConfig {
        extra: format!(
            "{}{}",
            hook(
                "later",
                &format!("http://127.0.0.1:{later_port}/hook"),
                "events = [\"connection.connected\"]"
            ),
            hook(
                "gone",
                &format!("http://127.0.0.1:{gone_port}/hook"),
                "events = [\"connection.connected\"]\nmax_retry_seconds = 1"
            ),
        ),
        ..TestConfig::default()
    };
    let server = Server::start_with(config.clone());
    let admin = server.admin();
    connect(&server, "tenant-restart");
    let pending = poll(&admin, "/v1/webhooks/deliveries?webhook=later", |v| {
        deliveries(v)
            .first()
            .is_some_and(|d| d["attempts"].as_u64() >= Some(1))
    });
    let d = &deliveries(&pending)[0];
    assert_eq!(d["status"], "pending");
    assert_eq!(d["last_error"], "connection_failed");
    assert!(d["next_attempt_at"].is_string());
    let later_id = d["id"].as_str().expect("id").to_string();
    assert_json_error(
        admin.post(&format!("/v1/webhooks/deliveries/{later_id}/replay")),
        StatusCode::CONFLICT,
        "delivery_pending",
    );
    let failed = poll(&admin, "/v1/webhooks/deliveries?webhook=gone", |v| {
        deliveries(v)[0]["status"] == "failed"
    });
    let gone_id = deliveries(&failed)[0]["id"]
        .as_str()
        .expect("id")
        .to_string();

    // Down while the server stops; up after it restarts: the outbox picks up where it was.
    let dir = server.stop();
    let server = Server::start_in(dir, config);
    let later = Upstream::start_on(later_port);
    let seen = later.wait_for(1, Duration::from_secs(20));
    assert_eq!(seen[0].header("webhook-id"), Some(later_id.as_str()));
    assert_eq!(verified(&seen[0])["data"]["tenant_id"], "tenant-restart");

    // The failed one stays failed until replayed.
    let gone = Upstream::start_on(gone_port);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(gone.seen().is_empty());
    let r = server
        .admin()
        .post(&format!("/v1/webhooks/deliveries/{gone_id}/replay"));
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let seen = gone.wait_for(1, Duration::from_secs(10));
    assert_eq!(seen[0].header("webhook-id"), Some(gone_id.as_str()));
    poll(
        &server.admin(),
        "/v1/webhooks/deliveries?status=delivered",
        |v| deliveries(v).len() == 2,
    );
}

#[test]
fn credentials_go_only_to_hooks_that_ask_work_at_the_provider_and_are_never_stored() {
    let vault = Upstream::start();
    let plain = Upstream::start();
    let server = start(&format!(
        "{}{}",
        hook(
            "vault",
            &vault.url("/tokens"),
            "events = [\"connection.connected\", \"connection.refreshed\"]\ndeliver_credentials = true"
        ),
        hook("plain", &plain.url("/hook"), "events = [\"connection.connected\"]"),
    ));
    let admin = server.admin();
    let id = connect(&server, "tenant-creds");
    let seen = vault.wait_for(1, Duration::from_secs(10));
    let credentials = verified(&seen[0])["data"]["credentials"].clone();
    let access = credentials["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    assert_eq!(access, admin.token(&id));
    assert_eq!(server.sandbox_me(&access).status(), StatusCode::OK);
    assert!(credentials["refresh_token"].is_string(), "{credentials}");
    assert!(credentials["expires_at"].is_string() && credentials["token_type"].is_string());
    assert!(credentials["scopes"].is_array());
    let seen = plain.wait_for(1, Duration::from_secs(10));
    assert!(verified(&seen[0])["data"].get("credentials").is_none());

    // A refresh pushes the new token.
    let refreshed = admin.get_json(&format!("/v1/connections/{id}/token?force_refresh=true"))
        ["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let seen = vault.wait_for(2, Duration::from_secs(10));
    let body = verified(&seen[1]);
    assert_eq!(body["type"], "connection.refreshed");
    assert_eq!(
        body["data"]["credentials"]["access_token"],
        refreshed.as_str()
    );

    poll(&admin, "/v1/webhooks/deliveries?status=delivered", |v| {
        deliveries(v).len() == 3
    });
    let listing = admin.get("/v1/webhooks/deliveries").text().expect("body");
    let log = server.stderr();
    let dir = server.stop();
    let raw = std::fs::read(dir.path().join("data/connect.redb")).expect("db");
    let encoded = secret();
    let key = String::from_utf8_lossy(KEY).into_owned();
    for (what, needle) in [
        ("access token", access.as_str()),
        ("refreshed token", refreshed.as_str()),
        ("any sandbox token", "sbx_"),
        ("tenant id", "tenant-creds"),
        ("webhook secret", encoded.as_str()),
        ("webhook key", key.as_str()),
    ] {
        let hit = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!hit(&raw), "{what} in the raw database file");
        assert!(!hit(log.as_bytes()), "{what} in the log");
        assert!(!hit(listing.as_bytes()), "{what} in the deliveries listing");
    }
}

#[test]
fn a_hanging_receiver_delays_neither_another_receiver_nor_the_connect_flow() {
    let hanging = Upstream::start();
    hanging.by_default(Reply {
        delay: Duration::from_secs(60),
        ..Reply::status(200)
    });
    let fast = Upstream::start();
    let events = "events = [\"connection.connected\"]";
    let server = start(&format!(
        "{}{}",
        hook(
            "hanging",
            &hanging.url("/hook"),
            &format!("{events}\ntimeout_seconds = 60\nconcurrency = 1")
        ),
        hook("fast", &fast.url("/hook"), events),
    ));
    for n in 1..=3 {
        let started = Instant::now();
        connect(&server, &format!("tenant-{n}"));
        let flow = started.elapsed();
        assert!(
            flow < Duration::from_secs(10),
            "connect flow {n} took {flow:?}"
        );
        let seen = fast.wait_for(n, Duration::from_secs(10));
        let lag = seen[n - 1].at.saturating_duration_since(started);
        assert!(
            lag < Duration::from_secs(10),
            "delivery {n} arrived after {lag:?}"
        );
    }
    assert_eq!(
        hanging.seen().len(),
        1,
        "one attempt at a time to the hanging receiver"
    );
    let listed = server
        .admin()
        .get_json("/v1/webhooks/deliveries?webhook=hanging");
    assert!(deliveries(&listed).iter().all(|d| d["status"] == "pending"));
}

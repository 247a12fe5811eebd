//! kill -9 under concurrent durable writes. Writers import credentials, run sandbox connect flows
//! and force refreshes; every write whose 2xx answer arrived is recorded. The process is killed
//! at a random moment, restarted on the same directory, and everything acknowledged so far must
//! be there and decrypt to exactly what was acknowledged. Timings come from a seeded RNG, printed
//! (and taken from `CRASH_SEED`) so a failing schedule can be replayed.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

const ITERATIONS: u64 = 25;
const WRITERS: u64 = 4;

/// splitmix64: small, seedable, good enough to pick operations and kill times.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// A connection from a sandbox flow: its acknowledged tokens in order, and whether a refresh
/// was in flight when the process died (its outcome may or may not have been stored).
#[derive(Default)]
struct FlowConn {
    tokens: Vec<String>,
    in_flight: bool,
    iteration: u64,
}

/// Everything a 2xx answer confirmed.
#[derive(Default)]
struct Acked {
    /// Imported connections: id, access token (never changed afterwards), iteration.
    imports: Vec<(String, String, u64)>,
    flows: BTreeMap<String, FlowConn>,
    /// Connections created with an acknowledged link (pending, or completed without an answer).
    links: Vec<(String, u64)>,
    refreshes: usize,
}

/// Why a writer stopped: the server went away (expected once it is killed), or a bug.
enum Halt {
    Down,
    Bug(String),
}

struct Writer {
    base: String,
    iteration: u64,
    id: u64,
    rng: Rng,
    admin: Client,
    acked: Arc<Mutex<Acked>>,
    killing: Arc<AtomicBool>,
}

impl Writer {
    /// A transport error is expected once the kill has begun, and a bug before.
    fn halt(&self, e: reqwest::Error) -> Halt {
        if self.killing.load(Ordering::SeqCst) {
            Halt::Down
        } else {
            Halt::Bug(format!("request failed while the server was up: {e}"))
        }
    }

    fn send(
        &self,
        req: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, Halt> {
        req.send().map_err(|e| self.halt(e))
    }

    fn json(
        &self,
        req: reqwest::blocking::RequestBuilder,
        want: StatusCode,
    ) -> Result<Value, Halt> {
        let r = self.send(req)?;
        let status = r.status();
        let text = r.text().map_err(|e| self.halt(e))?;
        if status != want {
            return Err(Halt::Bug(format!("expected {want}, got {status}: {text}")));
        }
        serde_json::from_str(&text).map_err(|e| Halt::Bug(format!("bad JSON {text:?}: {e}")))
    }

    fn admin_get(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        self.admin
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY)
    }

    fn run(mut self) -> Result<(), String> {
        let mut own: Vec<String> = Vec::new();
        for n in 0.. {
            let op = self.rng.below(10);
            let done = if op < 6 {
                self.import(n)
            } else if op < 8 || own.is_empty() {
                self.flow(n).map(|id| own.push(id))
            } else {
                let id = own[self.rng.below(own.len() as u64) as usize].clone();
                self.refresh(&id)
            };
            match done {
                Ok(()) => {}
                Err(Halt::Down) => return Ok(()),
                Err(Halt::Bug(why)) => return Err(why),
            }
        }
        Ok(())
    }

    fn import(&mut self, n: u64) -> Result<(), Halt> {
        let tenant = format!("crash-{}-{}-{n}", self.iteration, self.id);
        let token = format!("tok-{tenant}-{:016x}", self.rng.below(u64::MAX));
        let body = json!({"tenant_id": tenant, "plugin": "sandbox",
            "credentials": {"access_token": token, "refresh_token": format!("r-{token}")}});
        let req = self
            .admin
            .post(format!("{}/v1/connections", self.base))
            .bearer_auth(ADMIN_KEY)
            .json(&body);
        let v = self.json(req, StatusCode::CREATED)?;
        let id = v["id"].as_str().unwrap_or_default().to_string();
        let mut acked = self.acked.lock().expect("acked");
        acked.imports.push((id, token, self.iteration));
        Ok(())
    }

    /// Link → authorize → sandbox approval → callback, then the token is read.
    fn flow(&mut self, n: u64) -> Result<String, Halt> {
        let tenant = format!("crash-flow-{}-{}-{n}", self.iteration, self.id);
        let req = self
            .admin
            .post(format!("{}/v1/links", self.base))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"tenant_id": tenant, "plugin": "sandbox"}));
        let link = self.json(req, StatusCode::CREATED)?;
        let id = link["connection_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut acked = self.acked.lock().expect("acked");
        acked.links.push((id.clone(), self.iteration));
        drop(acked);
        let token = link["link_token"].as_str().unwrap_or_default();
        let browser = browser();
        let r = self.send(browser.get(format!("{}/connect/{token}/authorize", self.base)))?;
        let to_provider = self.redirect(&r, StatusCode::FOUND)?;
        let html = self.send(self.admin.get(to_provider))?;
        let html = html.text().map_err(|e| self.halt(e))?;
        let request_id = hidden_value(&html, "request_id")
            .ok_or_else(|| Halt::Bug(format!("no request_id on the sandbox page: {html}")))?;
        let form = [
            ("request_id", request_id.as_str()),
            ("decision", "approve"),
            ("login", "u"),
        ];
        let r = self.send(
            self.admin
                .post(format!("{}/sandbox/authorize", self.base))
                .form(&form),
        )?;
        let callback = self.redirect(&r, StatusCode::SEE_OTHER)?;
        let r = self.send(browser.get(callback))?;
        let result = self.redirect(&r, StatusCode::SEE_OTHER)?;
        if !result.contains("status=connected") {
            return Err(Halt::Bug(format!("callback ended at {result}")));
        }
        self.acked
            .lock()
            .expect("acked")
            .flows
            .insert(id.clone(), FlowConn::default());
        let v = self.json(
            self.admin_get(&format!("/v1/connections/{id}/token")),
            StatusCode::OK,
        )?;
        self.record_token(&id, &v);
        Ok(id)
    }

    fn refresh(&mut self, id: &str) -> Result<(), Halt> {
        self.acked
            .lock()
            .expect("acked")
            .flows
            .get_mut(id)
            .expect("own flow")
            .in_flight = true;
        let path = format!("/v1/connections/{id}/token?force_refresh=true");
        let v = self.json(self.admin_get(&path), StatusCode::OK)?;
        self.record_token(id, &v);
        self.acked.lock().expect("acked").refreshes += 1;
        Ok(())
    }

    fn record_token(&self, id: &str, v: &Value) {
        let token = v["access_token"].as_str().unwrap_or_default().to_string();
        let mut acked = self.acked.lock().expect("acked");
        let conn = acked.flows.get_mut(id).expect("recorded flow");
        conn.tokens.push(token);
        conn.in_flight = false;
    }

    fn redirect(&self, r: &reqwest::blocking::Response, want: StatusCode) -> Result<String, Halt> {
        match r.headers().get("location").and_then(|v| v.to_str().ok()) {
            Some(l) if r.status() == want => Ok(l.to_string()),
            _ => Err(Halt::Bug(format!(
                "expected a {want} redirect, got {}",
                r.status()
            ))),
        }
    }
}

fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..start + html[start..].find('"')?].to_string())
}

/// Checks what was acknowledged: the writes of the iteration just killed and a sample of older
/// ones, or everything with `full`.
fn verify(server: &Server, acked: &mut Acked, rng: &mut Rng, now: u64, full: bool, ctx: &str) {
    let admin = server.admin();
    let mut check = |iteration: u64| full || iteration + 1 >= now || rng.below(20) == 0;
    for (id, token, iteration) in &acked.imports {
        if check(*iteration) {
            let r = admin.get(&format!("/v1/connections/{id}/token"));
            assert_eq!(r.status(), StatusCode::OK, "{ctx}: import {id}");
            let v: Value = r.json().expect("JSON");
            assert_eq!(
                v["access_token"],
                token.as_str(),
                "{ctx}: token of import {id}"
            );
        }
    }
    for (id, conn) in &mut acked.flows {
        if !check(conn.iteration) {
            continue;
        }
        let c = admin.connection(id);
        assert_eq!(c["status"], "connected", "{ctx}: flow connection {id}: {c}");
        let now = admin.token(id);
        match conn.tokens.split_last() {
            Some((newest, _)) if !conn.in_flight => {
                assert_eq!(&now, newest, "{ctx}: {id} lost its acknowledged token");
            }
            // A refresh was cut off: its new token may or may not have been stored, but an
            // acknowledged token is never replaced by an older one.
            Some((_, older)) => {
                assert!(
                    !older.contains(&now),
                    "{ctx}: {id} went back to an older token"
                );
            }
            None => {}
        }
        if conn.tokens.last() != Some(&now) {
            conn.tokens.push(now);
        }
        conn.in_flight = false;
    }
    for (id, iteration) in &acked.links {
        if !check(*iteration) {
            continue;
        }
        assert_eq!(
            admin.get(&format!("/v1/connections/{id}")).status(),
            StatusCode::OK,
            "{ctx}: link connection {id}"
        );
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_at_random_moments() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            u64::from(
                std::time::SystemTime::UNIX_EPOCH
                    .elapsed()
                    .expect("clock")
                    .subsec_nanos(),
            )
        });
    eprintln!("crash test seed {seed} (replay the schedule with CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let config = TestConfig {
        extra: "[limits]\npublic_requests_per_minute = 1000000\n".into(),
        ..TestConfig::default()
    };
    let acked = Arc::new(Mutex::new(Acked::default()));
    let started = Instant::now();
    let mut dir = tempfile::TempDir::new().expect("temp dir");
    for iteration in 0..ITERATIONS {
        let ctx = format!("seed {seed}, iteration {iteration}");
        let server = Server::start_in(dir, config.clone());
        verify(
            &server,
            &mut acked.lock().expect("acked"),
            &mut rng,
            iteration,
            false,
            &ctx,
        );
        let killing = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| {
                let writer = Writer {
                    base: server.base.clone(),
                    iteration,
                    id,
                    rng: Rng(seed ^ (iteration << 8 | id).wrapping_mul(0x2545_f491_4f6c_dd1d)),
                    admin: plain_client(),
                    acked: Arc::clone(&acked),
                    killing: Arc::clone(&killing),
                };
                std::thread::spawn(move || writer.run())
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100 + rng.below(500)));
        killing.store(true, Ordering::SeqCst);
        dir = server.kill();
        for w in writers {
            if let Err(why) = w.join().expect("writer thread") {
                panic!("{ctx}: {why}");
            }
        }
    }
    let server = Server::start_in(dir, config);
    let mut acked = acked.lock().expect("acked");
    verify(
        &server,
        &mut acked,
        &mut rng,
        ITERATIONS,
        true,
        &format!("seed {seed}, final"),
    );
    eprintln!(
        "{ITERATIONS} kills in {:?}: {} imports, {} flows, {} refreshes, {} links acknowledged",
        started.elapsed(),
        acked.imports.len(),
        acked.flows.len(),
        acked.refreshes,
        acked.links.len()
    );
    assert!(
        acked.imports.len() > 100 && acked.refreshes > 5,
        "too little load to mean anything"
    );
    assert!(!server.stderr().contains("panicked"));
}

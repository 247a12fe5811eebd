//! A scripted HTTP server on loopback standing in for a provider's token endpoint or API:
//! each request is recorded and answered from a script of replies.

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use super::receiver::Seen;

/// A scripted answer: status, extra headers, body.
type Reply = (u16, Vec<(String, String)>, String);

/// A one-request-per-connection HTTP server answering from a script (then 200 `{"ok":true}`).
pub struct Upstream {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Vec<Reply>>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<Vec<Reply>>> = Arc::default();
        let (seen2, script2) = (Arc::clone(&seen), Arc::clone(&script));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(request) = super::receiver::read_request(&stream) else {
                    continue;
                };
                seen2.lock().expect("lock").push(request);
                let (status, extra, text) = {
                    let mut s = script2.lock().expect("lock");
                    if s.is_empty() {
                        (200, vec![], "{\"ok\":true}".to_string())
                    } else {
                        s.remove(0)
                    }
                };
                if let Some((_, ms)) = extra.iter().find(|(k, _)| k == "x-delay-ms") {
                    std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
                }
                let mut out = stream;
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\nset-cookie: upstream=1\r\n",
                    text.len()
                );
                if !extra
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                {
                    head.push_str("content-type: application/json\r\n");
                }
                for (k, v) in extra.iter().filter(|(k, _)| k != "x-delay-ms") {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                let _ = out.write_all(format!("{head}\r\n{text}").as_bytes());
            }
        });
        Upstream { port, seen, script }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}/base", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn then(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        self.script.lock().expect("lock").push((
            status,
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body.to_string(),
        ));
    }
}

/// A custom OAuth plugin whose authorization and token endpoints are the upstream, plus `more`
/// TOML lines.
pub fn custom_plugin(name: &str, upstream: &Upstream, more: &str) -> String {
    format!(
        "\n[plugins.{name}]\nauthorization_url = \"http://127.0.0.1:{port}/authorize\"\ntoken_url = \"http://127.0.0.1:{port}/token\"\n{more}\n",
        port = upstream.port
    )
}

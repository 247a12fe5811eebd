//! A scripted HTTP server on loopback for webhook receivers and slow or failing token
//! endpoints: one request per connection, answered in order from a script (then a default).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the server saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One scripted answer; `delay` is waited before answering (a slow or hanging peer).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: "{\"ok\":true}".into(),
            delay: Duration::ZERO,
        }
    }
}

pub struct Upstream {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Vec<Reply>>>,
    default: Arc<Mutex<Reply>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        Upstream::start_on(0)
    }

    /// Listens on `port` (0: any free port). A port reserved earlier with [`free_port`] lets a
    /// test bring a "down" receiver up later.
    pub fn start_on(port: u16) -> Upstream {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind upstream");
        let port = listener.local_addr().expect("addr").port();
        let upstream = Upstream {
            port,
            seen: Arc::default(),
            script: Arc::default(),
            default: Arc::new(Mutex::new(Reply::status(200))),
        };
        let (seen, script, default) = (
            Arc::clone(&upstream.seen),
            Arc::clone(&upstream.script),
            Arc::clone(&upstream.default),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                seen.lock().expect("lock").push(request);
                let reply = {
                    let mut s = script.lock().expect("lock");
                    if s.is_empty() {
                        default.lock().expect("lock").clone()
                    } else {
                        s.remove(0)
                    }
                };
                std::thread::sleep(reply.delay);
                let mut out = stream;
                let _ = write!(
                    out,
                    "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    reply.status,
                    reply.body.len(),
                    reply.body
                );
            }
        });
        upstream
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// Queues the next answer.
    pub fn then(&self, reply: Reply) {
        self.script.lock().expect("lock").push(reply);
    }

    /// The answer once the script is used up.
    pub fn by_default(&self, reply: Reply) {
        *self.default.lock().expect("lock") = reply;
    }

    /// Waits until at least `n` requests arrived; panics after `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Seen> {
        let started = Instant::now();
        loop {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                started.elapsed() < timeout,
                "upstream :{} saw {} of {n} requests within {timeout:?}",
                self.port,
                seen.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A loopback port that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Reads one HTTP/1.1 request (request line, headers, a `content-length` body).
pub fn read_request(stream: &std::net::TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        request_line: request_line.trim_end().to_string(),
        headers,
        body,
        at: Instant::now(),
    })
}

//! Helpers for the integration tests: each test spawns the real binary on `127.0.0.1:0` with its
//! own `TempDir` (config, database, identity, captured stdout/stderr) and speaks HTTP to it.
//! A `Server` kills its process when dropped.
#![allow(dead_code)]

pub mod receiver;
pub mod upstream;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::blocking::{Client, Response};
use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use url::Url;

pub const BIN: &str = env!("CARGO_BIN_EXE_connect-appliance");
pub const ADMIN_KEY: &str = "test-admin-key-LEAKCHECK-7f3c9a1e5b2d";
pub const SANDBOX_CLIENT_ID: &str = "sandbox-client";
pub const SANDBOX_SECRET: &str = "sandbox-secret-LEAKCHECK-5e8a1f0c";
/// The default allow-list entry for `redirect_url`. Nothing listens there: tests never follow it.
pub const REDIRECT_PREFIX: &str = "http://localhost:3000/";
pub const REDIRECT_URL: &str = "http://localhost:3000/done?from=test";

const START_TIMEOUT: Duration = Duration::from_secs(20);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The config a test server is started with. `Default` is a working sandbox setup.
#[derive(Clone)]
pub struct TestConfig {
    pub admin_keys: Vec<String>,
    pub link_ttl_seconds: u64,
    pub token_ttl_seconds: u64,
    pub max_body_bytes: usize,
    pub allowed_redirect_urls: Vec<String>,
    /// Raw TOML appended after the `[plugins.sandbox]` table (more plugin tables).
    pub extra: String,
    /// Raw TOML lines added to the `[server]` table.
    pub server_extra: String,
    /// Environment variables for the process (every inherited `CONNECT_APPLIANCE_*` is removed).
    pub env: Vec<(String, String)>,
    /// Shell commands run before the binary is exec'd in their place (e.g. `trap '' XFSZ`: an
    /// ignored signal stays ignored across exec, so the process id is the binary's).
    pub exec_prefix: Option<String>,
}

impl Default for TestConfig {
    fn default() -> Self {
        TestConfig {
            admin_keys: vec![ADMIN_KEY.to_string()],
            link_ttl_seconds: 900,
            token_ttl_seconds: 3600,
            max_body_bytes: 65536,
            allowed_redirect_urls: vec![REDIRECT_PREFIX.to_string()],
            extra: String::new(),
            server_extra: String::new(),
            env: Vec::new(),
            exec_prefix: None,
        }
    }
}

/// A TOML basic string (JSON string escaping is valid TOML for these values).
pub fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("string to JSON")
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", quoted.join(", "))
}

impl TestConfig {
    pub fn to_toml(&self) -> String {
        format!(
            r#"[server]
listen = "127.0.0.1:0"
max_body_bytes = {max_body}
{server_extra}

[storage]
path = "data/connect.redb"

[vault]
identity_file = "data/vault-identity.txt"

[admin]
api_keys = {keys}

[links]
ttl_seconds = {link_ttl}
allowed_redirect_urls = {redirects}

[sandbox]
enabled = true
token_ttl_seconds = {token_ttl}

[plugins.sandbox]
provider = "sandbox"
client_id = {client_id}
client_secret = {secret}
scopes = ["profile", "offline_access"]
display_name = "Sandbox Test Provider"

{extra}
"#,
            max_body = self.max_body_bytes,
            keys = toml_list(&self.admin_keys),
            link_ttl = self.link_ttl_seconds,
            redirects = toml_list(&self.allowed_redirect_urls),
            token_ttl = self.token_ttl_seconds,
            client_id = toml_str(SANDBOX_CLIENT_ID),
            secret = toml_str(SANDBOX_SECRET),
            extra = self.extra,
            server_extra = self.server_extra,
        )
    }
}

/// A `Command` for the binary with every inherited `CONNECT_APPLIANCE_*` variable removed, so the
/// developer's environment cannot change what a test sees.
pub fn command(env: &[(String, String)]) -> Command {
    command_via(None, env)
}

/// [`command`], run as `sh -c '<prefix>; exec BIN ...'` when a prefix is given.
fn command_via(prefix: Option<&str>, env: &[(String, String)]) -> Command {
    let mut cmd = match prefix {
        None => Command::new(BIN),
        Some(prefix) => {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("{prefix}; exec \"$0\" \"$@\""))
                .arg(BIN);
            sh
        }
    };
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CONNECT_APPLIANCE_") {
            cmd.env_remove(&k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// A running appliance. Killed (and its `TempDir` removed) on drop.
pub struct Server {
    /// `http://127.0.0.1:PORT`, as printed on the `listening on` line.
    pub base: String,
    pub config: TestConfig,
    child: Child,
    dir: Option<TempDir>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(TestConfig::default())
    }

    pub fn start_with(config: TestConfig) -> Server {
        Server::start_in(TempDir::new().expect("temp dir"), config)
    }

    /// Starts in `dir` (which may hold the database and identity of an earlier run).
    pub fn start_in(dir: TempDir, config: TestConfig) -> Server {
        let text = config.to_toml();
        Server::start_raw(dir, &text, config)
    }

    /// Starts with the config file text `text`; `config` supplies the environment (and is kept
    /// for restarts).
    pub fn start_raw(dir: TempDir, text: &str, config: TestConfig) -> Server {
        let config_path = write_config(dir.path(), text);
        let stdout_path = dir.path().join("appliance.stdout");
        let stderr_path = dir.path().join("appliance.stderr");
        let child = command_via(config.exec_prefix.as_deref(), &config.env)
            .arg("--config")
            .arg(&config_path)
            .stdout(File::create(&stdout_path).expect("stdout file"))
            .stderr(File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("spawning connect-appliance");
        let mut server = Server {
            base: String::new(),
            config,
            child,
            dir: Some(dir),
        };
        let started = Instant::now();
        loop {
            let out = fs::read_to_string(&stdout_path).unwrap_or_default();
            if let Some(line) = out.lines().find(|l| l.starts_with("listening on ")) {
                server.base = line["listening on ".len()..].trim().to_string();
                break;
            }
            if let Some(status) = server.child.try_wait().expect("try_wait") {
                panic!(
                    "connect-appliance exited ({status}) before listening; stderr:\n{}",
                    server.stderr()
                );
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "connect-appliance did not print `listening on` within {START_TIMEOUT:?}; stderr:\n{}",
                server.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            server.base.starts_with("http://127.0.0.1:"),
            "unexpected base URL {}",
            server.base
        );
        server
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("server dir").path()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir().join("data/connect.redb")
    }

    pub fn identity_path(&self) -> PathBuf {
        self.dir().join("data/vault-identity.txt")
    }

    /// Everything the process wrote to stderr so far (its log).
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir().join("appliance.stderr")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn admin(&self) -> Admin {
        Admin {
            base: self.base.clone(),
            key: ADMIN_KEY.to_string(),
            client: plain_client(),
        }
    }

    /// `/sandbox/stats` → `token_requests`: how often the token endpoint was called.
    pub fn token_requests(&self) -> u64 {
        let v: Value = plain_client()
            .get(self.url("/sandbox/stats"))
            .send()
            .expect("GET /sandbox/stats")
            .json()
            .expect("stats JSON");
        v["token_requests"].as_u64().expect("token_requests")
    }

    /// Whether `token` is accepted by the sandbox provider's API.
    pub fn sandbox_me(&self, token: &str) -> Response {
        plain_client()
            .get(self.url("/sandbox/api/me"))
            .bearer_auth(token)
            .send()
            .expect("GET /sandbox/api/me")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, no grace: the process gets no chance to flush or close anything. Hands back the
    /// directory for a restart.
    pub fn kill(mut self) -> TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.take().expect("server dir")
    }

    /// Stops the process (SIGTERM, then SIGKILL after a grace period) and hands back its
    /// directory for a restart.
    pub fn stop(mut self) -> TempDir {
        self.terminate();
        self.dir.take().expect("server dir")
    }

    fn terminate(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("config.toml");
    fs::write(&path, text).expect("writing config");
    path
}

/// The result of a run of the binary that is expected to exit on its own.
pub struct Exit {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary with `args` and waits (bounded) for it to exit.
pub fn run_to_exit(dir: &Path, args: &[&str], env: &[(String, String)]) -> Exit {
    let stdout_path = dir.join("run.stdout");
    let stderr_path = dir.join("run.stderr");
    let mut child = command(env)
        .args(args)
        .stdout(File::create(&stdout_path).expect("stdout file"))
        .stderr(File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawning connect-appliance");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > EXIT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "connect-appliance {args:?} did not exit within {EXIT_TIMEOUT:?}; stdout:\n{}\nstderr:\n{}",
                fs::read_to_string(&stdout_path).unwrap_or_default(),
                fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Exit {
        status,
        stdout: fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

/// Serves `config_text` from `dir/config.toml` and expects the process to exit (not to serve).
pub fn serve_expect_exit(dir: &Path, config_text: &str) -> Exit {
    let path = write_config(dir, config_text);
    let path = path.to_str().expect("utf-8 path").to_string();
    run_to_exit(dir, &["--config", &path], &[])
}

/// A client without cookies that does not follow redirects or use any proxy.
pub fn plain_client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// A "browser": keeps cookies, never follows redirects (each hop is asserted by the test).
pub fn browser() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// Admin API client carrying `Authorization: Bearer <admin key>`.
pub struct Admin {
    pub base: String,
    pub key: String,
    pub client: Client,
}

/// A link as returned by `POST /v1/links`.
#[derive(Clone, Debug)]
pub struct Link {
    pub token: String,
    pub connect_url: String,
    pub connection_id: String,
}

impl Admin {
    pub fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .expect("admin GET")
    }

    pub fn delete(&self, path: &str) -> Response {
        self.client
            .delete(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .expect("admin DELETE")
    }

    pub fn post(&self, path: &str) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .expect("admin POST")
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .expect("admin POST")
    }

    /// GET, asserting 200, parsed as JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let r = self.get(path);
        let status = r.status();
        let text = r.text().expect("body");
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        serde_json::from_str(&text).expect("JSON body")
    }

    pub fn connection(&self, id: &str) -> Value {
        self.get_json(&format!("/v1/connections/{id}"))
    }

    /// The access token from `GET /v1/connections/{id}/token`, asserting 200.
    pub fn token(&self, id: &str) -> String {
        let v = self.get_json(&format!("/v1/connections/{id}/token"));
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// `POST /v1/links`, asserting 201.
    pub fn create_link(&self, tenant: &str, plugin: &str, redirect_url: Option<&str>) -> Link {
        let mut body = json!({"tenant_id": tenant, "plugin": plugin});
        if let Some(r) = redirect_url {
            body["redirect_url"] = json!(r);
        }
        let r = self.post_json("/v1/links", &body);
        let status = r.status();
        let text = r.text().expect("body");
        assert_eq!(status, StatusCode::CREATED, "POST /v1/links: {text}");
        let v: Value = serde_json::from_str(&text).expect("JSON body");
        Link {
            token: v["link_token"].as_str().expect("link_token").to_string(),
            connect_url: v["connect_url"].as_str().expect("connect_url").to_string(),
            connection_id: v["connection_id"]
                .as_str()
                .expect("connection_id")
                .to_string(),
        }
    }
}

/// `Location` of a redirect response.
pub fn location(r: &Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location header on {} response", r.status()))
        .to_str()
        .expect("Location is ASCII")
        .to_string()
}

pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .expect("ASCII header")
}

pub fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The stable code an HTML error page shows in `<code id="error-code">`.
pub fn error_code(html: &str) -> Option<String> {
    let start = html.find("id=\"error-code\">")? + "id=\"error-code\">".len();
    let end = html[start..].find('<')?;
    Some(html[start..start + end].to_string())
}

/// Asserts an HTML error page with `status` and `code`.
pub fn assert_error_page(r: Response, status: StatusCode, code: &str) -> String {
    let got = r.status();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    let html = r.text().expect("body");
    assert_eq!(got, status, "unexpected status; body:\n{html}");
    assert!(ctype.starts_with("text/html"), "content-type {ctype}");
    assert_eq!(
        error_code(&html).as_deref(),
        Some(code),
        "error code on page:\n{html}"
    );
    html
}

/// Asserts a JSON error `{"error": code, ...}` with `status`.
pub fn assert_json_error(r: Response, status: StatusCode, code: &str) -> Value {
    let got = r.status();
    let text = r.text().expect("body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    let v: Value = serde_json::from_str(&text).expect("JSON error body");
    assert_eq!(v["error"], code, "body: {text}");
    assert!(v["message"].is_string(), "body: {text}");
    v
}

/// What `GET /connect/{token}/authorize` produced.
pub struct Authorize {
    /// The provider's authorization URL (Location of the 302).
    pub url: Url,
    pub state: String,
    /// The raw `Set-Cookie` header of the browser-binding cookie.
    pub set_cookie: String,
    pub cookie_name: String,
    pub cookie_value: String,
}

/// `GET /connect/{token}/authorize` in `browser`, asserting the 302 and its cookie.
pub fn start_authorize(server: &Server, browser: &Client, link_token: &str) -> Authorize {
    let r = browser
        .get(server.url(&format!("/connect/{link_token}/authorize")))
        .send()
        .expect("GET authorize");
    assert_eq!(r.status(), StatusCode::FOUND, "authorize status");
    let url = Url::parse(&location(&r)).expect("authorize Location is a URL");
    let state = query_param(&url, "state").expect("state in authorize URL");
    let set_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ASCII cookie").to_string())
        .find(|c| c.starts_with("ca_flow_") || c.starts_with("__Host-ca_flow_"))
        .expect("flow cookie set");
    let pair = set_cookie.split(';').next().expect("cookie pair");
    let (name, value) = pair.split_once('=').expect("name=value");
    Authorize {
        url,
        state,
        cookie_name: name.trim().to_string(),
        cookie_value: value.trim().to_string(),
        set_cookie: set_cookie.clone(),
    }
}

/// Opens the sandbox's authorize page and submits a decision; returns the callback URL from the
/// 303 (not followed).
pub fn sandbox_decide(server: &Server, authorize_url: &Url, approve: bool, login: &str) -> Url {
    let client = plain_client();
    let r = client
        .get(authorize_url.as_str())
        .send()
        .expect("GET sandbox authorize");
    let status = r.status();
    let html = r.text().expect("body");
    assert_eq!(status, StatusCode::OK, "sandbox authorize page:\n{html}");
    let request_id = hidden_input(&html, "request_id").expect("request_id on sandbox page");
    let decision = if approve { "approve" } else { "deny" };
    let r = client
        .post(server.url("/sandbox/authorize"))
        .form(&[
            ("request_id", request_id.as_str()),
            ("decision", decision),
            ("login", login),
        ])
        .send()
        .expect("POST sandbox authorize");
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "sandbox decision status");
    Url::parse(&location(&r)).expect("callback URL")
}

fn hidden_input(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_string())
}

/// Everything a completed sandbox flow produced.
pub struct Flow {
    pub link: Link,
    pub authorize: Authorize,
    pub callback_url: Url,
    /// The callback's response status and `Location` (when it redirected).
    pub callback_status: StatusCode,
    pub callback_location: Option<String>,
    pub browser: Client,
}

/// The whole flow in one fresh browser: link → connect page → authorize → sandbox decision →
/// callback. Asserts only the hops that must always succeed; tests assert the rest.
pub fn run_flow(
    server: &Server,
    tenant: &str,
    redirect_url: Option<&str>,
    approve: bool,
    login: &str,
) -> Flow {
    let link = server.admin().create_link(tenant, "sandbox", redirect_url);
    run_flow_for(server, link, approve, login)
}

pub fn run_flow_for(server: &Server, link: Link, approve: bool, login: &str) -> Flow {
    let browser = browser();
    let page = browser.get(&link.connect_url).send().expect("connect page");
    assert_eq!(page.status(), StatusCode::OK, "connect page");
    let authorize = start_authorize(server, &browser, &link.token);
    let callback_url = sandbox_decide(server, &authorize.url, approve, login);
    let r = browser
        .get(callback_url.as_str())
        .send()
        .expect("GET callback");
    let callback_status = r.status();
    let callback_location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().expect("ASCII").to_string());
    Flow {
        link,
        authorize,
        callback_url,
        callback_status,
        callback_location,
        browser,
    }
}

/// A connected sandbox connection for `tenant`; returns its id.
pub fn connect(server: &Server, tenant: &str) -> String {
    let flow = run_flow(server, tenant, None, true, "sandbox-user");
    assert_eq!(
        flow.callback_status,
        StatusCode::SEE_OTHER,
        "callback status"
    );
    flow.link.connection_id
}

pub fn b64url_decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_else(|e| panic!("{s:?} is not unpadded base64url: {e}"))
}

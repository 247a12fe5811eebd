//! Typed configuration: parsed strictly from one TOML file, then validated with messages that name
//! the file, the key and what is expected.

mod cors;
mod ops;
mod plugin;
mod webhooks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

pub use cors::CorsConfig;
pub use ops::{AuditConfig, MetricsConfig};
pub use plugin::{secret_env_name, valid_scope, AuthKind, AuthMethod, PluginConfig, ProviderKind};
pub use webhooks::{webhook_secret_env_name, WebhookConfig};

/// Environment variable that replaces `[admin] api_keys` (comma-separated).
pub const ENV_ADMIN_KEYS: &str = "CONNECT_APPLIANCE_ADMIN_API_KEYS";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the file: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
}

/// The validated configuration. Secrets are resolved (env overrides applied) but never printed:
/// `Debug` of plugin secrets is redacted.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub vault: VaultConfig,
    pub admin: AdminConfig,
    pub links: LinksConfig,
    pub sandbox: SandboxConfig,
    pub refresh: RefreshConfig,
    pub limits: LimitsConfig,
    pub events: EventsConfig,
    pub metrics: MetricsConfig,
    pub audit: AuditConfig,
    pub cors: CorsConfig,
    pub plugins: BTreeMap<String, PluginConfig>,
    pub webhooks: Vec<WebhookConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Events older than this many days are deleted.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention_days: default_retention_days(),
        }
    }
}

fn default_retention_days() -> u32 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per minute per client IP to the connect pages, the callback and the sandbox.
    #[serde(default = "default_public_rate")]
    pub public_requests_per_minute: u32,
    /// Failed admin authentications per minute per client IP before answering 429.
    #[serde(default = "default_failed_auth_rate")]
    pub failed_auth_per_minute: u32,
    /// Reverse proxies whose `X-Forwarded-For` is believed when they are the peer.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            public_requests_per_minute: default_public_rate(),
            failed_auth_per_minute: default_failed_auth_rate(),
            trusted_proxies: Vec::new(),
        }
    }
}

fn default_public_rate() -> u32 {
    300
}
fn default_failed_auth_rate() -> u32 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshConfig {
    /// A token fetch refreshes first when fewer seconds than this remain.
    #[serde(default = "default_min_validity")]
    pub min_validity_seconds: u64,
    /// The background scheduler refreshes tokens expiring within this many seconds.
    #[serde(default = "default_lead")]
    pub lead_seconds: u64,
    /// How often the scheduler looks; 0 turns it off.
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
    /// Refreshes running at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Background refreshes running at once against any one plugin's provider.
    #[serde(default = "default_per_plugin")]
    pub per_plugin_concurrency: usize,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            min_validity_seconds: default_min_validity(),
            lead_seconds: default_lead(),
            interval_seconds: default_interval(),
            concurrency: default_concurrency(),
            per_plugin_concurrency: default_per_plugin(),
        }
    }
}

fn default_min_validity() -> u64 {
    300
}
fn default_lead() -> u64 {
    600
}
fn default_interval() -> u64 {
    30
}
fn default_concurrency() -> usize {
    4
}
fn default_per_plugin() -> usize {
    2
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Base of connect URLs and of the OAuth redirect URI. Defaults to `http://<bound address>`.
    pub public_url: Option<Url>,
    #[serde(default = "default_body_limit")]
    pub max_body_bytes: usize,
    /// Deadline for calls to providers' token and revocation endpoints (and for connecting to
    /// their APIs when proxying).
    #[serde(default = "default_outbound_timeout")]
    pub outbound_timeout_seconds: u64,
    /// `"text"` (default) or `"json"` (one JSON object per line).
    #[serde(default)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default = "default_db_path")]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    #[serde(default = "default_identity_path")]
    pub identity_file: PathBuf,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default)]
    pub api_keys: Vec<String>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AdminConfig {{ api_keys: [{} redacted] }}",
            self.api_keys.len()
        )
    }
}

impl AdminConfig {
    /// SHA-256 of every accepted key: plain keys are hashed here, `sha256:<hex>` taken as is.
    pub fn key_hashes(&self) -> Vec<[u8; 32]> {
        self.api_keys
            .iter()
            .map(
                |k| match k.strip_prefix("sha256:").and_then(decode_sha256_hex) {
                    Some(h) => h,
                    None => Sha256::digest(k.as_bytes()).into(),
                },
            )
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinksConfig {
    #[serde(default = "default_link_ttl")]
    pub ttl_seconds: u64,
    #[serde(default)]
    pub allowed_redirect_urls: Vec<Url>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Lifetime of sandbox access tokens; short values help exercise refresh.
    #[serde(default = "default_sandbox_ttl")]
    pub token_ttl_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<ServerConfig>,
    storage: Option<StorageConfig>,
    vault: Option<VaultConfig>,
    admin: Option<AdminConfig>,
    links: Option<LinksConfig>,
    sandbox: Option<SandboxConfig>,
    #[serde(default)]
    refresh: RefreshConfig,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    events: EventsConfig,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(default)]
    audit: AuditConfig,
    #[serde(default)]
    cors: CorsConfig,
    #[serde(default)]
    plugins: BTreeMap<String, PluginConfig>,
    #[serde(default)]
    webhooks: Vec<WebhookConfig>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_outbound_timeout() -> u64 {
    15
}
fn default_body_limit() -> usize {
    64 * 1024
}
fn default_db_path() -> PathBuf {
    PathBuf::from("data/connect.redb")
}
fn default_identity_path() -> PathBuf {
    PathBuf::from("data/vault-identity.txt")
}
fn default_link_ttl() -> u64 {
    900
}
fn default_sandbox_ttl() -> u64 {
    3600
}

fn decode_sha256_hex(s: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(s).ok()?;
    bytes.try_into().ok()
}

impl Config {
    /// Reads, parses and validates `path`. Relative storage and identity paths are resolved
    /// against the config file's directory, so the appliance can be started from anywhere.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &file, base, &|k| std::env::var(k).ok())
    }

    /// Parses config text; `env` looks up environment overrides (injected for tests).
    pub fn parse(
        text: &str,
        file: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: describe_toml_error(text, &e),
        })?;
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            message,
        };
        let mut admin = raw.admin.unwrap_or(AdminConfig { api_keys: vec![] });
        if let Some(keys) = env(ENV_ADMIN_KEYS) {
            admin.api_keys = keys
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect();
        }
        let mut config = Config {
            file: PathBuf::from(file),
            server: raw.server.unwrap_or(ServerConfig {
                listen: default_listen(),
                public_url: None,
                max_body_bytes: default_body_limit(),
                outbound_timeout_seconds: default_outbound_timeout(),
                log_format: LogFormat::Text,
            }),
            storage: raw.storage.unwrap_or(StorageConfig {
                path: default_db_path(),
            }),
            vault: raw.vault.unwrap_or(VaultConfig {
                identity_file: default_identity_path(),
            }),
            admin,
            links: raw.links.unwrap_or(LinksConfig {
                ttl_seconds: default_link_ttl(),
                allowed_redirect_urls: vec![],
            }),
            sandbox: raw.sandbox.unwrap_or(SandboxConfig {
                enabled: false,
                token_ttl_seconds: default_sandbox_ttl(),
            }),
            refresh: raw.refresh,
            limits: raw.limits,
            events: raw.events,
            metrics: raw.metrics,
            audit: raw.audit,
            cors: raw.cors,
            plugins: raw.plugins,
            webhooks: raw.webhooks,
        };
        config.storage.path = base_dir.join(&config.storage.path);
        config.vault.identity_file = base_dir.join(&config.vault.identity_file);
        config.validate(&invalid)?;
        config
            .cors
            .normalize()
            .map_err(|(key, msg)| invalid(&key, msg))?;
        for (id, plugin) in &mut config.plugins {
            plugin
                .resolve(id, config.sandbox.enabled, env)
                .map_err(|(key, msg)| invalid(&format!("plugins.{id}.{key}"), msg))?;
        }
        let retention = u64::from(config.events.retention_days) * 86_400;
        webhooks::resolve_all(&mut config.webhooks, retention, env)
            .map_err(|(key, msg)| invalid(&key, msg))?;
        Ok(config)
    }

    fn validate(&self, invalid: &dyn Fn(&str, String) -> ConfigError) -> Result<(), ConfigError> {
        if self.admin.api_keys.is_empty() {
            return Err(invalid(
                "admin.api_keys",
                format!("expected at least one admin key (or set {ENV_ADMIN_KEYS}); generate one with `openssl rand -hex 32`"),
            ));
        }
        for (i, key) in self.admin.api_keys.iter().enumerate() {
            let ok = match key.strip_prefix("sha256:") {
                Some(h) => decode_sha256_hex(h).is_some(),
                None => key.len() >= 16,
            };
            if !ok {
                return Err(invalid(
                    &format!("admin.api_keys[{i}]"),
                    "expected a key of at least 16 characters or \"sha256:<64 hex digits>\"".into(),
                ));
            }
        }
        if let Some(url) = &self.server.public_url {
            check_http_url(url, true).map_err(|m| invalid("server.public_url", m))?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err(invalid(
                    "server.public_url",
                    "expected a base URL without query or fragment".into(),
                ));
            }
        }
        if !(1..=300).contains(&self.server.outbound_timeout_seconds) {
            return Err(invalid(
                "server.outbound_timeout_seconds",
                "expected a number of seconds between 1 and 300".into(),
            ));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid(
                "server.max_body_bytes",
                "expected at least 1024 bytes".into(),
            ));
        }
        if !(1..=7 * 24 * 3600).contains(&self.links.ttl_seconds) {
            return Err(invalid(
                "links.ttl_seconds",
                "expected a number of seconds between 1 and 604800".into(),
            ));
        }
        for (i, url) in self.links.allowed_redirect_urls.iter().enumerate() {
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(invalid(
                    &format!("links.allowed_redirect_urls[{i}]"),
                    "expected an absolute http(s) URL prefix such as \"https://app.example.com/\""
                        .into(),
                ));
            }
        }
        if self.sandbox.token_ttl_seconds == 0 {
            return Err(invalid(
                "sandbox.token_ttl_seconds",
                "expected a positive number of seconds".into(),
            ));
        }
        if self.refresh.min_validity_seconds > 86_400 || self.refresh.lead_seconds > 86_400 {
            return Err(invalid(
                "refresh",
                "min_validity_seconds and lead_seconds must be at most 86400".into(),
            ));
        }
        if self.events.retention_days == 0 {
            return Err(invalid(
                "events.retention_days",
                "expected at least 1 day".into(),
            ));
        }
        if self.limits.public_requests_per_minute == 0 || self.limits.failed_auth_per_minute == 0 {
            return Err(invalid(
                "limits",
                "public_requests_per_minute and failed_auth_per_minute must be at least 1".into(),
            ));
        }
        if self.audit.retention_days == 0 {
            return Err(invalid(
                "audit.retention_days",
                "expected at least 1 day".into(),
            ));
        }
        if !(1..=64).contains(&self.refresh.per_plugin_concurrency) {
            return Err(invalid(
                "refresh.per_plugin_concurrency",
                "expected a number between 1 and 64".into(),
            ));
        }
        if !(1..=64).contains(&self.refresh.concurrency) {
            return Err(invalid(
                "refresh.concurrency",
                "expected a number between 1 and 64".into(),
            ));
        }
        for id in self.plugins.keys() {
            let ok = !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !ok {
                return Err(invalid(
                    &format!("plugins.{id}"),
                    "expected a plugin id of 1-64 characters from a-z, 0-9, '_' and '-'".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Accepts https anywhere and plain http only on loopback (RFC 9700: no cleartext redirect or
/// token traffic off the machine).
pub(crate) fn check_http_url(url: &Url, allow_path: bool) -> Result<(), String> {
    let host_ok = url.host_str().is_some_and(|h| !h.is_empty());
    match url.scheme() {
        "https" if host_ok => {}
        "http" if host_ok && is_loopback(url) => {}
        "http" if host_ok => {
            return Err(format!(
                "expected an https URL (plain http is only allowed on loopback), got \"{url}\""
            ))
        }
        _ => return Err(format!("expected an absolute http(s) URL, got \"{url}\"")),
    }
    if !allow_path && url.path() != "/" {
        return Err(format!("expected a URL without a path, got \"{url}\""));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("expected a URL without user:password".into());
    }
    Ok(())
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// toml's messages name unknown keys but not the key of a wrongly typed value: add the line and
/// its text so users find it either way.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let line = text[..start].matches('\n').count() + 1;
            let source = text.lines().nth(line - 1).unwrap_or_default().trim();
            format!("line {line} (`{source}`): {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", Path::new("/base"), &|_| None)
    }

    const MINIMAL: &str = "[admin]\napi_keys = [\"0123456789abcdef0123\"]\n";

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../config.example.toml");
        let config = parse(text).expect("config.example.toml must stay valid");
        assert!(config.plugins["sandbox"].has_credentials());
        assert!(
            !config.plugins["acme"].has_credentials(),
            "secret comes from an unset env var"
        );
        assert_eq!(config.storage.path, Path::new("/base/data/connect.redb"));
    }

    #[test]
    fn env_overrides_secrets() {
        let text = format!("{MINIMAL}[plugins.my-idp]\nauthorization_url = \"https://a.test/auth\"\ntoken_url = \"https://a.test/token\"\nclient_id = \"x\"\nclient_secret = \"from-file\"\n");
        let env = |k: &str| {
            (k == "CONNECT_APPLIANCE_PLUGIN_MY_IDP_CLIENT_SECRET").then(|| "from-env".to_string())
        };
        let config = Config::parse(&text, "t.toml", Path::new("."), &env).unwrap();
        assert_eq!(
            config.plugins["my-idp"].client_secret.as_deref(),
            Some("from-env")
        );
        assert!(
            !format!("{:?}", config).contains("from-env"),
            "Debug must redact secrets"
        );
    }

    #[test]
    fn errors_name_file_and_key() {
        let cases = [
            (format!("{MINIMAL}[server]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n"), "bogus"),
            ("[links]\nttl_seconds = 5\n".to_string(), "admin.api_keys"),
            (format!("{MINIMAL}[plugins.a]\nauthorization_url = \"http://idp.example/auth\"\ntoken_url = \"https://x.test/t\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"), "plugins.a.authorization_url"),
            (format!("{MINIMAL}[plugins.a]\nauthorization_url = \"https://x.test/a\"\ntoken_url = \"https://x.test/t\"\nclient_id = \"c\"\n"), "plugins.a.client_secret"),
            (format!("{MINIMAL}[plugins.a]\nprovider = \"sandbox\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"), "plugins.a.provider"),
            (format!("{MINIMAL}[plugins.a]\nauthorization_url = \"https://x.test/a\"\ntoken_url = \"https://x.test/t\"\nclient_id = \"c\"\nclient_secret = \"s\"\nauthorize_params = {{ state = \"x\" }}\n"), "plugins.a.authorize_params"),
            (format!("{MINIMAL}[plugins.A]\nprovider = \"custom\"\n"), "plugins.A"),
            (format!("{MINIMAL}[cors]\nallowed_origins = [\"https://app.test/x\"]\n"), "cors.allowed_origins[0]"),
        ];
        for (text, key) in cases {
            let err = parse(&text).expect_err(key).to_string();
            assert!(err.starts_with("test.toml: "), "{err}");
            assert!(err.contains(key), "{key} not named in: {err}");
        }
    }

    #[test]
    fn hashed_admin_keys() {
        let hash = hex::encode(Sha256::digest(b"a-very-long-admin-key"));
        let config = parse(&format!("[admin]\napi_keys = [\"sha256:{hash}\"]\n")).unwrap();
        assert_eq!(
            config.admin.key_hashes()[0],
            <[u8; 32]>::from(Sha256::digest(b"a-very-long-admin-key"))
        );
    }
}

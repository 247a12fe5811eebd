//! Reaching the running appliance from the command line: redb lets one process hold the
//! database, so `backup` and `rotate-data-key` go through the server's admin API when it runs.

use crate::config::Config;

/// Environment variable with an admin key, for a running server whose config lists only
/// `sha256:` key hashes.
pub const ENV_ADMIN_KEY: &str = "CONNECT_APPLIANCE_ADMIN_KEY";

/// The running appliance's base URL (no trailing slash) and an admin key to call it with.
pub struct Remote {
    pub base: String,
    pub key: String,
}

impl Remote {
    /// From `--url`, else `server.public_url`, else the `listen` address; the key from
    /// [`ENV_ADMIN_KEY`], else the first plain key in the config.
    pub fn resolve(config: &Config, url: Option<&str>) -> Result<Remote, String> {
        let key = std::env::var(ENV_ADMIN_KEY)
            .ok()
            .or_else(|| {
                config
                    .admin
                    .api_keys
                    .iter()
                    .find(|k| !k.starts_with("sha256:"))
                    .cloned()
            })
            .ok_or_else(|| {
                format!("the appliance is running and the config lists only hashed admin keys: set {ENV_ADMIN_KEY}")
            })?;
        let base = match (url, &config.server.public_url) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Some(public)) => public.as_str().trim_end_matches('/').to_string(),
            (None, None) if config.server.listen.port() != 0 => {
                let mut addr = config.server.listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
            (None, None) => {
                return Err("the appliance listens on an ephemeral port: give --url".into());
            }
        };
        Ok(Remote { base, key })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A single-threaded runtime for the command's few requests.
    pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    }
}

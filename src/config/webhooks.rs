//! `[[webhooks]]`: receivers of the event log, validated with messages naming the key.

use serde::Deserialize;
use url::Url;

use super::check_http_url;
use crate::connections::events::TYPES;
use crate::webhooks::signing::WebhookSecret;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Stable name: part of delivery ids and the `webhook` filter of the deliveries listing.
    pub id: String,
    pub url: Url,
    /// `whsec_<base64>`; resolved from `secret_env` or the generic override at load.
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    /// Event types to deliver; `None` (or `["*"]`) is every type.
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub deliver_credentials: bool,
    /// Retries stop this long after a delivery was queued; it is then `failed`.
    #[serde(default = "default_max_retry")]
    pub max_retry_seconds: u64,
    /// Delay before the first retry; it doubles with each further one (up to an hour).
    #[serde(default = "default_first_retry")]
    pub first_retry_seconds: u64,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Deliveries in flight to this receiver at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a token of the receiver's; only its origin is shown.
        f.debug_struct("WebhookConfig")
            .field("id", &self.id)
            .field("origin", &self.url.origin().ascii_serialization())
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("events", &self.events)
            .field("deliver_credentials", &self.deliver_credentials)
            .finish_non_exhaustive()
    }
}

fn default_max_retry() -> u64 {
    86_400
}
fn default_first_retry() -> u64 {
    5
}
fn default_timeout() -> u64 {
    10
}
fn default_concurrency() -> usize {
    4
}

/// The generic override for a webhook's secret, e.g. `CONNECT_APPLIANCE_WEBHOOK_BILLING_SECRET`.
pub fn webhook_secret_env_name(id: &str) -> String {
    format!(
        "CONNECT_APPLIANCE_WEBHOOK_{}_SECRET",
        id.to_ascii_uppercase().replace('-', "_")
    )
}

impl WebhookConfig {
    /// Whether events of type `kind` go to this receiver.
    pub fn wants(&self, kind: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|list| list.iter().any(|k| k == "*" || k == kind))
    }

    /// Validates one `[[webhooks]]` entry and resolves its secret. Errors are `(key, message)`
    /// with the key relative to the entry.
    pub(super) fn resolve(
        &mut self,
        retention_seconds: u64,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), (&'static str, String)> {
        if !valid_id(&self.id) {
            return Err((
                "id",
                "expected an id of 1-64 characters from a-z, 0-9, '_' and '-'".into(),
            ));
        }
        if self.deliver_credentials
            && self.url.scheme() != "https"
            && !super::is_loopback(&self.url)
        {
            return Err((
                "deliver_credentials",
                "credentials are only delivered over https (or to loopback); use an https url or set deliver_credentials = false".into(),
            ));
        }
        check_http_url(&self.url, true).map_err(|m| ("url", m))?;
        if let Some(events) = &self.events {
            let all = events.iter().any(|k| k == "*");
            if events.is_empty() || (all && events.len() > 1) {
                return Err((
                    "events",
                    "expected [\"*\"] (every event) or a non-empty list of event types".into(),
                ));
            }
            if let Some(bad) = events
                .iter()
                .find(|k| *k != "*" && !TYPES.contains(&k.as_str()))
            {
                return Err((
                    "events",
                    format!(
                        "unknown event type \"{bad}\"; expected \"*\" or some of {}",
                        TYPES.join(", ")
                    ),
                ));
            }
        }
        if !(1..=7 * 86_400).contains(&self.max_retry_seconds) {
            return Err((
                "max_retry_seconds",
                "expected a number of seconds between 1 and 604800 (7 days)".into(),
            ));
        }
        if self.max_retry_seconds > retention_seconds {
            return Err((
                "max_retry_seconds",
                "expected at most [events] retention_days: a delivery needs its event to exist"
                    .into(),
            ));
        }
        if !(1..=3600).contains(&self.first_retry_seconds) {
            return Err((
                "first_retry_seconds",
                "expected a number of seconds between 1 and 3600".into(),
            ));
        }
        if !(1..=120).contains(&self.timeout_seconds) {
            return Err((
                "timeout_seconds",
                "expected a number of seconds between 1 and 120".into(),
            ));
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err(("concurrency", "expected a number between 1 and 64".into()));
        }
        self.resolve_secret(env)
    }

    fn resolve_secret(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), (&'static str, String)> {
        let generic = webhook_secret_env_name(&self.id);
        let (key, from_env) = match (&self.secret, &self.secret_env) {
            (Some(_), Some(_)) => {
                return Err(("secret", "set either secret or secret_env, not both".into()))
            }
            (_, Some(var)) => ("secret_env", env(var)),
            (_, None) => ("secret", None),
        };
        if let Some(value) = env(&generic).or(from_env) {
            self.secret = Some(value);
        }
        let Some(secret) = &self.secret else {
            let named = self
                .secret_env
                .as_ref()
                .map(|v| format!("the environment variable {v} is not set; "))
                .unwrap_or_default();
            return Err((
                key,
                format!("{named}expected a secret \"whsec_<base64>\" (secret, secret_env or {generic}); generate one with `echo whsec_$(openssl rand -base64 32)`"),
            ));
        };
        WebhookSecret::parse(secret).map_err(|m| (key, m))?;
        Ok(())
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Validates every `[[webhooks]]` entry; errors are `(key, message)` with the full key.
pub(super) fn resolve_all(
    hooks: &mut [WebhookConfig],
    retention_seconds: u64,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    let mut ids = std::collections::BTreeSet::new();
    for (i, hook) in hooks.iter_mut().enumerate() {
        hook.resolve(retention_seconds, env)
            .map_err(|(key, m)| (format!("webhooks[{i}].{key}"), m))?;
        if !ids.insert(hook.id.clone()) {
            return Err((
                format!("webhooks[{i}].id"),
                format!("expected a unique id; \"{}\" is used twice", hook.id),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, ConfigError};

    const BASE: &str = "[admin]\napi_keys = [\"0123456789abcdef0123\"]\n";
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn parse(hooks: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let text = format!("{BASE}{hooks}");
        let lookup = |k: &str| {
            env.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_string())
        };
        Config::parse(&text, "test.toml", Path::new("/base"), &lookup)
    }

    fn hook(lines: &str) -> String {
        format!("[[webhooks]]\nid = \"h\"\nurl = \"https://hooks.test/in\"\n{lines}\n")
    }

    /// config.example.toml documents a webhook in comments: uncommented, it must parse.
    #[test]
    fn the_example_webhook_parses_when_uncommented() {
        let example = include_str!("../../config.example.toml");
        let start = example
            .find("# [[webhooks]]")
            .expect("example webhook block");
        let mut text = example[..start].to_string();
        for line in example[start..].lines().take_while(|l| l.starts_with('#')) {
            text.push_str(line.strip_prefix("# ").unwrap_or(""));
            text.push('\n');
        }
        let env = |k: &str| (k == "BILLING_WEBHOOK_SECRET").then(|| SECRET.to_string());
        let config = Config::parse(&text, "example", Path::new("/base"), &env).expect("parses");
        let hook = &config.webhooks[0];
        assert_eq!(hook.id, "billing");
        assert_eq!(hook.secret.as_deref(), Some(SECRET));
        assert!(hook.wants("connection.expired") && !hook.wants("link.created"));
        assert_eq!(
            (hook.max_retry_seconds, hook.first_retry_seconds),
            (86_400, 5)
        );
        assert!(!format!("{config:?}").contains(SECRET), "Debug redacts");
    }

    #[test]
    fn defaults_and_overrides() {
        let config = parse(&hook(&format!("secret = \"{SECRET}\"")), &[]).unwrap();
        let h = &config.webhooks[0];
        assert!(h.wants("link.created") && !h.deliver_credentials);
        assert_eq!((h.timeout_seconds, h.concurrency), (10, 4));
        let other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let config = parse(
            &hook(&format!("secret = \"{SECRET}\"")),
            &[("CONNECT_APPLIANCE_WEBHOOK_H_SECRET", other)],
        )
        .unwrap();
        assert_eq!(config.webhooks[0].secret.as_deref(), Some(other));
        let all = parse(
            &hook(&format!("secret = \"{SECRET}\"\nevents = [\"*\"]")),
            &[],
        );
        assert!(all.unwrap().webhooks[0].wants("connection.deleted"));
    }

    #[test]
    fn errors_name_the_key_and_never_the_secret() {
        let s = format!("secret = \"{SECRET}\"");
        let cases = [
            (hook("secret = \"whsec_c2hvcnQ=\""), "webhooks[0].secret"),
            (hook("secret = \"not-a-whsec\""), "webhooks[0].secret"),
            (hook("secret_env = \"UNSET_VAR\""), "webhooks[0].secret_env"),
            (hook(""), "webhooks[0].secret"),
            (hook(&format!("{s}\nevents = [\"connection.nope\"]")), "webhooks[0].events"),
            (hook(&format!("{s}\nevents = []")), "webhooks[0].events"),
            (hook(&format!("{s}\nevents = [\"*\", \"link.created\"]")), "webhooks[0].events"),
            (hook(&format!("{s}\nmax_retry_seconds = 0")), "webhooks[0].max_retry_seconds"),
            (hook(&format!("{s}\nmax_retry_seconds = 3000000")), "webhooks[0].max_retry_seconds"),
            (hook(&format!("{s}\nconcurrency = 0")), "webhooks[0].concurrency"),
            (hook(&format!("{s}\ntimeout_seconds = 0")), "webhooks[0].timeout_seconds"),
            (hook(&format!("{s}\nfirst_retry_seconds = 0")), "webhooks[0].first_retry_seconds"),
            (format!("[[webhooks]]\nid = \"h\"\nurl = \"http://hooks.test/in\"\n{s}\n"), "webhooks[0].url"),
            (format!("[[webhooks]]\nid = \"h\"\nurl = \"http://hooks.test/in\"\n{s}\ndeliver_credentials = true\n"), "webhooks[0].deliver_credentials"),
            (format!("[[webhooks]]\nid = \"H!\"\nurl = \"https://hooks.test/in\"\n{s}\n"), "webhooks[0].id"),
            (format!("{}{}", hook(&s), hook(&s)), "webhooks[1].id"),
            (hook(&format!("{s}\nbogus = 1")), "bogus"),
        ];
        for (text, key) in cases {
            let err = parse(&text, &[]).expect_err(key).to_string();
            assert!(err.starts_with("test.toml: "), "{err}");
            assert!(err.contains(key), "{key} not named in: {err}");
            assert!(!err.contains("MfKQ9r8"), "secret in: {err}");
        }
        let short_retention = format!(
            "[events]\nretention_days = 1\n{}",
            hook(&format!("{s}\nmax_retry_seconds = 90000"))
        );
        let err = parse(&short_retention, &[]).unwrap_err().to_string();
        assert!(err.contains("webhooks[0].max_retry_seconds"), "{err}");
        // Loopback may use plain http, also with credentials.
        let local = format!("[[webhooks]]\nid = \"h\"\nurl = \"http://127.0.0.1:9/in\"\n{s}\ndeliver_credentials = true\n");
        assert!(parse(&local, &[]).is_ok());
    }
}

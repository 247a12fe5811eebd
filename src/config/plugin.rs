//! One `[plugins.<id>]` table: a provider plus the team's client registration at it.

use std::collections::BTreeMap;

use serde::Deserialize;
use url::Url;

use super::check_http_url;

/// Parameters the appliance sets itself; a plugin may not override them.
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// OAuth 2.0 authorization code flow (the default).
    Oauth2,
    /// A static API key, imported with `POST /v1/connections` and injected by the proxy.
    ApiKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Endpoints given in full in the plugin table.
    Custom,
    /// The built-in test provider under `/sandbox/`.
    Sandbox,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    #[serde(default = "default_auth")]
    pub auth: AuthKind,
    /// For `auth = "api_key"`: the header carrying the key (default `Authorization`)...
    pub api_key_header: Option<String>,
    /// ...and the text before the key in it (default `Bearer ` for `Authorization`, else none).
    pub api_key_prefix: Option<String>,
    /// For `auth = "api_key"`: send the key as this query parameter instead of a header.
    pub api_key_query: Option<String>,
    pub provider: Option<String>,
    pub authorization_url: Option<Url>,
    pub token_url: Option<Url>,
    pub revocation_url: Option<Url>,
    pub api_base_url: Option<Url>,
    /// Expected `iss` on the callback (RFC 9207); checked when the provider sends one.
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default = "default_separator")]
    pub scope_separator: String,
    #[serde(default = "default_auth_method")]
    pub token_auth_method: AuthMethod,
    #[serde(default = "default_true")]
    pub pkce: bool,
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
    pub display_name: Option<String>,
    #[serde(skip, default = "default_kind")]
    pub kind: ProviderKind,
}

impl std::fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginConfig")
            .field("provider", &self.provider)
            .field("authorization_url", &self.authorization_url)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

fn default_auth() -> AuthKind {
    AuthKind::Oauth2
}
fn default_separator() -> String {
    " ".into()
}
fn default_auth_method() -> AuthMethod {
    AuthMethod::ClientSecretBasic
}
fn default_true() -> bool {
    true
}
fn default_kind() -> ProviderKind {
    ProviderKind::Custom
}

/// The generic override for a plugin's secret, e.g. `CONNECT_APPLIANCE_PLUGIN_ACME_CLIENT_SECRET`.
pub fn secret_env_name(id: &str) -> String {
    format!(
        "CONNECT_APPLIANCE_PLUGIN_{}_CLIENT_SECRET",
        id.to_ascii_uppercase().replace('-', "_")
    )
}

impl PluginConfig {
    /// Whether both halves of the client registration are present.
    pub fn has_credentials(&self) -> bool {
        if self.auth == AuthKind::ApiKey {
            return true; // keys are imported per connection
        }
        self.client_id.as_deref().is_some_and(|s| !s.is_empty())
            && self.client_secret.as_deref().is_some_and(|s| !s.is_empty())
    }

    pub fn display_name_or<'a>(&'a self, id: &'a str) -> &'a str {
        self.display_name.as_deref().unwrap_or(id)
    }

    /// Validates the table and applies secret overrides. Errors are `(key, message)`.
    pub(super) fn resolve(
        &mut self,
        id: &str,
        sandbox_enabled: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), (&'static str, String)> {
        if self.auth == AuthKind::ApiKey {
            return self.resolve_api_key();
        }
        if self.api_key_header.is_some()
            || self.api_key_prefix.is_some()
            || self.api_key_query.is_some()
        {
            return Err(("auth", "api_key_* keys need auth = \"api_key\"".into()));
        }
        self.kind = match self.provider.as_deref() {
            None | Some("custom") => ProviderKind::Custom,
            Some("sandbox") => ProviderKind::Sandbox,
            Some(other) => {
                return Err((
                    "provider",
                    format!("unknown provider \"{other}\"; expected \"sandbox\" or \"custom\" (or omit it and give the endpoint URLs)"),
                ))
            }
        };
        match self.kind {
            ProviderKind::Sandbox => {
                if !sandbox_enabled {
                    return Err((
                        "provider",
                        "the sandbox provider needs `[sandbox] enabled = true`".into(),
                    ));
                }
                if self.authorization_url.is_some() || self.token_url.is_some() {
                    return Err((
                        "authorization_url",
                        "the sandbox provider's endpoints are built in; remove the URLs".into(),
                    ));
                }
            }
            ProviderKind::Custom => {
                let auth = self.authorization_url.as_ref().ok_or((
                    "authorization_url",
                    "expected the provider's authorization endpoint URL".to_string(),
                ))?;
                check_http_url(auth, true).map_err(|m| ("authorization_url", m))?;
                let token = self.token_url.as_ref().ok_or((
                    "token_url",
                    "expected the provider's token endpoint URL".to_string(),
                ))?;
                check_http_url(token, true).map_err(|m| ("token_url", m))?;
            }
        }
        if let Some(u) = &self.revocation_url {
            check_http_url(u, true).map_err(|m| ("revocation_url", m))?;
        }
        if let Some(u) = &self.api_base_url {
            check_http_url(u, true).map_err(|m| ("api_base_url", m))?;
        }
        if self.client_id.as_deref().is_none_or(str::is_empty) {
            return Err(("client_id", "expected the OAuth client id".into()));
        }
        if let Some(secret) = env(&secret_env_name(id)) {
            self.client_secret = Some(secret);
        } else if let Some(var) = &self.client_secret_env {
            // Missing here is allowed: the plugin is listed as lacking credentials until set.
            self.client_secret = env(var).filter(|s| !s.is_empty());
        } else if self.client_secret.as_deref().is_none_or(str::is_empty) {
            return Err((
                "client_secret",
                format!(
                    "expected the OAuth client secret, or client_secret_env naming an environment variable (or set {})",
                    secret_env_name(id)
                ),
            ));
        }
        for scope in &self.scopes {
            if !valid_scope(scope) {
                return Err((
                    "scopes",
                    format!("\"{scope}\" is not a valid scope token (printable ASCII, no spaces or quotes)"),
                ));
            }
        }
        if self.scope_separator.is_empty() {
            return Err(("scope_separator", "expected a non-empty separator".into()));
        }
        for key in self.authorize_params.keys() {
            if RESERVED_PARAMS.contains(&key.as_str()) {
                return Err((
                    "authorize_params",
                    format!("\"{key}\" is set by the appliance and cannot be overridden"),
                ));
            }
        }
        Ok(())
    }
}

impl PluginConfig {
    fn resolve_api_key(&self) -> Result<(), (&'static str, String)> {
        if self.provider.is_some() || self.authorization_url.is_some() || self.token_url.is_some() {
            return Err((
                "auth",
                "an api_key plugin has no provider, authorization_url or token_url".into(),
            ));
        }
        let base = self.api_base_url.as_ref().ok_or((
            "api_base_url",
            "an api_key plugin needs the API's base URL".to_string(),
        ))?;
        check_http_url(base, true).map_err(|m| ("api_base_url", m))?;
        if self.api_key_query.is_some()
            && (self.api_key_header.is_some() || self.api_key_prefix.is_some())
        {
            return Err((
                "api_key_query",
                "give api_key_query or api_key_header/api_key_prefix, not both".into(),
            ));
        }
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if self.api_key_header.as_deref().is_some_and(|h| !token(h)) {
            return Err(("api_key_header", "expected an HTTP header name".into()));
        }
        if self.api_key_query.as_deref().is_some_and(|q| !token(q)) {
            return Err((
                "api_key_query",
                "expected a query parameter name of letters, digits, '-', '_' or '.'".into(),
            ));
        }
        Ok(())
    }
}

/// RFC 6749 §3.3 scope-token characters.
pub fn valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= 256
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

//! One `[plugins.<id>]` table: a provider (built-in catalog entry, sandbox or custom endpoints)
//! plus the team's client registration at it. After [`PluginConfig::resolve`] every provider
//! field holds its effective value: the plugin's own, else the catalog's, else the default.

mod checks;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::catalog::{self, HttpMethod, ParamSpec, TokenResponseKind};

pub use checks::valid_scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
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
    /// An entry of the built-in catalog (`provider = "github"`).
    Catalog,
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
    pub display_name: Option<String>,
    pub docs_url: Option<String>,
    // URL templates: `{name}` is filled from `params`.
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub revocation_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub userinfo_method: Option<HttpMethod>,
    pub userinfo_headers: Option<BTreeMap<String, String>>,
    pub account_name: Option<Vec<String>>,
    pub account_name_from_token: Option<Vec<String>>,
    pub api_base_url: Option<String>,
    pub api_base_from_token: Option<String>,
    pub token_header: Option<String>,
    pub token_prefix: Option<String>,
    /// Expected `iss` on the callback (RFC 9207); checked when the provider sends one.
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub scopes_required: Option<bool>,
    pub scope_separator: Option<String>,
    pub scope_param: Option<String>,
    pub token_auth_method: Option<AuthMethod>,
    pub pkce: Option<bool>,
    pub authorize_params: Option<BTreeMap<String, String>>,
    pub token_response: Option<TokenResponseKind>,
    /// Manual connect mode: the team's own callback URL, registered at the provider; the team's
    /// route hands code and state to `POST /v1/oauth/callback`.
    pub redirect_uri: Option<String>,
    /// One team-wide connection (made by an admin link with `"shared": true`) serves every
    /// tenant that has none of its own.
    #[serde(default)]
    pub shared: bool,
    /// Template values fixed for every connection of this plugin (e.g. an Okta `domain`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(skip, default = "default_kind")]
    pub kind: ProviderKind,
    /// Template values the provider declares (from the catalog).
    #[serde(skip)]
    pub param_specs: BTreeMap<String, ParamSpec>,
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

    pub fn scopes(&self) -> &[String] {
        self.scopes.as_deref().unwrap_or_default()
    }

    pub fn scope_separator(&self) -> &str {
        self.scope_separator.as_deref().unwrap_or(" ")
    }

    pub fn scope_param(&self) -> &str {
        self.scope_param.as_deref().unwrap_or("scope")
    }

    pub fn pkce(&self) -> bool {
        self.pkce.unwrap_or(true)
    }

    pub fn token_auth_method(&self) -> AuthMethod {
        self.token_auth_method
            .unwrap_or(AuthMethod::ClientSecretBasic)
    }

    pub fn authorize_params(&self) -> impl Iterator<Item = (&String, &String)> {
        self.authorize_params.iter().flatten()
    }

    /// Template names used by the endpoint URLs.
    pub fn template_names(&self) -> Vec<String> {
        let mut names: Vec<String> = [
            &self.authorization_url,
            &self.token_url,
            &self.revocation_url,
            &self.userinfo_url,
            &self.api_base_url,
        ]
        .into_iter()
        .flatten()
        .flat_map(|u| catalog::placeholders(u))
        .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Template values each link must supply (no plugin-wide value is configured).
    pub fn link_params(&self) -> Vec<String> {
        self.template_names()
            .into_iter()
            .filter(|n| !self.params.contains_key(n))
            .collect()
    }

    /// What stops this plugin from connecting, for `check` and `GET /v1/plugins`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.has_credentials() {
            out.push("client credentials (client_id and client_secret)".to_string());
        }
        if self.scopes_required == Some(true) && self.scopes().is_empty() {
            out.push("scopes (the provider refuses an authorization without one)".to_string());
        }
        out
    }

    /// Validates the table, merges the catalog entry under it and applies secret overrides.
    /// Errors are `(key, message)`.
    pub(super) fn resolve(
        &mut self,
        id: &str,
        sandbox_enabled: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), (&'static str, String)> {
        if self.auth == AuthKind::ApiKey {
            return checks::api_key(self);
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
            Some(name) => {
                let entry = catalog::catalog().get(name).ok_or_else(|| {
                    (
                        "provider",
                        format!("unknown provider \"{name}\"; expected \"sandbox\", \"custom\" or a catalog provider such as \"github\" (`GET /v1/providers` lists them)"),
                    )
                })?;
                catalog::inherit_provider_fields!(self, entry);
                catalog::inherit!(self, entry; docs_url);
                if self.display_name.is_none() {
                    self.display_name.clone_from(&entry.name);
                }
                self.param_specs = entry.param_specs().clone();
                ProviderKind::Catalog
            }
        };
        if self.kind == ProviderKind::Sandbox {
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
        } else {
            checks::required_urls(self)?;
        }
        checks::params(self)?;
        checks::urls(self)?;
        checks::credentials(self, id, env)?;
        checks::scopes_and_params(self)?;
        checks::presentation(self)?;
        checks::redirect_uri(self)?;
        Ok(())
    }
}

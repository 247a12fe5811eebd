//! The OAuth 2.0 client side: per-plugin providers resolved from config, the authorization URL
//! (state + PKCE S256), the code exchange and RFC 7009 revocation. No actix, no storage here.

mod account;
mod backchannel;
mod exchange;
mod quirks;

use std::collections::BTreeMap;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, RedirectUrl, StandardRevocableToken, StandardTokenResponse, TokenUrl,
};
use url::Url;

pub use backchannel::Backchannel;
pub use exchange::{is_grant_dead, ExtraFields};

use crate::catalog;
use crate::config::{AuthKind, AuthMethod, Config, PluginConfig, ProviderKind};

pub type TokenResponse = StandardTokenResponse<ExtraFields, BasicTokenType>;

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The provider answered with an OAuth error (e.g. `invalid_grant`). Permanent.
    #[error("the provider refused: {code}")]
    Rejected {
        code: String,
        description: Option<String>,
    },
    /// Network failure, timeout, 5xx or 429: worth retrying later.
    #[error("the provider is unreachable or failing: {0}")]
    Transient(String),
    /// A response we cannot use (redirect, malformed body).
    #[error("the provider's response was invalid: {0}")]
    InvalidResponse(String),
    #[error("the plugin is misconfigured: {0}")]
    Misconfigured(String),
}

/// A plugin resolved against the running server. Endpoint URLs are templates filled per
/// connection (`{shop}`), so the oauth2 client is built per call; that costs a few clones.
pub struct Provider {
    pub id: String,
    pub display_name: String,
    /// Effective settings: the plugin's own, over the catalog entry, over defaults; for the
    /// sandbox the built-in endpoint URLs are filled in.
    pub config: PluginConfig,
    redirect: RedirectUrl,
    pub issuer: Option<String>,
}

/// Template values of one connection (the link's own; plugin-wide values are added on use).
pub type Params = BTreeMap<String, String>;

/// A provider's endpoints for one connection, templates filled.
pub struct Endpoints {
    pub authorization: Url,
    pub token: Url,
    pub revocation: Option<Url>,
    pub userinfo: Option<Url>,
    pub api_base: Option<Url>,
}

/// A ready authorization request: the URL to send the browser to, and what to keep server-side.
pub struct AuthorizeRequest {
    pub url: Url,
    pub pkce_verifier: Option<String>,
}

/// How the proxy presents a connection's credential to the provider's API.
pub enum Placement<'a> {
    Header { name: &'a str, prefix: &'a str },
    Query(&'a str),
}

impl Provider {
    pub fn has_credentials(&self) -> bool {
        self.config.has_credentials()
    }

    pub fn is_api_key(&self) -> bool {
        self.config.auth == AuthKind::ApiKey
    }

    pub fn placement(&self) -> Placement<'_> {
        if let Some(q) = &self.config.api_key_query {
            return Placement::Query(q);
        }
        let name = self
            .config
            .api_key_header
            .as_deref()
            .or(self.config.token_header.as_deref())
            .unwrap_or("authorization");
        let default_prefix = if name.eq_ignore_ascii_case("authorization") {
            "Bearer "
        } else {
            ""
        };
        let prefix = self
            .config
            .api_key_prefix
            .as_deref()
            .or(self.config.token_prefix.as_deref());
        Placement::Header {
            name,
            prefix: prefix.unwrap_or(default_prefix),
        }
    }

    /// Checks a link's template values against what the provider declares, and that every
    /// template without a plugin-wide value gets one. Returns the values to store.
    pub fn check_link_params(&self, given: Params) -> Result<Params, String> {
        for (name, value) in &given {
            if self.config.params.contains_key(name) {
                return Err(format!(
                    "params.{name} is fixed by the plugin configuration"
                ));
            }
            let Some(spec) = self.config.param_specs.get(name) else {
                return Err(format!("params.{name} is not a parameter of this plugin"));
            };
            if !spec.accepts(value) {
                return Err(format!(
                    "params.{name} must be {} (e.g. {:?})",
                    spec.description, spec.example
                ));
            }
        }
        if let Some(missing) = self
            .config
            .link_params()
            .into_iter()
            .find(|n| !given.contains_key(n))
        {
            let hint = self
                .config
                .param_specs
                .get(&missing)
                .map(|s| format!(": {} (e.g. {:?})", s.description, s.example))
                .unwrap_or_default();
            return Err(format!("params.{missing} is required{hint}"));
        }
        Ok(given)
    }

    /// The endpoints with `params` (and the plugin-wide values) filled in.
    pub fn endpoints(&self, params: &Params) -> Result<Endpoints, OAuthError> {
        let mut values = self.config.params.clone();
        values.extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
        let fill = |t: &Option<String>, key: &str| -> Result<Option<Url>, OAuthError> {
            t.as_deref()
                .map(|t| {
                    catalog::expand(t, &values).map_err(|m| {
                        OAuthError::Misconfigured(format!("plugins.{}.{key}: {m}", self.id))
                    })
                })
                .transpose()
        };
        let required =
            |t: &Option<String>, key: &str| fill(t, key)?.ok_or_else(|| missing(&self.id, key));
        Ok(Endpoints {
            authorization: required(&self.config.authorization_url, "authorization_url")?,
            token: required(&self.config.token_url, "token_url")?,
            revocation: fill(&self.config.revocation_url, "revocation_url")?,
            userinfo: fill(&self.config.userinfo_url, "userinfo_url")?,
            api_base: fill(&self.config.api_base_url, "api_base_url")?,
        })
    }

    /// The API base for the proxy: `api_base_url`, filled in, for API-key plugins too.
    pub fn api_base(&self, params: &Params) -> Result<Option<Url>, OAuthError> {
        let mut values = self.config.params.clone();
        values.extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.config
            .api_base_url
            .as_deref()
            .map(|t| catalog::expand(t, &values).map_err(OAuthError::Misconfigured))
            .transpose()
    }

    /// The oauth2 client for one call; `redirect_uri` is a manual-mode callback URL (else ours).
    fn client(
        &self,
        endpoints: &Endpoints,
        redirect_uri: Option<&str>,
    ) -> Result<OAuthClient, OAuthError> {
        let redirect = match redirect_uri {
            Some(u) => RedirectUrl::new(u.to_string())
                .map_err(|_| OAuthError::Misconfigured(format!("invalid redirect_uri {u:?}")))?,
            None => self.redirect.clone(),
        };
        let (Some(cid), Some(secret)) = (&self.config.client_id, &self.config.client_secret) else {
            return Err(OAuthError::Misconfigured(format!(
                "plugin {} has no client credentials",
                self.id
            )));
        };
        Ok(oauth2::Client::new(ClientId::new(cid.clone()))
            .set_client_secret(ClientSecret::new(secret.clone()))
            .set_auth_uri(AuthUrl::from_url(endpoints.authorization.clone()))
            .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
            .set_redirect_uri(redirect)
            .set_auth_type(match self.config.token_auth_method() {
                AuthMethod::ClientSecretBasic => AuthType::BasicAuth,
                AuthMethod::ClientSecretPost => AuthType::RequestBody,
            }))
    }

    /// Builds the authorization URL for `state`, with a fresh PKCE S256 pair unless the plugin
    /// opted out.
    pub fn authorize(
        &self,
        state: &str,
        scopes: &[String],
        params: &Params,
        redirect_uri: Option<&str>,
    ) -> Result<AuthorizeRequest, OAuthError> {
        let client = self.client(&self.endpoints(params)?, redirect_uri)?;
        let state = state.to_string();
        let mut request = client.authorize_url(move || CsrfToken::new(state));
        if !scopes.is_empty() {
            request = request.add_extra_param(
                self.config.scope_param(),
                scopes.join(self.config.scope_separator()),
            );
        }
        for (k, v) in self.config.authorize_params() {
            request = request.add_extra_param(k.as_str(), v.as_str());
        }
        let mut verifier = None;
        if self.config.pkce() {
            let (challenge, v) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            verifier = Some(v.into_secret());
        }
        let (url, _) = request.url();
        Ok(AuthorizeRequest {
            url,
            pkce_verifier: verifier,
        })
    }
}

pub struct Providers {
    by_id: BTreeMap<String, Provider>,
}

impl Providers {
    /// Resolves every configured plugin; `public_url` is the server's external base URL.
    pub fn from_config(config: &Config, public_url: &Url) -> Result<Self, OAuthError> {
        let redirect = RedirectUrl::from_url(join(public_url, "oauth/callback"));
        let by_id = config
            .plugins
            .iter()
            .map(|(id, plugin)| (id.clone(), resolve(id, plugin, public_url, &redirect)))
            .collect();
        Ok(Providers { by_id })
    }

    pub fn get(&self, id: &str) -> Option<&Provider> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Provider> {
        self.by_id.values()
    }
}

/// One plugin against this server: the sandbox's endpoints are filled in from `public_url`.
fn resolve(id: &str, plugin: &PluginConfig, public_url: &Url, redirect: &RedirectUrl) -> Provider {
    let mut config = plugin.clone();
    let mut issuer = plugin.issuer.clone();
    if plugin.kind == ProviderKind::Sandbox && plugin.auth != AuthKind::ApiKey {
        let at = |path: &str| Some(join(public_url, path).to_string());
        config.authorization_url = at("sandbox/authorize");
        config.token_url = at("sandbox/token");
        config.revocation_url = at("sandbox/revoke");
        config.userinfo_url = at("sandbox/api/me");
        config.account_name = Some(vec!["/sub".into()]);
        if config.api_base_url.is_none() {
            config.api_base_url = at("sandbox/api");
        }
        issuer = at("sandbox");
    }
    Provider {
        id: id.to_string(),
        display_name: plugin.display_name_or(id).to_string(),
        config,
        redirect: redirect.clone(),
        issuer,
    }
}

fn missing(id: &str, key: &str) -> OAuthError {
    OAuthError::Misconfigured(format!("plugins.{id}.{key} is missing"))
}

/// `base` + `path`, keeping any path prefix of `base` (for appliances served under a sub-path).
pub fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/{path}"));
    url
}

//! The OAuth 2.0 client side: per-plugin providers resolved from config, the authorization URL
//! (state + PKCE S256), the code exchange and RFC 7009 revocation. No actix, no storage here.

mod backchannel;
mod exchange;

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

/// A plugin resolved against the running server: concrete endpoint URLs and an oauth2 client.
pub struct Provider {
    pub id: String,
    pub display_name: String,
    pub config: PluginConfig,
    /// `None` when client id or secret is missing: the plugin is listed but cannot connect.
    client: Option<OAuthClient>,
    pub revocation_url: Option<Url>,
    pub api_base_url: Option<Url>,
    pub issuer: Option<String>,
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
        self.client.is_some() || self.config.auth == AuthKind::ApiKey
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
            .unwrap_or("authorization");
        let default_prefix = if name.eq_ignore_ascii_case("authorization") {
            "Bearer "
        } else {
            ""
        };
        Placement::Header {
            name,
            prefix: self
                .config
                .api_key_prefix
                .as_deref()
                .unwrap_or(default_prefix),
        }
    }

    fn client(&self) -> Result<&OAuthClient, OAuthError> {
        self.client.as_ref().ok_or_else(|| {
            OAuthError::Misconfigured(format!("plugin {} has no client credentials", self.id))
        })
    }

    /// Builds the authorization URL for `state`, with a fresh PKCE S256 pair unless the plugin
    /// opted out.
    pub fn authorize(
        &self,
        state: &str,
        scopes: &[String],
    ) -> Result<AuthorizeRequest, OAuthError> {
        let client = self.client()?;
        let state = state.to_string();
        let mut request = client.authorize_url(move || CsrfToken::new(state));
        if !scopes.is_empty() {
            request = request.add_extra_param("scope", scopes.join(&self.config.scope_separator));
        }
        for (k, v) in &self.config.authorize_params {
            request = request.add_extra_param(k.as_str(), v.as_str());
        }
        let mut verifier = None;
        if self.config.pkce {
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
            .map(|(id, plugin)| Ok((id.clone(), resolve(id, plugin, public_url, &redirect)?)))
            .collect::<Result<_, OAuthError>>()?;
        Ok(Providers { by_id })
    }

    pub fn get(&self, id: &str) -> Option<&Provider> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Provider> {
        self.by_id.values()
    }
}

/// One plugin's endpoints and oauth2 client (none for API-key plugins or missing credentials).
fn resolve(
    id: &str,
    plugin: &PluginConfig,
    public_url: &Url,
    redirect: &RedirectUrl,
) -> Result<Provider, OAuthError> {
    let provider = |client, revocation_url, api_base_url, issuer| Provider {
        id: id.to_string(),
        display_name: plugin.display_name_or(id).to_string(),
        config: plugin.clone(),
        client,
        revocation_url,
        api_base_url,
        issuer,
    };
    if plugin.auth == AuthKind::ApiKey {
        return Ok(provider(None, None, plugin.api_base_url.clone(), None));
    }
    let (authorization_url, token_url, revocation_url, api_base_url, issuer) = match plugin.kind {
        ProviderKind::Sandbox => (
            join(public_url, "sandbox/authorize"),
            join(public_url, "sandbox/token"),
            Some(join(public_url, "sandbox/revoke")),
            Some(
                plugin
                    .api_base_url
                    .clone()
                    .unwrap_or_else(|| join(public_url, "sandbox/api")),
            ),
            Some(join(public_url, "sandbox").to_string()),
        ),
        ProviderKind::Custom => (
            plugin
                .authorization_url
                .clone()
                .ok_or_else(|| missing(id, "authorization_url"))?,
            plugin
                .token_url
                .clone()
                .ok_or_else(|| missing(id, "token_url"))?,
            plugin.revocation_url.clone(),
            plugin.api_base_url.clone(),
            plugin.issuer.clone(),
        ),
    };
    let client = match (&plugin.client_id, &plugin.client_secret) {
        (Some(cid), Some(secret)) if plugin.has_credentials() => Some(
            oauth2::Client::new(ClientId::new(cid.clone()))
                .set_client_secret(ClientSecret::new(secret.clone()))
                .set_auth_uri(AuthUrl::from_url(authorization_url))
                .set_token_uri(TokenUrl::from_url(token_url))
                .set_redirect_uri(redirect.clone())
                .set_auth_type(match plugin.token_auth_method {
                    AuthMethod::ClientSecretBasic => AuthType::BasicAuth,
                    AuthMethod::ClientSecretPost => AuthType::RequestBody,
                }),
        ),
        _ => None,
    };
    Ok(provider(client, revocation_url, api_base_url, issuer))
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

//! Connect links and the authorization-code flow: link → hosted page → authorize (state, PKCE,
//! browser-binding cookie) → callback (verify, redeem once, store, redirect).

use url::Url;

use super::model::{new_secret_token, now, token_hash, Connection, Flow, Link, Timestamp};
use super::{ConnectError, Connections};
use crate::config::valid_scope;
use crate::oauth::{OAuthError, Params, Provider};

pub struct LinkRequest {
    pub tenant_id: String,
    pub plugin: String,
    pub redirect_url: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub connection_id: Option<String>,
    /// Template values for the provider's URLs (e.g. `{"shop": "acme"}`).
    pub params: Params,
    /// Manual mode: the team's own callback URL (must be under `allowed_redirect_urls`).
    pub redirect_uri: Option<String>,
    /// The plugin's team-wide connection (`tenant_id` is then empty).
    pub shared: bool,
}

pub struct LinkCreated {
    pub link_token: String,
    pub connect_url: Url,
    pub expires_at: Timestamp,
    pub connection_id: String,
}

/// What the hosted page shows.
pub struct LinkView {
    pub plugin_name: String,
    pub scopes: Vec<String>,
    pub expires_at: Timestamp,
}

/// A manual-mode start: where the team's page sends the browser.
pub struct ManualStart {
    pub authorize_url: Url,
    /// Until when the attempt (its state) can be completed.
    pub expires_at: Timestamp,
}

pub struct AuthorizeStart {
    pub authorize_url: Url,
    pub cookie_name: String,
    pub cookie_value: String,
    pub cookie_max_age: i64,
}

impl Connections {
    pub async fn create_link(&self, req: LinkRequest) -> Result<LinkCreated, ConnectError> {
        let provider = self.provider(&req.plugin)?;
        if req.shared {
            if !provider.config.shared {
                return Err(ConnectError::InvalidRequest(format!(
                    "plugin \"{}\" is not configured with shared = true",
                    req.plugin
                )));
            }
            if !req.tenant_id.is_empty() {
                return Err(ConnectError::InvalidRequest(
                    "a shared connection belongs to no tenant: omit tenant_id".into(),
                ));
            }
        } else {
            check_tenant_id(&req.tenant_id)?;
        }
        if provider.is_api_key() {
            return Err(ConnectError::InvalidRequest(format!(
                "plugin \"{}\" uses API keys: import them with POST /v1/connections",
                req.plugin
            )));
        }
        if !provider.has_credentials() {
            return Err(ConnectError::MissingCredentials(req.plugin.clone()));
        }
        let redirect_url = match &req.redirect_url {
            Some(raw) => Some(self.check_redirect_url(raw)?.to_string()),
            None => None,
        };
        let redirect_uri = match &req.redirect_uri {
            Some(raw) => Some(self.check_redirect_url(raw)?.to_string()),
            None => provider.config.redirect_uri.clone(),
        };
        let scopes = match req.scopes {
            Some(scopes) => check_scopes(scopes)?,
            None => provider.config.scopes().to_vec(),
        };
        let params = provider
            .check_link_params(req.params)
            .map_err(ConnectError::InvalidParams)?;
        let connection = match &req.connection_id {
            Some(id) => {
                let existing = self.get(id).await?;
                if existing.plugin != req.plugin
                    || existing.tenant_id != req.tenant_id
                    || existing.shared != req.shared
                {
                    return Err(ConnectError::InvalidRequest(
                        "connection_id belongs to another tenant or plugin".into(),
                    ));
                }
                existing
            }
            None => {
                let mut c = Connection::new_pending(&req.tenant_id, &req.plugin, scopes.clone());
                c.params.clone_from(&params);
                c.shared = req.shared;
                c
            }
        };
        let link_token = new_secret_token();
        let created_at = now();
        let link = Link {
            connection_id: connection.id.clone(),
            plugin: req.plugin,
            redirect_url,
            scopes,
            created_at,
            expires_at: created_at + self.settings.link_ttl_seconds,
            used_at: None,
            params,
            redirect_uri,
        };
        let hash = token_hash(&link_token);
        let stored = link.clone();
        let conn = connection.clone();
        self.blocking(move |s| s.create_link(&hash, &stored, &conn))
            .await?;
        crate::metrics::metrics().link_created(&link.plugin);
        Ok(LinkCreated {
            connect_url: crate::oauth::join(
                &self.settings.public_url,
                &format!("connect/{link_token}"),
            ),
            link_token,
            expires_at: link.expires_at,
            connection_id: connection.id,
        })
    }

    /// A live link (unexpired, unused) and its provider.
    async fn live_link(&self, link_token: &str) -> Result<(String, Link, &Provider), ConnectError> {
        if link_token.len() > 128 {
            return Err(ConnectError::LinkNotFound);
        }
        let hash = token_hash(link_token);
        let key = hash.clone();
        let link = self
            .blocking(move |s| s.link(&key))
            .await?
            .ok_or(ConnectError::LinkNotFound)?;
        if link.used_at.is_some() {
            return Err(ConnectError::LinkUsed);
        }
        if link.expires_at <= now() {
            return Err(ConnectError::LinkExpired);
        }
        let provider = self.provider(&link.plugin)?;
        Ok((hash, link, provider))
    }

    pub async fn view_link(&self, link_token: &str) -> Result<LinkView, ConnectError> {
        let (_, link, provider) = self.live_link(link_token).await?;
        Ok(LinkView {
            plugin_name: provider.display_name.clone(),
            scopes: link.scopes,
            expires_at: link.expires_at,
        })
    }

    /// Starts one authorization attempt at the hosted page: a fresh state, PKCE verifier and
    /// browser binding.
    pub async fn start_authorize(&self, link_token: &str) -> Result<AuthorizeStart, ConnectError> {
        let browser = new_secret_token();
        let (url, state) = self.begin_flow(link_token, &browser).await?;
        Ok(AuthorizeStart {
            authorize_url: url,
            cookie_name: self.flow_cookie_name(&state),
            cookie_value: browser,
            cookie_max_age: self.settings.flow_ttl_seconds,
        })
    }

    /// Manual mode: what the hosted page's Continue does, for a team's own connect page. The
    /// link must name the team's callback (`redirect_uri`, on the link or the plugin).
    pub async fn resolve_link(&self, link_token: &str) -> Result<ManualStart, ConnectError> {
        let (_, link, provider) = self.live_link(link_token).await?;
        if link.redirect_uri.is_none() {
            return Err(ConnectError::ConnectMisconfigured(provider.id.clone()));
        }
        // Nothing binds a manual flow to a browser here; the hash of a throwaway value keeps
        // the hosted callback (which checks it) from ever accepting this state.
        let (authorize_url, _) = self.begin_flow(link_token, &new_secret_token()).await?;
        Ok(ManualStart {
            authorize_url,
            expires_at: now() + self.settings.flow_ttl_seconds,
        })
    }

    /// Stores a new flow for the link and returns the authorization URL and the state.
    async fn begin_flow(
        &self,
        link_token: &str,
        browser: &str,
    ) -> Result<(Url, String), ConnectError> {
        let (link_hash, link, provider) = self.live_link(link_token).await?;
        let state = new_secret_token();
        let request = provider
            .authorize(
                &state,
                &link.scopes,
                &link.params,
                link.redirect_uri.as_deref(),
            )
            .map_err(|e| match e {
                OAuthError::Misconfigured(_) => {
                    ConnectError::MissingCredentials(provider.id.clone())
                }
                other => ConnectError::Internal(other.to_string()),
            })?;
        let flow = Flow {
            link_hash,
            connection_id: link.connection_id,
            plugin: link.plugin,
            pkce_verifier: request.pkce_verifier,
            browser_hash: token_hash(browser),
            expires_at: now() + self.settings.flow_ttl_seconds,
            redirect_uri: link.redirect_uri,
        };
        let key = token_hash(&state);
        self.blocking(move |s| s.put_flow(&key, &flow)).await?;
        Ok((request.url, state))
    }

    /// Cookie names are per flow, so two attempts in one browser do not overwrite each other.
    pub fn flow_cookie_name(&self, state: &str) -> String {
        let prefix = if self.settings.secure_cookies {
            "__Host-"
        } else {
            ""
        };
        format!("{prefix}ca_flow_{}", &token_hash(state)[..16])
    }

    pub(super) fn provider(&self, plugin: &str) -> Result<&Provider, ConnectError> {
        self.providers
            .get(plugin)
            .ok_or_else(|| ConnectError::UnknownPlugin(plugin.to_string()))
    }

    /// Same scheme, host and port as an allowed prefix, and a path under the prefix's path.
    fn check_redirect_url(&self, raw: &str) -> Result<Url, ConnectError> {
        let url = Url::parse(raw).map_err(|_| ConnectError::InvalidRedirectUrl)?;
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(ConnectError::InvalidRedirectUrl);
        }
        let allowed = self
            .settings
            .allowed_redirect_urls
            .iter()
            .any(|prefix| url_under(&url, prefix));
        if allowed {
            Ok(url)
        } else {
            Err(ConnectError::InvalidRedirectUrl)
        }
    }
}

const MAX_TENANT_ID: usize = 256;

pub fn check_tenant_id(tenant_id: &str) -> Result<(), ConnectError> {
    let ok = !tenant_id.is_empty()
        && tenant_id.len() <= MAX_TENANT_ID
        && !tenant_id.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(ConnectError::InvalidRequest(format!(
            "tenant_id must be 1-{MAX_TENANT_ID} characters without control characters"
        )))
    }
}

pub(super) fn check_scopes(scopes: Vec<String>) -> Result<Vec<String>, ConnectError> {
    if let Some(bad) = scopes.iter().find(|s| !valid_scope(s)) {
        return Err(ConnectError::InvalidRequest(format!(
            "scope \"{}\" is not a valid scope token",
            bad.escape_default()
        )));
    }
    Ok(scopes)
}

/// Same scheme, host and port as `prefix`, and a path under its path.
pub fn url_under(url: &Url, prefix: &Url) -> bool {
    url.scheme() == prefix.scheme()
        && url.host() == prefix.host()
        && url.port_or_known_default() == prefix.port_or_known_default()
        && path_under(url.path(), prefix.path())
}

fn path_under(path: &str, prefix: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix)
    } else {
        path == prefix || path.starts_with(&format!("{prefix}/"))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_prefix_paths() {
        assert!(path_under("/cb", "/"));
        assert!(path_under("/app/cb", "/app"));
        assert!(!path_under("/application", "/app"));
        assert!(path_under("/app/", "/app/"));
        assert!(!path_under("/other", "/app/"));
    }
}

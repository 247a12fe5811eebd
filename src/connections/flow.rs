//! Connect links and the authorization-code flow: link → hosted page → authorize (state, PKCE,
//! browser-binding cookie) → callback (verify, redeem once, store, redirect).

use subtle::ConstantTimeEq;
use url::Url;

use super::model::{
    new_secret_token, now, token_hash, Connection, Flow, Link, Timestamp, TokenSet,
};
use super::{ConnectError, Connections};
use crate::config::valid_scope;
use crate::oauth::{OAuthError, Params, Provider};
use crate::vault::CredentialsUpdate;

pub struct LinkRequest {
    pub tenant_id: String,
    pub plugin: String,
    pub redirect_url: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub connection_id: Option<String>,
    /// Template values for the provider's URLs (e.g. `{"shop": "acme"}`).
    pub params: Params,
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

pub struct AuthorizeStart {
    pub authorize_url: Url,
    pub cookie_name: String,
    pub cookie_value: String,
    pub cookie_max_age: i64,
}

#[derive(Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub iss: Option<String>,
}

pub struct CallbackOutcome {
    pub connection: Connection,
    /// Where to send the browser; `None` shows our own result page.
    pub redirect: Option<Url>,
    /// The provider's error code when the user did not authorise.
    pub error: Option<(String, Option<String>)>,
}

impl Connections {
    pub async fn create_link(&self, req: LinkRequest) -> Result<LinkCreated, ConnectError> {
        check_tenant_id(&req.tenant_id)?;
        let provider = self.provider(&req.plugin)?;
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
                if existing.plugin != req.plugin || existing.tenant_id != req.tenant_id {
                    return Err(ConnectError::InvalidRequest(
                        "connection_id belongs to another tenant or plugin".into(),
                    ));
                }
                existing
            }
            None => {
                let mut c = Connection::new_pending(&req.tenant_id, &req.plugin, scopes.clone());
                c.params.clone_from(&params);
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
        };
        let hash = token_hash(&link_token);
        let stored = link.clone();
        let conn = connection.clone();
        self.blocking(move |s| s.create_link(&hash, &stored, &conn))
            .await?;
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

    /// Starts one authorization attempt: a fresh state, PKCE verifier and browser binding.
    pub async fn start_authorize(&self, link_token: &str) -> Result<AuthorizeStart, ConnectError> {
        let (link_hash, link, provider) = self.live_link(link_token).await?;
        let state = new_secret_token();
        let browser = new_secret_token();
        let request = provider
            .authorize(&state, &link.scopes, &link.params)
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
            browser_hash: token_hash(&browser),
            expires_at: now() + self.settings.flow_ttl_seconds,
        };
        let key = token_hash(&state);
        self.blocking(move |s| s.put_flow(&key, &flow)).await?;
        Ok(AuthorizeStart {
            authorize_url: request.url,
            cookie_name: self.flow_cookie_name(&state),
            cookie_value: browser,
            cookie_max_age: self.settings.flow_ttl_seconds,
        })
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

    /// Verifies and completes a callback. Every check that can refuse it runs before any write
    /// and before any call to the provider.
    pub async fn complete_callback(
        &self,
        params: CallbackParams,
        cookie: impl Fn(&str) -> Option<String>,
    ) -> Result<CallbackOutcome, ConnectError> {
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or(ConnectError::ResolveFailed("missing state"))?;
        let state_hash = token_hash(state);
        let key = state_hash.clone();
        let flow = self
            .blocking(move |s| s.flow(&key))
            .await?
            .ok_or(ConnectError::ResolveFailed("unknown or already used state"))?;
        if flow.expires_at <= now() {
            return Err(ConnectError::ResolveFailed("expired state"));
        }
        let presented = cookie(&self.flow_cookie_name(state)).ok_or(
            ConnectError::ResolveFailed("no flow cookie in this browser"),
        )?;
        let same_browser: bool = token_hash(&presented)
            .as_bytes()
            .ct_eq(flow.browser_hash.as_bytes())
            .into();
        if !same_browser {
            return Err(ConnectError::ResolveFailed("flow cookie does not match"));
        }
        let provider = self.provider(&flow.plugin)?;
        if let (Some(iss), Some(expected)) = (&params.iss, &provider.issuer) {
            if iss != expected {
                return Err(ConnectError::ResolveFailed("issuer mismatch"));
            }
        }
        // A link completes once: another attempt started from it must not redo (or undo) it.
        let key = flow.link_hash.clone();
        let link = self
            .blocking(move |s| s.link(&key))
            .await?
            .filter(|l| l.used_at.is_none())
            .ok_or(ConnectError::ResolveFailed("link already used"))?;
        // Single use: whoever removes the flow owns this callback; a replay finds nothing.
        let flow = self
            .blocking(move |s| s.take_flow(&state_hash))
            .await?
            .ok_or(ConnectError::ResolveFailed("state already used"))?;
        let link_hash = flow.link_hash.clone();
        let mut connection = self.get(&flow.connection_id).await?;
        let redirect_base = link.redirect_url.and_then(|u| Url::parse(&u).ok());
        let link_params = link.params;

        if let Some(error) = params.error {
            let code = sanitize_error_code(&error);
            let description = params.error_description.map(|d| truncate(&d, 300));
            connection.mark_failed(
                &code,
                description
                    .as_deref()
                    .unwrap_or("the provider returned an error"),
            );
            self.finish(&link_hash, &connection, CredentialsUpdate::Keep)
                .await?;
            let redirect = redirect_base.map(|u| {
                with_query(
                    u,
                    &[
                        ("status", "error"),
                        ("error", &code),
                        ("connection_id", &connection.id),
                    ],
                )
            });
            return Ok(CallbackOutcome {
                connection,
                redirect,
                error: Some((code, description)),
            });
        }
        let Some(code) = params.code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
            connection.mark_failed(
                "oauth_callback_failed",
                "the provider sent no authorization code",
            );
            self.finish(&link_hash, &connection, CredentialsUpdate::Keep)
                .await?;
            return Err(ConnectError::OAuthCallbackFailed(
                "no authorization code".into(),
            ));
        };
        match provider
            .exchange_code(
                &self.backchannel,
                &code,
                flow.pkce_verifier.as_deref(),
                &link_params,
            )
            .await
        {
            Ok(tokens) => {
                connection.mark_connected(&tokens);
                connection.params = link_params;
                connection.api_base_url = provider.api_base_from(&tokens).map(String::from);
                // Durable before anyone (the browser, the team's app) hears of it.
                self.finish(&link_hash, &connection, CredentialsUpdate::Replace(&tokens))
                    .await?;
                self.record_account_name(provider, &mut connection, &tokens)
                    .await;
                tracing::info!(connection = %connection.id, plugin = %connection.plugin, "connection connected");
                let redirect = redirect_base.map(|u| {
                    with_query(
                        u,
                        &[("status", "connected"), ("connection_id", &connection.id)],
                    )
                });
                Ok(CallbackOutcome {
                    connection,
                    redirect,
                    error: None,
                })
            }
            Err(e) => {
                tracing::warn!(connection = %connection.id, plugin = %connection.plugin, error = %e, "code exchange failed");
                connection.mark_failed("oauth_callback_failed", &e.to_string());
                self.finish(&link_hash, &connection, CredentialsUpdate::Keep)
                    .await?;
                Err(ConnectError::OAuthCallbackFailed(e.to_string()))
            }
        }
    }

    /// Looks up the account's display name after the tokens are safe; a failure only leaves
    /// the name unset.
    async fn record_account_name(
        &self,
        provider: &Provider,
        connection: &mut Connection,
        tokens: &TokenSet,
    ) {
        let Some(name) = provider
            .account_name(&self.backchannel, tokens, &connection.params)
            .await
        else {
            return;
        };
        connection.display_name = Some(name);
        let conn = connection.clone();
        let stored = self
            .blocking(move |s| s.put_connection(&conn, CredentialsUpdate::Keep))
            .await;
        if let Err(e) = stored {
            tracing::warn!(connection = %connection.id, error = %e, "could not store the display name");
        }
    }

    async fn finish(
        &self,
        link_hash: &str,
        connection: &Connection,
        credentials: CredentialsUpdate<'_>,
    ) -> Result<(), ConnectError> {
        // The closure must own its data to run on the blocking pool.
        let owned = match credentials {
            CredentialsUpdate::Replace(t) => Some(t.clone()),
            _ => None,
        };
        let (hash, conn) = (link_hash.to_string(), connection.clone());
        let finished = self
            .blocking(move |s| {
                let update = match &owned {
                    Some(t) => CredentialsUpdate::Replace(t),
                    None => CredentialsUpdate::Keep,
                };
                s.finish_link(&hash, &conn, update)
            })
            .await?;
        if finished {
            Ok(())
        } else {
            // Two attempts from one link raced; the other one completed it first.
            Err(ConnectError::ResolveFailed("link already used"))
        }
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
        let allowed = self.settings.allowed_redirect_urls.iter().any(|prefix| {
            url.scheme() == prefix.scheme()
                && url.host() == prefix.host()
                && url.port_or_known_default() == prefix.port_or_known_default()
                && path_under(url.path(), prefix.path())
        });
        if allowed {
            Ok(url)
        } else {
            Err(ConnectError::InvalidRedirectUrl)
        }
    }
}

const MAX_TENANT_ID: usize = 256;

pub(super) fn check_tenant_id(tenant_id: &str) -> Result<(), ConnectError> {
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

fn path_under(path: &str, prefix: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix)
    } else {
        path == prefix || path.starts_with(&format!("{prefix}/"))
    }
}

fn with_query(mut url: Url, pairs: &[(&str, &str)]) -> Url {
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    url
}

/// Provider error codes are echoed into a URL we build; keep them to the RFC 6749 charset.
fn sanitize_error_code(code: &str) -> String {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        code.to_string()
    } else {
        "provider_error".into()
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
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

    #[test]
    fn error_codes_are_sanitised() {
        assert_eq!(sanitize_error_code("access_denied"), "access_denied");
        assert_eq!(sanitize_error_code("<script>"), "provider_error");
        assert_eq!(sanitize_error_code(""), "provider_error");
    }
}

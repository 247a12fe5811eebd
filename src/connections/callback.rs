//! The end of an authorization attempt: the provider's callback, verified (state, browser
//! binding or manual mode, issuer, one-time link) before any write or token call, then the code
//! redeemed once and the tokens stored durably before anyone hears of it.

use serde::Deserialize;
use subtle::ConstantTimeEq;
use url::Url;

use super::model::{now, token_hash, Connection, Flow, TokenSet};
use super::{ConnectError, Connections};
use crate::oauth::Provider;
use crate::vault::CredentialsUpdate;

/// The callback's parameters, as the provider sent them (the hosted route's query, or the body
/// of a manual-mode callback).
#[derive(Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub iss: Option<String>,
}

/// What the provider answered, checked before anything is looked up, stored or sent.
#[derive(Debug, PartialEq, Eq)]
pub enum ProviderAnswer {
    /// An error: its code kept to the RFC 6749 character set (it is echoed into URLs we build),
    /// its description cut to 300 characters.
    Refused {
        code: String,
        description: Option<String>,
    },
    /// An authorization code of a plausible size.
    Code(String),
    /// Neither an error nor a usable code.
    Nothing,
}

impl CallbackParams {
    /// The `state`, when present and of a plausible size (1-256 bytes).
    pub fn state(&self) -> Option<&str> {
        self.state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 256)
    }

    pub fn answer(&self) -> ProviderAnswer {
        if let Some(error) = &self.error {
            return ProviderAnswer::Refused {
                code: sanitize_error_code(error),
                description: self.error_description.as_deref().map(|d| truncate(d, 300)),
            };
        }
        match &self.code {
            Some(c) if !c.is_empty() && c.len() <= 4096 => ProviderAnswer::Code(c.clone()),
            _ => ProviderAnswer::Nothing,
        }
    }
}

pub struct CallbackOutcome {
    pub connection: Connection,
    /// Where to send the browser; `None` shows our own result page.
    pub redirect: Option<Url>,
    /// The provider's error code when the user did not authorise.
    pub error: Option<(String, Option<String>)>,
}

impl Connections {
    /// Verifies and completes a callback at our hosted route. Every check that can refuse it
    /// runs before any write and before any call to the provider.
    pub async fn complete_callback(
        &self,
        params: CallbackParams,
        cookie: impl Fn(&str) -> Option<String>,
    ) -> Result<CallbackOutcome, ConnectError> {
        let (state, state_hash, flow) = self.pending_flow(&params).await?;
        if flow.redirect_uri.is_some() {
            return Err(ConnectError::ResolveFailed(
                "this attempt completes at the team's own callback",
            ));
        }
        let presented = cookie(&self.flow_cookie_name(&state)).ok_or(
            ConnectError::ResolveFailed("no flow cookie in this browser"),
        )?;
        let same_browser: bool = token_hash(&presented)
            .as_bytes()
            .ct_eq(flow.browser_hash.as_bytes())
            .into();
        if !same_browser {
            return Err(ConnectError::ResolveFailed("flow cookie does not match"));
        }
        self.redeem(params, state_hash, flow).await
    }

    /// Manual mode: the team's own callback route hands us `code` and `state`. Binding the
    /// attempt to the browser is then the team's page's job; state, PKCE, issuer and one-time
    /// use are checked here exactly as for the hosted route.
    pub async fn complete_manual_callback(
        &self,
        params: CallbackParams,
    ) -> Result<CallbackOutcome, ConnectError> {
        let (_, state_hash, flow) = self.pending_flow(&params).await?;
        if flow.redirect_uri.is_none() {
            return Err(ConnectError::ResolveFailed(
                "this attempt completes at the hosted callback",
            ));
        }
        self.redeem(params, state_hash, flow).await
    }

    /// The live flow named by the callback's `state` (not yet taken).
    async fn pending_flow(
        &self,
        params: &CallbackParams,
    ) -> Result<(String, String, Flow), ConnectError> {
        let state = params
            .state()
            .ok_or(ConnectError::ResolveFailed("missing state"))?
            .to_string();
        let state_hash = token_hash(&state);
        let key = state_hash.clone();
        let flow = self
            .blocking(move |s| s.flow(&key))
            .await?
            .ok_or(ConnectError::ResolveFailed("unknown or already used state"))?;
        if flow.expires_at <= now() {
            return Err(ConnectError::ResolveFailed("expired state"));
        }
        Ok((state, state_hash, flow))
    }

    async fn redeem(
        &self,
        params: CallbackParams,
        state_hash: String,
        flow: Flow,
    ) -> Result<CallbackOutcome, ConnectError> {
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

        let answer = params.answer();
        if let ProviderAnswer::Refused { code, description } = answer {
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
        let ProviderAnswer::Code(code) = answer else {
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
                flow.redirect_uri.as_deref(),
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
            let outcome = if connection.last_error.is_none() {
                "connected"
            } else {
                "failed"
            };
            crate::metrics::metrics().connect_completed(&connection.plugin, outcome);
            Ok(())
        } else {
            // Two attempts from one link raced; the other one completed it first.
            Err(ConnectError::ResolveFailed("link already used"))
        }
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
    fn error_codes_are_sanitised() {
        assert_eq!(sanitize_error_code("access_denied"), "access_denied");
        assert_eq!(sanitize_error_code("<script>"), "provider_error");
        assert_eq!(sanitize_error_code(""), "provider_error");
    }
}

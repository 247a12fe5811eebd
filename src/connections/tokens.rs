//! Handing out access tokens (refreshing first when needed, one refresh per connection at a time)
//! and revoking them.

use super::model::{now, Connection, Status, Timestamp, TokenSet};
use super::{ConnectError, Connections};
use crate::metrics::metrics;
use crate::oauth::{is_grant_dead, OAuthError};
use crate::vault::CredentialsUpdate;

pub struct AccessTokenView {
    pub access_token: String,
    pub token_type: String,
    pub expires_at: Option<Timestamp>,
    pub scopes: Vec<String>,
}

impl From<&TokenSet> for AccessTokenView {
    fn from(t: &TokenSet) -> Self {
        AccessTokenView {
            access_token: t.access_token.clone(),
            token_type: t.token_type.clone(),
            expires_at: t.expires_at,
            scopes: t.scopes.clone(),
        }
    }
}

pub struct RevokeOutcome {
    pub connection: Connection,
    /// `revoked`, `failed`, `not_supported` (no revocation endpoint) or `no_credentials`.
    pub provider_revocation: &'static str,
    pub provider_error: Option<String>,
}

impl Connections {
    /// A token valid for at least the configured margin, refreshed first when it is not.
    pub async fn access_token(
        &self,
        id: &str,
        force_refresh: bool,
    ) -> Result<AccessTokenView, ConnectError> {
        self.fresh_token(id, force_refresh, self.settings.min_validity_seconds)
            .await
    }

    /// The token, refreshed first if forced or if it expires within `margin` seconds.
    pub(super) async fn fresh_token(
        &self,
        id: &str,
        force_refresh: bool,
        margin: i64,
    ) -> Result<AccessTokenView, ConnectError> {
        let (connection, tokens) = self.connected(id).await?;
        if !force_refresh && !needs_refresh(&tokens, margin) {
            return Ok(AccessTokenView::from(&tokens));
        }
        if tokens.refresh_token.is_none() {
            return match tokens.expires_at {
                Some(exp) if exp <= now() => {
                    self.expire(
                        connection,
                        "token_expired",
                        "the access token expired and the provider issued no refresh token",
                    )
                    .await?;
                    Err(ConnectError::NotConnected(Status::Expired))
                }
                _ => Ok(AccessTokenView::from(&tokens)),
            };
        }
        let seen = tokens.obtained_at;
        let waiting_since = std::time::Instant::now();
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        // A refresh that failed while we waited is our answer too: a failing provider is not
        // asked again by every queued caller.
        if let Some(error) = self.scheduler.failed_since(id, waiting_since) {
            return Err(ConnectError::RefreshFailed(error));
        }
        // Whoever held the lock before us may have refreshed already: use their result.
        let (connection, tokens) = self.connected(id).await?;
        if tokens.obtained_at != seen && !needs_refresh(&tokens, margin) {
            return Ok(AccessTokenView::from(&tokens));
        }
        if !force_refresh && !needs_refresh(&tokens, margin) {
            return Ok(AccessTokenView::from(&tokens));
        }
        self.refresh_locked(connection, tokens).await
    }

    /// Refresh with the per-connection lock held.
    async fn refresh_locked(
        &self,
        mut connection: Connection,
        tokens: TokenSet,
    ) -> Result<AccessTokenView, ConnectError> {
        let provider = self.provider(&connection.plugin)?;
        match provider
            .refresh(&self.backchannel, &tokens, &connection.params)
            .await
        {
            Ok(new_tokens) => {
                connection.mark_refreshed(&new_tokens);
                if let Some(base) = provider.api_base_from(&new_tokens) {
                    connection.api_base_url = Some(base.into());
                }
                // The rotated refresh token is durable before the new access token leaves.
                let (conn, stored) = (connection.clone(), new_tokens.clone());
                self.blocking(move |s| {
                    s.put_connection(&conn, CredentialsUpdate::Replace(&stored))
                })
                .await?;
                self.scheduler.succeeded(&connection.id);
                tracing::info!(connection = %connection.id, plugin = %connection.plugin, "token refreshed");
                metrics().refresh(&connection.plugin, "refreshed");
                Ok(AccessTokenView::from(&new_tokens))
            }
            Err(OAuthError::Rejected { code, description }) if is_grant_dead(&code) => {
                let message =
                    description.unwrap_or_else(|| "the provider rejected the refresh token".into());
                tracing::warn!(connection = %connection.id, plugin = %connection.plugin, %code, "refresh rejected; connection expired");
                metrics().refresh(&connection.plugin, "expired");
                self.expire(connection, &code, &message).await?;
                Err(ConnectError::ConnectionExpired(code))
            }
            Err(e) => {
                // Transient (or a provider misbehaving): the connection stays connected.
                tracing::warn!(connection = %connection.id, plugin = %connection.plugin, error = %e, "refresh failed");
                metrics().refresh(&connection.plugin, "transient_failure");
                if self.scheduler.failed(&connection.id, now(), e.to_string()) {
                    self.record_refresh_failure(&connection.id, failure_code(&e))
                        .await;
                }
                Err(ConnectError::RefreshFailed(e.to_string()))
            }
        }
    }

    /// Appends `connection.refresh_failed`; the connection itself is unchanged. A storage error
    /// is logged, not returned: the caller's answer is the refresh failure.
    async fn record_refresh_failure(&self, id: &str, code: String) {
        let key = id.to_string();
        let written = self
            .blocking(move |s| s.append_event(&key, "connection.refresh_failed", Some(code)))
            .await;
        if let Err(e) = written {
            tracing::warn!(connection = %id, error = %e, "recording the refresh failure failed");
        }
    }

    async fn expire(
        &self,
        mut connection: Connection,
        code: &str,
        message: &str,
    ) -> Result<(), ConnectError> {
        connection.mark_expired(code, message);
        self.blocking(move |s| s.put_connection(&connection, CredentialsUpdate::Keep))
            .await
    }

    /// The connection and its credentials (the hot path of every token fetch and proxied
    /// call): from the store's cache when it has them, else in one trip to the blocking pool.
    async fn connected(&self, id: &str) -> Result<(Connection, TokenSet), ConnectError> {
        let found = match self.store.cached_connection(id) {
            Some(hit) => Some(hit),
            None => {
                let key = id.to_string();
                self.blocking(move |s| s.connection_with_credentials(&key))
                    .await?
            }
        };
        let (connection, tokens) = found.ok_or(ConnectError::NotFound)?;
        if connection.status != Status::Connected {
            return Err(ConnectError::NotConnected(connection.status));
        }
        let tokens = tokens.ok_or(ConnectError::NotConnected(connection.status))?;
        Ok((connection, tokens))
    }

    /// Revokes at the provider when it can (refresh token first), then deletes the stored
    /// credentials whatever the provider answered, so an end user's opt-out always works.
    pub async fn revoke(&self, id: &str) -> Result<RevokeOutcome, ConnectError> {
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        let mut connection = self.get(id).await?;
        let key = id.to_string();
        let tokens = self.blocking(move |s| s.credentials(&key)).await?;
        let provider = self.provider(&connection.plugin)?;
        let (provider_revocation, provider_error) = match &tokens {
            None => ("no_credentials", None),
            Some(t) => match provider
                .revoke(&self.backchannel, t, &connection.params)
                .await
            {
                Ok(true) => ("revoked", None),
                Ok(false) => ("not_supported", None),
                Err(e) => {
                    tracing::warn!(connection = %id, error = %e, "provider revocation failed; deleting local credentials anyway");
                    ("failed", Some(e.to_string()))
                }
            },
        };
        connection.mark_revoked();
        let conn = connection.clone();
        self.blocking(move |s| s.put_connection(&conn, CredentialsUpdate::Delete))
            .await?;
        Ok(RevokeOutcome {
            connection,
            provider_revocation,
            provider_error,
        })
    }
}

fn needs_refresh(tokens: &TokenSet, margin: i64) -> bool {
    let Some(expires_at) = tokens.expires_at else {
        return false; // non-expiring token
    };
    // For tokens shorter-lived than the margin, refresh at half their lifetime instead of on
    // every call.
    let lifetime = (expires_at - tokens.obtained_at).max(0);
    expires_at - now() <= margin.min(lifetime / 2)
}

/// The stable `error_code` of a `connection.refresh_failed` event.
fn failure_code(e: &OAuthError) -> String {
    match e {
        OAuthError::Transient(_) => "provider_unavailable".into(),
        OAuthError::InvalidResponse(_) => "invalid_provider_response".into(),
        OAuthError::Misconfigured(_) => "plugin_misconfigured".into(),
        // The provider's own OAuth code, when it looks like one.
        OAuthError::Rejected { code, .. }
            if code.len() <= 64 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
        {
            code.clone()
        }
        OAuthError::Rejected { .. } => "provider_error".into(),
    }
}

//! Programmatic connections: importing credentials obtained elsewhere (migrations).

use super::flow::{check_scopes, check_tenant_id};
use super::model::{now, Connection, Timestamp, TokenSet};
use super::{ConnectError, Connections};
use crate::vault::CredentialsUpdate;

pub struct ImportRequest {
    pub tenant_id: String,
    pub plugin: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub expires_in: Option<i64>,
    pub scopes: Option<Vec<String>>,
}

const MAX_TOKEN_LEN: usize = 16 * 1024;

impl Connections {
    /// Stores imported credentials as a new `connected` connection, durably, in one write.
    pub async fn import(&self, req: ImportRequest) -> Result<Connection, ConnectError> {
        check_tenant_id(&req.tenant_id)?;
        let provider = self.provider(&req.plugin)?;
        let token_ok =
            |t: &str| !t.is_empty() && t.len() <= MAX_TOKEN_LEN && !t.chars().any(char::is_control);
        if !token_ok(&req.access_token) {
            return Err(ConnectError::InvalidRequest(format!(
                "credentials.access_token must be 1-{MAX_TOKEN_LEN} characters without control characters"
            )));
        }
        if req.refresh_token.as_deref().is_some_and(|t| !token_ok(t)) {
            return Err(ConnectError::InvalidRequest(
                "credentials.refresh_token is not a valid token".into(),
            ));
        }
        let t = now();
        let expires_at = match (req.expires_at, req.expires_in) {
            (Some(_), Some(_)) => {
                return Err(ConnectError::InvalidRequest(
                    "give credentials.expires_at or credentials.expires_in, not both".into(),
                ))
            }
            (Some(at), None) => Some(at),
            (None, Some(secs)) if secs > 0 => Some(t + secs),
            (None, Some(_)) => {
                return Err(ConnectError::InvalidRequest(
                    "credentials.expires_in must be positive".into(),
                ))
            }
            (None, None) => None,
        };
        let scopes = match req.scopes {
            Some(s) => check_scopes(s)?,
            None => provider.config.scopes().to_vec(),
        };
        let tokens = TokenSet {
            access_token: req.access_token,
            token_type: if provider.is_api_key() {
                "api_key"
            } else {
                "Bearer"
            }
            .into(),
            refresh_token: req.refresh_token,
            expires_at,
            scopes: scopes.clone(),
            id_token: None,
            extra: serde_json::Map::new(),
            obtained_at: t,
        };
        let mut connection = Connection::new_pending(&req.tenant_id, &req.plugin, scopes);
        connection.mark_connected(&tokens);
        let conn = connection.clone();
        self.blocking(move |s| s.put_connection(&conn, CredentialsUpdate::Replace(&tokens)))
            .await?;
        tracing::info!(connection = %connection.id, plugin = %connection.plugin, "credentials imported");
        Ok(connection)
    }
}

//! Records as stored (sealed) in the vault, and the connection state machine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::vault::random_bytes;

/// Seconds since the Unix epoch.
pub type Timestamp = i64;

pub fn now() -> Timestamp {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A link was issued; the end user has not completed it yet.
    Pending,
    Connected,
    /// The last attempt failed; `last_error` says why.
    Failed,
    /// The provider rejected the grant (e.g. `invalid_grant` on refresh).
    Expired,
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Connected => "connected",
            Status::Failed => "failed",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Connected,
            Status::Failed,
            Status::Expired,
            Status::Revoked,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    pub code: String,
    pub message: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connection {
    pub id: String,
    pub tenant_id: String,
    pub plugin: String,
    pub status: Status,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub connected_at: Option<Timestamp>,
    /// Expiry of the current access token, when the provider gave one.
    pub expires_at: Option<Timestamp>,
    /// Whether a refresh token is held (false: the token is used until it expires).
    #[serde(default)]
    pub refreshable: bool,
    #[serde(default)]
    pub last_refreshed_at: Option<Timestamp>,
    #[serde(default)]
    pub expired_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_error: Option<LastError>,
    /// A team-wide connection (tenant id empty) used by tenants without their own.
    #[serde(default)]
    pub shared: bool,
    /// Template values of the provider's URLs for this connection (e.g. a Shopify `shop`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The connected account as the provider names it (a login, a workspace, a shop domain).
    #[serde(default)]
    pub display_name: Option<String>,
    /// The account's own API base when the provider assigns one (Salesforce's instance_url).
    #[serde(default)]
    pub api_base_url: Option<String>,
}

impl Connection {
    pub fn new_pending(tenant_id: &str, plugin: &str, scopes: Vec<String>) -> Self {
        let t = now();
        Connection {
            id: new_id("conn"),
            tenant_id: tenant_id.to_string(),
            plugin: plugin.to_string(),
            status: Status::Pending,
            scopes,
            created_at: t,
            updated_at: t,
            connected_at: None,
            expires_at: None,
            refreshable: false,
            last_refreshed_at: None,
            expired_at: None,
            revoked_at: None,
            last_error: None,
            shared: false,
            params: BTreeMap::new(),
            display_name: None,
            api_base_url: None,
        }
    }

    pub fn mark_connected(&mut self, tokens: &TokenSet) {
        let t = now();
        self.status = Status::Connected;
        self.connected_at = Some(t);
        self.revoked_at = None;
        self.expired_at = None;
        self.updated_at = t;
        self.expires_at = tokens.expires_at;
        self.refreshable = tokens.refresh_token.is_some();
        if !tokens.scopes.is_empty() {
            self.scopes.clone_from(&tokens.scopes);
        }
        self.last_error = None;
    }

    /// A failed attempt. A connection that still holds working credentials (a re-authorisation
    /// that failed) keeps its status, so a usable token is never thrown away by a failed retry.
    pub fn mark_failed(&mut self, code: &str, message: &str) {
        let t = now();
        if self.status != Status::Connected {
            self.status = Status::Failed;
        }
        self.updated_at = t;
        self.last_error = Some(LastError {
            code: code.to_string(),
            message: message.to_string(),
            at: t,
        });
    }

    pub fn mark_refreshed(&mut self, tokens: &TokenSet) {
        let t = now();
        self.last_refreshed_at = Some(t);
        self.updated_at = t;
        self.expires_at = tokens.expires_at;
        self.refreshable = tokens.refresh_token.is_some();
        if !tokens.scopes.is_empty() {
            self.scopes.clone_from(&tokens.scopes);
        }
        self.last_error = None;
    }

    /// The provider has permanently rejected the grant.
    pub fn mark_expired(&mut self, code: &str, message: &str) {
        let t = now();
        self.status = Status::Expired;
        self.expired_at = Some(t);
        self.updated_at = t;
        self.last_error = Some(LastError {
            code: code.to_string(),
            message: message.to_string(),
            at: t,
        });
    }

    pub fn mark_revoked(&mut self) {
        let t = now();
        self.status = Status::Revoked;
        self.revoked_at = Some(t);
        self.updated_at = t;
        self.expires_at = None;
        self.refreshable = false;
    }
}

/// A connect link. Stored under the SHA-256 of its token; the token itself is never stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Link {
    pub connection_id: String,
    pub plugin: String,
    pub redirect_url: Option<String>,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Manual mode: the team's own callback URL (from the link or the plugin).
    #[serde(default)]
    pub redirect_uri: Option<String>,
}

/// One authorization attempt, keyed by the SHA-256 of its `state`.
#[derive(Clone, Serialize, Deserialize)]
pub struct Flow {
    pub link_hash: String,
    pub connection_id: String,
    pub plugin: String,
    pub pkce_verifier: Option<String>,
    /// SHA-256 (hex) of the browser-binding cookie value.
    pub browser_hash: String,
    pub expires_at: Timestamp,
    /// Manual mode: the team's own callback URL, sent again with the code exchange. `None`:
    /// our hosted `/oauth/callback`.
    #[serde(default)]
    pub redirect_uri: Option<String>,
}

/// Credentials as the provider issued them.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: String,
    pub token_type: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub scopes: Vec<String>,
    pub id_token: Option<String>,
    /// Any other fields of the token response, kept for later use.
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    pub obtained_at: Timestamp,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("token_type", &self.token_type)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A sortable id: creation time in milliseconds, then 64 random bits.
pub fn new_id(prefix: &str) -> String {
    let millis = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or_default();
    let rand = random_bytes::<8>();
    format!("{prefix}_{millis:012x}{}", hex::encode(rand))
}

/// A random URL-safe token with 256 bits of entropy.
pub fn new_secret_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// SHA-256 hex, the form in which bearer-like tokens (links, states, cookies) are stored.
pub fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
impl TokenSet {
    /// A bearer token obtained now, for tests.
    pub fn bearer(access: &str, refresh: Option<&str>, expires_at: Option<Timestamp>) -> Self {
        TokenSet {
            access_token: access.into(),
            token_type: "Bearer".into(),
            refresh_token: refresh.map(Into::into),
            expires_at,
            scopes: vec![],
            id_token: None,
            extra: serde_json::Map::new(),
            obtained_at: now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation() {
        let a = new_id("conn");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("conn");
        assert!(a < b);
        assert_eq!(a.len(), "conn_".len() + 12 + 16);
    }

    #[test]
    fn failed_reauthorisation_keeps_connected() {
        let mut c = Connection::new_pending("t", "p", vec![]);
        c.mark_failed("access_denied", "no");
        assert_eq!(c.status, Status::Failed);
        c.status = Status::Connected;
        c.mark_failed("access_denied", "no");
        assert_eq!(c.status, Status::Connected);
        assert!(c.last_error.is_some());
    }
}

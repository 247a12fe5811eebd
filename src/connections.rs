//! The domain: connect links, the authorization flow around the OAuth client, and connections with
//! their credentials. No actix and no redb here; storage is reached through [`Store`].

mod callback;
pub mod events;
mod flow;
mod history;
mod import;
pub mod model;
mod proxy;
mod scheduler;
mod tenant;
mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use url::Url;

use crate::oauth::{Backchannel, Providers};
use crate::vault::{ConnectionFilter, Store, VaultError};
use model::{Connection, Status};

pub use callback::{CallbackOutcome, CallbackParams, ProviderAnswer};
pub use flow::{check_tenant_id, url_under, AuthorizeStart, LinkCreated, LinkRequest, LinkView};
pub use history::EventPage;
pub use import::ImportRequest;
pub use proxy::{build_target, ProxyBody, ProxyRequest};
pub use tenant::TenantConnection;
pub use tokens::{AccessTokenView, RevokeOutcome};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no plugin named \"{0}\" is configured")]
    UnknownPlugin(String),
    #[error("plugin \"{0}\" has no client id or client secret configured")]
    MissingCredentials(String),
    #[error("redirect_url is not in [links] allowed_redirect_urls")]
    InvalidRedirectUrl,
    #[error("{0}")]
    InvalidRequest(String),
    /// A link's template values (`params`) are missing or do not match the provider's pattern.
    #[error("{0}")]
    InvalidParams(String),
    #[error("no such connection")]
    NotFound,
    #[error("this connect link does not exist")]
    LinkNotFound,
    #[error("this connect link has expired")]
    LinkExpired,
    #[error("this connect link has already been used")]
    LinkUsed,
    #[error("plugin \"{0}\" has no usable redirect URI for manual connect mode: set redirect_uri on the plugin or the link")]
    ConnectMisconfigured(String),
    /// The callback could not be matched to a live flow started in this browser. The reason is
    /// for logs only; users see one generic message.
    #[error("the sign-in attempt could not be verified ({0})")]
    ResolveFailed(&'static str),
    #[error("the provider did not accept the authorization: {0}")]
    OAuthCallbackFailed(String),
    #[error("the connection is {} and has no usable credentials", .0.as_str())]
    NotConnected(Status),
    #[error("the provider rejected the refresh ({0}); the connection is now expired")]
    ConnectionExpired(String),
    #[error("the provider could not refresh the token right now: {0}")]
    RefreshFailed(String),
    #[error("proxying is not available: {0}")]
    ProxyNotConfigured(String),
    #[error("invalid proxy path: {0}")]
    InvalidProxyPath(String),
    #[error("the provider's API could not be reached: {0}")]
    Upstream(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Settings the domain needs from config, resolved at start.
#[derive(Clone)]
pub struct Settings {
    pub public_url: Url,
    pub link_ttl_seconds: i64,
    pub allowed_redirect_urls: Vec<Url>,
    /// How long an authorization attempt (state) stays valid.
    pub flow_ttl_seconds: i64,
    /// A token fetch refreshes when fewer seconds than this remain.
    pub min_validity_seconds: i64,
    pub secure_cookies: bool,
}

pub struct Connections {
    store: Arc<dyn Store>,
    providers: Arc<Providers>,
    backchannel: Backchannel,
    settings: Settings,
    /// One async lock per connection being refreshed or revoked (single flight).
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    scheduler: scheduler::SchedulerState,
    /// Connection counts for `/metrics`, recomputed at most every [`COUNTS_TTL`].
    counts: tokio::sync::Mutex<Option<(std::time::Instant, Counts)>>,
}

/// (plugin, status, how many).
pub type Counts = Vec<(String, String, u64)>;
const COUNTS_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// A page of connections and the cursor for the next one.
pub struct Page {
    pub data: Vec<Connection>,
    pub next_cursor: Option<String>,
}

impl Connections {
    pub fn new(
        store: Arc<dyn Store>,
        providers: Arc<Providers>,
        backchannel: Backchannel,
        settings: Settings,
    ) -> Self {
        Connections {
            store,
            providers,
            backchannel,
            settings,
            in_flight: Mutex::new(HashMap::new()),
            scheduler: scheduler::SchedulerState::default(),
            counts: tokio::sync::Mutex::new(None),
        }
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs blocking store work off the async executor.
    async fn blocking<T, F>(&self, f: F) -> Result<T, ConnectError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, VaultError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| ConnectError::Internal(format!("storage task failed: {e}")))?
            .map_err(ConnectError::from)
    }

    pub async fn get(&self, id: &str) -> Result<Connection, ConnectError> {
        let id = id.to_string();
        self.blocking(move |s| s.connection(&id))
            .await?
            .ok_or(ConnectError::NotFound)
    }

    pub async fn list(
        &self,
        filter: ConnectionFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page, ConnectError> {
        let limit = limit.clamp(1, 200);
        // One extra row tells whether another page exists.
        let mut data = self
            .blocking(move |s| s.list_connections(&filter, cursor.as_deref(), limit + 1))
            .await?;
        let next_cursor = if data.len() > limit {
            data.truncate(limit);
            data.last().map(|c| c.id.clone())
        } else {
            None
        };
        Ok(Page { data, next_cursor })
    }

    /// Deletes everything stored for the connection, after a best-effort revocation at the
    /// provider so no live grant is left behind.
    pub async fn delete(&self, id: &str) -> Result<(), ConnectError> {
        let outcome = self.revoke(id).await?;
        tracing::info!(connection = %id, provider_revocation = outcome.provider_revocation, "deleting connection");
        let id = id.to_string();
        if self.blocking(move |s| s.delete_connection(&id)).await? {
            Ok(())
        } else {
            Err(ConnectError::NotFound)
        }
    }

    /// Removes expired authorization attempts, and links a day after they expired (until then
    /// their page still says "expired" rather than "not found").
    pub async fn sweep(&self) -> Result<usize, ConnectError> {
        let t = model::now();
        self.blocking(move |s| s.sweep_expired(t, t - 86_400)).await
    }

    /// A page of the event log after `after`, optionally only one type or one tenant.
    pub async fn events(
        &self,
        after: u64,
        limit: usize,
        kind: Option<String>,
        tenant_id: Option<String>,
    ) -> Result<Vec<events::Event>, ConnectError> {
        if let Some(k) = &kind {
            if !events::TYPES.contains(&k.as_str()) {
                return Err(ConnectError::InvalidRequest(format!(
                    "type must be one of {}",
                    events::TYPES.join(", ")
                )));
            }
        }
        let limit = limit.clamp(1, 500);
        self.blocking(move |s| {
            s.events(after, limit, &|e| {
                kind.as_ref().is_none_or(|k| *k == e.kind)
                    && tenant_id.as_ref().is_none_or(|t| *t == e.tenant_id)
            })
        })
        .await
    }

    /// Drops events older than `retention_seconds`.
    pub async fn sweep_events(&self, retention_seconds: i64) -> Result<usize, ConnectError> {
        let before = model::now() - retention_seconds;
        self.blocking(move |s| s.sweep_events(before)).await
    }

    pub async fn check(&self) -> Result<(), ConnectError> {
        self.blocking(|s| s.check()).await
    }

    /// A consistent snapshot of the whole store in a new file next to it (for `GET /v1/backup`).
    pub async fn snapshot(&self) -> Result<std::path::PathBuf, ConnectError> {
        self.blocking(|s| s.backup_to(None)).await
    }

    /// Connections per (plugin, status), cached: scrapes every few seconds must not rescan.
    pub async fn counts(&self) -> Result<Counts, ConnectError> {
        let mut cached = self.counts.lock().await;
        if let Some((at, counts)) = cached.as_ref() {
            if at.elapsed() < COUNTS_TTL {
                return Ok(counts.clone());
            }
        }
        let counts = self.blocking(|s| s.connection_counts()).await?;
        *cached = Some((std::time::Instant::now(), counts.clone()));
        Ok(counts)
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, lock| Arc::strong_count(lock) > 1);
        Arc::clone(map.entry(id.to_string()).or_default())
    }
}

//! The storage interface. Handlers and the OAuth flow see only this trait; redb is the embedded
//! implementation, and a server database can implement the same methods later. Every write
//! method is one atomic, durable transaction. Implementations seal values themselves.

use crate::connections::events::Event;
use crate::connections::model::{Connection, Flow, Link, Status, TokenSet};

use super::VaultError;

#[derive(Debug, Default, Clone)]
pub struct ConnectionFilter {
    pub tenant_id: Option<String>,
    pub plugin: Option<String>,
    pub status: Option<Status>,
}

impl ConnectionFilter {
    pub fn matches(&self, c: &Connection) -> bool {
        self.tenant_id.as_ref().is_none_or(|t| *t == c.tenant_id)
            && self.plugin.as_ref().is_none_or(|p| *p == c.plugin)
            && self.status.is_none_or(|s| s == c.status)
    }
}

/// What a connection write does to the stored credentials.
pub enum CredentialsUpdate<'a> {
    Keep,
    Replace(&'a TokenSet),
    Delete,
}

/// The vault's data keys, as far as a rotation is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeys {
    /// The key new values are sealed with.
    pub active: u32,
    /// Older keys still stored: some values may be sealed under them (a rotation is unfinished).
    pub old: Vec<u32>,
}

/// One step of a re-encryption pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reencrypted {
    /// Values re-sealed under the active key in this step.
    pub resealed: usize,
    /// Where the next step starts (opaque); `None` once the pass has seen every value.
    pub next: Option<String>,
}

pub trait Store: Send + Sync {
    /// Stores a new link together with its connection (created or updated) in one transaction.
    fn create_link(
        &self,
        link_hash: &str,
        link: &Link,
        connection: &Connection,
    ) -> Result<(), VaultError>;
    fn link(&self, link_hash: &str) -> Result<Option<Link>, VaultError>;

    fn put_flow(&self, state_hash: &str, flow: &Flow) -> Result<(), VaultError>;
    fn flow(&self, state_hash: &str) -> Result<Option<Flow>, VaultError>;
    /// Removes and returns the flow: the single-use guarantee for `state`. `None` when another
    /// request took it first.
    fn take_flow(&self, state_hash: &str) -> Result<Option<Flow>, VaultError>;

    /// Ends a link's life: marks it used and writes the connection (and its credentials), in one
    /// transaction. Writes nothing and returns `false` when the link is gone or already used.
    fn finish_link(
        &self,
        link_hash: &str,
        connection: &Connection,
        credentials: CredentialsUpdate<'_>,
    ) -> Result<bool, VaultError>;

    fn connection(&self, id: &str) -> Result<Option<Connection>, VaultError>;
    /// Connections in id (creation) order after `after`, at most `limit`.
    fn list_connections(
        &self,
        filter: &ConnectionFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Connection>, VaultError>;
    fn credentials(&self, id: &str) -> Result<Option<TokenSet>, VaultError>;
    /// What [`Store::connection_with_credentials`] would return, from an in-memory cache:
    /// never blocks, so it may run on the async workers. `None` means "not cached", and a
    /// backend without a cache keeps this default.
    fn cached_connection(&self, _id: &str) -> Option<(Connection, Option<TokenSet>)> {
        None
    }
    /// The connection and, when it is connected, its credentials, read together: the hot path
    /// of every token fetch and proxied call.
    fn connection_with_credentials(
        &self,
        id: &str,
    ) -> Result<Option<(Connection, Option<TokenSet>)>, VaultError> {
        let Some(c) = self.connection(id)? else {
            return Ok(None);
        };
        let t = if c.status == Status::Connected {
            self.credentials(id)?
        } else {
            None
        };
        Ok(Some((c, t)))
    }
    fn put_connection(
        &self,
        connection: &Connection,
        credentials: CredentialsUpdate<'_>,
    ) -> Result<(), VaultError>;
    /// Deletes the connection, its credentials and index entries. `false` if it did not exist.
    fn delete_connection(&self, id: &str) -> Result<bool, VaultError>;

    /// Ids of connected, refreshable connections whose token expires before `before`, soonest
    /// first.
    fn due_for_refresh(&self, before: i64, limit: usize) -> Result<Vec<String>, VaultError>;

    /// Deletes flows that expired before `flows_before` and links that expired before
    /// `links_before`. Returns how many rows went.
    fn sweep_expired(&self, flows_before: i64, links_before: i64) -> Result<usize, VaultError>;

    /// Events with id greater than `after`, oldest first, at most `limit` (after filtering).
    fn events(
        &self,
        after: u64,
        limit: usize,
        filter: &dyn Fn(&Event) -> bool,
    ) -> Result<Vec<Event>, VaultError>;

    /// Appends an event for the stored connection without changing it (e.g.
    /// `connection.refresh_failed`). `false` when the connection does not exist.
    fn append_event(
        &self,
        connection_id: &str,
        kind: &'static str,
        error_code: Option<String>,
    ) -> Result<bool, VaultError>;

    /// Deletes events older than `before`. Returns how many went.
    fn sweep_events(&self, before: i64) -> Result<usize, VaultError>;

    /// Cheap check that storage and keys are usable: reads work, and writes are not known to
    /// be failing (after a failed commit, a probe commit decides).
    fn check(&self) -> Result<(), VaultError>;

    /// How many connections there are per (plugin, status). The default pages through every
    /// connection; a backend with an index should answer from it.
    fn connection_counts(&self) -> Result<Vec<(String, String, u64)>, VaultError> {
        let mut counts = std::collections::BTreeMap::<(String, String), u64>::new();
        let mut after: Option<String> = None;
        loop {
            let page =
                self.list_connections(&ConnectionFilter::default(), after.as_deref(), 1000)?;
            for c in &page {
                *counts
                    .entry((c.plugin.clone(), c.status.as_str().to_string()))
                    .or_default() += 1;
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.id.clone()),
                _ => break,
            }
        }
        Ok(counts.into_iter().map(|((p, s), n)| (p, s, n)).collect())
    }

    /// Writes a consistent, still-sealed copy of everything to `out` (a new file), or to a new
    /// file next to the database when `out` is `None`; returns the path.
    fn backup_to(&self, out: Option<&std::path::Path>) -> Result<std::path::PathBuf, VaultError>;

    /// A secret for `purpose` (e.g. signing tenant sessions) derived from the vault's keys:
    /// the same for every process opening this database, never stored, useless without the
    /// identity.
    fn derived_secret(&self, purpose: &str) -> [u8; 32];

    /// The active data key and any older ones still stored.
    fn data_keys(&self) -> DataKeys;

    /// Makes a fresh data key the one new values are sealed with: the re-wrapped keyring is
    /// durably stored before any value uses the key. Older keys stay until retired.
    fn add_data_key(&self) -> Result<u32, VaultError>;

    /// Re-seals under the active key the values found under an older one, looking at a bounded
    /// number of values after `cursor` (`None`: from the start) in one short transaction.
    /// Values written after the active key was added are never stale, so one whole pass that
    /// starts after [`Store::add_data_key`] leaves nothing under the old keys.
    fn reencrypt_step(&self, cursor: Option<&str>) -> Result<Reencrypted, VaultError>;

    /// Ends a rotation: checks that no value is left under an older key, then stores the
    /// keyring without them (refused with an error otherwise).
    fn retire_old_data_keys(&self) -> Result<(), VaultError>;
}

//! The embedded redb implementation of [`Store`]. Every value is sealed with the keyring; tenant
//! lookups go through a blind index, so the file holds no token, tenant id or account name in
//! the clear.
//!
//! Writes go through one writer thread that commits concurrent writes together ([`group`]);
//! reads open their own read transaction on the caller's thread and never wait for a commit.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use serde::{de::DeserializeOwned, Serialize};

use super::store::{ConnectionFilter, CredentialsUpdate, DataKeys, Reencrypted, Store};
use super::{generate_identity_file, load_identity, Keyring, VaultError};
use crate::connections::events::Event;
use crate::connections::model::{new_id, Connection, Flow, Link, Status, TokenSet};

mod audit;
mod backup;
mod cache;
mod group;
mod index;
mod outbox;
mod reopen;
mod rotation;
#[cfg(test)]
mod tests;
mod writes;

pub use backup::{compact, verify as verify_backup};
use group::GroupCommit;
use writes::Credentials;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CONNECTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("connections");
const CREDENTIALS: TableDefinition<&str, &[u8]> = TableDefinition::new("credentials");
const TENANT_INDEX: TableDefinition<&str, &[u8]> = TableDefinition::new("tenant_index");
const LINKS: TableDefinition<&str, &[u8]> = TableDefinition::new("links");
const FLOWS: TableDefinition<&str, &[u8]> = TableDefinition::new("flows");
/// `{expires_at:016x}/{connection id}` for connected connections holding a refresh token, so the
/// refresh scheduler finds what is due without scanning (expiry times are not sensitive).
const REFRESH_DUE: TableDefinition<&str, &[u8]> = TableDefinition::new("refresh_due");
/// The event log: sequence number → sealed event.
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Tables whose values are sealed (the others hold only keys and empty values).
const SEALED_TABLES: [TableDefinition<&str, &[u8]>; 4] = [CONNECTIONS, CREDENTIALS, LINKS, FLOWS];

const META_DB_ID: &str = "db_id";
const META_KEYRING: &str = "keyring";

/// redb's page cache. Its default (1 GiB) would let the process grow with the database; the
/// operating system's file cache serves what does not fit. Hot connections are served from the
/// connection cache (`cache.rs`), so 16 MiB here (down from 32) keeps both within the budget.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

pub struct RedbStore {
    core: Arc<Core>,
    writer: GroupCommit,
    /// The database file, for consistent backups.
    path: std::path::PathBuf,
    /// The identity's public half: the keyring is re-wrapped for it when data keys change.
    recipient: age::x25519::Recipient,
}

/// What reads and the writer thread share.
pub(super) struct Core {
    db: reopen::Db,
    /// Replaced only by data-key rotation ([`rotation`]).
    keyring: RwLock<Keyring>,
    /// Set when a commit failed, cleared by the next one that succeeds: readiness reports it.
    writes_failing: std::sync::atomic::AtomicBool,
    events_written: Arc<tokio::sync::Notify>,
    cache: cache::ConnectionCache,
}

/// How the store was opened, for the start-up log.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    Existing,
    Created { identity_generated: bool },
}

impl RedbStore {
    /// Opens the database, creating it (and the identity, when both are absent) on first start.
    /// An existing database with a missing or wrong identity is refused, never re-initialised.
    /// Nothing here reads more than a few rows, except a one-time index build for a database
    /// written by an older version.
    pub fn open(db_path: &Path, identity_path: &Path) -> Result<(Self, Opened), VaultError> {
        let db_exists = db_path.exists();
        let identity_exists = identity_path.exists();
        if db_exists && !identity_exists {
            return Err(VaultError::IdentityMissing {
                path: identity_path.display().to_string(),
                db: db_path.display().to_string(),
            });
        }
        let identity = if identity_exists {
            load_identity(identity_path)?
        } else {
            generate_identity_file(identity_path)?
        };
        if let Some(dir) = db_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(VaultError::storage)?;
        }
        let db = reopen::Db::open(db_path, CACHE_BYTES)?;
        let (keyring, opened) = match stored_keyring(&db)? {
            Some((db_id, wrapped)) => {
                let keyring =
                    Keyring::unwrap(&identity, &wrapped, &db_id).map_err(|e| match e {
                        VaultError::WrongIdentity => VaultError::WrongIdentityFile {
                            path: identity_path.display().to_string(),
                            db: db_path.display().to_string(),
                        },
                        other => other,
                    })?;
                (keyring, Opened::Existing)
            }
            None => {
                let db_id = new_id("db");
                let keyring = Keyring::generate(&db_id);
                let wrapped = keyring.wrap(&identity.to_public())?;
                let txn = begin_write(&db)?;
                {
                    let mut meta = txn.open_table(META).map_err(VaultError::storage)?;
                    meta.insert(META_DB_ID, db_id.as_bytes())
                        .map_err(VaultError::storage)?;
                    meta.insert(META_KEYRING, wrapped.as_slice())
                        .map_err(VaultError::storage)?;
                }
                txn.commit().map_err(VaultError::storage)?;
                let opened = Opened::Created {
                    identity_generated: !identity_exists,
                };
                (keyring, opened)
            }
        };
        let core = Core {
            db,
            keyring: RwLock::new(keyring),
            writes_failing: Default::default(),
            events_written: Arc::default(),
            cache: cache::ConnectionCache::new(cache::DEFAULT_CAPACITY),
        };
        // Tables added by newer versions are created, and derived indexes built, on open.
        index::prepare(&core)?;
        let core = Arc::new(core);
        let writer = GroupCommit::start(Arc::clone(&core))?;
        let path = db_path.to_path_buf();
        let recipient = identity.to_public();
        let store = RedbStore {
            core,
            writer,
            path,
            recipient,
        };
        Ok((store, opened))
    }

    /// Writes `items` as connected connections with their credentials (and their events), in
    /// one transaction, exactly as [`Store::put_connection`] would one by one: bulk loading for
    /// benchmarks and migrations.
    pub fn import_connections(&self, items: &[(Connection, TokenSet)]) -> Result<(), VaultError> {
        // Through the writer thread like every connection write, for the cache's invalidation.
        let items = Arc::new(items.to_vec());
        self.writer.write(move |core, txn| {
            for (connection, tokens) in items.iter() {
                core.write_connection(txn, connection, &Credentials::Replace(tokens.clone()))?;
            }
            Ok(())
        })
    }
}

/// The database id and wrapped keyring, when the database has been initialised.
fn stored_keyring(db: &reopen::Db) -> Result<Option<(String, Vec<u8>)>, VaultError> {
    let txn = db.begin_read().map_err(VaultError::storage)?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(VaultError::storage(e)),
    };
    let id = meta.get(META_DB_ID).map_err(VaultError::storage)?;
    let ring = meta.get(META_KEYRING).map_err(VaultError::storage)?;
    match (id, ring) {
        (Some(id), Some(ring)) => Ok(Some((
            String::from_utf8(id.value().to_vec()).map_err(VaultError::corrupt)?,
            ring.value().to_vec(),
        ))),
        _ => Ok(None),
    }
}

impl Core {
    fn keys(&self) -> RwLockReadGuard<'_, Keyring> {
        self.keyring.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn seal<T: Serialize>(&self, table: &str, key: &str, value: &T) -> Result<Vec<u8>, VaultError> {
        let plain =
            zeroize::Zeroizing::new(serde_json::to_vec(value).map_err(VaultError::corrupt)?);
        self.keys().seal(table, key, &plain)
    }

    fn open_value<T: DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        sealed: &[u8],
    ) -> Result<T, VaultError> {
        let plain = self.keys().open(table, key, sealed)?;
        serde_json::from_slice(&plain).map_err(VaultError::corrupt)
    }

    /// Reads and opens one value in its own read transaction.
    fn get<T: DeserializeOwned>(
        &self,
        def: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, VaultError> {
        let txn = self.db.begin_read().map_err(VaultError::storage)?;
        let table = txn.open_table(def).map_err(VaultError::storage)?;
        let Some(guard) = table.get(key).map_err(VaultError::storage)? else {
            return Ok(None);
        };
        self.open_value(def.name(), key, guard.value()).map(Some)
    }

    /// Reads and opens one value inside a write transaction.
    fn get_in<T: DeserializeOwned>(
        &self,
        txn: &WriteTransaction,
        def: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, VaultError> {
        let table = txn.open_table(def).map_err(VaultError::storage)?;
        let Some(guard) = table.get(key).map_err(VaultError::storage)? else {
            return Ok(None);
        };
        self.open_value(def.name(), key, guard.value()).map(Some)
    }

    fn insert<T: Serialize>(
        &self,
        txn: &WriteTransaction,
        def: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &T,
    ) -> Result<(), VaultError> {
        let sealed = self.seal(def.name(), key, value)?;
        let mut table = txn.open_table(def).map_err(VaultError::storage)?;
        table
            .insert(key, sealed.as_slice())
            .map_err(VaultError::storage)?;
        Ok(())
    }

    fn tenant_key(&self, tenant_id: &str, connection_id: &str) -> String {
        format!(
            "{}/{connection_id}",
            self.keys().blind_index("tenant", tenant_id)
        )
    }
}

fn begin_write(db: &reopen::Db) -> Result<WriteTransaction, VaultError> {
    let mut txn = db.begin_write().map_err(VaultError::storage)?;
    // Immediate durability is redb's default; two-phase commit guards the commit record itself.
    txn.set_two_phase_commit(true);
    // Each commit also saves the allocator state, so opening after a crash does not walk the
    // whole file (seconds at a million connections); group commit keeps the extra cost small.
    txn.set_quick_repair(true);
    Ok(txn)
}

/// Every write below is one closure run by the writer thread inside a group transaction, so it
/// is atomic, and durable when it returns; reads never touch the writer.
impl Store for RedbStore {
    fn create_link(
        &self,
        link_hash: &str,
        link: &Link,
        connection: &Connection,
    ) -> Result<(), VaultError> {
        let (hash, link, connection) = (link_hash.to_string(), link.clone(), connection.clone());
        self.writer
            .write(move |core, txn| core.create_link(txn, &hash, &link, &connection))
    }

    fn link(&self, link_hash: &str) -> Result<Option<Link>, VaultError> {
        self.core.get(LINKS, link_hash)
    }

    fn put_flow(&self, state_hash: &str, flow: &Flow) -> Result<(), VaultError> {
        let (hash, flow) = (state_hash.to_string(), flow.clone());
        self.writer
            .write(move |core, txn| core.put_flow(txn, &hash, &flow))
    }

    fn flow(&self, state_hash: &str) -> Result<Option<Flow>, VaultError> {
        self.core.get(FLOWS, state_hash)
    }

    fn take_flow(&self, state_hash: &str) -> Result<Option<Flow>, VaultError> {
        let hash = state_hash.to_string();
        self.writer
            .write(move |core, txn| core.take_flow(txn, &hash))
    }

    fn finish_link(
        &self,
        link_hash: &str,
        connection: &Connection,
        credentials: CredentialsUpdate<'_>,
    ) -> Result<bool, VaultError> {
        let (hash, connection) = (link_hash.to_string(), connection.clone());
        let credentials = Credentials::from(credentials);
        self.writer
            .write(move |core, txn| core.finish_link(txn, &hash, &connection, &credentials))
    }

    fn connection(&self, id: &str) -> Result<Option<Connection>, VaultError> {
        self.core.get(CONNECTIONS, id)
    }

    fn list_connections(
        &self,
        filter: &ConnectionFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Connection>, VaultError> {
        self.core.list_connections(filter, after, limit)
    }

    fn credentials(&self, id: &str) -> Result<Option<TokenSet>, VaultError> {
        self.core.get(CREDENTIALS, id)
    }

    fn cached_connection(&self, id: &str) -> Option<(Connection, Option<TokenSet>)> {
        self.core.cache.get(id)
    }

    /// Fills the cache: see `cache.rs` for why the epoch is read before the transaction opens.
    fn connection_with_credentials(
        &self,
        id: &str,
    ) -> Result<Option<(Connection, Option<TokenSet>)>, VaultError> {
        let core = &self.core;
        let epoch = core.cache.epoch();
        let txn = core.db.begin_read().map_err(VaultError::storage)?;
        let connections = txn.open_table(CONNECTIONS).map_err(VaultError::storage)?;
        let Some(sealed) = connections.get(id).map_err(VaultError::storage)? else {
            return Ok(None);
        };
        let c: Connection = core.open_value(CONNECTIONS.name(), id, sealed.value())?;
        let tokens = if c.status == Status::Connected {
            let credentials = txn.open_table(CREDENTIALS).map_err(VaultError::storage)?;
            match credentials.get(id).map_err(VaultError::storage)? {
                Some(sealed) => Some(core.open_value(CREDENTIALS.name(), id, sealed.value())?),
                None => None,
            }
        } else {
            None
        };
        core.cache.fill(epoch, &c, tokens.as_ref());
        Ok(Some((c, tokens)))
    }

    fn put_connection(
        &self,
        connection: &Connection,
        credentials: CredentialsUpdate<'_>,
    ) -> Result<(), VaultError> {
        let connection = connection.clone();
        let credentials = Credentials::from(credentials);
        self.writer
            .write(move |core, txn| core.write_connection(txn, &connection, &credentials))
    }

    fn delete_connection(&self, id: &str) -> Result<bool, VaultError> {
        let id = id.to_string();
        self.writer
            .write(move |core, txn| core.delete_connection(txn, &id))
    }

    fn events(
        &self,
        after: u64,
        limit: usize,
        filter: &dyn Fn(&Event) -> bool,
    ) -> Result<Vec<Event>, VaultError> {
        let core = &self.core;
        let txn = core.db.begin_read().map_err(VaultError::storage)?;
        let table = txn.open_table(EVENTS).map_err(VaultError::storage)?;
        let mut out = Vec::new();
        for entry in table
            .range((after.saturating_add(1))..)
            .map_err(VaultError::storage)?
        {
            let (k, v) = entry.map_err(VaultError::storage)?;
            let event: Event = core.open_value(EVENTS.name(), &k.value().to_string(), v.value())?;
            if filter(&event) {
                out.push(event);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn append_event(
        &self,
        connection_id: &str,
        kind: &'static str,
        error_code: Option<String>,
    ) -> Result<bool, VaultError> {
        let id = connection_id.to_string();
        self.writer
            .write(move |core, txn| core.append_event(txn, &id, kind, error_code.clone()))
    }

    fn sweep_events(&self, before: i64) -> Result<usize, VaultError> {
        self.core.sweep_events(before)
    }

    fn due_for_refresh(&self, before: i64, limit: usize) -> Result<Vec<String>, VaultError> {
        let txn = self.core.db.begin_read().map_err(VaultError::storage)?;
        let due = txn.open_table(REFRESH_DUE).map_err(VaultError::storage)?;
        let end = format!("{:016x}", before.max(0));
        let mut ids = Vec::new();
        for entry in due
            .range::<&str>(..end.as_str())
            .map_err(VaultError::storage)?
        {
            let (key, _) = entry.map_err(VaultError::storage)?;
            if let Some((_, id)) = key.value().split_once('/') {
                ids.push(id.to_string());
            }
            if ids.len() >= limit {
                break;
            }
        }
        Ok(ids)
    }

    fn sweep_expired(&self, flows_before: i64, links_before: i64) -> Result<usize, VaultError> {
        self.core.sweep_expired(flows_before, links_before)
    }

    fn connection_counts(&self) -> Result<Vec<(String, String, u64)>, VaultError> {
        self.core.connection_counts()
    }

    fn backup_to(&self, out: Option<&Path>) -> Result<std::path::PathBuf, VaultError> {
        let out = out.map_or_else(|| self.snapshot_path(), Path::to_path_buf);
        self.copy_consistent(&out)?;
        Ok(out)
    }

    fn derived_secret(&self, purpose: &str) -> [u8; 32] {
        let hex = self.core.keys().blind_index("derived-secret", purpose);
        let mut out = [0u8; 32];
        // blind_index is HMAC-SHA256 in hex: always 32 bytes.
        if let Ok(bytes) = hex::decode(hex) {
            out.copy_from_slice(&bytes[..32.min(bytes.len())]);
        }
        out
    }

    fn data_keys(&self) -> DataKeys {
        self.data_keys_now()
    }

    fn add_data_key(&self) -> Result<u32, VaultError> {
        self.add_data_key_now()
    }

    fn reencrypt_step(&self, cursor: Option<&str>) -> Result<Reencrypted, VaultError> {
        self.reencrypt_step_now(cursor, rotation::SCAN_PER_STEP)
    }

    fn retire_old_data_keys(&self) -> Result<(), VaultError> {
        self.retire_old_data_keys_now()
    }

    fn check(&self) -> Result<(), VaultError> {
        let txn = self.core.db.begin_read().map_err(VaultError::storage)?;
        let meta = txn.open_table(META).map_err(VaultError::storage)?;
        meta.get(META_KEYRING)
            .map_err(VaultError::storage)?
            .ok_or_else(|| VaultError::Corrupt("the keyring is missing".into()))?;
        // After a failed commit, an empty commit decides whether writes work again (it also
        // lets the handle be reopened once the fault has cleared).
        if self
            .core
            .writes_failing
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            self.writer.write(|_, _| Ok(()))?;
        }
        Ok(())
    }
}

//! The embedded redb implementation of [`Store`]. Every value is sealed with the keyring; tenant
//! lookups go through a blind index, so the file holds no token, tenant id or account name in
//! the clear.

use std::path::Path;
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use serde::{de::DeserializeOwned, Serialize};

use super::store::{ConnectionFilter, CredentialsUpdate, Store};
use super::{generate_identity_file, load_identity, Keyring, VaultError};
use crate::connections::events::{transition_events, Event, Pending};
use crate::connections::model::{new_id, Connection, Flow, Link, TokenSet};

mod outbox;
mod reopen;

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
const ALL_TABLES: [TableDefinition<&str, &[u8]>; 6] = [
    CONNECTIONS,
    CREDENTIALS,
    TENANT_INDEX,
    LINKS,
    FLOWS,
    REFRESH_DUE,
];

const META_DB_ID: &str = "db_id";
const META_KEYRING: &str = "keyring";

pub struct RedbStore {
    db: reopen::Db,
    keyring: Keyring,
    events_written: Arc<tokio::sync::Notify>,
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
        let db = reopen::Db::open(db_path)?;
        let stored = {
            let txn = db.begin_read().map_err(VaultError::storage)?;
            match txn.open_table(META) {
                Ok(meta) => {
                    let id = meta.get(META_DB_ID).map_err(VaultError::storage)?;
                    let ring = meta.get(META_KEYRING).map_err(VaultError::storage)?;
                    match (id, ring) {
                        (Some(id), Some(ring)) => Some((
                            String::from_utf8(id.value().to_vec()).map_err(VaultError::corrupt)?,
                            ring.value().to_vec(),
                        )),
                        _ => None,
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(VaultError::storage(e)),
            }
        };
        if let Some((db_id, wrapped)) = stored {
            let keyring = Keyring::unwrap(&identity, &wrapped, &db_id).map_err(|e| match e {
                VaultError::WrongIdentity => VaultError::WrongIdentityFile {
                    path: identity_path.display().to_string(),
                    db: db_path.display().to_string(),
                },
                other => other,
            })?;
            // Tables added by newer versions are created on open.
            let txn = begin_write(&db)?;
            for table in ALL_TABLES {
                txn.open_table(table).map_err(VaultError::storage)?;
            }
            txn.open_table(EVENTS).map_err(VaultError::storage)?;
            txn.commit().map_err(VaultError::storage)?;
            let store = RedbStore {
                db,
                keyring,
                events_written: Arc::default(),
            };
            return Ok((store, Opened::Existing));
        }
        // A new database: create the keyring and every table in one transaction.
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
            for table in ALL_TABLES {
                txn.open_table(table).map_err(VaultError::storage)?;
            }
            txn.open_table(EVENTS).map_err(VaultError::storage)?;
        }
        txn.commit().map_err(VaultError::storage)?;
        Ok((
            RedbStore {
                db,
                keyring,
                events_written: Arc::default(),
            },
            Opened::Created {
                identity_generated: !identity_exists,
            },
        ))
    }

    /// Re-wraps the keyring under a new identity (S17): one atomic write of one row; no value is
    /// re-encrypted, and afterwards only the new identity opens the database.
    pub fn rewrap_keyring(&self, new: &age::x25519::Recipient) -> Result<(), VaultError> {
        self.store_keyring(&self.keyring, new)
    }

    /// Starts a data-key rotation: a new data key becomes active for new writes (the keyring
    /// is re-wrapped under `recipient` in one write); old values stay readable.
    pub fn add_data_key(&mut self, recipient: &age::x25519::Recipient) -> Result<u32, VaultError> {
        let mut next = self.keyring.clone();
        let id = next.add_data_key();
        self.store_keyring(&next, recipient)?;
        self.keyring = next;
        Ok(id)
    }

    /// Re-seals up to `limit` values not yet under the active data key, in one transaction.
    /// Returns how many; 0 means the rotation is complete. Safe to stop and resume.
    pub fn reencrypt_batch(&self, limit: usize) -> Result<usize, VaultError> {
        let active = self.keyring.active_key_id();
        let stale = |v: &[u8]| Keyring::key_id_of(v) != Some(active);
        let txn = begin_write(&self.db)?;
        let mut done = 0;
        for def in ALL_TABLES {
            if def.name() == TENANT_INDEX.name() || def.name() == REFRESH_DUE.name() {
                continue; // not sealed
            }
            let mut table = txn.open_table(def).map_err(VaultError::storage)?;
            let mut todo = Vec::new();
            for entry in table.iter().map_err(VaultError::storage)? {
                let (k, v) = entry.map_err(VaultError::storage)?;
                if stale(v.value()) {
                    todo.push((k.value().to_string(), v.value().to_vec()));
                    if done + todo.len() >= limit {
                        break;
                    }
                }
            }
            for (k, v) in &todo {
                let plain = self.keyring.open(def.name(), k, v)?;
                let sealed = self.keyring.seal(def.name(), k, &plain)?;
                table
                    .insert(k.as_str(), sealed.as_slice())
                    .map_err(VaultError::storage)?;
            }
            done += todo.len();
            if done >= limit {
                break;
            }
        }
        if done < limit {
            let mut table = txn.open_table(EVENTS).map_err(VaultError::storage)?;
            let mut todo = Vec::new();
            for entry in table.iter().map_err(VaultError::storage)? {
                let (k, v) = entry.map_err(VaultError::storage)?;
                if stale(v.value()) {
                    todo.push((k.value(), v.value().to_vec()));
                    if done + todo.len() >= limit {
                        break;
                    }
                }
            }
            for (k, v) in &todo {
                let key = k.to_string();
                let plain = self.keyring.open(EVENTS.name(), &key, v)?;
                let sealed = self.keyring.seal(EVENTS.name(), &key, &plain)?;
                table
                    .insert(*k, sealed.as_slice())
                    .map_err(VaultError::storage)?;
            }
            done += todo.len();
        }
        txn.commit().map_err(VaultError::storage)?;
        Ok(done)
    }

    /// Ends a rotation: drops the old data keys from the keyring. Call only after
    /// [`RedbStore::reencrypt_batch`] returned 0.
    pub fn retire_old_data_keys(
        &mut self,
        recipient: &age::x25519::Recipient,
    ) -> Result<(), VaultError> {
        if self.reencrypt_batch(1)? != 0 {
            return Err(VaultError::Crypto(
                "values remain under an old data key".into(),
            ));
        }
        let mut next = self.keyring.clone();
        next.retire_inactive_keys();
        self.store_keyring(&next, recipient)?;
        self.keyring = next;
        Ok(())
    }

    fn store_keyring(
        &self,
        keyring: &Keyring,
        recipient: &age::x25519::Recipient,
    ) -> Result<(), VaultError> {
        let wrapped = keyring.wrap(recipient)?;
        let txn = begin_write(&self.db)?;
        txn.open_table(META)
            .map_err(VaultError::storage)?
            .insert(META_KEYRING, wrapped.as_slice())
            .map_err(VaultError::storage)?;
        txn.commit().map_err(VaultError::storage)
    }

    fn seal<T: Serialize>(&self, table: &str, key: &str, value: &T) -> Result<Vec<u8>, VaultError> {
        let plain =
            zeroize::Zeroizing::new(serde_json::to_vec(value).map_err(VaultError::corrupt)?);
        self.keyring.seal(table, key, &plain)
    }

    fn open_value<T: DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        sealed: &[u8],
    ) -> Result<T, VaultError> {
        let plain = self.keyring.open(table, key, sealed)?;
        serde_json::from_slice(&plain).map_err(VaultError::corrupt)
    }

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

    /// Numbers and appends events for `connection` inside `txn`.
    fn append_events(
        &self,
        txn: &WriteTransaction,
        connection: &Connection,
        events: &[Pending],
    ) -> Result<(), VaultError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut table = txn.open_table(EVENTS).map_err(VaultError::storage)?;
        let first = match table.last().map_err(VaultError::storage)? {
            Some((k, _)) => k.value() + 1,
            None => 1,
        };
        for (next, (kind, error_code)) in (first..).zip(events) {
            let event = Event {
                id: next,
                kind: (*kind).to_string(),
                connection_id: connection.id.clone(),
                tenant_id: connection.tenant_id.clone(),
                plugin: connection.plugin.clone(),
                at: connection.updated_at,
                error_code: error_code.clone(),
            };
            let sealed = self.seal(EVENTS.name(), &next.to_string(), &event)?;
            table
                .insert(next, sealed.as_slice())
                .map_err(VaultError::storage)?;
        }
        // Before the commit is fine: the dispatcher reads in a write transaction, which waits
        // for this one to finish.
        self.events_written.notify_one();
        Ok(())
    }

    fn tenant_key(&self, tenant_id: &str, connection_id: &str) -> String {
        format!(
            "{}/{connection_id}",
            self.keyring.blind_index("tenant", tenant_id)
        )
    }

    fn write_connection(
        &self,
        txn: &WriteTransaction,
        connection: &Connection,
        credentials: CredentialsUpdate<'_>,
    ) -> Result<(), VaultError> {
        let previous: Option<Connection> = {
            let table = txn.open_table(CONNECTIONS).map_err(VaultError::storage)?;
            let guard = table
                .get(connection.id.as_str())
                .map_err(VaultError::storage)?;
            match guard {
                Some(g) => Some(self.open_value(CONNECTIONS.name(), &connection.id, g.value())?),
                None => None,
            }
        };
        {
            let mut due = txn.open_table(REFRESH_DUE).map_err(VaultError::storage)?;
            if let Some(key) = previous.as_ref().and_then(due_key) {
                due.remove(key.as_str()).map_err(VaultError::storage)?;
            }
            if let Some(key) = due_key(connection) {
                due.insert(key.as_str(), [].as_slice())
                    .map_err(VaultError::storage)?;
            }
        }
        let events = transition_events(previous.as_ref(), connection);
        self.append_events(txn, connection, &events)?;
        self.insert(txn, CONNECTIONS, &connection.id, connection)?;
        let index_key = self.tenant_key(&connection.tenant_id, &connection.id);
        txn.open_table(TENANT_INDEX)
            .map_err(VaultError::storage)?
            .insert(index_key.as_str(), [].as_slice())
            .map_err(VaultError::storage)?;
        match credentials {
            CredentialsUpdate::Keep => {}
            CredentialsUpdate::Replace(tokens) => {
                self.insert(txn, CREDENTIALS, &connection.id, tokens)?;
            }
            CredentialsUpdate::Delete => {
                txn.open_table(CREDENTIALS)
                    .map_err(VaultError::storage)?
                    .remove(connection.id.as_str())
                    .map_err(VaultError::storage)?;
            }
        }
        Ok(())
    }
}

impl RedbStore {
    /// Removes the rows of `def` for which `dead` holds, inside `txn`.
    fn sweep_table<T: DeserializeOwned>(
        &self,
        txn: &WriteTransaction,
        def: TableDefinition<&str, &[u8]>,
        dead: impl Fn(&T) -> bool,
    ) -> Result<usize, VaultError> {
        let mut table = txn.open_table(def).map_err(VaultError::storage)?;
        let mut doomed = Vec::new();
        for entry in table.iter().map_err(VaultError::storage)? {
            let (k, v) = entry.map_err(VaultError::storage)?;
            if dead(&self.open_value(def.name(), k.value(), v.value())?) {
                doomed.push(k.value().to_string());
            }
        }
        for k in &doomed {
            table.remove(k.as_str()).map_err(VaultError::storage)?;
        }
        Ok(doomed.len())
    }
}

fn due_key(c: &Connection) -> Option<String> {
    let expires_at = c.expires_at?;
    (c.status == crate::connections::model::Status::Connected && c.refreshable)
        .then(|| format!("{:016x}/{}", expires_at.max(0), c.id))
}

fn begin_write(db: &reopen::Db) -> Result<WriteTransaction, VaultError> {
    let mut txn = db.begin_write().map_err(VaultError::storage)?;
    // Immediate durability is redb's default; two-phase commit guards the commit record itself.
    txn.set_two_phase_commit(true);
    Ok(txn)
}

impl Store for RedbStore {
    fn create_link(
        &self,
        link_hash: &str,
        link: &Link,
        connection: &Connection,
    ) -> Result<(), VaultError> {
        let txn = begin_write(&self.db)?;
        self.insert(&txn, LINKS, link_hash, link)?;
        self.append_events(&txn, connection, &[("link.created", None)])?;
        self.write_connection(&txn, connection, CredentialsUpdate::Keep)?;
        txn.commit().map_err(VaultError::storage)
    }

    fn link(&self, link_hash: &str) -> Result<Option<Link>, VaultError> {
        self.get(LINKS, link_hash)
    }

    fn put_flow(&self, state_hash: &str, flow: &Flow) -> Result<(), VaultError> {
        let txn = begin_write(&self.db)?;
        self.insert(&txn, FLOWS, state_hash, flow)?;
        txn.commit().map_err(VaultError::storage)
    }

    fn flow(&self, state_hash: &str) -> Result<Option<Flow>, VaultError> {
        self.get(FLOWS, state_hash)
    }

    fn take_flow(&self, state_hash: &str) -> Result<Option<Flow>, VaultError> {
        let txn = begin_write(&self.db)?;
        let flow = {
            let mut table = txn.open_table(FLOWS).map_err(VaultError::storage)?;
            let removed = table.remove(state_hash).map_err(VaultError::storage)?;
            match removed {
                Some(guard) => Some(self.open_value(FLOWS.name(), state_hash, guard.value())?),
                None => None,
            }
        };
        if flow.is_none() {
            txn.abort().map_err(VaultError::storage)?;
            return Ok(None);
        }
        txn.commit().map_err(VaultError::storage)?;
        Ok(flow)
    }

    fn finish_link(
        &self,
        link_hash: &str,
        connection: &Connection,
        credentials: CredentialsUpdate<'_>,
    ) -> Result<bool, VaultError> {
        let txn = begin_write(&self.db)?;
        let link: Option<Link> = {
            let table = txn.open_table(LINKS).map_err(VaultError::storage)?;
            let guard = table.get(link_hash).map_err(VaultError::storage)?;
            match guard {
                Some(g) => Some(self.open_value(LINKS.name(), link_hash, g.value())?),
                None => None,
            }
        };
        let Some(mut link) = link.filter(|l| l.used_at.is_none()) else {
            txn.abort().map_err(VaultError::storage)?;
            return Ok(false);
        };
        link.used_at = Some(connection.updated_at);
        self.insert(&txn, LINKS, link_hash, &link)?;
        self.write_connection(&txn, connection, credentials)?;
        txn.commit().map_err(VaultError::storage)?;
        Ok(true)
    }

    fn connection(&self, id: &str) -> Result<Option<Connection>, VaultError> {
        self.get(CONNECTIONS, id)
    }

    fn list_connections(
        &self,
        filter: &ConnectionFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Connection>, VaultError> {
        let txn = self.db.begin_read().map_err(VaultError::storage)?;
        let connections = txn.open_table(CONNECTIONS).map_err(VaultError::storage)?;
        let mut out = Vec::new();
        let mut consider = |id: &str, sealed: &[u8]| -> Result<bool, VaultError> {
            let c: Connection = self.open_value(CONNECTIONS.name(), id, sealed)?;
            if filter.matches(&c) {
                out.push(c);
            }
            Ok(out.len() < limit)
        };
        if let Some(tenant) = &filter.tenant_id {
            let prefix = self.keyring.blind_index("tenant", tenant);
            let start = format!("{prefix}/{}", after.unwrap_or(""));
            let end = format!("{prefix}0"); // '0' sorts right after '/'
            let index = txn.open_table(TENANT_INDEX).map_err(VaultError::storage)?;
            for entry in index
                .range(start.as_str()..end.as_str())
                .map_err(VaultError::storage)?
            {
                let (key, _) = entry.map_err(VaultError::storage)?;
                let Some((_, id)) = key.value().split_once('/') else {
                    continue;
                };
                if Some(id) == after {
                    continue;
                }
                let Some(sealed) = connections.get(id).map_err(VaultError::storage)? else {
                    continue;
                };
                if !consider(id, sealed.value())? {
                    break;
                }
            }
        } else {
            let range = match after {
                Some(a) => connections
                    .range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
                None => connections.range::<&str>(..),
            }
            .map_err(VaultError::storage)?;
            for entry in range {
                let (key, value) = entry.map_err(VaultError::storage)?;
                if !consider(key.value(), value.value())? {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn credentials(&self, id: &str) -> Result<Option<TokenSet>, VaultError> {
        self.get(CREDENTIALS, id)
    }

    fn put_connection(
        &self,
        connection: &Connection,
        credentials: CredentialsUpdate<'_>,
    ) -> Result<(), VaultError> {
        let txn = begin_write(&self.db)?;
        self.write_connection(&txn, connection, credentials)?;
        txn.commit().map_err(VaultError::storage)
    }

    fn delete_connection(&self, id: &str) -> Result<bool, VaultError> {
        let Some(connection) = self.connection(id)? else {
            return Ok(false);
        };
        let txn = begin_write(&self.db)?;
        {
            let index_key = self.tenant_key(&connection.tenant_id, id);
            let mut index = txn.open_table(TENANT_INDEX).map_err(VaultError::storage)?;
            index
                .remove(index_key.as_str())
                .map_err(VaultError::storage)?;
            let mut creds = txn.open_table(CREDENTIALS).map_err(VaultError::storage)?;
            creds.remove(id).map_err(VaultError::storage)?;
            if let Some(key) = due_key(&connection) {
                let mut due = txn.open_table(REFRESH_DUE).map_err(VaultError::storage)?;
                due.remove(key.as_str()).map_err(VaultError::storage)?;
            }
            let mut conns = txn.open_table(CONNECTIONS).map_err(VaultError::storage)?;
            conns.remove(id).map_err(VaultError::storage)?;
        }
        let mut gone = connection.clone();
        gone.updated_at = crate::connections::model::now();
        self.append_events(&txn, &gone, &[("connection.deleted", None)])?;
        txn.commit().map_err(VaultError::storage)?;
        Ok(true)
    }

    fn events(
        &self,
        after: u64,
        limit: usize,
        filter: &dyn Fn(&Event) -> bool,
    ) -> Result<Vec<Event>, VaultError> {
        let txn = self.db.begin_read().map_err(VaultError::storage)?;
        let table = txn.open_table(EVENTS).map_err(VaultError::storage)?;
        let mut out = Vec::new();
        for entry in table
            .range((after.saturating_add(1))..)
            .map_err(VaultError::storage)?
        {
            let (k, v) = entry.map_err(VaultError::storage)?;
            let event: Event = self.open_value(EVENTS.name(), &k.value().to_string(), v.value())?;
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
        let txn = begin_write(&self.db)?;
        let connection: Option<Connection> = {
            let table = txn.open_table(CONNECTIONS).map_err(VaultError::storage)?;
            let guard = table.get(connection_id).map_err(VaultError::storage)?;
            match guard {
                Some(g) => Some(self.open_value(CONNECTIONS.name(), connection_id, g.value())?),
                None => None,
            }
        };
        let Some(mut connection) = connection else {
            txn.abort().map_err(VaultError::storage)?;
            return Ok(false);
        };
        connection.updated_at = crate::connections::model::now(); // the event's time only
        self.append_events(&txn, &connection, &[(kind, error_code)])?;
        txn.commit().map_err(VaultError::storage)?;
        Ok(true)
    }

    fn sweep_events(&self, before: i64) -> Result<usize, VaultError> {
        let txn = begin_write(&self.db)?;
        let mut doomed = Vec::new();
        {
            let mut table = txn.open_table(EVENTS).map_err(VaultError::storage)?;
            // The newest event always stays, so ids never restart (webhook cursors and delivery
            // ids rely on that).
            let newest = table
                .last()
                .map_err(VaultError::storage)?
                .map(|(k, _)| k.value());
            // Ids grow with time: stop at the first event young enough to keep.
            for entry in table.iter().map_err(VaultError::storage)? {
                let (k, v) = entry.map_err(VaultError::storage)?;
                let event: Event =
                    self.open_value(EVENTS.name(), &k.value().to_string(), v.value())?;
                if event.at >= before || Some(k.value()) == newest {
                    break;
                }
                doomed.push(k.value());
            }
            for id in &doomed {
                table.remove(*id).map_err(VaultError::storage)?;
            }
        }
        txn.commit().map_err(VaultError::storage)?;
        Ok(doomed.len())
    }

    fn due_for_refresh(&self, before: i64, limit: usize) -> Result<Vec<String>, VaultError> {
        let txn = self.db.begin_read().map_err(VaultError::storage)?;
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
        let txn = begin_write(&self.db)?;
        let removed = self.sweep_table(&txn, FLOWS, |f: &Flow| f.expires_at < flows_before)?
            + self.sweep_table(&txn, LINKS, |l: &Link| l.expires_at < links_before)?;
        txn.commit().map_err(VaultError::storage)?;
        Ok(removed)
    }

    fn derived_secret(&self, purpose: &str) -> [u8; 32] {
        let hex = self.keyring.blind_index("derived-secret", purpose);
        let mut out = [0u8; 32];
        // blind_index is HMAC-SHA256 in hex: always 32 bytes.
        if let Ok(bytes) = hex::decode(hex) {
            out.copy_from_slice(&bytes[..32.min(bytes.len())]);
        }
        out
    }

    fn check(&self) -> Result<(), VaultError> {
        let txn = self.db.begin_read().map_err(VaultError::storage)?;
        let meta = txn.open_table(META).map_err(VaultError::storage)?;
        meta.get(META_KEYRING)
            .map_err(VaultError::storage)?
            .map(|_| ())
            .ok_or_else(|| VaultError::Corrupt("the keyring is missing".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::model::{new_id, now, Status};

    fn open() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().unwrap();
        let (store, opened) =
            RedbStore::open(&dir.path().join("db.redb"), &dir.path().join("id.txt")).unwrap();
        assert_eq!(
            opened,
            Opened::Created {
                identity_generated: true
            }
        );
        (dir, store)
    }

    fn link(conn: &Connection, expires_at: i64) -> Link {
        Link {
            connection_id: conn.id.clone(),
            plugin: conn.plugin.clone(),
            redirect_url: None,
            scopes: vec![],
            created_at: now(),
            expires_at,
            used_at: None,
            params: Default::default(),
            redirect_uri: None,
        }
    }

    #[test]
    fn tenant_index_filters_and_pages() {
        let (_dir, store) = open();
        let mut ids = Vec::new();
        for i in 0..5 {
            let tenant = if i % 2 == 0 { "alice" } else { "bob" };
            let c = Connection::new_pending(tenant, "p", vec![]);
            store
                .create_link(&new_id("l"), &link(&c, now() + 60), &c)
                .unwrap();
            ids.push((tenant, c.id));
        }
        let alice = ConnectionFilter {
            tenant_id: Some("alice".into()),
            ..Default::default()
        };
        let first = store.list_connections(&alice, None, 2).unwrap();
        let rest = store
            .list_connections(&alice, Some(&first[1].id), 10)
            .unwrap();
        let got: Vec<_> = first.iter().chain(&rest).map(|c| c.id.clone()).collect();
        let want: Vec<_> = ids
            .iter()
            .filter(|(t, _)| *t == "alice")
            .map(|(_, id)| id.clone())
            .collect();
        assert_eq!(got, want);
        let pending = ConnectionFilter {
            status: Some(Status::Connected),
            ..Default::default()
        };
        assert!(store
            .list_connections(&pending, None, 10)
            .unwrap()
            .is_empty());
        assert!(store.delete_connection(&ids[0].1).unwrap());
        assert_eq!(store.list_connections(&alice, None, 10).unwrap().len(), 2);
    }

    #[test]
    fn take_flow_is_single_use_and_sweep_removes_expired() {
        let (_dir, store) = open();
        let c = Connection::new_pending("t", "p", vec![]);
        store
            .create_link("live", &link(&c, now() + 60), &c)
            .unwrap();
        store
            .create_link("old", &link(&c, now() - 100_000), &c)
            .unwrap();
        let flow = |expires_at| Flow {
            link_hash: "live".into(),
            connection_id: c.id.clone(),
            plugin: "p".into(),
            pkce_verifier: Some("v".into()),
            browser_hash: "b".into(),
            expires_at,
            redirect_uri: None,
        };
        store.put_flow("s1", &flow(now() + 60)).unwrap();
        store.put_flow("s2", &flow(now() - 10)).unwrap();
        assert!(store.take_flow("s1").unwrap().is_some());
        assert!(store.take_flow("s1").unwrap().is_none());
        assert_eq!(store.sweep_expired(now(), now() - 86_400).unwrap(), 2);
        assert!(store.flow("s2").unwrap().is_none());
        assert!(store.link("old").unwrap().is_none());
        assert!(store.link("live").unwrap().is_some());
    }

    #[test]
    fn sweeping_events_keeps_the_newest_so_ids_never_restart() {
        let (_dir, store) = open();
        let c = Connection::new_pending("t", "p", vec![]);
        store.create_link("a", &link(&c, now() + 60), &c).unwrap();
        store.create_link("b", &link(&c, now() + 60), &c).unwrap();
        assert_eq!(store.sweep_events(now() + 10).unwrap(), 1);
        assert!(store
            .append_event(&c.id, "connection.refresh_failed", None)
            .unwrap());
        let ids: Vec<u64> = store
            .events(0, 10, &|_| true)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [2, 3]);
        assert!(!store
            .append_event("conn_gone", "connection.refresh_failed", None)
            .unwrap());
    }

    #[test]
    fn reopen_needs_the_same_identity() {
        let (dir, store) = open();
        drop(store);
        let db = dir.path().join("db.redb");
        let (_, opened) = RedbStore::open(&db, &dir.path().join("id.txt")).unwrap();
        assert_eq!(opened, Opened::Existing);
        let other = dir.path().join("other.txt");
        generate_identity_file(&other).unwrap();
        assert!(matches!(
            RedbStore::open(&db, &other),
            Err(VaultError::WrongIdentityFile { .. })
        ));
        assert!(matches!(
            RedbStore::open(&db, &dir.path().join("missing.txt")),
            Err(VaultError::IdentityMissing { .. })
        ));
    }
}

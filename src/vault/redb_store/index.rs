//! Derived indexes (keys only, nothing secret in them: plugin ids, statuses, expiry times and
//! row ids; never a tenant id) and the reads and sweeps that use them, so neither listing by
//! plugin or status nor the periodic sweep opens every row. Written in the same transaction as
//! the rows they index; built once when a database written by an older version is opened.

use std::ops::Bound::{Excluded, Included};
use std::time::Instant;

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::{
    begin_write, Core, CONNECTIONS, CREDENTIALS, EVENTS, FLOWS, LINKS, META, REFRESH_DUE,
    TENANT_INDEX,
};
use crate::connections::events::Event;
use crate::connections::model::{Connection, Flow, Link};
use crate::vault::{ConnectionFilter, VaultError};

/// `p/{plugin}/{id}`, `s/{status}/{id}` and `ps/{plugin}/{status}/{id}` for every connection:
/// each combination of the two filters is one ordered range.
pub(super) const CONNECTION_INDEX: TableDefinition<&str, &[u8]> =
    TableDefinition::new("connection_index");
/// `link/{expires_at:016x}/{hash}` and `flow/{expires_at:016x}/{hash}`: what the sweep removes.
pub(super) const EXPIRY: TableDefinition<&str, &[u8]> = TableDefinition::new("expiry_index");

/// Which derived indexes the database holds; a smaller or missing value rebuilds them.
const META_INDEXES: &str = "index_version";
const INDEX_VERSION: &[u8] = b"1";

pub(super) fn connection_index_keys(c: &Connection) -> [String; 3] {
    let (plugin, status, id) = (&c.plugin, c.status.as_str(), &c.id);
    [
        format!("p/{plugin}/{id}"),
        format!("s/{status}/{id}"),
        format!("ps/{plugin}/{status}/{id}"),
    ]
}

/// The index range answering `filter`, when it names a plugin or a status and no tenant (the
/// tenant index answers those).
fn filter_prefix(filter: &ConnectionFilter) -> Option<String> {
    if filter.tenant_id.is_some() {
        return None;
    }
    match (&filter.plugin, filter.status) {
        (Some(p), Some(s)) => Some(format!("ps/{p}/{}/", s.as_str())),
        (Some(p), None) => Some(format!("p/{p}/")),
        (None, Some(s)) => Some(format!("s/{}/", s.as_str())),
        (None, None) => None,
    }
}

pub(super) fn expiry_key(kind: &str, expires_at: i64, key: &str) -> String {
    format!("{kind}/{:016x}/{key}", expires_at.max(0))
}

/// Creates missing tables and builds the derived indexes of an older database, in one
/// transaction. Cheap when they are current.
pub(super) fn prepare(core: &Core) -> Result<(), VaultError> {
    let txn = begin_write(&core.db)?;
    for def in [
        CONNECTIONS,
        CREDENTIALS,
        TENANT_INDEX,
        LINKS,
        FLOWS,
        REFRESH_DUE,
        CONNECTION_INDEX,
        EXPIRY,
    ] {
        txn.open_table(def).map_err(VaultError::storage)?;
    }
    txn.open_table(EVENTS).map_err(VaultError::storage)?;
    let current = {
        let meta = txn.open_table(META).map_err(VaultError::storage)?;
        let version = meta.get(META_INDEXES).map_err(VaultError::storage)?;
        version.is_some_and(|v| v.value() >= INDEX_VERSION)
    };
    if !current {
        let started = Instant::now();
        let rows = rebuild(core, &txn)?;
        txn.open_table(META)
            .map_err(VaultError::storage)?
            .insert(META_INDEXES, INDEX_VERSION)
            .map_err(VaultError::storage)?;
        tracing::info!(
            rows,
            ms = started.elapsed().as_millis(),
            "built the listing and expiry indexes"
        );
    }
    txn.commit().map_err(VaultError::storage)
}

/// Rebuilds both derived indexes from the rows. Returns how many rows it read.
fn rebuild(core: &Core, txn: &WriteTransaction) -> Result<usize, VaultError> {
    for def in [CONNECTION_INDEX, EXPIRY] {
        txn.delete_table(def).map_err(VaultError::storage)?;
    }
    let mut rows = 0;
    let mut index = txn
        .open_table(CONNECTION_INDEX)
        .map_err(VaultError::storage)?;
    let mut expiry = txn.open_table(EXPIRY).map_err(VaultError::storage)?;
    let put = |table: &mut redb::Table<&str, &[u8]>, key: &str| {
        table
            .insert(key, [].as_slice())
            .map(|_| ())
            .map_err(VaultError::storage)
    };
    let connections = txn.open_table(CONNECTIONS).map_err(VaultError::storage)?;
    for entry in connections.iter().map_err(VaultError::storage)? {
        let (k, v) = entry.map_err(VaultError::storage)?;
        let c: Connection = core.open_value(CONNECTIONS.name(), k.value(), v.value())?;
        for key in connection_index_keys(&c) {
            put(&mut index, &key)?;
        }
        rows += 1;
    }
    let links = txn.open_table(LINKS).map_err(VaultError::storage)?;
    for entry in links.iter().map_err(VaultError::storage)? {
        let (k, v) = entry.map_err(VaultError::storage)?;
        let l: Link = core.open_value(LINKS.name(), k.value(), v.value())?;
        put(&mut expiry, &expiry_key("link", l.expires_at, k.value()))?;
        rows += 1;
    }
    let flows = txn.open_table(FLOWS).map_err(VaultError::storage)?;
    for entry in flows.iter().map_err(VaultError::storage)? {
        let (k, v) = entry.map_err(VaultError::storage)?;
        let f: Flow = core.open_value(FLOWS.name(), k.value(), v.value())?;
        put(&mut expiry, &expiry_key("flow", f.expires_at, k.value()))?;
        rows += 1;
    }
    Ok(rows)
}

impl Core {
    pub(super) fn list_connections(
        &self,
        filter: &ConnectionFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Connection>, VaultError> {
        let txn = self.db.begin_read().map_err(VaultError::storage)?;
        let connections = txn.open_table(CONNECTIONS).map_err(VaultError::storage)?;
        let mut out = Vec::new();
        // Every row is checked against the filter, whichever index found it.
        let mut consider = |id: &str| -> Result<bool, VaultError> {
            if let Some(sealed) = connections.get(id).map_err(VaultError::storage)? {
                let c: Connection = self.open_value(CONNECTIONS.name(), id, sealed.value())?;
                if filter.matches(&c) {
                    out.push(c);
                }
            }
            Ok(out.len() < limit)
        };
        // An index range: keys `{prefix}{id}`, ids after `after`.
        let (index, prefix) = if let Some(tenant) = &filter.tenant_id {
            let blind = self.keys().blind_index("tenant", tenant);
            (TENANT_INDEX, format!("{blind}/"))
        } else if let Some(prefix) = filter_prefix(filter) {
            (CONNECTION_INDEX, prefix)
        } else {
            // No filter: the connections table itself is in id order.
            let range = match after {
                Some(a) => connections.range::<&str>((Excluded(a), std::ops::Bound::Unbounded)),
                None => connections.range::<&str>(..),
            }
            .map_err(VaultError::storage)?;
            for entry in range {
                let (key, _) = entry.map_err(VaultError::storage)?;
                if !consider(key.value())? {
                    break;
                }
            }
            return Ok(out);
        };
        let start = format!("{prefix}{}", after.unwrap_or(""));
        let end = format!("{}0", &prefix[..prefix.len() - 1]); // '0' sorts right after '/'
        let lower = if after.is_some() {
            Excluded(start.as_str())
        } else {
            Included(start.as_str())
        };
        let index = txn.open_table(index).map_err(VaultError::storage)?;
        for entry in index
            .range::<&str>((lower, Excluded(end.as_str())))
            .map_err(VaultError::storage)?
        {
            let (key, _) = entry.map_err(VaultError::storage)?;
            let Some(id) = key.value().strip_prefix(prefix.as_str()) else {
                continue;
            };
            // A plugin filter holding '/' could reach into another range: not an id then.
            if id.contains('/') {
                continue;
            }
            if !consider(id)? {
                break;
            }
        }
        Ok(out)
    }

    /// Connections per (plugin, status), counted from the index's keys: nothing is opened.
    pub(super) fn connection_counts(&self) -> Result<Vec<(String, String, u64)>, VaultError> {
        let txn = self.db.begin_read().map_err(VaultError::storage)?;
        let index = txn
            .open_table(CONNECTION_INDEX)
            .map_err(VaultError::storage)?;
        let mut counts: Vec<(String, String, u64)> = Vec::new();
        for entry in index.range("ps/".."ps0").map_err(VaultError::storage)? {
            let (key, _) = entry.map_err(VaultError::storage)?;
            let mut parts = key.value()["ps/".len()..].splitn(3, '/');
            let (Some(plugin), Some(status)) = (parts.next(), parts.next()) else {
                continue;
            };
            // Keys are sorted, so each (plugin, status) is one run.
            match counts.last_mut() {
                Some((p, s, n)) if p == plugin && s == status => *n += 1,
                _ => counts.push((plugin.to_string(), status.to_string(), 1)),
            }
        }
        counts.sort(); // the trait's order: by plugin, then status
        Ok(counts)
    }

    /// Deletes flows expired before `flows_before` and links expired before `links_before`,
    /// found through the expiry index.
    pub(super) fn sweep_expired(
        &self,
        flows_before: i64,
        links_before: i64,
    ) -> Result<usize, VaultError> {
        let txn = begin_write(&self.db)?;
        let removed = sweep_kind(&txn, "flow", FLOWS, flows_before)?
            + sweep_kind(&txn, "link", LINKS, links_before)?;
        if removed == 0 {
            txn.abort().map_err(VaultError::storage)?; // nothing to write, no fsync
            return Ok(0);
        }
        txn.commit().map_err(VaultError::storage)?;
        Ok(removed)
    }

    /// Deletes events older than `before`, keeping the newest so ids never restart.
    pub(super) fn sweep_events(&self, before: i64) -> Result<usize, VaultError> {
        self.sweep_log::<Event>(EVENTS, before)
    }

    /// Deletes the records of a sealed log (sequence number → record) older than `before`.
    /// Ids grow with time, so it stops at the first record young enough to keep; the newest
    /// always stays, because webhook cursors and delivery ids rely on ids never restarting.
    pub(super) fn sweep_log<T: LogRow>(
        &self,
        def: TableDefinition<u64, &[u8]>,
        before: i64,
    ) -> Result<usize, VaultError> {
        let txn = begin_write(&self.db)?;
        let mut doomed = Vec::new();
        let mut removed = 0;
        {
            let mut table = txn.open_table(def).map_err(VaultError::storage)?;
            let newest = table
                .last()
                .map_err(VaultError::storage)?
                .map(|(k, _)| k.value());
            for entry in table.iter().map_err(VaultError::storage)? {
                let (k, v) = entry.map_err(VaultError::storage)?;
                let row: T = self.open_value(def.name(), &k.value().to_string(), v.value())?;
                if row.newest_at() >= before || Some(k.value()) == newest {
                    break;
                }
                doomed.push(k.value());
                removed += row.records();
            }
            for id in &doomed {
                table.remove(*id).map_err(VaultError::storage)?;
            }
        }
        if doomed.is_empty() {
            txn.abort().map_err(VaultError::storage)?; // nothing to write, no fsync
            return Ok(0);
        }
        txn.commit().map_err(VaultError::storage)?;
        Ok(removed)
    }
}

/// A row of a sealed log: when its newest record was written, and how many records it holds.
pub(super) trait LogRow: serde::de::DeserializeOwned {
    fn newest_at(&self) -> i64;
    fn records(&self) -> usize {
        1
    }
}

impl LogRow for Event {
    fn newest_at(&self) -> i64 {
        self.at
    }
}

/// Removes the rows of `def` whose expiry-index entry (`{kind}/…`) is before `before`.
fn sweep_kind(
    txn: &WriteTransaction,
    kind: &str,
    def: TableDefinition<&str, &[u8]>,
    before: i64,
) -> Result<usize, VaultError> {
    let mut index = txn.open_table(EXPIRY).map_err(VaultError::storage)?;
    let (start, end) = (format!("{kind}/"), expiry_key(kind, before, ""));
    let mut doomed = Vec::new();
    for entry in index
        .range(start.as_str()..end.as_str())
        .map_err(VaultError::storage)?
    {
        let (key, _) = entry.map_err(VaultError::storage)?;
        doomed.push(key.value().to_string());
    }
    let mut rows = txn.open_table(def).map_err(VaultError::storage)?;
    for key in &doomed {
        index.remove(key.as_str()).map_err(VaultError::storage)?;
        if let Some((_, row)) = key.rsplit_once('/') {
            rows.remove(row).map_err(VaultError::storage)?;
        }
    }
    Ok(doomed.len())
}

//! Key management: re-wrapping the keyring under another identity, and the data-key rotation
//! primitives (add a key, re-seal in steps, retire the old keys) that run in a live server.
//!
//! Why a pass that starts after the new key is active finds every stale value: every value is
//! sealed inside a write transaction with the keyring as it is at that moment, and write
//! transactions run one at a time. Once the new key is in memory, a transaction that sealed
//! under the old one has already committed, so a later pass sees its values; values written
//! after that use the new key.

use std::ops::Bound;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use redb::{ReadableTable, TableDefinition, TableHandle};

use super::audit::AUDIT;
use super::{begin_write, Core, Keyring, RedbStore, EVENTS, META, META_KEYRING, SEALED_TABLES};
use crate::vault::{DataKeys, Reencrypted, VaultError};

/// Values looked at per step: bounds the read and the write transaction that follows.
pub(super) const SCAN_PER_STEP: usize = 2000;
/// How long retired keys stay in memory for reads that began before the last re-seal.
const RETIRED_GRACE: Duration = Duration::from_secs(30);

/// A row in one of the sealed tables: the first four have string keys, the last two numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RowKey {
    Text(String),
    Number(u64),
}

const NUMBERED: [TableDefinition<u64, &[u8]>; 2] = [EVENTS, AUDIT];
const TABLES: usize = SEALED_TABLES.len() + NUMBERED.len();

fn table_name(table: usize) -> &'static str {
    match table.checked_sub(SEALED_TABLES.len()) {
        None => SEALED_TABLES[table].name(),
        Some(i) => NUMBERED[i].name(),
    }
}

/// The cursor is `{table}:{last key}`: opaque to callers, checked when it comes back.
fn parse_cursor(cursor: Option<&str>) -> Result<(usize, Option<RowKey>), VaultError> {
    let Some(cursor) = cursor else {
        return Ok((0, None));
    };
    let bad = || VaultError::Corrupt("not a re-encryption cursor".into());
    let (table, key) = cursor.split_once(':').ok_or_else(bad)?;
    let table: usize = table.parse().map_err(|_| bad())?;
    let key = match table {
        t if t < SEALED_TABLES.len() => RowKey::Text(key.to_string()),
        t if t < TABLES => RowKey::Number(key.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    Ok((table, Some(key)))
}

fn cursor(table: usize, key: &RowKey) -> String {
    match key {
        RowKey::Text(k) => format!("{table}:{k}"),
        RowKey::Number(n) => format!("{table}:{n}"),
    }
}

/// A table a read may find missing (created on the first write that needs it).
fn existing<T>(opened: Result<T, redb::TableError>) -> Result<Option<T>, VaultError> {
    match opened {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(VaultError::storage(e)),
    }
}

/// What one read of a step found: stale rows per table, and where the scan stopped.
struct Scan {
    stale: Vec<(usize, RowKey)>,
    next: Option<String>,
}

impl Core {
    /// Looks at up to `budget` values from `cursor` on and lists those not under `active`.
    fn scan_stale(
        &self,
        start: (usize, Option<RowKey>),
        active: u32,
        budget: usize,
    ) -> Result<Scan, VaultError> {
        let txn = self.db.begin_read().map_err(VaultError::storage)?;
        let stale = |v: &[u8]| Keyring::key_id_of(v) != Some(active);
        let (first, mut after) = start;
        let mut out = Vec::new();
        let mut seen = 0;
        for table in first..TABLES {
            // The cursor's key bounds only the table it points into.
            let after = after.take();
            let mut last = None;
            // Looks at one row; false once the step's budget is spent.
            let mut visit = |key: RowKey, value: &[u8]| {
                if stale(value) {
                    out.push((table, key.clone()));
                }
                last = Some(key);
                seen += 1;
                seen < budget
            };
            if table < SEALED_TABLES.len() {
                let Some(t) = existing(txn.open_table(SEALED_TABLES[table]))? else {
                    continue;
                };
                let from = match &after {
                    Some(RowKey::Text(k)) => Bound::Excluded(k.as_str()),
                    _ => Bound::Unbounded,
                };
                let rows = t.range::<&str>((from, Bound::Unbounded));
                for entry in rows.map_err(VaultError::storage)? {
                    let (k, v) = entry.map_err(VaultError::storage)?;
                    if !visit(RowKey::Text(k.value().to_string()), v.value()) {
                        break;
                    }
                }
            } else {
                let def = NUMBERED[table - SEALED_TABLES.len()];
                let Some(t) = existing(txn.open_table(def))? else {
                    continue;
                };
                let from = match &after {
                    Some(RowKey::Number(n)) => Bound::Excluded(*n),
                    _ => Bound::Unbounded,
                };
                let rows = t.range::<u64>((from, Bound::Unbounded));
                for entry in rows.map_err(VaultError::storage)? {
                    let (k, v) = entry.map_err(VaultError::storage)?;
                    if !visit(RowKey::Number(k.value()), v.value()) {
                        break;
                    }
                }
            }
            if seen >= budget {
                return Ok(Scan {
                    stale: out,
                    next: last.map(|k| cursor(table, &k)),
                });
            }
        }
        Ok(Scan {
            stale: out,
            next: None,
        })
    }

    /// Re-seals the listed rows that are still stale, inside the writer's transaction.
    fn reseal(
        &self,
        txn: &redb::WriteTransaction,
        rows: &[(usize, RowKey)],
    ) -> Result<usize, VaultError> {
        let keyring = self.keys();
        let active = keyring.active_key_id();
        let mut done = 0;
        for (table, key) in rows {
            let name = table_name(*table);
            match key {
                RowKey::Text(k) => {
                    let mut t = txn
                        .open_table(SEALED_TABLES[*table])
                        .map_err(VaultError::storage)?;
                    let old = match t.get(k.as_str()).map_err(VaultError::storage)? {
                        Some(v) => v.value().to_vec(),
                        None => continue, // deleted since the scan
                    };
                    if Keyring::key_id_of(&old) == Some(active) {
                        continue; // rewritten since the scan
                    }
                    let sealed = keyring.seal(name, k, &keyring.open(name, k, &old)?)?;
                    t.insert(k.as_str(), sealed.as_slice())
                        .map_err(VaultError::storage)?;
                }
                RowKey::Number(n) => {
                    let def = NUMBERED[*table - SEALED_TABLES.len()];
                    let mut t = txn.open_table(def).map_err(VaultError::storage)?;
                    let old = match t.get(*n).map_err(VaultError::storage)? {
                        Some(v) => v.value().to_vec(),
                        None => continue,
                    };
                    if Keyring::key_id_of(&old) == Some(active) {
                        continue;
                    }
                    let row = n.to_string();
                    let sealed = keyring.seal(name, &row, &keyring.open(name, &row, &old)?)?;
                    t.insert(*n, sealed.as_slice())
                        .map_err(VaultError::storage)?;
                }
            }
            done += 1;
        }
        Ok(done)
    }

    /// How many values are sealed under a key other than the active one (a full read).
    fn count_stale(&self) -> Result<usize, VaultError> {
        let active = self.keys().active_key_id();
        let mut stale = 0;
        let mut start = (0, None);
        loop {
            let scan = self.scan_stale(start, active, 50_000)?;
            stale += scan.stale.len();
            match scan.next.as_deref() {
                Some(next) => start = parse_cursor(Some(next))?,
                None => return Ok(stale),
            }
        }
    }

    fn replace_keyring(&self, next: Keyring) {
        *self.keyring.write().unwrap_or_else(PoisonError::into_inner) = next;
    }
}

impl RedbStore {
    /// Re-wraps the keyring under a new identity (S17): one atomic write of one row; no value is
    /// re-encrypted, and afterwards only the new identity opens the database.
    pub fn rewrap_keyring(&self, new: &age::x25519::Recipient) -> Result<(), VaultError> {
        let keyring = self.core.keys().clone();
        let wrapped = keyring.wrap(new)?;
        let txn = begin_write(&self.core.db)?;
        txn.open_table(META)
            .map_err(VaultError::storage)?
            .insert(META_KEYRING, wrapped.as_slice())
            .map_err(VaultError::storage)?;
        txn.commit().map_err(VaultError::storage)
    }

    /// Stores `change(keyring)` through the writer, then makes it the keyring in memory.
    fn commit_keyring(&self, change: fn(&mut Keyring)) -> Result<Keyring, VaultError> {
        let recipient = self.recipient.clone();
        let next = self.writer.write(move |core, txn| {
            let mut next = core.keys().clone();
            change(&mut next);
            let wrapped = next.wrap(&recipient)?;
            txn.open_table(META)
                .map_err(VaultError::storage)?
                .insert(META_KEYRING, wrapped.as_slice())
                .map_err(VaultError::storage)?;
            Ok(next)
        })?;
        // Only after the commit: no value may be sealed under a key that is not stored yet.
        self.core.replace_keyring(next.clone());
        Ok(next)
    }

    pub(super) fn data_keys_now(&self) -> DataKeys {
        let keys = self.core.keys();
        DataKeys {
            active: keys.active_key_id(),
            old: keys.old_key_ids(),
        }
    }

    pub(super) fn add_data_key_now(&self) -> Result<u32, VaultError> {
        let next = self.commit_keyring(|k| {
            k.add_data_key();
        })?;
        Ok(next.active_key_id())
    }

    pub(super) fn reencrypt_step_now(
        &self,
        cursor: Option<&str>,
        budget: usize,
    ) -> Result<Reencrypted, VaultError> {
        let start = parse_cursor(cursor)?;
        let active = self.core.keys().active_key_id();
        let scan = self.core.scan_stale(start, active, budget)?;
        let resealed = if scan.stale.is_empty() {
            0
        } else {
            let rows = scan.stale;
            self.writer
                .write(move |core, txn| core.reseal(txn, &rows))?
        };
        Ok(Reencrypted {
            resealed,
            next: scan.next,
        })
    }

    pub(super) fn retire_old_data_keys_now(&self) -> Result<(), VaultError> {
        if self.core.keys().old_key_ids().is_empty() {
            return Ok(());
        }
        let stale = self.core.count_stale()?;
        if stale > 0 {
            return Err(VaultError::Crypto(format!(
                "{stale} values are still sealed under an old data key; re-encrypt them first"
            )));
        }
        self.commit_keyring(Keyring::retire_inactive_keys)?;
        // Reads that opened their snapshot before the last re-seal may still need the old
        // keys for a moment; forget them after a grace period.
        let core = Arc::downgrade(&self.core);
        let _ = std::thread::Builder::new()
            .name("forget-retired-keys".into())
            .spawn(move || {
                std::thread::sleep(RETIRED_GRACE);
                if let Some(core) = core.upgrade() {
                    core.keyring
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .forget_retired();
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::model::{Connection, TokenSet};
    use crate::vault::{CredentialsUpdate, Store};

    /// Tiny steps cross every table boundary: each stale value is re-sealed exactly once.
    #[test]
    fn a_pass_in_tiny_steps_reseals_every_value_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) =
            RedbStore::open(&dir.path().join("db.redb"), &dir.path().join("id.txt")).unwrap();
        for i in 0..5 {
            let mut c = Connection::new_pending(&format!("t{i}"), "p", vec![]);
            let tokens = TokenSet::bearer(&format!("a{i}"), None, None);
            c.mark_connected(&tokens);
            store
                .put_connection(&c, CredentialsUpdate::Replace(&tokens))
                .unwrap();
        }
        assert_eq!(store.core.count_stale().unwrap(), 0);
        store.add_data_key().unwrap();
        let stale = store.core.count_stale().unwrap();
        assert_eq!(stale, 15, "connections, credentials and events");
        assert!(store.retire_old_data_keys().is_err());
        let (mut cursor, mut total, mut steps) = (None, 0, 0);
        loop {
            let step = store.reencrypt_step_now(cursor.as_deref(), 2).unwrap();
            total += step.resealed;
            steps += 1;
            match step.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(total, stale);
        assert!(steps >= 8, "{steps} steps");
        assert_eq!(store.core.count_stale().unwrap(), 0);
        store.retire_old_data_keys().unwrap();
        assert!(store.data_keys().old.is_empty());
        assert!(parse_cursor(Some("9:x")).is_err());
        assert!(parse_cursor(Some("4:not-a-number")).is_err());
    }
}

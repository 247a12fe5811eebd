//! Key management with the server stopped: re-wrapping the keyring under another identity and
//! rotating the data key (re-sealing every value in resumable batches).

use redb::{ReadableTable, TableHandle};

use super::audit::AUDIT;
use super::{begin_write, Keyring, RedbStore, EVENTS, META, META_KEYRING, SEALED_TABLES};
use crate::vault::VaultError;

impl RedbStore {
    /// Re-wraps the keyring under a new identity (S17): one atomic write of one row; no value is
    /// re-encrypted, and afterwards only the new identity opens the database.
    pub fn rewrap_keyring(&self, new: &age::x25519::Recipient) -> Result<(), VaultError> {
        let keyring = self.core.keys().clone();
        self.store_keyring(&keyring, new)
    }

    /// Starts a data-key rotation: a new data key becomes active for new writes (the keyring
    /// is re-wrapped under `recipient` in one write); old values stay readable.
    pub fn add_data_key(&mut self, recipient: &age::x25519::Recipient) -> Result<u32, VaultError> {
        let mut next = self.core.keys().clone();
        let id = next.add_data_key();
        self.store_keyring(&next, recipient)?;
        self.replace_keyring(next);
        Ok(id)
    }

    /// Re-seals up to `limit` values not yet under the active data key, in one transaction.
    /// Returns how many; 0 means the rotation is complete. Safe to stop and resume.
    pub fn reencrypt_batch(&self, limit: usize) -> Result<usize, VaultError> {
        let keyring = self.core.keys().clone();
        let active = keyring.active_key_id();
        let stale = |v: &[u8]| Keyring::key_id_of(v) != Some(active);
        let txn = begin_write(&self.core.db)?;
        let mut done = 0;
        for def in SEALED_TABLES {
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
                let plain = keyring.open(def.name(), k, v)?;
                let sealed = keyring.seal(def.name(), k, &plain)?;
                table
                    .insert(k.as_str(), sealed.as_slice())
                    .map_err(VaultError::storage)?;
            }
            done += todo.len();
            if done >= limit {
                break;
            }
        }
        for def in [EVENTS, AUDIT] {
            if done >= limit {
                break;
            }
            let mut table = txn.open_table(def).map_err(VaultError::storage)?;
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
                let plain = keyring.open(def.name(), &key, v)?;
                let sealed = keyring.seal(def.name(), &key, &plain)?;
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
        let mut next = self.core.keys().clone();
        next.retire_inactive_keys();
        self.store_keyring(&next, recipient)?;
        self.replace_keyring(next);
        Ok(())
    }

    fn replace_keyring(&self, next: Keyring) {
        let mut keyring = self
            .core
            .keyring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *keyring = next;
    }

    fn store_keyring(
        &self,
        keyring: &Keyring,
        recipient: &age::x25519::Recipient,
    ) -> Result<(), VaultError> {
        let wrapped = keyring.wrap(recipient)?;
        let txn = begin_write(&self.core.db)?;
        txn.open_table(META)
            .map_err(VaultError::storage)?
            .insert(META_KEYRING, wrapped.as_slice())
            .map_err(VaultError::storage)?;
        txn.commit().map_err(VaultError::storage)
    }
}

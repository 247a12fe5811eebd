//! Consistent backups of the live database: the file is copied while this process holds redb's
//! write lock, so no commit can change it mid-copy, and every acknowledged commit is already on
//! disk (commits are durable). Values stay sealed: a backup is useless without the identity.

use std::fs::{self, File};
use std::path::Path;

use redb::{Database, ReadableDatabase};

use super::{begin_write, RedbStore, META, META_KEYRING};
use crate::vault::VaultError;

impl RedbStore {
    /// A fresh file name next to the database, for snapshots served over HTTP.
    pub(super) fn snapshot_path(&self) -> std::path::PathBuf {
        let name = format!(
            "{}.snapshot-{}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            hex::encode(crate::vault::random_bytes::<6>())
        );
        self.path.with_file_name(name)
    }

    /// Writes a consistent copy of the database to `out` (which must not exist) and returns its
    /// size. Writers wait while the file is copied; readers do not.
    pub(super) fn copy_consistent(&self, out: &Path) -> Result<u64, VaultError> {
        if out.exists() {
            return Err(VaultError::Storage(format!(
                "{} already exists; backups never overwrite",
                out.display()
            )));
        }
        let partial = out.with_extension("partial");
        let copied = {
            let lock = begin_write(&self.core.db)?;
            let copied = fs::copy(&self.path, &partial);
            lock.abort().map_err(VaultError::storage)?;
            copied.map_err(|e| VaultError::Storage(format!("copying the database: {e}")))?
        };
        // The copy was taken from an open database: opening it once lets redb check (and, if
        // needed, recover) it, and proves it holds a keyring before it is called a backup.
        let checked = verify(&partial).and_then(|()| {
            File::open(&partial)
                .and_then(|f| f.sync_all())
                .map_err(VaultError::storage)?;
            fs::rename(&partial, out).map_err(VaultError::storage)
        });
        if checked.is_err() {
            let _ = fs::remove_file(&partial);
        }
        checked.map(|()| copied)
    }
}

/// The file opens as a redb database and holds a wrapped keyring.
pub fn verify(path: &Path) -> Result<(), VaultError> {
    let db = Database::open(path).map_err(VaultError::storage)?;
    let txn = db.begin_read().map_err(VaultError::storage)?;
    let meta = txn.open_table(META).map_err(VaultError::storage)?;
    match meta.get(META_KEYRING).map_err(VaultError::storage)? {
        Some(_) => Ok(()),
        None => Err(VaultError::Corrupt("the backup holds no keyring".into())),
    }
}

/// Shrinks the database file of a stopped appliance: redb reuses freed pages but never gives
/// them back to the file system on its own. Checks first that `identity` opens it (so the file
/// is this appliance's database), then compacts until nothing more is gained. Returns the file
/// size before and after.
pub fn compact(db_path: &Path, identity: &Path) -> Result<(u64, u64), VaultError> {
    let size = || {
        fs::metadata(db_path)
            .map(|m| m.len())
            .map_err(VaultError::storage)
    };
    if !db_path.exists() {
        return Err(VaultError::Storage(format!(
            "{}: no database to compact",
            db_path.display()
        )));
    }
    drop(RedbStore::open(db_path, identity)?);
    let before = size()?;
    let mut db = Database::open(db_path).map_err(VaultError::storage)?;
    while db.compact().map_err(VaultError::storage)? {}
    drop(db);
    Ok((before, size()?))
}

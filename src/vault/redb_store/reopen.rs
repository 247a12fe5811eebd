//! The database handle, reopened after an I/O error. redb latches the first failed write (a full
//! disk, a file size limit): from then on every transaction answers `PreviousIo` until the file
//! is closed and opened again, which also repairs it. Without a reopen, a fault that has cleared
//! would keep every write failing until the process restarts. The latched handle still serves
//! reads from its cache, so it is kept until a probe write next to the file shows that the fault
//! has cleared: reopening during the fault would only trade that warm cache for a cold one that
//! the next failed write latches again.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, ReadTransaction, ReadableDatabase, StorageError, TransactionError,
    WriteTransaction,
};

use crate::vault::VaultError;

/// At most one probe (and reopen) this often, so a persistent fault costs little.
const REOPEN_INTERVAL: Duration = Duration::from_millis(500);
/// Free room a probe must find next to the database before a reopen (and its repair) is tried.
const PROBE_BYTES: usize = 1 << 20;
/// How long a reopen waits for a write transaction of the old handle to end.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

pub(crate) struct Db {
    path: PathBuf,
    cache_bytes: usize,
    /// `None` after a failed reopen: every transaction fails until one succeeds.
    current: RwLock<Option<Database>>,
    /// Bumped on each reopen, so racing callers reopen a failed handle only once.
    generation: Mutex<(u64, Option<Instant>)>,
}

fn create(path: &Path, cache_bytes: usize) -> Result<Database, DatabaseError> {
    redb::Builder::new()
        .set_cache_size(cache_bytes)
        .create(path)
}

impl Db {
    /// Opens (or creates) the database file; the error names the file and, when the file or its
    /// directory is not writable, says so.
    pub(crate) fn open(path: &Path, cache_bytes: usize) -> Result<Self, VaultError> {
        let db = create(path, cache_bytes).map_err(|e| {
            if matches!(e, DatabaseError::DatabaseAlreadyOpen) {
                return VaultError::InUse {
                    db: path.display().to_string(),
                };
            }
            let denied = matches!(&e, DatabaseError::Storage(StorageError::Io(io))
                if matches!(io.kind(), ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem));
            let hint = if denied {
                "; the database file and its directory must be writable by this user"
            } else {
                ""
            };
            VaultError::Storage(format!(
                "cannot open the database {}: {e}{hint}",
                path.display()
            ))
        })?;
        Ok(Db {
            cache_bytes,
            path: path.to_path_buf(),
            current: RwLock::new(Some(db)),
            generation: Mutex::new((0, None)),
        })
    }

    pub(crate) fn begin_read(&self) -> Result<ReadTransaction, TransactionError> {
        self.retrying(|db| db.begin_read())
    }

    pub(crate) fn begin_write(&self) -> Result<WriteTransaction, TransactionError> {
        self.retrying(Database::begin_write)
    }

    fn retrying<T>(
        &self,
        begin: impl Fn(&Database) -> Result<T, TransactionError>,
    ) -> Result<T, TransactionError> {
        let generation = self.generation();
        match self.with(&begin) {
            Err(TransactionError::Storage(e)) if is_latched(&e) => {
                if self.reopen(generation) {
                    self.with(&begin)
                } else {
                    Err(TransactionError::Storage(e))
                }
            }
            other => other,
        }
    }

    fn with<T>(
        &self,
        begin: impl Fn(&Database) -> Result<T, TransactionError>,
    ) -> Result<T, TransactionError> {
        let guard = self.current.read().unwrap_or_else(PoisonError::into_inner);
        match guard.as_ref() {
            Some(db) => begin(db),
            None => Err(TransactionError::Storage(StorageError::PreviousIo)),
        }
    }

    fn generation(&self) -> u64 {
        self.generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// Closes the failed handle and opens the file again. `false` when the last attempt was too
    /// recent, when the fault persists, or when opening failed; `true` when this or another caller
    /// reopened it since `seen`.
    fn reopen(&self, seen: u64) -> bool {
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if generation.0 != seen {
            return true;
        }
        if generation
            .1
            .is_some_and(|at| at.elapsed() < REOPEN_INTERVAL)
        {
            return false;
        }
        generation.1 = Some(Instant::now());
        if let Err(e) = self.probe() {
            tracing::warn!(db = %self.path.display(), error = %e, "the database's storage is still failing; writes answer 503");
            return false;
        }
        generation.0 = seen + 1;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = current.take() {
            // A live write transaction defers the close until it ends; the open below waits.
            let _ = old.close();
        }
        let started = Instant::now();
        let opened = loop {
            match create(&self.path, self.cache_bytes) {
                Err(DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < CLOSE_WAIT => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other,
            }
        };
        match opened {
            Ok(db) => {
                tracing::warn!(db = %self.path.display(), "reopened the database after an I/O error");
                *current = Some(db);
                true
            }
            Err(e) => {
                tracing::error!(db = %self.path.display(), error = %e, "reopening the database failed; retrying on a later request");
                false
            }
        }
    }

    /// Writes, syncs and removes a scratch file beside the database: fails while the disk is full
    /// or read-only, or a file size limit is in the way.
    fn probe(&self) -> std::io::Result<()> {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".probe");
        let path = self.path.with_file_name(name);
        let written = std::fs::File::create(&path).and_then(|mut f| {
            std::io::Write::write_all(&mut f, &vec![0; PROBE_BYTES])?;
            f.sync_data()
        });
        let removed = std::fs::remove_file(&path);
        written.and(removed)
    }
}

/// The errors after which only closing and reopening the file helps.
fn is_latched(e: &StorageError) -> bool {
    matches!(e, StorageError::PreviousIo | StorageError::DatabaseClosed)
}

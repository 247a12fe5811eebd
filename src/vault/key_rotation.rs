//! Data-key rotation while the appliance serves: a fresh key seals new values at once, every
//! stored value is re-sealed under it in short steps on a background thread, then the old key
//! is dropped from the keyring. Resumable: a rotation left unfinished (old keys still stored)
//! is picked up again at the next start, or by starting it again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Store, VaultError};
use crate::connections::model::now;

/// A pause between steps, so a rotation on a busy appliance leaves the writer and the cores to
/// the requests it serves.
const PAUSE: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RotationState {
    /// No rotation has run since the appliance started and none is unfinished.
    Idle,
    Running,
    Completed,
    /// The last attempt stopped on an error; starting again resumes it.
    Failed,
    /// Old keys are still stored (stopped mid-way) and nothing is running.
    Unfinished,
}

/// What `GET /v1/vault/data-key` reports.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RotationStatus {
    pub state: RotationState,
    /// The data key new values are sealed with.
    pub active_key: u32,
    /// Older data keys still stored: values may be sealed under them until the rotation ends.
    pub old_keys: Vec<u32>,
    /// Values re-sealed by the current (or last) rotation of this process.
    pub reencrypted: u64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Why the last attempt stopped.
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("a data-key rotation is already running")]
    AlreadyRunning,
    #[error("the rotation was stopped; start it again to resume")]
    Stopped,
    #[error(transparent)]
    Vault(#[from] VaultError),
}

#[derive(Default)]
struct Progress {
    running: bool,
    reencrypted: u64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    error: Option<String>,
}

pub struct KeyRotation {
    store: Arc<dyn Store>,
    progress: Mutex<Progress>,
    stop: AtomicBool,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl KeyRotation {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(KeyRotation {
            store,
            progress: Mutex::default(),
            stop: AtomicBool::new(false),
            worker: Mutex::default(),
        })
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn status(&self) -> RotationStatus {
        let keys = self.store.data_keys();
        let p = self.progress();
        let state = match (p.running, &p.error, p.finished_at) {
            (true, _, _) => RotationState::Running,
            (false, Some(_), _) => RotationState::Failed,
            _ if !keys.old.is_empty() => RotationState::Unfinished,
            (false, None, Some(_)) => RotationState::Completed,
            (false, None, None) => RotationState::Idle,
        };
        RotationStatus {
            state,
            active_key: keys.active,
            old_keys: keys.old,
            reencrypted: p.reencrypted,
            started_at: p.started_at,
            finished_at: p.finished_at,
            error: p.error.clone(),
        }
    }

    /// Adds the new key, then re-seals on a background thread; resumes an unfinished rotation
    /// instead of adding another key. Blocks for one durable write.
    pub fn start(self: &Arc<Self>) -> Result<RotationStatus, RotationError> {
        {
            let mut p = self.progress();
            if p.running {
                return Err(RotationError::AlreadyRunning);
            }
            *p = Progress {
                running: true,
                started_at: Some(now()),
                ..Progress::default()
            };
        }
        self.stop.store(false, Ordering::SeqCst);
        // The new key is in place before this returns, so the caller sees which key it is.
        if let Err(e) = self.add_key_unless_resuming() {
            let mut p = self.progress();
            p.running = false;
            p.error = Some(e.to_string());
            return Err(e.into());
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("data-key-rotation".into())
            .spawn(move || {
                // A bug must not leave the state "running" for good.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    me.run(&mut |_| {})
                }))
                .unwrap_or_else(|_| {
                    Err(VaultError::Storage("the rotation thread panicked".into()).into())
                });
                let mut p = me.progress();
                p.running = false;
                p.finished_at = Some(now());
                if let Err(e) = outcome {
                    tracing::warn!(error = %e, "data-key rotation stopped; start it again to resume");
                    p.error = Some(e.to_string());
                }
            });
        match spawned {
            Ok(handle) => {
                *self.worker.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
                Ok(self.status())
            }
            Err(e) => {
                self.progress().running = false;
                Err(VaultError::Storage(format!("cannot start the rotation thread: {e}")).into())
            }
        }
    }

    /// At start-up: continues a rotation a previous run left unfinished.
    pub fn resume_if_unfinished(self: &Arc<Self>) {
        let old = self.store.data_keys().old;
        if !old.is_empty() {
            tracing::info!(?old, "resuming an unfinished data-key rotation");
            if let Err(e) = self.start() {
                tracing::warn!(error = %e, "cannot resume the data-key rotation");
            }
        }
    }

    /// Asks a running rotation to stop after its current step, and waits for it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(worker) = worker {
            let _ = worker.join();
        }
    }

    /// A new active key, unless older keys are still stored (an unfinished rotation).
    fn add_key_unless_resuming(&self) -> Result<(), VaultError> {
        if self.store.data_keys().old.is_empty() {
            let id = self.store.add_data_key()?;
            tracing::info!(key = id, "new data key active; re-sealing stored values");
        }
        Ok(())
    }

    /// The whole rotation on the calling thread: a new key unless one is already being rolled
    /// out, re-sealing passes, then retirement. `on_step` sees the running total.
    pub fn run(&self, on_step: &mut dyn FnMut(u64)) -> Result<u64, RotationError> {
        let began = Instant::now();
        self.add_key_unless_resuming()?;
        let mut total = 0;
        // One pass suffices (see `Store::reencrypt_step`); a second covers a value the check
        // before retirement still finds, rather than failing the rotation outright.
        for pass in 0..2 {
            let mut cursor: Option<String> = None;
            loop {
                if self.stop.load(Ordering::SeqCst) {
                    return Err(RotationError::Stopped);
                }
                let step = self.store.reencrypt_step(cursor.as_deref())?;
                total += step.resealed as u64;
                self.progress().reencrypted = total;
                on_step(total);
                match step.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
                std::thread::sleep(PAUSE);
            }
            match self.store.retire_old_data_keys() {
                Ok(()) => break,
                Err(e) if pass == 0 => {
                    tracing::warn!(error = %e, "values left after a full pass; one more pass");
                }
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!(
            reencrypted = total,
            seconds = began.elapsed().as_secs_f64(),
            "data-key rotation complete; old keys retired"
        );
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::model::{Connection, TokenSet};
    use crate::vault::{ConnectionFilter, CredentialsUpdate, RedbStore};

    fn tokens(access: &str) -> TokenSet {
        let refresh = format!("refresh-{access}");
        TokenSet::bearer(access, Some(&refresh), Some(now() + 3600))
    }

    fn connected(store: &RedbStore, tenant: &str, access: &str) -> Connection {
        let mut c = Connection::new_pending(tenant, "p", vec![]);
        let t = tokens(access);
        c.mark_connected(&t);
        store
            .put_connection(&c, CredentialsUpdate::Replace(&t))
            .unwrap();
        c
    }

    /// Writers seal while the rotation re-seals; afterwards the database reopens with only the
    /// new key stored, and every value (old, re-sealed, written during the rotation) opens.
    #[test]
    fn concurrent_writes_during_a_rotation_all_stay_readable_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (db, id) = (dir.path().join("db.redb"), dir.path().join("id.txt"));
        let store = Arc::new(RedbStore::open(&db, &id).unwrap().0);
        let mut expected: Vec<(String, String)> = (0..600)
            .map(|i| {
                let access = format!("before-{i}");
                (connected(&store, &format!("t{i}"), &access).id, access)
            })
            .collect();
        let rotation = KeyRotation::new(store.clone());
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    (0..100)
                        .map(|i| {
                            let access = format!("during-{w}-{i}");
                            (connected(&store, "during", &access).id, access)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // Rewrites of old values race the re-seal of the same rows.
        for (n, (id, access)) in expected.iter_mut().enumerate().step_by(10) {
            let mut c = store.connection(id).unwrap().unwrap();
            let t = tokens(&format!("rewritten-{n}"));
            c.mark_connected(&t);
            *access = t.access_token.clone();
            store
                .put_connection(&c, CredentialsUpdate::Replace(&t))
                .unwrap();
            if n == 0 {
                rotation.start().unwrap();
                assert!(matches!(
                    rotation.start(),
                    Err(RotationError::AlreadyRunning)
                ));
            }
        }
        for w in writers {
            expected.extend(w.join().unwrap());
        }
        let status = loop {
            let status = rotation.status();
            if status.state != RotationState::Running {
                break status;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.state, RotationState::Completed, "{status:?}");
        assert_eq!((status.active_key, status.old_keys), (2, vec![]));
        drop(rotation);
        drop(Arc::into_inner(store).expect("the only handle"));

        let (store, _) = RedbStore::open(&db, &id).unwrap();
        assert_eq!(store.data_keys().old, Vec::<u32>::new());
        for (id, access) in &expected {
            let (c, t) = store.connection_with_credentials(id).unwrap().unwrap();
            assert_eq!(c.id, *id);
            assert_eq!(t.unwrap().access_token, *access);
        }
        let all = store
            .list_connections(&ConnectionFilter::default(), None, 10_000)
            .unwrap();
        assert_eq!(all.len(), expected.len());
        assert!(store.events(0, 100_000, &|_| true).unwrap().len() >= expected.len());
    }
}

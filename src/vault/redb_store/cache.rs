//! A bounded read cache of hot connections and their opened credentials, so a token fetch that
//! hits it costs no read transaction, no decryption and no trip to the blocking pool.
//!
//! Correctness rules (a stale token, or a revoked or deleted connection served from here, would
//! be a security bug):
//! - every write that changes a connection or its credentials calls [`ConnectionCache::touch`]
//!   inside its transaction, and the writer thread (the only thread that writes those rows)
//!   calls [`ConnectionCache::invalidate_touched`] after the commit, before any caller of the
//!   batch is answered;
//! - a reader takes [`ConnectionCache::epoch`] *before* it opens its read transaction and fills
//!   the cache only if no invalidation happened since ([`ConnectionCache::fill`]); both sides
//!   decide under the same lock. A reader that saw the old snapshot therefore either inserts
//!   before the invalidation (which then removes it) or is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use zeroize::Zeroize;

use crate::connections::model::{Connection, TokenSet};

/// Entries kept by default: about 0.8 KiB each for a typical connection and token (10,000
/// entries measured at ~8 MiB of resident memory).
pub(super) const DEFAULT_CAPACITY: usize = 16_384;

/// What a hit returns: the connection, and its credentials when it is connected.
pub(crate) type Cached = (Connection, Option<TokenSet>);

pub(super) struct ConnectionCache {
    inner: Mutex<Inner>,
    /// Ids written by the current group transaction, invalidated once it has committed.
    touched: Mutex<Vec<String>>,
    capacity: usize,
}

/// An entry shared by the cache and readers cloning out of it; its secrets are wiped when the
/// last holder lets go (eviction, invalidation or the cache's drop).
struct Entry(Connection, Option<TokenSet>);

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(t) = &mut self.1 {
            t.access_token.zeroize();
            t.refresh_token.zeroize();
            t.id_token.zeroize();
            for value in t.extra.values_mut() {
                if let serde_json::Value::String(s) = value {
                    s.zeroize();
                }
            }
        }
    }
}

/// A CLOCK ring (second chance): a hit sets the slot's bit, eviction skips and clears set bits,
/// so hot entries stay and a scan of cold ids cannot flush them.
#[derive(Default)]
struct Inner {
    /// Bumped by every invalidation.
    epoch: u64,
    index: HashMap<String, usize>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    hand: usize,
}

struct Slot {
    id: String,
    entry: Arc<Entry>,
    referenced: bool,
}

impl ConnectionCache {
    pub(super) fn new(capacity: usize) -> Self {
        ConnectionCache {
            inner: Mutex::default(),
            touched: Mutex::default(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn get(&self, id: &str) -> Option<Cached> {
        let entry = {
            let mut inner = self.lock();
            let at = *inner.index.get(id)?;
            let slot = inner.slots[at].as_mut()?;
            slot.referenced = true;
            Arc::clone(&slot.entry)
        };
        Some((entry.0.clone(), entry.1.clone()))
    }

    /// The invalidation count, to be read before the read transaction whose result may fill.
    pub(super) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Caches what a read transaction begun at `epoch` found, unless an invalidation happened
    /// since (the read may predate a commit whose invalidation has already run).
    pub(super) fn fill(&self, epoch: u64, connection: &Connection, tokens: Option<&TokenSet>) {
        if self.capacity == 0 {
            return;
        }
        let entry = Arc::new(Entry(connection.clone(), tokens.cloned()));
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        inner.insert(connection.id.clone(), entry, self.capacity);
    }

    /// Records that the running write transaction changes connection `id`. Until it commits,
    /// the cached entry is still the committed truth, so it stays.
    pub(super) fn touch(&self, id: &str) {
        self.touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(id.to_string());
    }

    /// After a commit (or a failed one: extra invalidation is harmless), before its callers are
    /// answered.
    pub(super) fn invalidate_touched(&self) {
        let ids = std::mem::take(&mut *self.touched.lock().unwrap_or_else(PoisonError::into_inner));
        if !ids.is_empty() {
            self.invalidate(ids.iter().map(String::as_str));
        }
    }

    fn invalidate<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.lock();
        inner.epoch += 1;
        for id in ids {
            inner.remove(id);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().index.len()
    }
}

impl Inner {
    fn insert(&mut self, id: String, entry: Arc<Entry>, capacity: usize) {
        if let Some(&at) = self.index.get(&id) {
            if let Some(slot) = self.slots[at].as_mut() {
                slot.entry = entry;
                return;
            }
        }
        if self.index.len() >= capacity {
            self.evict();
        }
        let at = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.index.insert(id.clone(), at);
        self.slots[at] = Some(Slot {
            id,
            entry,
            referenced: false,
        });
    }

    fn remove(&mut self, id: &str) {
        if let Some(at) = self.index.remove(id) {
            self.slots[at] = None;
            self.free.push(at);
        }
    }

    /// Frees one slot: the first unreferenced one from the hand on (at most two turns).
    fn evict(&mut self) {
        for _ in 0..2 * self.slots.len() {
            let at = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let Some(slot) = self.slots[at].as_mut() else {
                continue;
            };
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            let id = slot.id.clone();
            self.remove(&id);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::model::Status;

    fn connection(id: &str, token: &str) -> (Connection, TokenSet) {
        let mut c = Connection::new_pending("t", "p", vec![]);
        c.id = id.to_string();
        c.status = Status::Connected;
        let t = TokenSet::bearer(token, None, None);
        (c, t)
    }

    fn token(cache: &ConnectionCache, id: &str) -> Option<String> {
        cache.get(id).and_then(|(_, t)| t).map(|t| t.access_token)
    }

    #[test]
    fn a_fill_from_before_an_invalidation_is_refused() {
        let cache = ConnectionCache::new(8);
        let (c, old) = connection("a", "old");
        // A reader takes the epoch and reads the old row ...
        let seen = cache.epoch();
        // ... while the writer changes it, commits and invalidates ...
        cache.touch("a");
        cache.invalidate_touched();
        // ... so the old row must not be cached.
        cache.fill(seen, &c, Some(&old));
        assert_eq!(token(&cache, "a"), None);
        // A read begun after the invalidation fills.
        let (c, new) = connection("a", "new");
        cache.fill(cache.epoch(), &c, Some(&new));
        assert_eq!(token(&cache, "a").as_deref(), Some("new"));
    }

    #[test]
    fn a_fill_before_the_commit_is_removed_by_the_invalidation() {
        let cache = ConnectionCache::new(8);
        let (c, old) = connection("a", "old");
        // The writer touched the row in its open transaction; a reader still sees the old
        // snapshot and fills before the commit.
        cache.touch("a");
        cache.fill(cache.epoch(), &c, Some(&old));
        assert_eq!(token(&cache, "a").as_deref(), Some("old"));
        cache.invalidate_touched();
        assert_eq!(token(&cache, "a"), None);
    }

    #[test]
    fn invalidation_is_per_id_but_refuses_every_older_fill() {
        let cache = ConnectionCache::new(8);
        let (a, ta) = connection("a", "token-a");
        let (b, tb) = connection("b", "token-b");
        cache.fill(cache.epoch(), &a, Some(&ta));
        let seen = cache.epoch();
        cache.touch("b");
        cache.invalidate_touched();
        assert_eq!(token(&cache, "a").as_deref(), Some("token-a"));
        cache.fill(seen, &b, Some(&tb));
        assert_eq!(token(&cache, "b"), None);
    }

    #[test]
    fn concurrent_readers_never_keep_a_value_older_than_the_last_commit() {
        // One writer publishes versions 1..=N of one row; readers loop reading "the database"
        // (the published version) and filling. After each commit's invalidation, whatever the
        // cache holds must be at least that version.
        use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
        let cache = Arc::new(ConnectionCache::new(4));
        let db = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (cache, db, stop) = (cache.clone(), db.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(SeqCst) {
                        let seen = cache.epoch();
                        let version = db.load(SeqCst); // the read transaction's snapshot
                        std::thread::yield_now();
                        let (c, t) = connection("a", &version.to_string());
                        cache.fill(seen, &c, Some(&t));
                    }
                })
            })
            .collect();
        for version in 1..=2000u64 {
            cache.touch("a");
            db.store(version, SeqCst); // the commit
            cache.invalidate_touched();
            if let Some(held) = token(&cache, "a") {
                assert!(
                    held.parse::<u64>().unwrap() >= version,
                    "stale {held} < {version}"
                );
            }
        }
        stop.store(true, SeqCst);
        for r in readers {
            r.join().unwrap();
        }
    }

    #[test]
    fn bounded_and_hot_entries_survive_eviction() {
        let cache = ConnectionCache::new(4);
        for i in 0..4 {
            let (c, t) = connection(&format!("c{i}"), "x");
            cache.fill(cache.epoch(), &c, Some(&t));
        }
        assert!(cache.get("c0").is_some()); // referenced
        for i in 4..10 {
            let (c, t) = connection(&format!("c{i}"), "x");
            cache.fill(cache.epoch(), &c, Some(&t));
            assert!(cache.len() <= 4);
            assert!(
                cache.get("c0").is_some(),
                "the hot entry was evicted at c{i}"
            );
        }
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let cache = ConnectionCache::new(0);
        let (c, t) = connection("a", "x");
        cache.fill(cache.epoch(), &c, Some(&t));
        assert!(cache.get("a").is_none());
    }
}

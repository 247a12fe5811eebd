//! The background refresher: tokens expiring within the lead time are refreshed before anyone
//! asks, a few at a time, with exponential backoff and jitter after transient failures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;

use super::model::{now, Timestamp};
use super::{ConnectError, Connections};
use crate::vault::random_bytes;

/// Background-refresh bookkeeping: per-connection backoff after transient failures, and the
/// per-plugin limits.
#[derive(Default)]
pub struct SchedulerState {
    next: Mutex<HashMap<String, Backoff>>,
    /// One semaphore per plugin for background refreshes.
    plugins: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// A connection backing off after transient refresh failures.
struct Backoff {
    attempts: u32,
    next_at: Timestamp,
    /// When the last refresh failed, and why: shared with callers that waited for it.
    failed_at: Instant,
    error: String,
}

impl SchedulerState {
    fn plugin_limit(&self, plugin: &str, permits: usize) -> Arc<tokio::sync::Semaphore> {
        let mut map = self
            .plugins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(
            map.entry(plugin.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(permits.max(1)))),
        )
    }

    fn ready(&self, id: &str, t: Timestamp) -> bool {
        self.lock().get(id).is_none_or(|b| b.next_at <= t)
    }

    /// Records a transient refresh failure. Returns `true` when it starts a new backoff attempt
    /// (the connection was not backing off), so callers retrying in between do not each write
    /// an event.
    pub(super) fn failed(&self, id: &str, t: Timestamp, error: String) -> bool {
        let mut map = self.lock();
        let failed_at = Instant::now();
        if let Some(b) = map.get_mut(id).filter(|b| b.next_at > t) {
            b.failed_at = failed_at;
            b.error = error;
            return false;
        }
        let attempts = map.get(id).map_or(0, |b| b.attempts) + 1;
        let base = 30i64.saturating_mul(1 << attempts.min(7)).min(3600);
        let jitter = i64::from(random_bytes::<1>()[0]) * base / 512;
        let next_at = t + base + jitter;
        let backoff = Backoff {
            attempts,
            next_at,
            failed_at,
            error,
        };
        map.insert(id.to_string(), backoff);
        true
    }

    /// The error of a refresh that failed after `since` (while a caller waited for the lock).
    pub(super) fn failed_since(&self, id: &str, since: Instant) -> Option<String> {
        self.lock()
            .get(id)
            .filter(|b| b.failed_at > since)
            .map(|b| b.error.clone())
    }

    pub(super) fn succeeded(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Backoff>> {
        self.next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Connections {
    /// One pass: refreshes what is due. Returns how many refreshes were attempted.
    /// `concurrency` bounds the pass; `per_plugin` bounds each provider within it, so one busy
    /// provider neither gets stampeded nor takes every slot.
    pub async fn refresh_due(
        &self,
        lead_seconds: i64,
        concurrency: usize,
        per_plugin: usize,
    ) -> Result<usize, ConnectError> {
        let t = now();
        let before = t + lead_seconds;
        let due = self
            .blocking(move |s| s.due_for_refresh(before, 10_000))
            .await?;
        let ready: Vec<String> = due
            .into_iter()
            .filter(|id| self.scheduler.ready(id, t))
            .collect();
        let attempted = ready.len();
        futures_util::stream::iter(ready)
            .for_each_concurrent(concurrency.max(1), |id| async move {
                let Ok(connection) = self.get(&id).await else {
                    return; // deleted meanwhile
                };
                let limit = self.scheduler.plugin_limit(&connection.plugin, per_plugin);
                let Ok(_permit) = limit.acquire().await else {
                    return;
                };
                match self.fresh_token(&id, false, lead_seconds).await {
                    Ok(_) => self.scheduler.succeeded(&id),
                    // The backoff was recorded where the refresh failed.
                    Err(ConnectError::RefreshFailed(_)) => {}
                    // Expired (already logged), revoked or deleted meanwhile: nothing to retry.
                    Err(e) => {
                        self.scheduler.succeeded(&id);
                        tracing::debug!(connection = %id, error = %e, "background refresh skipped");
                    }
                }
            })
            .await;
        Ok(attempted)
    }
}

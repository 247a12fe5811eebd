//! The background refresher: tokens expiring within the lead time are refreshed before anyone
//! asks, a few at a time, with exponential backoff and jitter after transient failures.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::StreamExt;

use super::model::{now, Timestamp};
use super::{ConnectError, Connections};
use crate::vault::random_bytes;

/// Connections whose last background refresh failed transiently: when to try again.
#[derive(Default)]
pub struct Backoff {
    next: Mutex<HashMap<String, (u32, Timestamp)>>,
}

impl Backoff {
    fn ready(&self, id: &str, t: Timestamp) -> bool {
        self.lock().get(id).is_none_or(|(_, at)| *at <= t)
    }

    fn failed(&self, id: &str, t: Timestamp) {
        let mut map = self.lock();
        let attempts = map.get(id).map_or(0, |(n, _)| *n) + 1;
        let base = 30i64.saturating_mul(1 << attempts.min(7)).min(3600);
        let jitter = i64::from(random_bytes::<1>()[0]) * base / 512;
        map.insert(id.to_string(), (attempts, t + base + jitter));
    }

    fn succeeded(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Timestamp)>> {
        self.next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Connections {
    /// One pass: refreshes what is due. Returns how many refreshes were attempted.
    pub async fn refresh_due(
        &self,
        lead_seconds: i64,
        concurrency: usize,
    ) -> Result<usize, ConnectError> {
        let t = now();
        let before = t + lead_seconds;
        let due = self
            .blocking(move |s| s.due_for_refresh(before, 10_000))
            .await?;
        let ready: Vec<String> = due
            .into_iter()
            .filter(|id| self.backoff.ready(id, t))
            .collect();
        let attempted = ready.len();
        futures_util::stream::iter(ready)
            .for_each_concurrent(concurrency.max(1), |id| async move {
                match self.fresh_token(&id, false, lead_seconds).await {
                    Ok(_) => self.backoff.succeeded(&id),
                    Err(ConnectError::RefreshFailed(_)) => self.backoff.failed(&id, now()),
                    // Expired (already logged), revoked or deleted meanwhile: nothing to retry.
                    Err(e) => {
                        self.backoff.succeeded(&id);
                        tracing::debug!(connection = %id, error = %e, "background refresh skipped");
                    }
                }
            })
            .await;
        Ok(attempted)
    }
}

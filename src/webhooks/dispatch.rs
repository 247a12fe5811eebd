//! The dispatcher: tails the event log and turns each event into deliveries, woken as soon as
//! events are written (with a slow poll as a safety net).

use std::sync::Arc;
use std::time::Duration;

use super::{now_ms, Webhooks};

/// Events turned into deliveries per transaction.
const BATCH: usize = 200;
const POLL: Duration = Duration::from_secs(10);
const AFTER_ERROR: Duration = Duration::from_secs(5);

impl Webhooks {
    pub(super) async fn run_dispatcher(self: Arc<Self>) {
        loop {
            match self.dispatch_once().await {
                Ok(n) if n == BATCH => continue, // more are waiting
                Ok(_) => {
                    let _ = tokio::time::timeout(POLL, self.events_written.notified()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook dispatch failed; retrying");
                    tokio::time::sleep(AFTER_ERROR).await;
                }
            }
        }
    }

    /// One transaction's worth; returns how many events it consumed.
    async fn dispatch_once(&self) -> Result<usize, super::WebhookError> {
        let hooks = self.hooks.clone();
        let enqueued = self
            .blocking(move |s| {
                let route = |e: &crate::connections::events::Event| {
                    hooks
                        .iter()
                        .filter(|h| e.id >= h.since && h.config.wants(&e.kind))
                        .map(|h| h.config.id.clone())
                        .collect()
                };
                s.enqueue_deliveries(BATCH, &route, now_ms())
            })
            .await?;
        for id in &enqueued.webhooks {
            if let Some(hook) = self.hook(id) {
                hook.wake.notify_one();
            }
        }
        Ok(enqueued.events)
    }
}

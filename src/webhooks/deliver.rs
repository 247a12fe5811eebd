//! A webhook's lane: sends its due deliveries, at most `concurrency` at once, and records each
//! outcome durably. Lanes share nothing, so one receiver hanging never delays another.

use std::sync::Arc;
use std::time::Duration;

use super::model::{Delivery, DeliveryStatus, Outcome};
use super::{now_ms, payload, Hook, WebhookError, Webhooks};
use crate::connections::model::now;
use crate::vault::random_bytes;

/// How long a lane with nothing scheduled sleeps unless woken.
const IDLE: Duration = Duration::from_secs(30);
const AFTER_ERROR: Duration = Duration::from_secs(5);

impl Webhooks {
    pub(super) async fn run_lane(self: Arc<Self>, hook: Arc<Hook>) {
        loop {
            let wait = match self.start_due(&hook).await {
                Ok(next) => next.unwrap_or(IDLE),
                Err(e) => {
                    tracing::warn!(webhook = %hook.config.id, error = %e, "reading the webhook schedule failed");
                    AFTER_ERROR
                }
            };
            let _ = tokio::time::timeout(wait, hook.wake.notified()).await;
        }
    }

    /// Starts every due delivery there is room for. Returns how long until the next one is
    /// due, or `None` when only a finishing attempt (which wakes the lane) can change things.
    async fn start_due(
        self: &Arc<Self>,
        hook: &Arc<Hook>,
    ) -> Result<Option<Duration>, WebhookError> {
        // Taken before the read: an attempt finishing meanwhile is skipped (its end wakes the
        // lane again) rather than started twice from a stale row.
        let busy = hook.in_flight().clone();
        let free = hook.permits.available_permits();
        let id = hook.config.id.clone();
        // Enough rows to see past the ones in flight and fill every free slot.
        let limit = busy.len() + free + 1;
        let rows = self
            .blocking(move |s| s.scheduled_deliveries(&id, limit))
            .await?;
        let t = now_ms();
        for delivery in rows {
            if busy.contains(&delivery.id) {
                continue;
            }
            let due = delivery.next_attempt_ms.unwrap_or(t);
            if due > t {
                let ms = u64::try_from(due - t).unwrap_or_default();
                return Ok(Some(Duration::from_millis(ms)));
            }
            let Ok(permit) = Arc::clone(&hook.permits).try_acquire_owned() else {
                return Ok(None);
            };
            hook.in_flight().insert(delivery.id.clone());
            let (this, hook) = (Arc::clone(self), Arc::clone(hook));
            tokio::spawn(async move {
                let id = delivery.id.clone();
                this.attempt(&hook, delivery).await;
                hook.in_flight().remove(&id);
                drop(permit);
                hook.wake.notify_one();
            });
        }
        Ok(None)
    }

    /// One attempt, its outcome saved before the lane may pick the delivery again.
    async fn attempt(&self, hook: &Hook, mut delivery: Delivery) {
        let outcome = self.send(hook, &delivery).await;
        let jitter = f64::from(random_bytes::<1>()[0]) / 256.0;
        delivery.record(&outcome, now_ms(), hook.policy, jitter);
        let metric = match delivery.status {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Pending => "retry",
            DeliveryStatus::Failed => "failed",
        };
        crate::metrics::metrics().webhook_attempt(&hook.config.id, metric);
        match delivery.status {
            DeliveryStatus::Delivered => {
                tracing::debug!(webhook = %hook.config.id, delivery = %delivery.id, "webhook delivered");
            }
            status => {
                tracing::warn!(webhook = %hook.config.id, delivery = %delivery.id, ?status, attempts = delivery.attempts,
                    status_code = ?delivery.last_status_code, error = ?delivery.last_error, "webhook delivery attempt failed");
            }
        }
        let id = delivery.id.clone();
        if let Err(e) = self.blocking(move |s| s.save_delivery(&delivery)).await {
            // The row is still due as it was: the attempt is repeated (at least once).
            tracing::warn!(webhook = %hook.config.id, delivery = %id, error = %e, "recording a webhook attempt failed");
            tokio::time::sleep(AFTER_ERROR).await;
        }
    }

    /// Builds, signs and posts the body. Errors are reduced to fixed codes: a receiver's answer
    /// and our request (its URL may hold a token) never reach logs or the listing.
    async fn send(&self, hook: &Hook, delivery: &Delivery) -> Outcome {
        let (event_id, with_credentials) = (delivery.event_id, hook.config.deliver_credentials);
        let body = match self
            .blocking(move |s| payload::build(s, event_id, with_credentials))
            .await
        {
            Ok(Some(body)) => body,
            Ok(None) => return Outcome::Permanent("event_gone"),
            Err(e) => {
                tracing::warn!(webhook = %hook.config.id, delivery = %delivery.id, error = %e, "building a webhook payload failed");
                return Outcome::Unreachable("storage_error");
            }
        };
        let timestamp = now();
        let signature = hook.secret.sign(&delivery.id, timestamp, &body);
        let response = self
            .client
            .post(hook.config.url.clone())
            .timeout(Duration::from_secs(hook.config.timeout_seconds))
            .header("content-type", "application/json")
            .header("webhook-id", delivery.id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => Outcome::Delivered(r.status().as_u16()),
            Ok(r) => Outcome::Status(r.status().as_u16()),
            Err(e) if e.is_timeout() => Outcome::Unreachable("timeout"),
            Err(e) if e.is_connect() => Outcome::Unreachable("connection_failed"),
            Err(_) => Outcome::Unreachable("request_failed"),
        }
    }
}

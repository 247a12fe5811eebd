//! Webhooks: events from the durable log, pushed to the configured receivers through a durable
//! outbox and signed per Standard Webhooks.
//!
//! A dispatcher tails the event log with a durable cursor and turns each event into one delivery
//! per subscribed webhook (cursor and rows in one transaction). Each webhook has its own lane:
//! a task that sends that webhook's due deliveries, a few at a time, so a slow or dead receiver
//! only ever delays itself. No actix here, and storage is reached through [`WebhookStore`].

mod deliver;
mod dispatch;
pub mod model;
mod payload;
pub mod signing;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use crate::config::WebhookConfig;
use crate::connections::model::now;
use crate::vault::{VaultError, WebhookStore};
use model::{looks_like_delivery_id, Delivery, DeliveryStatus, RetryPolicy};
use signing::WebhookSecret;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no such delivery")]
    NotFound,
    #[error("the delivery is already queued")]
    AlreadyQueued,
    #[error("webhook \"{0}\" is no longer configured")]
    NotConfigured(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// One configured receiver and its lane's state.
struct Hook {
    config: WebhookConfig,
    secret: WebhookSecret,
    policy: RetryPolicy,
    /// Bounds this receiver's attempts in flight.
    permits: Arc<Semaphore>,
    in_flight: Mutex<HashSet<String>>,
    /// Wakes the lane: new deliveries, a replay, or a finished attempt.
    wake: Notify,
    /// The first event id this webhook receives.
    since: u64,
}

impl Hook {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub struct Webhooks {
    store: Arc<dyn WebhookStore>,
    configs: Vec<WebhookConfig>,
    hooks: Vec<Arc<Hook>>,
    client: reqwest::Client,
    events_written: Arc<Notify>,
}

/// A page of deliveries and the cursor for the next one.
pub struct DeliveryPage {
    pub data: Vec<Delivery>,
    pub next_cursor: Option<String>,
}

/// The listing's filters.
#[derive(Default)]
pub struct DeliveryQuery {
    pub webhook: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub after: Option<String>,
    pub limit: usize,
}

impl Webhooks {
    /// `events_written` is signalled by the store whenever events are appended.
    pub fn new(
        store: Arc<dyn WebhookStore>,
        configs: &[WebhookConfig],
        events_written: Arc<Notify>,
    ) -> Result<Self, reqwest::Error> {
        // Never follow redirects: a receiver must not bounce payloads (or credentials) elsewhere.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("connect-appliance/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Webhooks {
            store,
            configs: configs.to_vec(),
            hooks: Vec::new(),
            client,
            events_written,
        })
    }

    /// Prepares the outbox (before the server takes requests, so no event is missed) and
    /// starts the sweeper and, when webhooks are configured, the dispatcher and one lane per
    /// webhook.
    pub async fn start(mut self, retention_seconds: i64) -> Result<Arc<Self>, WebhookError> {
        let ids: Vec<String> = self.configs.iter().map(|c| c.id.clone()).collect();
        let starts: BTreeMap<String, u64> = self.blocking(move |s| s.open_outbox(&ids)).await?;
        for config in &self.configs {
            let secret = WebhookSecret::parse(config.secret.as_deref().unwrap_or_default())
                .map_err(|m| WebhookError::Internal(format!("webhook {}: {m}", config.id)))?;
            let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
            self.hooks.push(Arc::new(Hook {
                secret,
                policy: RetryPolicy {
                    first_retry_ms: ms(config.first_retry_seconds),
                    max_retry_ms: ms(config.max_retry_seconds),
                },
                permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
                in_flight: Mutex::default(),
                wake: Notify::new(),
                since: starts.get(&config.id).copied().unwrap_or(u64::MAX),
                config: config.clone(),
            }));
        }
        let this = Arc::new(self);
        // Also without webhooks: rows of removed ones still age out.
        tokio::spawn(Arc::clone(&this).run_sweeper(retention_seconds));
        if this.hooks.is_empty() {
            return Ok(this);
        }
        tokio::spawn(Arc::clone(&this).run_dispatcher());
        for hook in &this.hooks {
            tokio::spawn(Arc::clone(&this).run_lane(Arc::clone(hook)));
        }
        tracing::info!(webhooks = this.hooks.len(), "webhook delivery started");
        Ok(this)
    }

    /// A page of deliveries, in event order.
    pub async fn deliveries(&self, q: DeliveryQuery) -> Result<DeliveryPage, WebhookError> {
        if let Some(w) = &q.webhook {
            if self.hook(w).is_none() {
                let ids: Vec<&str> = self.hooks.iter().map(|h| h.config.id.as_str()).collect();
                return Err(WebhookError::InvalidRequest(format!(
                    "webhook must be one of the configured ids ({})",
                    ids.join(", ")
                )));
            }
        }
        if q.after
            .as_deref()
            .is_some_and(|a| !looks_like_delivery_id(a))
        {
            return Err(WebhookError::InvalidRequest(
                "after must be a delivery id (the previous page's next_cursor)".into(),
            ));
        }
        let limit = q.limit.clamp(1, 500);
        let (webhook, status, after) = (q.webhook, q.status, q.after);
        // One extra row tells whether another page exists.
        let mut data = self
            .blocking(move |s| {
                s.list_deliveries(after.as_deref(), limit + 1, &|d| {
                    webhook.as_ref().is_none_or(|w| *w == d.webhook)
                        && status.is_none_or(|st| st == d.status)
                })
            })
            .await?;
        let next_cursor = if data.len() > limit {
            data.truncate(limit);
            data.last().map(|d| d.id.clone())
        } else {
            None
        };
        Ok(DeliveryPage { data, next_cursor })
    }

    /// Queues a delivered or failed delivery again (same `webhook-id`, fresh retry window).
    pub async fn replay(&self, id: &str) -> Result<Delivery, WebhookError> {
        let key = id.to_string();
        let mut delivery = self
            .blocking(move |s| s.delivery(&key))
            .await?
            .ok_or(WebhookError::NotFound)?;
        let hook = self
            .hook(&delivery.webhook)
            .ok_or_else(|| WebhookError::NotConfigured(delivery.webhook.clone()))?;
        if !delivery.requeue(now_ms()) {
            return Err(WebhookError::AlreadyQueued);
        }
        let saved = delivery.clone();
        self.blocking(move |s| s.save_delivery(&saved)).await?;
        tracing::info!(delivery = %delivery.id, webhook = %delivery.webhook, "delivery replayed");
        hook.wake.notify_one();
        Ok(delivery)
    }

    fn hook(&self, id: &str) -> Option<&Arc<Hook>> {
        self.hooks.iter().find(|h| h.config.id == id)
    }

    /// Runs blocking store work off the async executor.
    async fn blocking<T, F>(&self, f: F) -> Result<T, WebhookError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn WebhookStore) -> Result<T, VaultError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| WebhookError::Internal(format!("storage task failed: {e}")))?
            .map_err(WebhookError::from)
    }

    /// Drops deliveries older than the event retention, every five minutes.
    async fn run_sweeper(self: Arc<Self>, retention_seconds: i64) {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            let before = now() - retention_seconds;
            match self.blocking(move |s| s.sweep_deliveries(before)).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "swept old webhook deliveries"),
                Err(e) => tracing::warn!(error = %e, "sweeping old webhook deliveries failed"),
            }
        }
    }
}

/// Unix milliseconds: delivery schedules need finer steps than seconds.
fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

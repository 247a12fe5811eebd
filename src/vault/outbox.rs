//! The webhook outbox's storage: a durable cursor into the event log, delivery rows, and a
//! per-webhook index of pending deliveries by next-attempt time (so nothing scans).

use std::collections::BTreeMap;

use crate::connections::events::Event;
use crate::connections::model::Timestamp;
use crate::webhooks::model::Delivery;

use super::{Store, VaultError};

/// What one dispatcher pass did.
#[derive(Debug, Default)]
pub struct Enqueued {
    /// Events consumed (the cursor moved past them).
    pub events: usize,
    /// Webhooks that got new deliveries.
    pub webhooks: Vec<String>,
}

pub trait WebhookStore: Store {
    /// Prepares the outbox for the configured `webhooks` and returns, for each, the first
    /// event id it receives: a webhook gets the events written since it was first configured,
    /// never the history before (a removed webhook is forgotten).
    fn open_outbox(&self, webhooks: &[String]) -> Result<BTreeMap<String, u64>, VaultError>;

    /// Turns up to `limit` events after the cursor into one pending delivery per webhook that
    /// `route` names, and advances the cursor past them, in one transaction.
    fn enqueue_deliveries(
        &self,
        limit: usize,
        route: &dyn Fn(&Event) -> Vec<String>,
        now_ms: i64,
    ) -> Result<Enqueued, VaultError>;

    /// `webhook`'s pending deliveries, soonest next attempt first, at most `limit`.
    fn scheduled_deliveries(
        &self,
        webhook: &str,
        limit: usize,
    ) -> Result<Vec<Delivery>, VaultError>;

    /// Writes a delivery and moves its entry in the schedule, in one transaction.
    fn save_delivery(&self, delivery: &Delivery) -> Result<(), VaultError>;

    fn delivery(&self, id: &str) -> Result<Option<Delivery>, VaultError>;

    /// Deliveries in id (event) order after `after`, at most `limit` of those `filter` keeps.
    fn list_deliveries(
        &self,
        after: Option<&str>,
        limit: usize,
        filter: &dyn Fn(&Delivery) -> bool,
    ) -> Result<Vec<Delivery>, VaultError>;

    /// Deletes deliveries created before `before` (their events are gone too). Returns how many.
    fn sweep_deliveries(&self, before: Timestamp) -> Result<usize, VaultError>;

    /// A single event by id, if it is still in the log.
    fn event(&self, id: u64) -> Result<Option<Event>, VaultError> {
        let found = self.events(id.saturating_sub(1), 1, &|_| true)?;
        Ok(found.into_iter().next().filter(|e| e.id == id))
    }
}

//! [`WebhookStore`] for redb. Delivery rows hold ids, event types, times and outcome codes only
//! (no tenant, no payload, no token), so they are stored as plain JSON, not sealed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition, TableError, TableHandle, WriteTransaction};
use tokio::sync::Notify;

use super::{begin_write, RedbStore, EVENTS};
use crate::connections::events::Event;
use crate::connections::model::Timestamp;
use crate::vault::outbox::{Enqueued, WebhookStore};
use crate::vault::VaultError;
use crate::webhooks::model::Delivery;

/// Delivery id → JSON row.
const DELIVERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_deliveries");
/// `{webhook}/{next attempt ms:016x}/{delivery id}` for pending deliveries: each webhook's
/// schedule is one range, so a dead receiver's backlog never hides another's.
const SCHEDULE: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_schedule");
const OUTBOX: TableDefinition<&str, u64> = TableDefinition::new("webhook_outbox");
/// `cursor`: the last event dispatched; `since/{webhook}`: the first event a webhook gets (the
/// log's next id when it was first configured).
const CURSOR: &str = "cursor";

impl RedbStore {
    /// Signalled whenever events are appended, to wake the webhook dispatcher.
    pub fn events_written(&self) -> Arc<Notify> {
        Arc::clone(&self.core.events_written)
    }
}

fn schedule_key(d: &Delivery) -> Option<String> {
    d.next_attempt_ms
        .map(|ms| format!("{}/{:016x}/{}", d.webhook, ms.max(0), d.id))
}

fn encode(d: &Delivery) -> Result<Vec<u8>, VaultError> {
    serde_json::to_vec(d).map_err(VaultError::corrupt)
}

fn decode(bytes: &[u8]) -> Result<Delivery, VaultError> {
    serde_json::from_slice(bytes).map_err(VaultError::corrupt)
}

/// Opens a table for reading; a table not created yet reads as empty (`None`).
macro_rules! read_table {
    ($txn:expr, $def:expr) => {
        match $txn.open_table($def) {
            Ok(t) => Some(t),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(VaultError::storage(e)),
        }
    };
}

/// The cursor, created (at the newest event) with the outbox tables when absent.
fn cursor_in(txn: &WriteTransaction) -> Result<(u64, bool), VaultError> {
    txn.open_table(DELIVERIES).map_err(VaultError::storage)?;
    txn.open_table(SCHEDULE).map_err(VaultError::storage)?;
    let mut outbox = txn.open_table(OUTBOX).map_err(VaultError::storage)?;
    if let Some(c) = outbox.get(CURSOR).map_err(VaultError::storage)? {
        return Ok((c.value(), false));
    }
    let events = txn.open_table(EVENTS).map_err(VaultError::storage)?;
    let newest = events.last().map_err(VaultError::storage)?;
    let cursor = newest.map_or(0, |(k, _)| k.value());
    outbox.insert(CURSOR, cursor).map_err(VaultError::storage)?;
    Ok((cursor, true))
}

impl WebhookStore for RedbStore {
    fn open_outbox(&self, webhooks: &[String]) -> Result<BTreeMap<String, u64>, VaultError> {
        let txn = begin_write(&self.core.db)?;
        cursor_in(&txn)?;
        let mut starts = BTreeMap::new();
        {
            let events = txn.open_table(EVENTS).map_err(VaultError::storage)?;
            let newest = events.last().map_err(VaultError::storage)?;
            let next = newest.map_or(0, |(k, _)| k.value()) + 1;
            let mut outbox = txn.open_table(OUTBOX).map_err(VaultError::storage)?;
            let mut gone = Vec::new();
            for entry in outbox
                .range("since/".."since0")
                .map_err(VaultError::storage)?
            {
                let (k, _) = entry.map_err(VaultError::storage)?;
                let id = k.value().trim_start_matches("since/").to_string();
                if !webhooks.contains(&id) {
                    gone.push(k.value().to_string());
                }
            }
            for key in gone {
                outbox.remove(key.as_str()).map_err(VaultError::storage)?;
            }
            for id in webhooks {
                let key = format!("since/{id}");
                let stored = outbox.get(key.as_str()).map_err(VaultError::storage)?;
                let first = match stored.map(|g| g.value()) {
                    Some(first) => first,
                    None => {
                        outbox
                            .insert(key.as_str(), next)
                            .map_err(VaultError::storage)?;
                        next
                    }
                };
                starts.insert(id.clone(), first);
            }
        }
        txn.commit().map_err(VaultError::storage)?;
        Ok(starts)
    }

    fn enqueue_deliveries(
        &self,
        limit: usize,
        route: &dyn Fn(&Event) -> Vec<String>,
        now_ms: i64,
    ) -> Result<Enqueued, VaultError> {
        let txn = begin_write(&self.core.db)?;
        let (cursor, created) = cursor_in(&txn)?;
        let mut done = Enqueued::default();
        let mut webhooks = BTreeSet::new();
        let mut last = cursor;
        {
            let events = txn.open_table(EVENTS).map_err(VaultError::storage)?;
            let mut rows = txn.open_table(DELIVERIES).map_err(VaultError::storage)?;
            let mut schedule = txn.open_table(SCHEDULE).map_err(VaultError::storage)?;
            for entry in events.range(cursor + 1..).map_err(VaultError::storage)? {
                if done.events >= limit {
                    break;
                }
                let (k, v) = entry.map_err(VaultError::storage)?;
                let event: Event =
                    self.core
                        .open_value(EVENTS.name(), &k.value().to_string(), v.value())?;
                for webhook in route(&event) {
                    let d = Delivery::new(event.id, &event.kind, &webhook, now_ms);
                    if rows
                        .get(d.id.as_str())
                        .map_err(VaultError::storage)?
                        .is_some()
                    {
                        continue; // never overwrite an existing delivery
                    }
                    rows.insert(d.id.as_str(), encode(&d)?.as_slice())
                        .map_err(VaultError::storage)?;
                    if let Some(key) = schedule_key(&d) {
                        schedule
                            .insert(key.as_str(), [].as_slice())
                            .map_err(VaultError::storage)?;
                    }
                    webhooks.insert(webhook);
                }
                last = k.value();
                done.events += 1;
            }
        }
        if done.events == 0 && !created {
            txn.abort().map_err(VaultError::storage)?; // nothing to write, no fsync
            return Ok(done);
        }
        txn.open_table(OUTBOX)
            .map_err(VaultError::storage)?
            .insert(CURSOR, last)
            .map_err(VaultError::storage)?;
        txn.commit().map_err(VaultError::storage)?;
        done.webhooks = webhooks.into_iter().collect();
        Ok(done)
    }

    fn scheduled_deliveries(
        &self,
        webhook: &str,
        limit: usize,
    ) -> Result<Vec<Delivery>, VaultError> {
        let txn = self.core.db.begin_read().map_err(VaultError::storage)?;
        let (Some(schedule), Some(rows)) =
            (read_table!(txn, SCHEDULE), read_table!(txn, DELIVERIES))
        else {
            return Ok(Vec::new());
        };
        let (start, end) = (format!("{webhook}/"), format!("{webhook}0")); // '0' follows '/'
        let mut out = Vec::new();
        for entry in schedule
            .range(start.as_str()..end.as_str())
            .map_err(VaultError::storage)?
            .take(limit)
        {
            let (key, _) = entry.map_err(VaultError::storage)?;
            let Some((_, id)) = key.value().rsplit_once('/') else {
                continue;
            };
            if let Some(row) = rows.get(id).map_err(VaultError::storage)? {
                out.push(decode(row.value())?);
            }
        }
        Ok(out)
    }

    fn save_delivery(&self, delivery: &Delivery) -> Result<(), VaultError> {
        let txn = begin_write(&self.core.db)?;
        {
            let mut rows = txn.open_table(DELIVERIES).map_err(VaultError::storage)?;
            let mut schedule = txn.open_table(SCHEDULE).map_err(VaultError::storage)?;
            let previous = match rows
                .get(delivery.id.as_str())
                .map_err(VaultError::storage)?
            {
                Some(row) => Some(decode(row.value())?),
                None => None,
            };
            if let Some(key) = previous.as_ref().and_then(schedule_key) {
                schedule.remove(key.as_str()).map_err(VaultError::storage)?;
            }
            if let Some(key) = schedule_key(delivery) {
                schedule
                    .insert(key.as_str(), [].as_slice())
                    .map_err(VaultError::storage)?;
            }
            rows.insert(delivery.id.as_str(), encode(delivery)?.as_slice())
                .map_err(VaultError::storage)?;
        }
        txn.commit().map_err(VaultError::storage)
    }

    fn delivery(&self, id: &str) -> Result<Option<Delivery>, VaultError> {
        let txn = self.core.db.begin_read().map_err(VaultError::storage)?;
        let Some(rows) = read_table!(txn, DELIVERIES) else {
            return Ok(None);
        };
        let row = rows.get(id).map_err(VaultError::storage)?;
        row.map(|r| decode(r.value())).transpose()
    }

    fn list_deliveries(
        &self,
        after: Option<&str>,
        limit: usize,
        filter: &dyn Fn(&Delivery) -> bool,
    ) -> Result<Vec<Delivery>, VaultError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let txn = self.core.db.begin_read().map_err(VaultError::storage)?;
        let Some(rows) = read_table!(txn, DELIVERIES) else {
            return Ok(Vec::new());
        };
        let range = match after {
            Some(a) => rows.range::<&str>((Excluded(a), Unbounded)),
            None => rows.range::<&str>(..),
        }
        .map_err(VaultError::storage)?;
        let mut out = Vec::new();
        for entry in range {
            let (_, v) = entry.map_err(VaultError::storage)?;
            let d = decode(v.value())?;
            if filter(&d) {
                out.push(d);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn sweep_deliveries(&self, before: Timestamp) -> Result<usize, VaultError> {
        let txn = begin_write(&self.core.db)?;
        let mut doomed = Vec::new();
        {
            let mut rows = txn.open_table(DELIVERIES).map_err(VaultError::storage)?;
            let mut schedule = txn.open_table(SCHEDULE).map_err(VaultError::storage)?;
            // Ids follow event ids, which grow with time: stop at the first young one.
            for entry in rows.iter().map_err(VaultError::storage)? {
                let (_, v) = entry.map_err(VaultError::storage)?;
                let d = decode(v.value())?;
                if d.created_at >= before {
                    break;
                }
                doomed.push(d);
            }
            for d in &doomed {
                rows.remove(d.id.as_str()).map_err(VaultError::storage)?;
                if let Some(key) = schedule_key(d) {
                    schedule.remove(key.as_str()).map_err(VaultError::storage)?;
                }
            }
        }
        txn.commit().map_err(VaultError::storage)?;
        Ok(doomed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::model::{now, Connection, Link};
    use crate::vault::Store;
    use crate::webhooks::model::{DeliveryStatus, Outcome, RetryPolicy};

    fn open() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) =
            RedbStore::open(&dir.path().join("db.redb"), &dir.path().join("id.txt")).unwrap();
        (dir, store)
    }

    /// Appends one `link.created` event.
    fn event(store: &RedbStore) {
        let c = Connection::new_pending("t", "p", vec![]);
        let link = Link {
            connection_id: c.id.clone(),
            plugin: "p".into(),
            redirect_url: None,
            scopes: vec![],
            created_at: now(),
            expires_at: now() + 60,
            used_at: None,
            params: Default::default(),
            redirect_uri: None,
        };
        store.create_link(&c.id, &link, &c).unwrap();
    }

    #[test]
    fn webhooks_get_only_new_events_and_deliveries_move_through_their_schedule() {
        let (_dir, store) = open();
        event(&store);
        event(&store);
        let hooks = ["a".to_string(), "a-b".to_string()];
        let starts = store.open_outbox(&hooks).unwrap();
        assert_eq!(
            starts["a"], 3,
            "history before the webhook is not delivered"
        );
        event(&store);
        let route = |e: &Event| {
            hooks
                .iter()
                .filter(|h| e.id >= starts[*h])
                .cloned()
                .collect()
        };
        let done = store.enqueue_deliveries(10, &route, 5_000).unwrap();
        assert_eq!((done.events, done.webhooks.len()), (1, 2));
        assert_eq!(
            store.enqueue_deliveries(10, &route, 5_000).unwrap().events,
            0
        );

        // Each webhook's schedule is its own range ("a" is a prefix of "a-b").
        let due = store.scheduled_deliveries("a", 10).unwrap();
        assert_eq!(due.len(), 1);
        let mut d = due[0].clone();
        assert_eq!((d.id.as_str(), d.event_id), ("msg_0000000000000003_a", 3));
        let policy = RetryPolicy {
            first_retry_ms: 1_000,
            max_retry_ms: 60_000,
        };
        d.record(&Outcome::Unreachable("timeout"), 6_000, policy, 0.5);
        store.save_delivery(&d).unwrap();
        let due = store.scheduled_deliveries("a", 10).unwrap();
        assert_eq!(due[0].next_attempt_ms, Some(7_000));
        d.record(&Outcome::Delivered(200), 7_000, policy, 0.5);
        store.save_delivery(&d).unwrap();
        assert!(store.scheduled_deliveries("a", 10).unwrap().is_empty());
        assert_eq!(store.scheduled_deliveries("a-b", 10).unwrap().len(), 1);
        let stored = store.delivery(&d.id).unwrap().unwrap();
        assert_eq!(
            (stored.status, stored.attempts),
            (DeliveryStatus::Delivered, 2)
        );
        let delivered = store
            .list_deliveries(None, 10, &|d| d.status == DeliveryStatus::Delivered)
            .unwrap();
        assert_eq!(delivered.len(), 1);

        // A removed webhook is forgotten: configured again, it starts afresh.
        store.open_outbox(&["a-b".to_string()]).unwrap();
        assert_eq!(store.open_outbox(&hooks).unwrap()["a"], 4);
        assert_eq!(store.sweep_deliveries(now() + 10).unwrap(), 2);
        assert!(store.scheduled_deliveries("a-b", 10).unwrap().is_empty());
    }
}

//! The audit log: who (admin key id or tenant session) did what (method and route), to which
//! connection or tenant, when, with what result. Every authenticated `/v1` request is recorded:
//! admin actions and credential accesses alike. Records are buffered and written in batches (at
//! most one durable commit per second), so a token fetch never waits for a disk write.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::connections::model::Timestamp;
use crate::vault::AuditStore;

/// How long the writer waits to fill a batch, and the largest batch.
const BATCH_WINDOW: Duration = Duration::from_secs(1);
const BATCH_MAX: usize = 1024;
/// How often a filling batch is topped up from the queue.
const BATCH_STEP: Duration = Duration::from_millis(50);
/// Records waiting for the writer; beyond this they are dropped with a warning rather than
/// letting memory grow without bound.
const QUEUE: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Strictly increasing; the paging cursor (assigned when stored).
    pub id: u64,
    pub at: Timestamp,
    /// `key:<first 12 hex of the admin key's SHA-256>` or `tenant-session`.
    pub actor: String,
    /// `METHOD /route/{pattern}`.
    pub action: String,
    pub status: u16,
    pub connection_id: Option<String>,
    pub tenant_id: Option<String>,
    pub plugin: Option<String>,
}

/// What a handler knows about the target of its request, passed to the audit middleware in the
/// response's extensions (for routes whose path does not name it, e.g. a link's new connection).
#[derive(Debug, Clone, Default)]
pub struct AuditTarget {
    pub connection_id: Option<String>,
    pub tenant_id: Option<String>,
    pub plugin: Option<String>,
}

impl AuditTarget {
    pub fn new(connection_id: &str, tenant_id: &str, plugin: &str) -> Self {
        AuditTarget {
            connection_id: Some(connection_id.to_string()).filter(|s| !s.is_empty()),
            tenant_id: Some(tenant_id.to_string()).filter(|s| !s.is_empty()),
            plugin: Some(plugin.to_string()).filter(|s| !s.is_empty()),
        }
    }

    /// Attaches the target to a response for the audit middleware.
    pub fn attach(self, mut response: actix_web::HttpResponse) -> actix_web::HttpResponse {
        response.extensions_mut().insert(self);
        response
    }
}

#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::Sender<AuditRecord>,
}

impl Auditor {
    /// Starts the batch writer. It ends, after writing what is queued, when every `Auditor`
    /// clone is dropped; await the handle to flush at shutdown.
    pub fn start(store: Arc<dyn AuditStore>) -> (Auditor, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(write_batches(store, rx));
        (Auditor { tx }, handle)
    }

    pub fn record(&self, record: AuditRecord) {
        if self.tx.try_send(record).is_err() {
            tracing::warn!("audit queue full or closed; an audit record was dropped");
        }
    }
}

async fn write_batches(store: Arc<dyn AuditStore>, mut rx: mpsc::Receiver<AuditRecord>) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    loop {
        if rx.recv_many(&mut batch, BATCH_MAX).await == 0 {
            return; // closed and drained
        }
        // Fill the batch in steps rather than waiting on the queue, which would wake this task
        // for every record (a thread switch per audited request); a full batch goes at once.
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < BATCH_MAX && !rx.is_closed() {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep_until(deadline.min(now + BATCH_STEP)).await;
            while batch.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
        }
        let records = std::mem::take(&mut batch);
        let store = Arc::clone(&store);
        let n = records.len();
        let written = tokio::task::spawn_blocking(move || store.append_audit(&records)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, records = n, "writing audit records failed"),
            Err(e) => tracing::error!(error = %e, records = n, "the audit writer panicked"),
        }
    }
}

/// The non-secret id of an admin key: the first 12 hex digits of its SHA-256.
pub fn key_id(sha256: &[u8; 32]) -> String {
    format!("key:{}", &hex::encode(sha256)[..12])
}

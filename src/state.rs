//! Everything a request handler needs, cheap to clone and passed through `web::Data`.

use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::connections::Connections;
use crate::http::branding::Branding;
use crate::http::cors::Cors;
use crate::http::dashboard;
use crate::http::limits::Limits;
use crate::sandbox::Sandbox;
use crate::sessions::SessionKey;
use crate::webhooks::Webhooks;

#[derive(Clone)]
pub struct AppState {
    pub connections: Arc<Connections>,
    /// SHA-256 of each accepted admin key; presented keys are hashed and compared in constant time.
    pub admin_key_hashes: Arc<Vec<[u8; 32]>>,
    pub sandbox: Option<Arc<Sandbox>>,
    pub limits: Arc<Limits>,
    pub max_body_bytes: usize,
    pub metrics: crate::config::MetricsConfig,
    pub auditor: crate::audit::Auditor,
    pub audit_store: Arc<dyn crate::vault::AuditStore>,
    /// Signs and checks tenant sessions.
    pub sessions: Arc<SessionKey>,
    pub webhooks: Arc<Webhooks>,
    /// `[cors] allowed_origins`: browser access to `/v1` and connect popups.
    pub cors: Arc<Cors>,
    /// `[branding]`, shown by every page layout.
    pub branding: Arc<Branding>,
    /// Generates `x-request-id`s.
    pub request_ids: Arc<RequestIds>,
    /// Data-key rotation in the background.
    pub key_rotation: Arc<crate::vault::key_rotation::KeyRotation>,
    /// Signed-in dashboard sessions (in memory).
    pub dashboard: Arc<dashboard::Sessions>,
}

impl AppState {
    /// Checks a presented admin key against every configured one without early exit.
    pub fn admin_key_ok(&self, presented: &str) -> bool {
        use sha2::{Digest, Sha256};
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.admin_key_hashes
            .iter()
            .fold(subtle::Choice::from(0), |acc, k| acc | k.ct_eq(&hash))
            .into()
    }
}

/// Request ids unique to this process run: a random prefix drawn once and a counter, so the
/// hot path makes no system call (ids need to be distinct, not unpredictable).
pub struct RequestIds {
    prefix: String,
    next: std::sync::atomic::AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds {
            prefix: hex::encode(crate::vault::random_bytes::<4>()),
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl RequestIds {
    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}{n:08x}", self.prefix)
    }
}

//! `[metrics]` and `[audit]`: what operators observe.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve Prometheus text at `/metrics`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Require `Authorization: Bearer <admin key>` for `/metrics` (counts and plugin ids are
    /// not secret, but need not be public).
    #[serde(default = "yes")]
    pub require_admin_key: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            require_admin_key: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Audit records older than this many days are deleted.
    #[serde(default = "default_audit_retention")]
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_days: default_audit_retention(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_audit_retention() -> u32 {
    365
}

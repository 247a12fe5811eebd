//! The durable, ordered event log: every state change of a connection (and every link issued)
//! becomes an event, written in the same transaction as the change itself.

use serde::{Deserialize, Serialize};

use super::model::{Connection, Status, Timestamp};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Strictly increasing; the paging cursor.
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub connection_id: String,
    pub tenant_id: String,
    pub plugin: String,
    pub at: Timestamp,
    pub error_code: Option<String>,
}

/// Event types and their optional error code, before the store numbers them.
pub type Pending = (&'static str, Option<String>);

pub const TYPES: &[&str] = &[
    "link.created",
    "connection.connected",
    "connection.failed",
    "connection.refreshed",
    "connection.refresh_failed",
    "connection.expired",
    "connection.revoked",
    "connection.deleted",
];

/// What changed between two versions of a connection. Transient refresh failures change nothing
/// stored, so they are not events here: `connection.refresh_failed` is appended on its own.
pub fn transition_events(prev: Option<&Connection>, next: &Connection) -> Vec<Pending> {
    let mut out = Vec::new();
    let prev_status = prev.map(|p| p.status);
    let error_changed = prev.and_then(|p| p.last_error.as_ref()) != next.last_error.as_ref();
    match next.status {
        Status::Connected if prev_status != Some(Status::Connected) => {
            out.push(("connection.connected", None));
        }
        Status::Connected => {
            if prev.and_then(|p| p.connected_at) != next.connected_at {
                out.push(("connection.connected", None)); // re-authorised
            } else if prev.and_then(|p| p.last_refreshed_at) != next.last_refreshed_at {
                out.push(("connection.refreshed", None));
            }
        }
        Status::Expired if prev_status != Some(Status::Expired) => {
            out.push(("connection.expired", code(next)));
        }
        Status::Revoked if prev_status != Some(Status::Revoked) => {
            out.push(("connection.revoked", None));
        }
        _ => {}
    }
    // A failed attempt (also a failed re-authorisation of a connected connection).
    let failed = matches!(next.status, Status::Failed | Status::Connected)
        && error_changed
        && next.last_error.is_some()
        && !out.iter().any(|(k, _)| *k == "connection.connected");
    if failed {
        out.push(("connection.failed", code(next)));
    }
    out
}

fn code(c: &Connection) -> Option<String> {
    c.last_error.as_ref().map(|e| e.code.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::model::TokenSet;

    fn tokens() -> TokenSet {
        TokenSet {
            access_token: "a".into(),
            token_type: "Bearer".into(),
            refresh_token: None,
            expires_at: None,
            scopes: vec![],
            id_token: None,
            extra: serde_json::Map::new(),
            obtained_at: 0,
        }
    }

    #[test]
    fn transitions() {
        let pending = Connection::new_pending("t", "p", vec![]);
        assert!(transition_events(None, &pending).is_empty());
        let mut failed = pending.clone();
        failed.mark_failed("access_denied", "no");
        assert_eq!(
            transition_events(Some(&pending), &failed),
            vec![("connection.failed", Some("access_denied".into()))]
        );
        let mut connected = failed.clone();
        connected.mark_connected(&tokens());
        assert_eq!(
            transition_events(Some(&failed), &connected),
            vec![("connection.connected", None)]
        );
        let mut refreshed = connected.clone();
        refreshed.last_refreshed_at = Some(42);
        assert_eq!(
            transition_events(Some(&connected), &refreshed),
            vec![("connection.refreshed", None)]
        );
        let mut expired = refreshed.clone();
        expired.mark_expired("invalid_grant", "gone");
        assert_eq!(
            transition_events(Some(&refreshed), &expired),
            vec![("connection.expired", Some("invalid_grant".into()))]
        );
        let mut revoked = expired.clone();
        revoked.mark_revoked();
        assert_eq!(
            transition_events(Some(&expired), &revoked),
            vec![("connection.revoked", None)]
        );
        assert!(transition_events(Some(&revoked), &revoked).is_empty());
    }
}

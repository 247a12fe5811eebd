//! The JSON body of a delivery: `{"type", "timestamp", "data"}`, built at send time from the
//! event (and, for webhooks that want them, the connection's current credentials).

use serde_json::{json, Value};

use crate::connections::events::Event;
use crate::connections::model::{Status, TokenSet};
use crate::vault::{VaultError, WebhookStore};

/// The events that carry credentials to a `deliver_credentials` webhook.
pub const CREDENTIAL_EVENTS: &[&str] = &["connection.connected", "connection.refreshed"];

/// The body for `event`, or `None` when the event is no longer in the log. Credentials are read
/// now (the connection's current ones), never stored with the delivery.
pub fn build(
    store: &dyn WebhookStore,
    event_id: u64,
    with_credentials: bool,
) -> Result<Option<Vec<u8>>, VaultError> {
    let Some(event) = store.event(event_id)? else {
        return Ok(None);
    };
    let credentials = if with_credentials && CREDENTIAL_EVENTS.contains(&event.kind.as_str()) {
        let connected = store
            .connection(&event.connection_id)?
            .is_some_and(|c| c.status == Status::Connected);
        let tokens = if connected {
            store.credentials(&event.connection_id)?
        } else {
            None
        };
        Some(tokens.as_ref().map_or(Value::Null, credentials_json))
    } else {
        None
    };
    let body = body(&event, credentials);
    serde_json::to_vec(&body)
        .map(Some)
        .map_err(VaultError::corrupt)
}

fn body(event: &Event, credentials: Option<Value>) -> Value {
    let mut data = json!({
        "id": event.id,
        "type": event.kind,
        "connection_id": event.connection_id,
        "tenant_id": event.tenant_id,
        "plugin": event.plugin,
        "at": rfc3339(event.at),
        "error_code": event.error_code,
    });
    if let Some(c) = credentials {
        data["credentials"] = c;
    }
    json!({"type": event.kind, "timestamp": rfc3339(event.at), "data": data})
}

fn credentials_json(t: &TokenSet) -> Value {
    json!({
        "access_token": t.access_token,
        "token_type": t.token_type,
        "refresh_token": t.refresh_token,
        "expires_at": t.expires_at.map(rfc3339),
        "scopes": t.scopes,
    })
}

/// RFC 3339 in UTC, as everywhere on the wire.
fn rfc3339(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape() {
        let event = Event {
            id: 9,
            kind: "connection.refresh_failed".into(),
            connection_id: "conn_1".into(),
            tenant_id: "t".into(),
            plugin: "p".into(),
            at: 0,
            error_code: Some("provider_unavailable".into()),
        };
        let v = body(&event, None);
        assert_eq!(v["type"], "connection.refresh_failed");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(v["data"]["id"], 9);
        assert_eq!(v["data"]["error_code"], "provider_unavailable");
        assert!(v["data"].get("credentials").is_none());
        let v = body(&event, Some(Value::Null));
        assert!(v["data"]["credentials"].is_null());
    }
}

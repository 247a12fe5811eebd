//! What the dashboard templates show, shaped from the domain's types. Never a token or secret:
//! the connection model holds none, and plugin rows only say whether credentials are present.

use super::when;
use crate::connections::events::Event;
use crate::connections::model::Connection;
use crate::oauth::Provider;

pub struct PluginRow<'a> {
    pub id: &'a str,
    pub display_name: &'a str,
    pub provider: &'a str,
    pub auth: &'static str,
    pub credentials_present: bool,
    pub link_params: String,
    pub problems: Vec<String>,
    pub docs_url: Option<&'a str>,
}

impl<'a> PluginRow<'a> {
    pub fn new(p: &'a Provider) -> Self {
        PluginRow {
            id: &p.id,
            display_name: &p.display_name,
            provider: p.config.provider.as_deref().unwrap_or("custom"),
            auth: if p.is_api_key() {
                "API key"
            } else {
                "OAuth 2.0"
            },
            credentials_present: p.has_credentials(),
            link_params: p.config.link_params().join(", "),
            problems: p.config.problems(),
            docs_url: p.config.docs_url.as_deref(),
        }
    }
}

/// Whether the dashboard offers test links for a plugin.
pub fn linkable(p: &Provider) -> bool {
    !p.is_api_key()
}

pub struct ConnectionRow {
    pub id: String,
    /// The tenant, or "shared".
    pub tenant: String,
    pub plugin: String,
    pub status: &'static str,
    pub account: String,
    pub updated: String,
}

impl From<&Connection> for ConnectionRow {
    fn from(c: &Connection) -> Self {
        ConnectionRow {
            id: c.id.clone(),
            tenant: tenant_label(c),
            plugin: c.plugin.clone(),
            status: c.status.as_str(),
            account: c.display_name.clone().unwrap_or_default(),
            updated: when(c.updated_at),
        }
    }
}

fn tenant_label(c: &Connection) -> String {
    if c.shared {
        "(shared)".into()
    } else {
        c.tenant_id.clone()
    }
}

/// One connection in full (still without credentials).
pub struct ConnectionDetail {
    pub row: ConnectionRow,
    pub plugin_name: String,
    pub scopes: String,
    pub params: Vec<(String, String)>,
    /// Label and value of each lifecycle timestamp that is set.
    pub times: Vec<(&'static str, String)>,
    pub refreshable: bool,
    pub last_error: Option<(String, String, String)>,
    pub can_revoke: bool,
}

impl ConnectionDetail {
    pub fn new(c: &Connection, plugin_name: &str) -> Self {
        let optional = [
            ("Connected", c.connected_at),
            ("Token expires", c.expires_at),
            ("Last refreshed", c.last_refreshed_at),
            ("Expired", c.expired_at),
            ("Revoked", c.revoked_at),
        ];
        let mut times = vec![
            ("Created", when(c.created_at)),
            ("Updated", when(c.updated_at)),
        ];
        times.extend(
            optional
                .into_iter()
                .filter_map(|(label, t)| t.map(|t| (label, when(t)))),
        );
        ConnectionDetail {
            row: ConnectionRow::from(c),
            plugin_name: plugin_name.to_string(),
            scopes: c.scopes.join(" "),
            params: c
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            times,
            refreshable: c.refreshable,
            last_error: c
                .last_error
                .as_ref()
                .map(|e| (e.code.clone(), e.message.clone(), when(e.at))),
            can_revoke: c.status != crate::connections::model::Status::Revoked,
        }
    }
}

pub struct EventRow {
    pub id: u64,
    pub kind: String,
    pub connection_id: String,
    pub tenant: String,
    pub plugin: String,
    pub at: String,
    pub error_code: String,
}

impl From<Event> for EventRow {
    fn from(e: Event) -> Self {
        EventRow {
            id: e.id,
            kind: e.kind,
            connection_id: e.connection_id,
            tenant: e.tenant_id,
            plugin: e.plugin,
            at: when(e.at),
            error_code: e.error_code.unwrap_or_default(),
        }
    }
}

/// A flash message from a redirect's `done` (and `provider`) query: known codes only, so a
/// crafted link cannot put words on the page.
pub fn notice(done: Option<&str>, provider: Option<&str>) -> Option<String> {
    let base = match done? {
        "revoked" => "Connection revoked; its credentials are deleted.",
        "deleted" => "Connection deleted.",
        _ => return None,
    };
    let at_provider = match provider {
        Some("revoked") => " The provider confirmed the revocation.",
        Some("failed") => " The provider's revocation endpoint failed (see the log); local credentials are gone anyway.",
        Some("not_supported") => " The provider has no revocation endpoint configured.",
        Some("no_credentials") => " There were no stored credentials to revoke.",
        _ => "",
    };
    Some(format!("{base}{at_provider}"))
}

/// A query string from non-empty pairs, for paging and filter links.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        s.append_pair(k, v);
    }
    let q = s.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

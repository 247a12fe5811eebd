//! HTTP handlers: they extract, call the domain, and shape the response.

pub mod admin;
pub mod assets;
pub mod audit_log;
pub mod auth;
pub mod backup;
pub mod cors;
pub mod limits;
pub mod manual;
pub mod openapi;
pub mod pages;
pub mod plugins;
pub mod popup;
pub mod proxy;
pub mod sandbox;
pub mod scrape;
pub mod sessions;
pub mod tenants;
pub mod webhooks;

/// RFC 3339 in UTC, the form every timestamp takes on the wire.
pub fn rfc3339(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

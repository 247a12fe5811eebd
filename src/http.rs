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
pub mod vault_keys;
pub mod webhooks;

// The pages people see besides the connect flow: the admin dashboard, and the branding shared by
// every page.
pub mod branding;
pub mod dashboard;

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

/// A page size from the query: `default` when absent, else 1..=`max` (400 `invalid_query`).
pub fn page_limit(
    given: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, crate::error::AppError> {
    let limit = given.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(crate::error::AppError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {max}"),
        ))
    }
}

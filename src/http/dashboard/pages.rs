//! The dashboard's read-only pages: overview, connections (filtered, paged), one connection with
//! its history, and recent events.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::error::DashError;
use super::guard::Admin;
use super::views::{linkable, notice, query, ConnectionDetail, ConnectionRow, EventRow, PluginRow};
use super::{render, Chrome};
use crate::connections::events::TYPES;
use crate::connections::model::Status;
use crate::error::AppError;
use crate::vault::ConnectionFilter;

const PAGE_SIZE: usize = 25;
const STATUSES: [&str; 5] = ["pending", "connected", "failed", "expired", "revoked"];

/// Query strings are parsed in the handler so that a bad one gets the branded error page.
fn parse_query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, DashError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| AppError::bad_request("invalid_query", e.to_string()).into())
}

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct Overview<'a> {
    chrome: Chrome<'a>,
    plugins: Vec<PluginRow<'a>>,
    linkable: Vec<&'a str>,
    events: Vec<EventRow>,
    keys: crate::vault::key_rotation::RotationStatus,
}

/// `GET /admin`.
pub async fn overview(admin: Admin) -> HttpResponse {
    let result = async {
        let providers = admin.state.connections.providers();
        let recent = admin
            .state
            .connections
            .recent_events(None, 10, None)
            .await?;
        render(
            StatusCode::OK,
            &Overview {
                chrome: admin.chrome("overview"),
                plugins: providers.iter().map(PluginRow::new).collect(),
                linkable: providers
                    .iter()
                    .filter(|p| linkable(p))
                    .map(|p| p.id.as_str())
                    .collect(),
                events: recent.data.into_iter().map(EventRow::from).collect(),
                keys: admin.state.key_rotation.status(),
            },
        )
    }
    .await;
    admin.respond(result)
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    plugin: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    cursor: String,
    limit: Option<usize>,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/connections.html")]
struct ConnectionsPage<'a> {
    chrome: Chrome<'a>,
    tenant: &'a str,
    plugin_options: Vec<(&'a str, bool)>,
    status_options: Vec<(&'static str, bool)>,
    rows: Vec<ConnectionRow>,
    next_href: Option<String>,
    first_href: Option<String>,
    notice: Option<String>,
}

/// `GET /admin/connections?tenant=&plugin=&status=&cursor=&limit=`.
pub async fn connections(admin: Admin, req: HttpRequest) -> HttpResponse {
    let result = async {
        let q: ListQuery = parse_query(&req)?;
        let status = match q.status.as_str() {
            "" => None,
            s => Some(Status::parse(s).ok_or_else(|| {
                AppError::bad_request(
                    "invalid_query",
                    format!("status must be one of {}", STATUSES.join(", ")),
                )
            })?),
        };
        let limit = q.limit.unwrap_or(PAGE_SIZE);
        if !(1..=200).contains(&limit) {
            return Err(
                AppError::bad_request("invalid_query", "limit must be between 1 and 200").into(),
            );
        }
        let filter = ConnectionFilter {
            tenant_id: (!q.tenant.is_empty()).then(|| q.tenant.clone()),
            plugin: (!q.plugin.is_empty()).then(|| q.plugin.clone()),
            status,
        };
        let cursor = (!q.cursor.is_empty()).then(|| q.cursor.clone());
        let page = admin.state.connections.list(filter, cursor, limit).await?;
        let limit_text = q.limit.map(|l| l.to_string()).unwrap_or_default();
        let filters = [
            ("tenant", q.tenant.as_str()),
            ("plugin", q.plugin.as_str()),
            ("status", q.status.as_str()),
            ("limit", limit_text.as_str()),
        ];
        let link = |cursor: &str| {
            let mut pairs = filters.to_vec();
            pairs.push(("cursor", cursor));
            format!("/admin/connections{}", query(&pairs))
        };
        render(
            StatusCode::OK,
            &ConnectionsPage {
                chrome: admin.chrome("connections"),
                tenant: &q.tenant,
                plugin_options: admin
                    .state
                    .connections
                    .providers()
                    .iter()
                    .map(|p| (p.id.as_str(), p.id == q.plugin))
                    .collect(),
                status_options: STATUSES.iter().map(|s| (*s, *s == q.status)).collect(),
                rows: page.data.iter().map(ConnectionRow::from).collect(),
                next_href: page.next_cursor.as_deref().map(link),
                first_href: (!q.cursor.is_empty()).then(|| link("")),
                notice: notice(q.done.as_deref(), None),
            },
        )
    }
    .await;
    admin.respond(result)
}

#[derive(Deserialize)]
struct DetailQuery {
    before: Option<u64>,
    done: Option<String>,
    provider: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/connection.html")]
struct DetailPage<'a> {
    chrome: Chrome<'a>,
    c: ConnectionDetail,
    events: Vec<EventRow>,
    older_href: Option<String>,
    notice: Option<String>,
}

/// `GET /admin/connections/{id}?before=`: the connection and its events, newest first.
pub async fn connection(admin: Admin, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let result = async {
        let q: DetailQuery = parse_query(&req)?;
        let connections = &admin.state.connections;
        let c = connections.get(&id).await?;
        let history = connections.history(&c.id, q.before, 50).await?;
        let plugin_name = connections
            .providers()
            .get(&c.plugin)
            .map_or(c.plugin.as_str(), |p| p.display_name.as_str());
        let older_href = history.older.map(|b| {
            let before = b.to_string();
            format!(
                "/admin/connections/{}{}",
                c.id,
                query(&[("before", &before)])
            )
        });
        render(
            StatusCode::OK,
            &DetailPage {
                chrome: admin.chrome("connections"),
                c: ConnectionDetail::new(&c, plugin_name),
                events: history.data.into_iter().map(EventRow::from).collect(),
                older_href,
                notice: notice(q.done.as_deref(), q.provider.as_deref()),
            },
        )
    }
    .await;
    admin.respond(result)
}

#[derive(Deserialize)]
struct EventsQuery {
    before: Option<u64>,
    #[serde(default, rename = "type")]
    kind: String,
}

#[derive(Template)]
#[template(path = "admin/events.html")]
struct EventsPage<'a> {
    chrome: Chrome<'a>,
    type_options: Vec<(&'static str, bool)>,
    events: Vec<EventRow>,
    older_href: Option<String>,
    newest_href: Option<String>,
}

/// `GET /admin/events?type=&before=`: the event log, newest first.
pub async fn events(admin: Admin, req: HttpRequest) -> HttpResponse {
    let result = async {
        let q: EventsQuery = parse_query(&req)?;
        let kind = (!q.kind.is_empty()).then(|| q.kind.clone());
        let page = admin
            .state
            .connections
            .recent_events(q.before, 50, kind)
            .await?;
        let link = |before: &str| {
            format!(
                "/admin/events{}",
                query(&[("type", &q.kind), ("before", before)])
            )
        };
        render(
            StatusCode::OK,
            &EventsPage {
                chrome: admin.chrome("events"),
                type_options: TYPES.iter().map(|t| (*t, *t == q.kind)).collect(),
                events: page.data.into_iter().map(EventRow::from).collect(),
                older_href: page.older.map(|b| link(&b.to_string())),
                newest_href: q.before.map(|_| link("")),
            },
        )
    }
    .await;
    admin.respond(result)
}

/// Any other `/admin/...` path.
pub async fn not_found(admin: Admin) -> HttpResponse {
    admin.respond(Err(DashError::NotFound))
}

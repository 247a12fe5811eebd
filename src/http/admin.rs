//! The admin API under `/v1` (authenticated by the middleware in `auth.rs`).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::Principal;
use super::rfc3339;
use crate::audit::AuditTarget;
use crate::connections::model::{Connection, Status};
use crate::connections::{ImportRequest, LinkRequest, RevokeOutcome};
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::vault::ConnectionFilter;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// Required, except for a shared connection's link.
    tenant_id: Option<String>,
    plugin: String,
    redirect_url: Option<String>,
    scopes: Option<Vec<String>>,
    connection_id: Option<String>,
    /// Template values the provider's URLs need, e.g. `{"shop": "acme-store"}` for Shopify
    /// (`GET /v1/providers` lists each provider's parameters and their patterns).
    #[serde(default)]
    params: std::collections::BTreeMap<String, String>,
    /// Answer 200 `{"connected": true, "connection_id"}` instead of a link when the tenant
    /// already has a usable connection of its own for the plugin.
    #[serde(default)]
    skip_if_connected: bool,
    /// Manual connect mode: your own callback URL for this link (under
    /// `[links] allowed_redirect_urls`); overrides the plugin's `redirect_uri`.
    redirect_uri: Option<String>,
    /// Creates (or re-authorises) the plugin's team-wide connection; needs `shared = true` on
    /// the plugin and no `tenant_id`.
    #[serde(default)]
    shared: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LinkResponse {
    link_token: String,
    connect_url: String,
    expires_at: String,
    connection_id: String,
}

#[utoipa::path(post, path = "/v1/links", tag = "links", request_body = LinkBody,
    responses((status = 201, body = LinkResponse), (status = 400, body = ErrorBody), (status = 401, description = "missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "unknown_plugin", body = ErrorBody)))]
pub async fn create_link(
    state: web::Data<AppState>,
    body: web::Json<LinkBody>,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    if body.shared && !principal.is_admin() {
        return Err(AppError::Forbidden(
            "only an admin key can create shared connections",
        ));
    }
    let tenant_id = match (principal.tenant_scope(body.tenant_id)?, body.shared) {
        (Some(t), false) => t,
        (None, true) => String::new(),
        (None, false) => {
            return Err(AppError::bad_request(
                "invalid_request",
                "tenant_id is required",
            ))
        }
        (Some(_), true) => {
            return Err(AppError::bad_request(
                "invalid_request",
                "a shared connection belongs to no tenant: omit tenant_id",
            ))
        }
    };
    if body.skip_if_connected && body.connection_id.is_none() && !body.shared {
        if let Some(c) = state
            .connections
            .usable_connection(&tenant_id, &body.plugin)
            .await?
        {
            return Ok(HttpResponse::Ok()
                .json(serde_json::json!({"connected": true, "connection_id": c.id})));
        }
    }
    let target_tenant = tenant_id.clone();
    let plugin = body.plugin.clone();
    let created = state
        .connections
        .create_link(LinkRequest {
            tenant_id,
            plugin: body.plugin,
            redirect_url: body.redirect_url,
            scopes: body.scopes,
            connection_id: body.connection_id,
            params: body.params,
            redirect_uri: body.redirect_uri,
            shared: body.shared,
        })
        .await?;
    let target = AuditTarget::new(&created.connection_id, &target_tenant, &plugin);
    Ok(target.attach(HttpResponse::Created().json(LinkResponse {
        link_token: created.link_token,
        connect_url: created.connect_url.to_string(),
        expires_at: rfc3339(created.expires_at),
        connection_id: created.connection_id,
    })))
}

/// A connection as the API shows it: never any token.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    id: String,
    /// `null` for a shared connection.
    tenant_id: Option<String>,
    /// The plugin's team-wide connection, used by tenants without their own.
    shared: bool,
    plugin: String,
    status: Status,
    scopes: Vec<String>,
    created_at: String,
    updated_at: String,
    connected_at: Option<String>,
    /// `null`: the provider's token does not expire.
    expires_at: Option<String>,
    refreshable: bool,
    last_refreshed_at: Option<String>,
    expired_at: Option<String>,
    revoked_at: Option<String>,
    last_error: Option<ErrorView>,
    /// The connected account as the provider names it (login, workspace, shop), when known.
    display_name: Option<String>,
    /// The template values given when the link was created.
    params: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorView {
    code: String,
    message: String,
    at: String,
}

impl From<Connection> for ConnectionView {
    fn from(c: Connection) -> Self {
        ConnectionView {
            id: c.id,
            tenant_id: (!c.shared).then_some(c.tenant_id),
            shared: c.shared,
            plugin: c.plugin,
            status: c.status,
            scopes: c.scopes,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            connected_at: c.connected_at.map(rfc3339),
            expires_at: c.expires_at.map(rfc3339),
            refreshable: c.refreshable,
            last_refreshed_at: c.last_refreshed_at.map(rfc3339),
            expired_at: c.expired_at.map(rfc3339),
            revoked_at: c.revoked_at.map(rfc3339),
            last_error: c.last_error.map(|e| ErrorView {
                code: e.code,
                message: e.message,
                at: rfc3339(e.at),
            }),
            display_name: c.display_name,
            params: c.params,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    tenant_id: String,
    plugin: String,
    credentials: ImportCredentials,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportCredentials {
    access_token: String,
    refresh_token: Option<String>,
    /// RFC 3339.
    expires_at: Option<String>,
    expires_in: Option<i64>,
    scopes: Option<Vec<String>>,
}

#[utoipa::path(post, path = "/v1/connections", tag = "connections", request_body = ImportBody,
    responses((status = 201, body = ConnectionView), (status = 400, body = ErrorBody), (status = 401, description = "missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "unknown_plugin", body = ErrorBody)))]
pub async fn import_connection(
    state: web::Data<AppState>,
    body: web::Json<ImportBody>,
) -> Result<HttpResponse, AppError> {
    let ImportBody {
        tenant_id,
        plugin,
        credentials: c,
    } = body.into_inner();
    let expires_at = match c.expires_at.as_deref() {
        Some(s) => Some(
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    AppError::bad_request(
                        "invalid_request",
                        "credentials.expires_at must be an RFC 3339 timestamp",
                    )
                })?
                .unix_timestamp(),
        ),
        None => None,
    };
    let connection = state
        .connections
        .import(ImportRequest {
            tenant_id,
            plugin,
            access_token: c.access_token,
            refresh_token: c.refresh_token,
            expires_at,
            expires_in: c.expires_in,
            scopes: c.scopes,
        })
        .await?;
    let target = AuditTarget::new(&connection.id, &connection.tenant_id, &connection.plugin);
    Ok(target.attach(HttpResponse::Created().json(ConnectionView::from(connection))))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    tenant_id: Option<String>,
    plugin: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ListResponse {
    data: Vec<ConnectionView>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/connections", tag = "connections", params(ListQuery),
    responses((status = 200, body = ListResponse), (status = 400, body = ErrorBody), (status = 401, description = "missing or wrong admin key", body = ErrorBody)))]
pub async fn list_connections(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    let q = query.into_inner();
    let tenant_id = principal.tenant_scope(q.tenant_id.filter(|t| !t.is_empty()))?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            AppError::bad_request(
                "invalid_query",
                "status must be one of pending, connected, failed, expired, revoked",
            )
        })?),
    };
    let limit = super::page_limit(q.limit, 50, 200)?;
    let filter = ConnectionFilter {
        tenant_id,
        plugin: q.plugin.filter(|p| !p.is_empty()),
        status,
    };
    let page = state.connections.list(filter, q.cursor, limit).await?;
    Ok(HttpResponse::Ok().json(ListResponse {
        data: page.data.into_iter().map(ConnectionView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/connections/{id}", tag = "connections", params(("id" = String, Path, description = "connection id")),
    responses((status = 200, body = ConnectionView), (status = 401, description = "missing or wrong admin key", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_connection(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let connection = state.connections.get(&id).await?;
    Ok(HttpResponse::Ok().json(ConnectionView::from(connection)))
}

#[utoipa::path(delete, path = "/v1/connections/{id}", tag = "connections", params(("id" = String, Path, description = "connection id")),
    responses((status = 204, description = "deleted (after a best-effort provider revocation)"), (status = 401, description = "missing or wrong admin key", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_connection(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    state.connections.delete(&id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    #[serde(default)]
    pub force_refresh: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_at: Option<String>,
    scopes: Vec<String>,
}

#[utoipa::path(get, path = "/v1/connections/{id}/token", tag = "connections",
    params(("id" = String, Path, description = "connection id"), TokenQuery),
    responses((status = 200, body = TokenResponse), (status = 401, description = "missing or wrong admin key", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "not_connected or connection_expired", body = ErrorBody),
        (status = 503, description = "refresh_failed (transient; see Retry-After)", body = ErrorBody)))]
pub async fn get_token(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, AppError> {
    crate::http::auth::RoutePattern::tag(&req, "/v1/connections/{id}/token");
    token_response(&state, &id, query.force_refresh).await
}

/// A fresh token as JSON (`Cache-Control: no-store` comes from the default headers, S13).
pub async fn token_response(
    state: &AppState,
    id: &str,
    force_refresh: bool,
) -> Result<HttpResponse, AppError> {
    let token = state.connections.access_token(id, force_refresh).await?;
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token: token.access_token,
        token_type: token.token_type,
        expires_at: token.expires_at.map(rfc3339),
        scopes: token.scopes,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RevokeResponse {
    #[serde(flatten)]
    connection: ConnectionView,
    provider_revocation: &'static str,
    provider_error: Option<String>,
}

#[utoipa::path(post, path = "/v1/connections/{id}/revoke", tag = "connections", params(("id" = String, Path, description = "connection id")),
    responses((status = 200, body = RevokeResponse), (status = 401, description = "missing or wrong admin key", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_connection(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let RevokeOutcome {
        connection,
        provider_revocation,
        provider_error,
    } = state.connections.revoke(&id).await?;
    Ok(HttpResponse::Ok().json(RevokeResponse {
        connection: connection.into(),
        provider_revocation,
        provider_error,
    }))
}

pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::RouteNotFound)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Return events with an id greater than this (the previous page's `next_cursor`).
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    /// One of the event types.
    #[serde(rename = "type")]
    kind: Option<String>,
    tenant_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventView {
    id: u64,
    #[serde(rename = "type")]
    kind: String,
    connection_id: String,
    tenant_id: String,
    plugin: String,
    at: String,
    error_code: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventsResponse {
    data: Vec<EventView>,
    /// Pass as `after` to continue; the last id of this page (or `after` when empty).
    next_cursor: u64,
}

#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, body = EventsResponse), (status = 400, body = ErrorBody),
        (status = 401, description = "missing or wrong admin key", body = ErrorBody)))]
pub async fn list_events(
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, AppError> {
    let q = query.into_inner();
    let limit = super::page_limit(q.limit, 100, 500)?;
    let events = state
        .connections
        .events(
            q.after,
            limit,
            q.kind,
            q.tenant_id.filter(|t| !t.is_empty()),
        )
        .await?;
    let next_cursor = events.last().map_or(q.after, |e| e.id);
    Ok(HttpResponse::Ok().json(EventsResponse {
        data: events
            .into_iter()
            .map(|e| EventView {
                id: e.id,
                kind: e.kind,
                connection_id: e.connection_id,
                tenant_id: e.tenant_id,
                plugin: e.plugin,
                at: rfc3339(e.at),
                error_code: e.error_code,
            })
            .collect(),
        next_cursor,
    }))
}

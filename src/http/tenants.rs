//! Tenant-addressed routes: `/v1/tenants/{tenant_id}/plugins/{plugin}/...` resolve the tenant's
//! usable connection and behave like the id-addressed routes; with none they answer 409
//! `needs_connection` carrying a fresh `connect_url` to hand to the end user.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::admin::{token_response, ConnectionView, TokenQuery};
use super::rfc3339;
use crate::connections::{LinkCreated, TenantConnection};
use crate::error::AppError;
use crate::state::AppState;

#[derive(Serialize)]
struct NeedsConnection {
    error: &'static str,
    message: &'static str,
    connect_url: String,
    expires_at: String,
    connection_id: String,
}

fn needs_connection(link: LinkCreated) -> HttpResponse {
    HttpResponse::Conflict().json(NeedsConnection {
        error: "needs_connection",
        message:
            "the tenant has no usable connection for this plugin; send the end user to connect_url",
        connect_url: link.connect_url.to_string(),
        expires_at: rfc3339(link.expires_at),
        connection_id: link.connection_id,
    })
}

type TenantPath = web::Path<(String, String)>;

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/plugins/{plugin}/connection", tag = "tenants",
    params(("tenant_id" = String, Path), ("plugin" = String, Path)),
    responses((status = 200, body = ConnectionView), (status = 409, description = "needs_connection: `{error, message, connect_url, expires_at, connection_id}`"),
        (status = 404, description = "unknown_plugin", body = crate::error::ErrorBody)))]
pub async fn connection(
    state: web::Data<AppState>,
    path: TenantPath,
) -> Result<HttpResponse, AppError> {
    let (tenant, plugin) = path.into_inner();
    Ok(
        match state.connections.resolve_tenant(&tenant, &plugin).await? {
            TenantConnection::Connected(c) => HttpResponse::Ok().json(ConnectionView::from(c)),
            TenantConnection::NeedsConnection(link) => needs_connection(link),
        },
    )
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/plugins/{plugin}/token", tag = "tenants",
    params(("tenant_id" = String, Path), ("plugin" = String, Path), TokenQuery),
    responses((status = 200, body = super::admin::TokenResponse), (status = 409, description = "needs_connection: `{error, message, connect_url, expires_at, connection_id}`"),
        (status = 503, description = "refresh_failed", body = crate::error::ErrorBody)))]
pub async fn token(
    state: web::Data<AppState>,
    path: TenantPath,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, AppError> {
    let (tenant, plugin) = path.into_inner();
    match state.connections.resolve_tenant(&tenant, &plugin).await? {
        TenantConnection::Connected(c) => token_response(&state, &c.id, query.force_refresh).await,
        TenantConnection::NeedsConnection(link) => Ok(needs_connection(link)),
    }
}

#[utoipa::path(method(get, post, put, patch, delete), path = "/v1/tenants/{tenant_id}/plugins/{plugin}/proxy/{path}", tag = "tenants",
    params(("tenant_id" = String, Path), ("plugin" = String, Path), ("path" = String, Path)),
    responses((status = "default", description = "the provider's answer, streamed"), (status = 409, description = "needs_connection: `{error, message, connect_url, expires_at, connection_id}`")))]
pub async fn proxy(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let (tenant, plugin, _) = path.into_inner();
    match state.connections.resolve_tenant(&tenant, &plugin).await? {
        TenantConnection::Connected(c) => {
            super::proxy::forward_to(req, state, &c.id, payload).await
        }
        TenantConnection::NeedsConnection(link) => Ok(needs_connection(link)),
    }
}

//! The audit middleware (every authenticated `/v1` request becomes an [`AuditRecord`]) and
//! `GET /v1/audit`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpResponse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::Principal;
use crate::audit::{key_id, AuditRecord, AuditTarget};
use crate::connections::model::now;
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;

/// Runs inside `require_admin`, so only authenticated requests reach it.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let actor = match req.extensions().get::<Principal>() {
        Some(Principal::Tenant(_)) => "tenant-session".to_string(),
        _ => {
            let presented = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .unwrap_or_default();
            key_id(&Sha256::digest(presented.as_bytes()).into())
        }
    };
    let method = req.method().to_string();
    let res = next.call(req).await?;
    let route = super::auth::route_pattern(res.request()).unwrap_or_default();
    let info = res.request().match_info();
    let target = res
        .response()
        .extensions()
        .get::<AuditTarget>()
        .cloned()
        .unwrap_or_default();
    let from_path = |name: &str| info.get(name).map(String::from);
    let record = AuditRecord {
        id: 0,
        at: now(),
        actor,
        status: res.status().as_u16(),
        connection_id: target.connection_id.or_else(|| {
            route
                .starts_with("/v1/connections/")
                .then(|| from_path("id"))
                .flatten()
        }),
        tenant_id: target.tenant_id.or_else(|| from_path("tenant_id")),
        plugin: target.plugin.or_else(|| from_path("plugin")),
        action: format!("{method} {route}"),
    };
    if let Some(state) = res.request().app_data::<web::Data<AppState>>() {
        state.auditor.record(record);
    }
    Ok(res)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Return records with an id greater than this (the previous page's `next_cursor`).
    after: Option<u64>,
    /// 1-500, default 100.
    limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    data: Vec<AuditRecord>,
    next_cursor: Option<u64>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    description = "Admin actions and credential accesses, oldest first. Records are written in batches within about a second.",
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, AppError> {
    let limit = super::page_limit(query.limit, 100, 500)?;
    let after = query.after.unwrap_or(0);
    let store = state.audit_store.clone();
    let data = web::block(move || store.audit(after, limit))
        .await
        .map_err(|e| AppError::from(crate::connections::ConnectError::Internal(e.to_string())))?
        .map_err(crate::connections::ConnectError::from)?;
    let next_cursor = (data.len() == limit)
        .then(|| data.last().map(|r| r.id))
        .flatten();
    Ok(HttpResponse::Ok().json(AuditPage { data, next_cursor }))
}

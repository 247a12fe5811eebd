//! `POST /v1/tenant-sessions`: the team's backend mints a short-lived token for one tenant's
//! browser (see `crate::sessions`).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::Principal;
use super::rfc3339;
use crate::audit::AuditTarget;
use crate::error::{AppError, ErrorBody};
use crate::sessions::{DEFAULT_TTL, MAX_TTL};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    tenant_id: String,
    /// Lifetime in seconds (default 900, at most 86400).
    ttl_seconds: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionResponse {
    /// `Authorization: Bearer <token>` for `GET /v1/connections` and `POST /v1/links`, limited
    /// to this tenant.
    token: String,
    tenant_id: String,
    expires_at: String,
}

#[utoipa::path(post, path = "/v1/tenant-sessions", tag = "sessions", request_body = SessionBody,
    description = "A short-lived token a browser may use to list its own tenant's connections and create links for its own tenant, and nothing else.",
    responses((status = 201, body = SessionResponse), (status = 400, body = ErrorBody),
        (status = 403, description = "forbidden: only an admin key may create sessions", body = ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    body: web::Json<SessionBody>,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    if !principal.is_admin() {
        return Err(AppError::Forbidden("only an admin key can create sessions"));
    }
    let body = body.into_inner();
    crate::connections::check_tenant_id(&body.tenant_id)?;
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL);
    if !(1..=MAX_TTL).contains(&ttl) {
        return Err(AppError::bad_request(
            "invalid_request",
            format!("ttl_seconds must be between 1 and {MAX_TTL}"),
        ));
    }
    let (token, expires_at) = state.sessions.issue(&body.tenant_id, ttl);
    let target = AuditTarget::new("", &body.tenant_id, "");
    Ok(target.attach(HttpResponse::Created().json(SessionResponse {
        token,
        tenant_id: body.tenant_id,
        expires_at: rfc3339(expires_at),
    })))
}

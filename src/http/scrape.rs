//! `GET /metrics`: Prometheus text, behind the admin key unless configured otherwise.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::AppError;
use crate::metrics::metrics;
use crate::state::AppState;

pub async fn serve(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    if !state.metrics.enabled {
        return Err(AppError::RouteNotFound);
    }
    if state.metrics.require_admin_key {
        let key = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !key.is_some_and(|k| state.admin_key_ok(k)) {
            let ip = state.limits.client_ip(&req);
            return Err(if state.limits.failed_auth_allowed(ip) {
                AppError::Unauthorized
            } else {
                AppError::RateLimited
            });
        }
    }
    let counts = state.connections.counts().await?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics().render(&counts)))
}

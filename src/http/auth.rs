//! Request-level middleware: admin-key authentication for `/v1` and the access log.

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, ResponseError};

use crate::error::AppError;
use crate::state::AppState;

/// Every `/v1` route requires `Authorization: Bearer <admin key>`.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let ok = match (
        state.as_ref(),
        req.headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ")),
    ) {
        (Some(state), Some(key)) => state.admin_key_ok(key.trim()),
        _ => false,
    };
    if !ok {
        // A response, not an Err: errors returned from middleware skip the outer middleware
        // (security headers, access log).
        let allowed = state.is_none_or(|s| s.limits.failed_auth_allowed(s.limits.client_ip(&req)));
        let error = if allowed {
            AppError::Unauthorized
        } else {
            AppError::RateLimited
        };
        let response = error.error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Logs method, route *pattern* (never the raw path or query: they carry link tokens, codes and
/// states), status, latency and a request id, which is echoed in `X-Request-Id` (a caller's own
/// id is kept when it is short and plain).
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let start = Instant::now();
    let method = req.method().clone();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map_or_else(
            || hex::encode(crate::vault::random_bytes::<8>()),
            String::from,
        );
    let mut res = next.call(req).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "<unmatched>".into());
    if route != "/healthz" && route != "/readyz" {
        tracing::info!(target: "http", %request_id, %method, %route, status = res.status().as_u16(), ms = start.elapsed().as_millis() as u64, "request");
    }
    Ok(res)
}

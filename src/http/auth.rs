//! Request-level middleware: admin-key authentication for `/v1` and the access log.

use std::borrow::Cow;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest, ResponseError};

use crate::error::AppError;
use crate::sessions::{self, TenantSession};
use crate::state::AppState;

/// Who is calling a `/v1` route, put in the request's extensions by [`require_admin`].
#[derive(Debug, Clone)]
pub enum Principal {
    Admin,
    /// A browser holding a tenant session: only [`TENANT_ROUTES`], only its own tenant.
    Tenant(TenantSession),
}

/// What a tenant session may call (method, exact path).
const TENANT_ROUTES: &[(&str, &str)] = &[("GET", "/v1/connections"), ("POST", "/v1/links")];

impl Principal {
    /// The tenant a request may act for: the session's, or any for an admin key. A tenant
    /// session naming another tenant is refused.
    pub fn tenant_scope(&self, requested: Option<String>) -> Result<Option<String>, AppError> {
        match self {
            Principal::Admin => Ok(requested),
            Principal::Tenant(s) => match requested {
                Some(t) if t != s.tenant_id => Err(AppError::Forbidden(
                    "a tenant session may only act for its own tenant",
                )),
                _ => Ok(Some(s.tenant_id.clone())),
            },
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin)
    }
}

impl FromRequest for Principal {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .ok_or(AppError::Unauthorized),
        )
    }
}

/// Every `/v1` route requires `Authorization: Bearer <admin key>`, or a tenant session token
/// for the few routes a browser may call.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let principal = match (state.as_ref(), presented) {
        (Some(state), Some(token)) if token.starts_with(sessions::PREFIX) => {
            state.sessions.verify(token).map(Principal::Tenant)
        }
        (Some(state), Some(key)) if state.admin_key_ok(key) => Some(Principal::Admin),
        _ => None,
    };
    let refusal = match &principal {
        None => {
            let allowed = state.is_none_or(|s| {
                s.limits
                    .failed_auth_allowed(s.limits.client_ip(req.request()))
            });
            Some(if allowed {
                AppError::Unauthorized
            } else {
                AppError::RateLimited
            })
        }
        Some(Principal::Tenant(_)) => {
            let route = (req.method().as_str(), req.path());
            (!TENANT_ROUTES.contains(&route)).then_some(AppError::Forbidden(
                "a tenant session may only list its connections and create links",
            ))
        }
        Some(Principal::Admin) => None,
    };
    if let Some(error) = refusal {
        // A response, not an Err: errors returned from middleware skip the outer middleware
        // (security headers, access log).
        let response = error.error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
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
            || match req.app_data::<web::Data<AppState>>() {
                Some(state) => state.request_ids.next(),
                None => hex::encode(crate::vault::random_bytes::<8>()),
            },
            String::from,
        );
    let mut res = next.call(req).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    let route = route_pattern(res.request()).unwrap_or(Cow::Borrowed("<unmatched>"));
    crate::metrics::metrics().http(
        method.as_str(),
        &route,
        res.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    if route != "/healthz" && route != "/readyz" {
        tracing::info!(target: "http", %request_id, %method, %route, status = res.status().as_u16(), ms = start.elapsed().as_millis() as u64, "request");
    }
    Ok(res)
}

/// The matched route pattern, kept in the request's extensions once known.
#[derive(Clone)]
pub struct RoutePattern(pub Cow<'static, str>);

impl RoutePattern {
    /// Lets a hot route's handler name its own pattern, sparing the log and audit middleware
    /// the router's regex walk of [`route_pattern`].
    pub fn tag(req: &HttpRequest, pattern: &'static str) {
        req.extensions_mut()
            .insert(RoutePattern(Cow::Borrowed(pattern)));
    }
}

/// The request's route pattern (`/v1/connections/{id}/token`). Matching runs the router's
/// regexes again, so the answer is kept for the next middleware that asks.
pub fn route_pattern(req: &HttpRequest) -> Option<Cow<'static, str>> {
    if let Some(known) = req.extensions().get::<RoutePattern>() {
        return Some(known.0.clone());
    }
    let pattern: Cow<'static, str> = Cow::Owned(req.match_pattern()?);
    req.extensions_mut().insert(RoutePattern(pattern.clone()));
    Some(pattern)
}

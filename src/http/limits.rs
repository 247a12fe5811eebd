//! Per-IP rate limits (S21): on the public pages (connect, callback, sandbox) and on failed admin
//! authentication, so a flood cannot starve the admin API or the refresh scheduler.

use std::net::IpAddr;
use std::num::NonZeroU32;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, ResponseError};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;
use crate::error::AppError;
use crate::state::AppState;

pub struct Limits {
    public: DefaultKeyedRateLimiter<IpAddr>,
    failed_auth: DefaultKeyedRateLimiter<IpAddr>,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Limits {
            public: RateLimiter::keyed(quota(config.public_requests_per_minute)),
            failed_auth: RateLimiter::keyed(quota(config.failed_auth_per_minute)),
        }
    }

    /// Records a failed admin authentication; `false` once the IP is over its budget.
    pub fn failed_auth_allowed(&self, ip: Option<IpAddr>) -> bool {
        ip.is_none_or(|ip| self.failed_auth.check_key(&ip).is_ok())
    }

    /// Forgets idle IPs so the tables stay small.
    pub fn sweep(&self) {
        self.public.retain_recent();
        self.failed_auth.retain_recent();
    }
}

fn is_public(path: &str) -> bool {
    ["/connect/", "/oauth/", "/sandbox/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// Answers 429 `rate_limited` to an IP over its budget for the public pages.
pub async fn limit_public(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if is_public(req.path()) {
        let ip = req.peer_addr().map(|a| a.ip());
        let over = match (req.app_data::<web::Data<AppState>>(), ip) {
            (Some(state), Some(ip)) => state.limits.public.check_key(&ip).is_err(),
            _ => false,
        };
        if over {
            let response = AppError::RateLimited.error_response();
            return Ok(req.into_response(response).map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

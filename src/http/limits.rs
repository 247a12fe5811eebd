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
    trusted_proxies: Vec<IpAddr>,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Limits {
            public: RateLimiter::keyed(quota(config.public_requests_per_minute)),
            failed_auth: RateLimiter::keyed(quota(config.failed_auth_per_minute)),
            trusted_proxies: config.trusted_proxies.clone(),
        }
    }

    /// The client's address: the peer, or, when the peer is a trusted reverse proxy, the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries further
    /// left are written by the client and cannot be believed).
    pub fn client_ip(&self, req: &actix_web::HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr().map(|a| a.ip())?;
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        forwarded
            .iter()
            .rev()
            .filter_map(|s| s.parse::<IpAddr>().ok())
            .find(|ip| !self.trusted_proxies.contains(ip))
            .or(Some(peer))
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
        let over = match req.app_data::<web::Data<AppState>>() {
            Some(state) => state
                .limits
                .client_ip(req.request())
                .is_some_and(|ip| state.limits.public.check_key(&ip).is_err()),
            None => false,
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

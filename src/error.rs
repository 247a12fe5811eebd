//! `AppError` and its one mapping to HTTP: JSON `{"error", "message"}` for the API, an HTML page
//! for the end-user pages. Internal causes are logged; users get a safe message.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::connections::ConnectError;
use crate::vault::key_rotation::RotationError;
use crate::vault::VaultError;
use crate::webhooks::WebhookError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("missing or invalid admin key")]
    Unauthorized,
    /// Authenticated, but not allowed this (a tenant session outside its tenant or routes).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("no such route")]
    RouteNotFound,
    #[error("too many requests; retry in a minute")]
    RateLimited,
    #[error("the page could not be rendered")]
    Template(#[from] askama::Error),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error(transparent)]
    Rotation(#[from] RotationError),
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// Status and stable code. Exhaustive on purpose: a new error must choose its status.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use ConnectError as C;
        match self {
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            AppError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::RouteNotFound => (StatusCode::NOT_FOUND, "not_found"),
            AppError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::Template(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            AppError::Webhook(e) => match e {
                WebhookError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                WebhookError::AlreadyQueued => (StatusCode::CONFLICT, "delivery_pending"),
                WebhookError::NotConfigured(_) => (StatusCode::CONFLICT, "webhook_not_configured"),
                WebhookError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
                WebhookError::Vault(VaultError::Storage(_)) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
                }
                WebhookError::Vault(_) | WebhookError::Internal(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
                }
            },
            AppError::Rotation(e) => match e {
                RotationError::AlreadyRunning => (StatusCode::CONFLICT, "rotation_in_progress"),
                RotationError::Stopped => (StatusCode::CONFLICT, "rotation_stopped"),
                RotationError::Vault(VaultError::Storage(_)) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
                }
                RotationError::Vault(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            },
            AppError::Connect(e) => match e {
                C::UnknownPlugin(_) => (StatusCode::NOT_FOUND, "unknown_plugin"),
                C::MissingCredentials(_) => (StatusCode::BAD_REQUEST, "missing_credentials"),
                C::InvalidRedirectUrl => (StatusCode::BAD_REQUEST, "invalid_redirect_url"),
                C::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
                C::InvalidParams(_) => (StatusCode::BAD_REQUEST, "invalid_params"),
                C::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                C::LinkNotFound => (StatusCode::NOT_FOUND, "link_not_found"),
                C::LinkExpired => (StatusCode::GONE, "link_expired"),
                C::LinkUsed => (StatusCode::GONE, "link_used"),
                C::ConnectMisconfigured(_) => (StatusCode::CONFLICT, "connect_misconfigured"),
                C::ResolveFailed(_) => (StatusCode::BAD_REQUEST, "resolve_failed"),
                C::OAuthCallbackFailed(_) => (StatusCode::BAD_GATEWAY, "oauth_callback_failed"),
                C::NotConnected(_) => (StatusCode::CONFLICT, "not_connected"),
                C::ConnectionExpired(_) => (StatusCode::CONFLICT, "connection_expired"),
                C::RefreshFailed(_) => (StatusCode::SERVICE_UNAVAILABLE, "refresh_failed"),
                C::ProxyNotConfigured(_) => (StatusCode::BAD_REQUEST, "proxy_not_configured"),
                C::InvalidProxyPath(_) => (StatusCode::BAD_REQUEST, "invalid_proxy_path"),
                C::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_unreachable"),
                C::Vault(VaultError::Storage(_)) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
                }
                C::Vault(_) | C::Internal(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
                }
            },
        }
    }

    /// The message shown to callers: internal detail stays in the log.
    pub fn public_message(&self) -> String {
        let (status, _) = self.status_and_code();
        match self {
            AppError::Connect(ConnectError::ResolveFailed(_)) => {
                "This sign-in attempt could not be verified. It may have expired, been used already, or been started in another browser. Please start again from the application.".into()
            }
            AppError::Connect(ConnectError::OAuthCallbackFailed(_)) => {
                "The provider did not accept the authorization. Please try again from the application.".into()
            }
            AppError::Connect(ConnectError::RefreshFailed(_)) => {
                "The provider could not refresh the token right now; retry later.".into()
            }
            _ if status.is_server_error() => "An internal error occurred; see the server log.".into(),
            other => other.to_string(),
        }
    }

    fn log(&self) {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(%code, error = %self, "request failed");
        } else if let AppError::Connect(ConnectError::ResolveFailed(reason)) = self {
            tracing::warn!(%code, %reason, "callback refused");
        } else {
            tracing::debug!(%code, "request refused");
        }
    }
}

/// Every error answer: a stable snake_case code and a human-readable message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let (status, code) = self.status_and_code();
        let mut response = HttpResponse::build(status);
        match self {
            AppError::Connect(ConnectError::RefreshFailed(_)) => {
                response.insert_header(("Retry-After", "30"));
            }
            AppError::RateLimited => {
                response.insert_header(("Retry-After", "60"));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: code,
            message: self.public_message(),
        })
    }
}

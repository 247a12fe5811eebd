//! Manual (self-hosted) connect mode: the team's own connect page and callback route drive the
//! flow through the admin API instead of our hosted pages.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::admin::ConnectionView;
use super::rfc3339;
use crate::audit::AuditTarget;
use crate::connections::{CallbackParams, ConnectError};
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    link_token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ResolveResponse {
    /// Send the end user's browser here.
    authorize_url: String,
    /// Until when the callback for this attempt is accepted.
    expires_at: String,
}

#[utoipa::path(post, path = "/v1/links/resolve", tag = "manual", request_body = ResolveBody,
    description = "What the hosted page's Continue does, for your own connect page: a fresh authorization URL (state and PKCE kept here) whose redirect_uri is your callback.",
    responses((status = 200, body = ResolveResponse),
        (status = 400, description = "resolve_failed: the link is unknown, expired or used", body = ErrorBody),
        (status = 409, description = "connect_misconfigured: neither the link nor the plugin has a redirect_uri", body = ErrorBody)))]
pub async fn resolve(
    state: web::Data<AppState>,
    body: web::Json<ResolveBody>,
) -> Result<HttpResponse, AppError> {
    let started = state
        .connections
        .resolve_link(&body.link_token)
        .await
        .map_err(|e| match e {
            ConnectError::LinkNotFound | ConnectError::LinkExpired | ConnectError::LinkUsed => {
                AppError::bad_request("resolve_failed", e.to_string())
            }
            other => other.into(),
        })?;
    Ok(HttpResponse::Ok().json(ResolveResponse {
        authorize_url: started.authorize_url.to_string(),
        expires_at: rfc3339(started.expires_at),
    }))
}

/// What your callback route received from the provider, passed on as is.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackBody {
    state: String,
    code: Option<String>,
    /// The provider's error (e.g. `access_denied`) when the user did not authorise.
    error: Option<String>,
    error_description: Option<String>,
    /// RFC 9207 issuer, when the provider sent one.
    iss: Option<String>,
}

#[utoipa::path(post, path = "/v1/oauth/callback", tag = "manual", request_body = CallbackBody,
    description = "What our callback route does, for your own: verifies the state (one use, unexpired, issued by /v1/links/resolve), redeems the code with its PKCE verifier and stores the tokens.",
    responses((status = 200, description = "the connected connection", body = ConnectionView),
        (status = 400, description = "resolve_failed (unknown, expired or used state) or oauth_callback_failed (the provider returned an error)", body = ErrorBody),
        (status = 502, description = "oauth_callback_failed: the provider refused the code", body = ErrorBody)))]
pub async fn callback(
    state: web::Data<AppState>,
    body: web::Json<CallbackBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let outcome = state
        .connections
        .complete_manual_callback(CallbackParams {
            code: body.code,
            state: Some(body.state),
            error: body.error,
            error_description: body.error_description,
            iss: body.iss,
        })
        .await?;
    if let Some((code, _)) = outcome.error {
        return Err(AppError::bad_request(
            "oauth_callback_failed",
            format!(
                "the provider returned {code}; connection {} is marked failed",
                outcome.connection.id
            ),
        ));
    }
    let c = &outcome.connection;
    let target = AuditTarget::new(&c.id, &c.tenant_id, &c.plugin);
    Ok(target.attach(HttpResponse::Ok().json(ConnectionView::from(outcome.connection))))
}

//! Calls to the provider's token and revocation endpoints, and the classification of their
//! failures into permanent (`Rejected`) and transient ones.

use std::collections::HashMap;

use oauth2::{
    AuthorizationCode, ErrorResponse, ExtraTokenFields, PkceCodeVerifier, RefreshToken,
    RequestTokenError, StandardErrorResponse, TokenResponse as _,
};
use serde::{Deserialize, Serialize};

use super::backchannel::BackchannelError;
use super::{Backchannel, OAuthError, Params, Provider, TokenResponse};
use crate::catalog::TokenResponseKind;
use crate::config::AuthMethod;
use crate::connections::model::{now, TokenSet};

/// Every field of a token response beyond the standard ones (id_token, provider extras).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ExtraFields {
    #[serde(flatten)]
    pub fields: HashMap<String, serde_json::Value>,
}

impl std::fmt::Debug for ExtraFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExtraFields({} fields, redacted)", self.fields.len())
    }
}

impl ExtraTokenFields for ExtraFields {}

impl Provider {
    /// Redeems an authorization code (with its PKCE verifier) at the token endpoint.
    pub async fn exchange_code(
        &self,
        backchannel: &Backchannel,
        code: &str,
        pkce_verifier: Option<&str>,
        params: &Params,
        redirect_uri: Option<&str>,
    ) -> Result<TokenSet, OAuthError> {
        let client = self.client(&self.endpoints(params)?, redirect_uri)?;
        let http = backchannel.recorder(self.token_response_kind());
        let mut request = client.exchange_code(AuthorizationCode::new(code.to_string()));
        if let Some(v) = pkce_verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(v.to_string()));
        }
        let result = request.request_async(&http).await;
        let response = result.map_err(|e| classify(e, http.status()))?;
        Ok(token_set(&response, None))
    }

    /// Uses a refresh token. A response without a new refresh token keeps the old one.
    pub async fn refresh(
        &self,
        backchannel: &Backchannel,
        current: &TokenSet,
        params: &Params,
    ) -> Result<TokenSet, OAuthError> {
        let client = self.client(&self.endpoints(params)?, None)?;
        let refresh = current
            .refresh_token
            .as_ref()
            .ok_or_else(|| OAuthError::Misconfigured("no refresh token is stored".into()))?;
        let http = backchannel.recorder(self.token_response_kind());
        let token = RefreshToken::new(refresh.clone());
        let result = client
            .exchange_refresh_token(&token)
            .request_async(&http)
            .await;
        let response = result.map_err(|e| classify(e, http.status()))?;
        let mut fresh = token_set(&response, Some(current));
        // Fields the refresh response leaves out (Salesforce's instance_url) stay as they were.
        for (k, v) in &current.extra {
            fresh.extra.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Ok(fresh)
    }

    /// RFC 7009: the refresh token first (revoking it ends the grant at most providers), then the
    /// access token. Returns `Ok(false)` when the plugin has no revocation endpoint.
    pub async fn revoke(
        &self,
        backchannel: &Backchannel,
        tokens: &TokenSet,
        params: &Params,
    ) -> Result<bool, OAuthError> {
        // Sent directly: the oauth2 crate refuses plain-http revocation URLs, which config already
        // limits to loopback.
        let Some(url) = self.endpoints(params)?.revocation else {
            return Ok(false);
        };
        let (Some(id), Some(secret)) = (&self.config.client_id, &self.config.client_secret) else {
            return Err(OAuthError::Misconfigured(format!(
                "plugin {} has no client credentials",
                self.id
            )));
        };
        let mut to_revoke = Vec::new();
        if let Some(r) = &tokens.refresh_token {
            to_revoke.push((r.as_str(), "refresh_token"));
        }
        to_revoke.push((tokens.access_token.as_str(), "access_token"));
        for (i, (token, hint)) in to_revoke.into_iter().enumerate() {
            let mut form = vec![("token", token), ("token_type_hint", hint)];
            let basic = match self.config.token_auth_method() {
                AuthMethod::ClientSecretBasic => Some((id.as_str(), secret.as_str())),
                AuthMethod::ClientSecretPost => {
                    form.push(("client_id", id));
                    form.push(("client_secret", secret));
                    None
                }
            };
            let status = backchannel
                .post_form(&url, &form, basic)
                .await
                .map_err(|e| OAuthError::Transient(redact_request_error(&e)))?;
            match status {
                200..=299 => {}
                429 | 500..=599 => return Err(OAuthError::Transient(format!("HTTP {status}"))),
                // Revoking the refresh token ended the grant; many providers then refuse the
                // access token (already invalid, or a type they do not revoke).
                _ if i > 0 => {}
                _ => {
                    return Err(OAuthError::InvalidResponse(format!(
                        "revocation answered HTTP {status}"
                    )))
                }
            }
        }
        Ok(true)
    }
}

/// Our record of a token response; on refresh, `previous` supplies what the response omits.
fn token_set(response: &TokenResponse, previous: Option<&TokenSet>) -> TokenSet {
    let mut extra = response.extra_fields().fields.clone();
    let id_token = extra
        .remove("id_token")
        .and_then(|v| v.as_str().map(String::from));
    let scopes = match response.scopes() {
        Some(s) => s.iter().map(|s| s.to_string()).collect(),
        None => previous.map(|p| p.scopes.clone()).unwrap_or_default(),
    };
    let obtained_at = now();
    TokenSet {
        access_token: response.access_token().secret().clone(),
        token_type: "Bearer".into(),
        refresh_token: response
            .refresh_token()
            .map(|r| r.secret().clone())
            .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
        expires_at: response
            .expires_in()
            .map(|d| obtained_at.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
        scopes,
        id_token,
        extra: extra.into_iter().collect(),
        obtained_at,
    }
}

impl Provider {
    fn token_response_kind(&self) -> TokenResponseKind {
        self.config.token_response.unwrap_or_default()
    }
}

/// Maps the oauth2 crate's error to ours. Response bodies are never copied into messages: they
/// may hold tokens.
fn classify(
    err: RequestTokenError<BackchannelError, impl ErrorResponse + ErrorCode>,
    status: u16,
) -> OAuthError {
    let transient_status = status == 429 || status >= 500;
    match err {
        RequestTokenError::ServerResponse(e) if !transient_status => OAuthError::Rejected {
            code: e.code(),
            description: e.description(),
        },
        RequestTokenError::Request(e) => OAuthError::Transient(redact_request_error(&e)),
        _ if transient_status => OAuthError::Transient(format!("HTTP {status}")),
        _ if (300..400).contains(&status) => {
            OAuthError::InvalidResponse(format!("HTTP {status} redirect refused"))
        }
        RequestTokenError::Parse(e, _) => {
            OAuthError::InvalidResponse(format!("HTTP {status}: unexpected body at {}", e.path()))
        }
        RequestTokenError::ServerResponse(_) | RequestTokenError::Other(_) => {
            OAuthError::InvalidResponse(format!("HTTP {status}"))
        }
    }
}

fn redact_request_error(e: &BackchannelError) -> String {
    match e {
        // reqwest's message includes the URL; ours never carry secrets, but keep it short.
        BackchannelError::Http(e) if e.is_timeout() => "timed out".into(),
        BackchannelError::Http(e) if e.is_connect() => "connection failed".into(),
        other => other.to_string(),
    }
}

/// The error code and description of a provider error response, as plain strings.
pub trait ErrorCode {
    fn code(&self) -> String;
    fn description(&self) -> Option<String>;
}

impl<T: oauth2::ErrorResponseType + std::fmt::Display> ErrorCode for StandardErrorResponse<T> {
    fn code(&self) -> String {
        self.error().to_string()
    }
    fn description(&self) -> Option<String> {
        self.error_description().cloned()
    }
}

/// Whether a provider error means the grant itself is gone (the connection is expired).
pub fn is_grant_dead(code: &str) -> bool {
    code == "invalid_grant"
}

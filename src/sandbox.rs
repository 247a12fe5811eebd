//! The built-in sandbox OAuth 2.0 provider: authorization code + PKCE S256, refresh tokens with
//! rotation, RFC 7009 revocation, and a bearer-protected "API". State lives in memory (a restart
//! forgets its grants); it exists so the whole flow is clickable with no real provider.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Config, ProviderKind};
use crate::connections::model::{new_secret_token, now, Timestamp};

const CODE_TTL: i64 = 60;
const REQUEST_TTL: i64 = 600;

pub struct SandboxClient {
    secret: String,
}

/// An authorization request waiting for the user's decision.
#[derive(Clone)]
pub struct PendingRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    code_challenge: Option<String>,
    expires_at: Timestamp,
}

struct Code {
    client_id: String,
    redirect_uri: String,
    code_challenge: Option<String>,
    grant: Grant,
    expires_at: Timestamp,
}

#[derive(Clone)]
struct Grant {
    id: String,
    sub: String,
    scope: String,
    client_id: String,
}

#[derive(Default)]
struct Inner {
    requests: HashMap<String, PendingRequest>,
    codes: HashMap<String, Code>,
    access: HashMap<String, (Grant, Timestamp)>,
    refresh: HashMap<String, Grant>,
    /// Refresh tokens already rotated away: presenting one again kills the grant (theft signal).
    rotated: HashMap<String, String>,
    token_requests: u64,
}

pub struct Sandbox {
    pub issuer: String,
    pub redirect_uri: String,
    /// Manual-mode callbacks: sandbox plugins' own `redirect_uri`s, and any URL under
    /// `[links] allowed_redirect_urls` (where a link's `redirect_uri` must be).
    other_redirects: Vec<String>,
    redirect_prefixes: Vec<url::Url>,
    token_ttl: i64,
    clients: HashMap<String, SandboxClient>,
    inner: Mutex<Inner>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SandboxError {
    /// Shown to the user, never redirected (unknown client or redirect URI).
    BadRequest(&'static str),
    /// An OAuth error code for the token endpoint.
    OAuth(&'static str, &'static str),
    InvalidClient,
}

pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub scope: String,
}

pub struct AuthorizeQuery {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
}

impl Sandbox {
    pub fn new(config: &Config, issuer: String, redirect_uri: String) -> Self {
        let clients = config
            .plugins
            .values()
            .filter(|p| p.kind == ProviderKind::Sandbox)
            .filter_map(|p| {
                Some((
                    p.client_id.clone()?,
                    SandboxClient {
                        secret: p.client_secret.clone()?,
                    },
                ))
            })
            .collect();
        let other_redirects = config
            .plugins
            .values()
            .filter(|p| p.kind == ProviderKind::Sandbox)
            .filter_map(|p| p.redirect_uri.clone())
            .collect();
        Sandbox {
            issuer,
            redirect_uri,
            other_redirects,
            redirect_prefixes: config.links.allowed_redirect_urls.clone(),
            token_ttl: i64::try_from(config.sandbox.token_ttl_seconds).unwrap_or(3600),
            clients,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn redirect_registered(&self, uri: &str) -> bool {
        uri == self.redirect_uri
            || self.other_redirects.iter().any(|r| r == uri)
            || url::Url::parse(uri).is_ok_and(|u| {
                self.redirect_prefixes
                    .iter()
                    .any(|p| crate::connections::url_under(&u, p))
            })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Validates an authorization request and parks it until the user decides.
    pub fn begin(&self, q: AuthorizeQuery) -> Result<(String, PendingRequest), SandboxError> {
        let client_id = q
            .client_id
            .ok_or(SandboxError::BadRequest("client_id is missing"))?;
        if !self.clients.contains_key(&client_id) {
            return Err(SandboxError::BadRequest("unknown client_id"));
        }
        let redirect_uri = q
            .redirect_uri
            .filter(|r| self.redirect_registered(r))
            .ok_or(SandboxError::BadRequest(
                "redirect_uri is not registered for this client",
            ))?;
        if q.response_type.as_deref() != Some("code") {
            return Err(SandboxError::BadRequest(
                "only response_type=code is supported",
            ));
        }
        if q.code_challenge.is_some() && q.code_challenge_method.as_deref() != Some("S256") {
            return Err(SandboxError::BadRequest(
                "only code_challenge_method=S256 is supported",
            ));
        }
        let request = PendingRequest {
            client_id,
            redirect_uri,
            scope: q.scope.unwrap_or_default(),
            state: q.state,
            code_challenge: q.code_challenge,
            expires_at: now() + REQUEST_TTL,
        };
        let id = new_secret_token();
        let mut inner = self.inner();
        let t = now();
        inner.requests.retain(|_, r| r.expires_at > t);
        inner.requests.insert(id.clone(), request.clone());
        Ok((id, request))
    }

    /// The user's decision. Returns the request and, when approved, the code.
    pub fn decide(
        &self,
        request_id: &str,
        approve: bool,
        login: &str,
    ) -> Result<(PendingRequest, Option<String>), SandboxError> {
        let mut inner = self.inner();
        let request = inner
            .requests
            .remove(request_id)
            .filter(|r| r.expires_at > now())
            .ok_or(SandboxError::BadRequest(
                "this authorization request expired or was already answered",
            ))?;
        if !approve {
            return Ok((request, None));
        }
        let code = new_secret_token();
        let sub: String = login.chars().filter(|c| !c.is_control()).take(64).collect();
        inner.codes.insert(
            code.clone(),
            Code {
                client_id: request.client_id.clone(),
                redirect_uri: request.redirect_uri.clone(),
                code_challenge: request.code_challenge.clone(),
                grant: Grant {
                    id: new_secret_token(),
                    sub: if sub.is_empty() {
                        "sandbox-user".into()
                    } else {
                        sub
                    },
                    scope: request.scope.clone(),
                    client_id: request.client_id.clone(),
                },
                expires_at: now() + CODE_TTL,
            },
        );
        Ok((request, Some(code)))
    }

    /// Client authentication: Basic header or form fields, secrets compared in constant time.
    pub fn authenticate(
        &self,
        client_id: Option<&str>,
        secret: Option<&str>,
    ) -> Result<String, SandboxError> {
        let (Some(id), Some(secret)) = (client_id, secret) else {
            return Err(SandboxError::InvalidClient);
        };
        let client = self.clients.get(id).ok_or(SandboxError::InvalidClient)?;
        if bool::from(client.secret.as_bytes().ct_eq(secret.as_bytes())) {
            Ok(id.to_string())
        } else {
            Err(SandboxError::InvalidClient)
        }
    }

    pub fn redeem_code(
        &self,
        client_id: &str,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<IssuedTokens, SandboxError> {
        let mut inner = self.inner();
        inner.token_requests += 1;
        let invalid = SandboxError::OAuth(
            "invalid_grant",
            "the code is invalid, expired or already used",
        );
        let entry = inner.codes.remove(code).ok_or(invalid)?;
        if entry.expires_at <= now()
            || entry.client_id != client_id
            || redirect_uri != Some(entry.redirect_uri.as_str())
        {
            return Err(SandboxError::OAuth(
                "invalid_grant",
                "the code does not match this client or redirect_uri",
            ));
        }
        if let Some(challenge) = &entry.code_challenge {
            let Some(verifier) = verifier else {
                return Err(SandboxError::OAuth(
                    "invalid_grant",
                    "code_verifier is required",
                ));
            };
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(verifier.as_bytes()));
            if !bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                return Err(SandboxError::OAuth(
                    "invalid_grant",
                    "PKCE verification failed",
                ));
            }
        }
        Ok(self.issue(&mut inner, entry.grant))
    }

    pub fn refresh(
        &self,
        client_id: &str,
        refresh_token: &str,
    ) -> Result<IssuedTokens, SandboxError> {
        let mut inner = self.inner();
        inner.token_requests += 1;
        if let Some(grant_id) = inner.rotated.remove(refresh_token) {
            kill_grant(&mut inner, &grant_id);
            return Err(SandboxError::OAuth(
                "invalid_grant",
                "refresh token reuse detected; grant revoked",
            ));
        }
        let grant = inner
            .refresh
            .remove(refresh_token)
            .ok_or(SandboxError::OAuth(
                "invalid_grant",
                "unknown refresh token",
            ))?;
        if grant.client_id != client_id {
            return Err(SandboxError::OAuth(
                "invalid_grant",
                "refresh token belongs to another client",
            ));
        }
        inner
            .rotated
            .insert(refresh_token.to_string(), grant.id.clone());
        // Like strict providers, retire the grant's older access tokens.
        inner.access.retain(|_, (g, _)| g.id != grant.id);
        Ok(self.issue(&mut inner, grant))
    }

    fn issue(&self, inner: &mut Inner, grant: Grant) -> IssuedTokens {
        let t = now();
        inner.access.retain(|_, (_, exp)| *exp > t);
        inner.codes.retain(|_, c| c.expires_at > t);
        let access = format!("sbx_at_{}", new_secret_token());
        let refresh = format!("sbx_rt_{}", new_secret_token());
        inner
            .access
            .insert(access.clone(), (grant.clone(), t + self.token_ttl));
        let scope = grant.scope.clone();
        inner.refresh.insert(refresh.clone(), grant);
        IssuedTokens {
            access_token: access,
            refresh_token: refresh,
            expires_in: self.token_ttl,
            scope,
        }
    }

    /// RFC 7009: revoking a refresh token ends its grant; unknown tokens are not an error.
    pub fn revoke(&self, client_id: &str, token: &str) {
        let mut inner = self.inner();
        if let Some(grant) = inner.refresh.get(token).cloned() {
            if grant.client_id == client_id {
                kill_grant(&mut inner, &grant.id);
            }
        } else if inner
            .access
            .get(token)
            .is_some_and(|(g, _)| g.client_id == client_id)
        {
            inner.access.remove(token);
        }
    }

    /// The subject and scope of a live access token.
    pub fn introspect(&self, access_token: &str) -> Option<(String, String)> {
        let inner = self.inner();
        let (grant, exp) = inner.access.get(access_token)?;
        (*exp > now()).then(|| (grant.sub.clone(), grant.scope.clone()))
    }

    pub fn token_requests(&self) -> u64 {
        self.inner().token_requests
    }
}

fn kill_grant(inner: &mut Inner, grant_id: &str) {
    inner.refresh.retain(|_, g| g.id != grant_id);
    inner.access.retain(|_, (g, _)| g.id != grant_id);
    inner.rotated.retain(|_, g| g != grant_id);
}

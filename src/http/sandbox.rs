//! HTTP face of the built-in sandbox provider under `/sandbox/` (only routed when enabled).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use base64::Engine;
use serde::Deserialize;

use super::branding::Branding;
use super::pages::ErrorPage;
use crate::sandbox::{AuthorizeQuery, IssuedTokens, SandboxError};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/sandbox")
            .route("/authorize", web::get().to(authorize_page))
            .route("/authorize", web::post().to(decide))
            .route("/token", web::post().to(token))
            .route("/revoke", web::post().to(revoke))
            .route("/api/me", web::get().to(me))
            .route("/stats", web::get().to(stats)),
    );
}

#[derive(Template)]
#[template(path = "sandbox_authorize.html")]
struct AuthorizePage<'a> {
    brand: &'a Branding,
    client_id: &'a str,
    scope: &'a str,
    request_id: &'a str,
}

fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

fn bad_request(brand: &Branding, message: &str) -> HttpResponse {
    html(
        StatusCode::BAD_REQUEST,
        &ErrorPage {
            brand,
            title: "Sandbox provider: invalid request",
            code: "invalid_request",
            message,
            detail: None,
        },
    )
}

#[derive(Deserialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

async fn authorize_page(
    state: web::Data<AppState>,
    q: web::Query<AuthorizeParams>,
) -> HttpResponse {
    let Some(sb) = state.sandbox.as_deref() else {
        return HttpResponse::NotFound().finish();
    };
    let q = q.into_inner();
    match sb.begin(AuthorizeQuery {
        response_type: q.response_type,
        client_id: q.client_id,
        redirect_uri: q.redirect_uri,
        scope: q.scope,
        state: q.state,
        code_challenge: q.code_challenge,
        code_challenge_method: q.code_challenge_method,
    }) {
        Ok((id, request)) => html(
            StatusCode::OK,
            &AuthorizePage {
                brand: &state.branding,
                client_id: &request.client_id,
                scope: &request.scope,
                request_id: &id,
            },
        ),
        Err(SandboxError::BadRequest(m)) => bad_request(&state.branding, m),
        Err(_) => bad_request(&state.branding, "invalid request"),
    }
}

#[derive(Deserialize)]
pub struct Decision {
    request_id: String,
    decision: String,
    login: Option<String>,
}

async fn decide(state: web::Data<AppState>, form: web::Form<Decision>) -> HttpResponse {
    let Some(sb) = state.sandbox.as_deref() else {
        return HttpResponse::NotFound().finish();
    };
    let approve = form.decision == "approve";
    match sb.decide(
        &form.request_id,
        approve,
        form.login.as_deref().unwrap_or_default(),
    ) {
        Ok((request, code)) => {
            let Ok(mut url) = url::Url::parse(&request.redirect_uri) else {
                return bad_request(&state.branding, "invalid redirect_uri");
            };
            {
                let mut q = url.query_pairs_mut();
                match &code {
                    Some(code) => q.append_pair("code", code),
                    None => q.append_pair("error", "access_denied").append_pair(
                        "error_description",
                        "The user denied the request at the sandbox provider.",
                    ),
                };
                if let Some(s) = &request.state {
                    q.append_pair("state", s);
                }
                q.append_pair("iss", &sb.issuer);
            }
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, url.as_str()))
                .finish()
        }
        Err(SandboxError::BadRequest(m)) => bad_request(&state.branding, m),
        Err(_) => bad_request(&state.branding, "invalid request"),
    }
}

#[derive(Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    token: Option<String>,
}

/// `client_secret_basic` (RFC 6749 §2.3.1: form-urlencoded id and secret) or `client_secret_post`.
fn client_credentials(req: &HttpRequest, form: &TokenForm) -> (Option<String>, Option<String>) {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    if let Some(pair) = basic {
        if let Some((id, secret)) = pair.split_once(':') {
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            return (decode(id), decode(secret));
        }
    }
    (form.client_id.clone(), form.client_secret.clone())
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "error": code,
        "error_description": description,
    }))
}

async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    let Some(sb) = state.sandbox.as_deref() else {
        return HttpResponse::NotFound().finish();
    };
    let (id, secret) = client_credentials(&req, &form);
    let client_id = match sb.authenticate(id.as_deref(), secret.as_deref()) {
        Ok(c) => c,
        Err(_) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            )
        }
    };
    let result = match form.grant_type.as_deref() {
        Some("authorization_code") => sb.redeem_code(
            &client_id,
            form.code.as_deref().unwrap_or_default(),
            form.redirect_uri.as_deref(),
            form.code_verifier.as_deref(),
        ),
        Some("refresh_token") => sb.refresh(
            &client_id,
            form.refresh_token.as_deref().unwrap_or_default(),
        ),
        _ => Err(SandboxError::OAuth(
            "unsupported_grant_type",
            "only authorization_code and refresh_token",
        )),
    };
    match result {
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            expires_in,
            scope,
        }) => HttpResponse::Ok().json(serde_json::json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "refresh_token": refresh_token,
            "scope": scope,
        })),
        Err(SandboxError::OAuth(code, description)) => {
            oauth_error(StatusCode::BAD_REQUEST, code, description)
        }
        Err(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "invalid request",
        ),
    }
}

async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    let Some(sb) = state.sandbox.as_deref() else {
        return HttpResponse::NotFound().finish();
    };
    let (id, secret) = client_credentials(&req, &form);
    let Ok(client_id) = sb.authenticate(id.as_deref(), secret.as_deref()) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    };
    if let Some(token) = &form.token {
        sb.revoke(&client_id, token);
    }
    HttpResponse::Ok().finish()
}

async fn me(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(sb) = state.sandbox.as_deref() else {
        return HttpResponse::NotFound().finish();
    };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer.and_then(|t| sb.introspect(t.trim())) {
        Some((sub, scope)) => HttpResponse::Ok()
            .json(serde_json::json!({"sub": sub, "scope": scope, "provider": "sandbox"})),
        None => HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""))
            .json(serde_json::json!({"error": "invalid_token"})),
    }
}

async fn stats(state: web::Data<AppState>) -> HttpResponse {
    match state.sandbox.as_deref() {
        Some(sb) => {
            HttpResponse::Ok().json(serde_json::json!({"token_requests": sb.token_requests()}))
        }
        None => HttpResponse::NotFound().finish(),
    }
}

//! End-user pages: the hosted connect page, the hop to the provider, and the OAuth callback.

use std::fmt;

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use serde::Deserialize;

use super::branding::Branding;
use crate::connections::CallbackParams;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "connect.html")]
struct ConnectPage<'a> {
    brand: &'a Branding,
    plugin_name: &'a str,
    scopes: &'a [String],
    authorize_href: &'a str,
    expires_at: String,
}

#[derive(Template)]
#[template(path = "result.html")]
struct ResultPage<'a> {
    brand: &'a Branding,
    title: &'a str,
    message: &'a str,
    /// `[branding] success_redirect_url`, offered as a "Continue" button.
    continue_url: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub brand: &'a Branding,
    pub title: &'a str,
    pub code: &'a str,
    pub message: &'a str,
    pub detail: Option<&'a str>,
}

/// An error shown as an HTML page; status and code come from [`AppError`]'s one mapping.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.render(&Branding::default())
    }
}

impl PageError {
    /// The error page with the brand (handlers use this; `error_response` has no state).
    pub fn render(&self, brand: &Branding) -> HttpResponse {
        let (status, code) = self.0.status_and_code();
        if status.is_server_error() {
            tracing::error!(%code, error = %self.0, "page failed");
        } else if let AppError::Connect(crate::connections::ConnectError::ResolveFailed(r)) =
            &self.0
        {
            tracing::warn!(%code, reason = %r, "callback refused");
        }
        let title = match status {
            StatusCode::GONE => "This link is no longer valid",
            StatusCode::NOT_FOUND => "Link not found",
            s if s.is_server_error() => "Something went wrong",
            _ => "We could not complete the connection",
        };
        render_page(
            status,
            &ErrorPage {
                brand,
                title,
                code,
                message: &self.0.public_message(),
                detail: None,
            },
        )
    }
}

fn render_page(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("internal error")
        }
    }
}

/// Liveness: the process answers.
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness (and `/healthz`): storage and vault usable.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    match state.connections.check().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "unavailable"}))
        }
    }
}

/// A handler's outcome, its error rendered with the brand.
fn branded(state: &AppState, result: Result<HttpResponse, PageError>) -> HttpResponse {
    result.unwrap_or_else(|e| e.render(&state.branding))
}

pub async fn connect_page(state: web::Data<AppState>, token: web::Path<String>) -> HttpResponse {
    let result = async {
        let view = state.connections.view_link(&token).await?;
        let href = format!("{}/authorize", token.as_str());
        Ok(render_page(
            StatusCode::OK,
            &ConnectPage {
                brand: &state.branding,
                plugin_name: &view.plugin_name,
                scopes: &view.scopes,
                authorize_href: &href,
                expires_at: super::rfc3339(view.expires_at),
            },
        ))
    }
    .await;
    branded(&state, result)
}

pub async fn authorize(state: web::Data<AppState>, token: web::Path<String>) -> HttpResponse {
    match state.connections.start_authorize(&token).await {
        Ok(start) => authorize_redirect(&state, start),
        Err(e) => PageError::from(e).render(&state.branding),
    }
}

fn authorize_redirect(state: &AppState, start: crate::connections::AuthorizeStart) -> HttpResponse {
    let cookie = Cookie::build(start.cookie_name, start.cookie_value)
        .path("/")
        .http_only(true)
        // Lax, not Strict: Strict cookies are not sent on the provider's redirect back.
        .same_site(SameSite::Lax)
        .secure(state.connections.settings().secure_cookies)
        .max_age(CookieDuration::seconds(start.cookie_max_age))
        .finish();
    HttpResponse::Found()
        .insert_header((header::LOCATION, start.authorize_url.as_str()))
        .cookie(cookie)
        .finish()
}

#[derive(Deserialize)]
pub struct ResultQuery {
    status: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The end of a flow without a `redirect_url`. Only shows what its query says; it reveals and
/// changes nothing (anyone can open it).
pub async fn result(state: web::Data<AppState>, query: web::Query<ResultQuery>) -> HttpResponse {
    let q = query.into_inner();
    let brand = &state.branding;
    if q.status.as_deref() == Some("connected") {
        let continue_url = brand.success_redirect_url.as_deref();
        return render_page(
            StatusCode::OK,
            &ResultPage {
                brand,
                title: "Connected",
                message: if continue_url.is_some() {
                    "Your account is connected."
                } else {
                    "Your account is connected. You can close this window."
                },
                continue_url,
            },
        );
    }
    let code: String = q
        .error
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
        .take(64)
        .collect();
    let detail: Option<String> = q.error_description.map(|d| d.chars().take(300).collect());
    render_page(
        StatusCode::OK,
        &ErrorPage {
            brand,
            title: "The connection was not completed",
            code: if code.is_empty() { "provider_error" } else { &code },
            message: "The provider did not grant access. You can close this window and try again from the application.",
            detail: detail.as_deref(),
        },
    )
}

/// A callback query string, parsed exactly as the route's extractor parses it.
pub fn parse_callback_query(query: &str) -> Result<CallbackParams, String> {
    web::Query::<CallbackParams>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(|e| e.to_string())
}

pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CallbackParams>,
) -> HttpResponse {
    let result = complete_callback(&req, &state, query.into_inner()).await;
    branded(&state, result)
}

async fn complete_callback(
    req: &HttpRequest,
    state: &AppState,
    params: CallbackParams,
) -> Result<HttpResponse, PageError> {
    let cookie_name = params
        .state
        .as_deref()
        .map(|s| state.connections.flow_cookie_name(s));
    let outcome = state
        .connections
        .complete_callback(params, |name| {
            req.cookie(name).map(|c| c.value().to_string())
        })
        .await?;
    // Without a redirect_url our own result page is shown, at a clean URL (S7: the code and
    // state must not stay in the address bar or history).
    let destination = outcome.redirect.clone().unwrap_or_else(|| {
        let mut url =
            crate::oauth::join(&state.connections.settings().public_url, "connect/result");
        {
            let mut q = url.query_pairs_mut();
            match &outcome.error {
                None => q.append_pair("status", "connected"),
                Some((code, description)) => {
                    q.append_pair("status", "error").append_pair("error", code);
                    if let Some(d) = description {
                        q.append_pair("error_description", d);
                    }
                    &mut q
                }
            };
            // For connect.js: the popup's result page reports which connection it was.
            q.append_pair("connection_id", &outcome.connection.id);
        }
        url
    });
    let mut response = if outcome.redirect.is_some() {
        HttpResponse::Found()
    } else {
        HttpResponse::SeeOther()
    }
    .insert_header((header::LOCATION, destination.as_str()))
    .finish();
    if let Some(name) = cookie_name {
        let mut expired = Cookie::build(name, "").path("/").finish();
        expired.make_removal();
        let _ = response.add_cookie(&expired);
    }
    Ok(response)
}

//! Dashboard failures as friendly pages (or, for a missing session, a redirect to sign-in).
//! Internal causes are logged; the page says what happened and what to do.

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use super::Chrome;
use crate::error::AppError;
use crate::http::branding::Branding;

#[derive(Debug)]
pub enum DashError {
    /// No live session: go and sign in.
    SignIn,
    /// A form without a valid CSRF token or from another origin.
    Forbidden,
    /// No such dashboard page.
    NotFound,
    App(AppError),
}

impl<E: Into<AppError>> From<E> for DashError {
    fn from(e: E) -> Self {
        DashError::App(e.into())
    }
}

impl fmt::Display for DashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DashError::SignIn => f.write_str("sign-in required"),
            DashError::Forbidden => f.write_str("form refused"),
            DashError::NotFound => f.write_str("no such page"),
            DashError::App(e) => e.fmt(f),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/error.html")]
struct ErrorPage<'a> {
    chrome: Chrome<'a>,
    title: &'a str,
    message: &'a str,
    code: &'a str,
}

impl DashError {
    /// The response, with the brand in the page.
    pub fn render(&self, brand: &Branding) -> HttpResponse {
        let (status, code, title, message) = match self {
            DashError::SignIn => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, "/admin/sign-in"))
                    .finish()
            }
            DashError::Forbidden => (
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "This form could not be accepted",
                "It expired, or it was not sent from this dashboard. Nothing was changed. Go back, reload the page and try again.".to_string(),
            ),
            DashError::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "Page not found",
                "There is no such dashboard page.".to_string(),
            ),
            DashError::App(e) => {
                let (status, code) = e.status_and_code();
                if status.is_server_error() {
                    tracing::error!(%code, error = %e, "dashboard request failed");
                }
                let title = match status {
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
                    s if s.is_server_error() => "Something went wrong",
                    _ => "That did not work",
                };
                (status, code, title, e.public_message())
            }
        };
        let page = ErrorPage {
            chrome: Chrome {
                brand,
                csrf: "",
                active: "",
            },
            title,
            message: &message,
            code,
        };
        let mut response = match page.render() {
            Ok(html) => HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(html),
            Err(e) => {
                tracing::error!(error = %e, "dashboard error page failed to render");
                HttpResponse::InternalServerError()
                    .content_type("text/plain; charset=utf-8")
                    .body("internal error")
            }
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
        }
        response
    }
}

/// Only reached for errors raised before a handler runs (the session extractor): those need no
/// brand, and anything else gets the default one.
impl ResponseError for DashError {
    fn status_code(&self) -> StatusCode {
        match self {
            DashError::SignIn => StatusCode::SEE_OTHER,
            DashError::Forbidden => StatusCode::FORBIDDEN,
            DashError::NotFound => StatusCode::NOT_FOUND,
            DashError::App(e) => e.status_and_code().0,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.render(&Branding::default())
    }
}

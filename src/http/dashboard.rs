//! The admin dashboard under `/admin`: server-rendered pages over the same domain calls as the
//! JSON API, behind a sign-in with an admin key. Sessions live in memory (`session.rs`); every
//! POST carries the session's CSRF token and passes an origin check (`guard.rs`).

mod actions;
mod error;
mod guard;
mod pages;
mod session;
mod sign_in;
mod views;

use actix_web::http::StatusCode;
use actix_web::{middleware, web, HttpResponse};
use askama::Template;

pub use session::Sessions;

use crate::error::AppError;
use crate::http::branding::Branding;
use error::DashError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            // Our own forms must send a real `Origin` (a no-referrer policy makes it "null"),
            // so the dashboard allows same-origin referrers; other sites still get none.
            .wrap(middleware::DefaultHeaders::new().add(("Referrer-Policy", "same-origin")))
            .route("", web::get().to(pages::overview))
            .route("/", web::get().to(pages::overview))
            .route("/sign-in", web::get().to(sign_in::form))
            .route("/sign-in", web::post().to(sign_in::submit))
            .route("/sign-out", web::post().to(sign_in::sign_out))
            .route("/connections", web::get().to(pages::connections))
            .route("/connections/{id}", web::get().to(pages::connection))
            .route("/connections/{id}/revoke", web::post().to(actions::revoke))
            .route(
                "/connections/{id}/delete",
                web::get().to(actions::confirm_delete),
            )
            .route("/connections/{id}/delete", web::post().to(actions::delete))
            .route("/links", web::post().to(actions::create_link))
            .route("/events", web::get().to(pages::events))
            .default_service(web::to(pages::not_found)),
    );
}

/// What the layout needs on every page: the brand, and for a signed-in admin the CSRF token of
/// the sign-out form and the current tab.
pub struct Chrome<'a> {
    pub brand: &'a Branding,
    /// Empty when nobody is signed in (no navigation is shown).
    pub csrf: &'a str,
    pub active: &'static str,
}

/// Renders a page; a template failure becomes the internal-error page.
fn render(status: StatusCode, page: &impl Template) -> Result<HttpResponse, DashError> {
    let html = page.render().map_err(AppError::from)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// A timestamp as the dashboard shows it: `2025-01-31 14:05:09 UTC`.
pub fn when(ts: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

//! Connect in a popup: `/connect.js` for the team's pages, the script our result and error pages
//! use to report the outcome to the page that opened them, and the opener policy that keeps the
//! popup linked to that page.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};
use askama::Template;

use crate::state::AppState;

/// `GET /connect.js`: the embedded, dependency-free script (cacheable like other assets; loadable
/// from other origins, including pages that require CORP).
pub async fn connect_js() -> HttpResponse {
    let mut res = super::assets::embedded("connect.js");
    if res.status().is_success() {
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/javascript; charset=utf-8"),
        );
        headers.insert(
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        );
    }
    res
}

#[derive(Template)]
#[template(path = "opener.js", escape = "none")]
struct OpenerScript {
    origins_json: String,
}

/// `GET /connect/opener.js`: posts the outcome of the flow to `window.opener`, targeted at each
/// allowed origin in turn (a no-op when there are none). Not cached: it follows the config.
pub async fn opener_js(state: web::Data<AppState>) -> HttpResponse {
    let script = OpenerScript {
        origins_json: serde_json::to_string(state.cors.origins()).unwrap_or_else(|_| "[]".into()),
    };
    match script.render() {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/javascript; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "opener script failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("internal error")
        }
    }
}

/// Pages a connect popup passes through (ours, the sandbox's, the redirects between them).
fn in_popup_flow(path: &str) -> bool {
    ["/connect/", "/oauth/", "/sandbox/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// With `[cors] allowed_origins` set, the flow pages send `Cross-Origin-Opener-Policy:
/// unsafe-none` instead of `same-origin`: a page of another origin (the team's app) opens the
/// popup, and `same-origin` anywhere on the way would cut the popup off from it, so the outcome
/// could not be posted back. Everything else keeps `same-origin`.
pub async fn keep_opener(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let relax = in_popup_flow(req.path())
        && req
            .app_data::<web::Data<AppState>>()
            .is_some_and(|s| s.cors.enabled());
    let mut res = next.call(req).await?;
    if relax {
        res.headers_mut().insert(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("unsafe-none"),
        );
    }
    Ok(res)
}

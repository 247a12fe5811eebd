//! CORS on `/v1` for the origins in `[cors] allowed_origins` only. The API is authenticated by a
//! bearer token, never a cookie, so no credentials mode is needed and `*` is never sent.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};

use crate::state::AppState;

const ALLOW_METHODS: &str = "GET, POST";
const ALLOW_HEADERS: &str = "Authorization, Content-Type";
const EXPOSE_HEADERS: &str = "Retry-After, X-Request-Id";
/// How long a browser may reuse a preflight answer (Chromium caps it at 2 hours).
const MAX_AGE_SECONDS: &str = "600";

/// The configured origins, already in the form browsers send in `Origin`.
#[derive(Debug, Default)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    pub fn new(origins: Vec<String>) -> Self {
        Cors { origins }
    }

    pub fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }

    pub fn origins(&self) -> &[String] {
        &self.origins
    }
}

/// Wraps the `/v1` scope outside authentication: a preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`) is answered here with 204, without a key (browsers send
/// none) and without reaching auth or a handler, so it never counts as a failed authentication.
/// Other requests pass through; answers to an allowed origin get `Access-Control-Allow-Origin`.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let (enabled, allowed) = match req.app_data::<web::Data<AppState>>() {
        Some(state) => (
            state.cors.enabled(),
            req.headers()
                .get(header::ORIGIN)
                .filter(|o| o.to_str().is_ok_and(|o| state.cors.allows(o)))
                .cloned(),
        ),
        None => (false, None),
    };
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut res = HttpResponse::NoContent();
        if let Some(origin) = &allowed {
            res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE_SECONDS));
        }
        if enabled {
            res.insert_header((header::VARY, "Origin"));
        }
        return Ok(req.into_response(res.finish()).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if enabled {
        // The answer depends on Origin whenever CORS is on (a cache must not mix them up).
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
    Ok(res.map_into_left_body())
}

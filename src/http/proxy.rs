//! `ANY /v1/connections/{id}/proxy/{path...}`: forwards to the plugin's API with the
//! connection's token and streams the answer back.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::TryStreamExt;

use crate::connections::ProxyRequest;
use crate::error::AppError;
use crate::state::AppState;

/// Never forwarded from the caller: credentials, cookies, routing and hop-by-hop headers.
const DROP_REQUEST: &[&str] = &[
    "authorization",
    "cookie",
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "forwarded",
    "x-real-ip",
    "origin",
    "referer",
];

/// Never passed back: hop-by-hop headers, cookies from the provider, and the length (the body is
/// re-framed as it streams).
const DROP_RESPONSE: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "set-cookie",
    "content-length",
];

pub async fn forward(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let (id, _) = id.into_inner();
    // The raw (still percent-encoded) tail, so encoded '..' or '/' cannot slip through decoding.
    let marker = format!("/v1/connections/{id}/proxy/");
    let path = req
        .uri()
        .path()
        .strip_prefix(&marker)
        .unwrap_or_default()
        .to_string();
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| AppError::bad_request("invalid_request", "unsupported method"))?;
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in req.headers() {
        let n = name.as_str();
        if DROP_REQUEST.contains(&n) || n.starts_with("x-forwarded-") {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(n.as_bytes()),
            reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(k, v);
        }
    }
    let upstream = state
        .connections
        .proxy(
            &id,
            ProxyRequest {
                method,
                path,
                query: req.uri().query().unwrap_or_default().to_string(),
                headers,
                body: body.to_vec(),
            },
        )
        .await?;
    let status =
        StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    for (name, value) in upstream.headers() {
        if !DROP_RESPONSE.contains(&name.as_str()) {
            response.append_header((name.as_str(), value.as_bytes()));
        }
    }
    Ok(response.streaming(upstream.bytes_stream().map_err(std::io::Error::other)))
}

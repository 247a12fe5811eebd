//! `ANY /v1/connections/{id}/proxy/{path...}`: forwards to the plugin's API with the
//! connection's token and streams the answer back.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::TryStreamExt;

use crate::connections::{ProxyBody, ProxyRequest};
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

#[utoipa::path(method(get, post, put, patch, delete), path = "/v1/connections/{id}/proxy/{path}", tag = "proxy",
    description = "Any method: forwarded to the plugin's api_base_url + path with the connection's credential.",
    params(("id" = String, Path, description = "connection id"), ("path" = String, Path, description = "path under api_base_url")),
    responses((status = "default", description = "the provider's answer, streamed"),
        (status = 400, description = "invalid_proxy_path or proxy_not_configured", body = crate::error::ErrorBody),
        (status = 502, description = "upstream_unreachable", body = crate::error::ErrorBody)))]
pub async fn forward(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    crate::http::auth::RoutePattern::tag(&req, "/v1/connections/{id}/proxy/{path:.*}");
    let (id, _) = id.into_inner();
    forward_to(req, state, &id, payload).await
}

/// Forwards for connection `id`. The path is taken raw (still percent-encoded) after the first
/// `/proxy/`, so encoded '..' or '/' cannot slip through decoding; the segments before it are
/// single route segments and cannot contain it.
pub async fn forward_to(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: &str,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let path = req
        .uri()
        .path()
        .split_once("/proxy/")
        .map(|(_, tail)| tail.to_string())
        .unwrap_or_default();
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
    // A streamed body keeps its declared length: many APIs refuse chunked uploads.
    if let Some(len) = req.headers().get("content-length") {
        if let Ok(v) = reqwest::header::HeaderValue::from_bytes(len.as_bytes()) {
            headers.insert(reqwest::header::CONTENT_LENGTH, v);
        }
    }
    let upstream = state
        .connections
        .proxy(
            id,
            ProxyRequest {
                method,
                path,
                query: req.uri().query().unwrap_or_default().to_string(),
                headers,
                body: request_body(&req, payload),
            },
        )
        .await?;
    Ok(stream_back(upstream))
}

/// No body: an empty, replayable one. Otherwise the caller's body is streamed through as it
/// arrives (actix's payload is not `Send`, so a local task feeds a channel reqwest reads).
fn request_body(req: &HttpRequest, mut payload: web::Payload) -> ProxyBody {
    let has_body = req.headers().contains_key("transfer-encoding")
        || req
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    if !has_body {
        return ProxyBody::Buffered(Vec::new());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(8);
    actix_web::rt::spawn(async move {
        use futures_util::StreamExt;
        while let Some(chunk) = payload.next().await {
            let item = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    ProxyBody::Streaming(reqwest::Body::wrap_stream(futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
    )))
}

/// The upstream answer, streamed, minus hop-by-hop headers and cookies.
fn stream_back(upstream: reqwest::Response) -> HttpResponse {
    let status =
        StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    for (name, value) in upstream.headers() {
        if !DROP_RESPONSE.contains(&name.as_str()) {
            response.append_header((name.as_str(), value.as_bytes()));
        }
    }
    response.streaming(upstream.bytes_stream().map_err(std::io::Error::other))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    method: String,
    path: String,
    #[serde(default)]
    query: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// A string is sent as is; any other JSON value is sent as JSON.
    body: Option<serde_json::Value>,
}

/// `POST /v1/connections/{id}/request`: the proxy for callers that prefer JSON, same rules.
#[utoipa::path(post, path = "/v1/connections/{id}/request", tag = "proxy", request_body = RequestBody,
    params(("id" = String, Path, description = "connection id")),
    responses((status = "default", description = "the provider's answer, streamed"),
        (status = 400, description = "invalid_request or invalid_proxy_path", body = crate::error::ErrorBody),
        (status = 502, description = "upstream_unreachable", body = crate::error::ErrorBody)))]
pub async fn request(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<RequestBody>,
) -> Result<HttpResponse, AppError> {
    let b = body.into_inner();
    let method =
        reqwest::Method::from_bytes(b.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
            AppError::bad_request("invalid_request", "method is not a valid HTTP method")
        })?;
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &b.headers {
        let n = name.to_ascii_lowercase();
        if DROP_REQUEST.contains(&n.as_str()) || n.starts_with("x-forwarded-") {
            continue;
        }
        let (Ok(k), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(n.as_bytes()),
            reqwest::header::HeaderValue::from_str(value),
        ) else {
            return Err(AppError::bad_request(
                "invalid_request",
                format!("header \"{}\" is not valid", name.escape_default()),
            ));
        };
        headers.insert(k, v);
    }
    let payload = match b.body {
        None => Vec::new(),
        Some(serde_json::Value::String(s)) => s.into_bytes(),
        Some(v) => {
            if !headers.contains_key(reqwest::header::CONTENT_TYPE) {
                headers.insert(
                    reqwest::header::CONTENT_TYPE,
                    reqwest::header::HeaderValue::from_static("application/json"),
                );
            }
            serde_json::to_vec(&v).unwrap_or_default()
        }
    };
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&b.query)
        .finish();
    let upstream = state
        .connections
        .proxy(
            &id,
            ProxyRequest {
                method,
                path: b.path.trim_start_matches('/').to_string(),
                query,
                headers,
                body: ProxyBody::Buffered(payload),
            },
        )
        .await?;
    Ok(stream_back(upstream))
}

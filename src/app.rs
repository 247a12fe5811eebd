//! The one route table and middleware stack, used by the server and by tests alike.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{middleware, web, App};

use crate::error::AppError;
use crate::http::{
    admin, assets, audit_log, auth, backup, cors, limits, manual, openapi, pages, plugins, popup,
    proxy, sandbox, scrape, sessions, tenants, vault_keys, webhooks,
};
use crate::http::{branding, dashboard};
use crate::state::AppState;

/// Security headers on every response (S7): no third-party sources, no framing, no referrer,
/// nothing cached unless a handler says otherwise (assets do).
fn security_headers() -> middleware::DefaultHeaders {
    middleware::DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
        ))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
}

pub fn build_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = state.max_body_bytes;
    let sandbox_enabled = state.sandbox.is_some();
    App::new()
        .app_data(web::Data::new(state))
        .app_data(
            web::JsonConfig::default()
                .limit(limit)
                .error_handler(|e, _| {
                    use actix_web::error::JsonPayloadError as J;
                    match e {
                        J::Overflow { limit } | J::OverflowKnownLength { limit, .. } => {
                            AppError::PayloadTooLarge(limit).into()
                        }
                        J::ContentType => AppError::bad_request(
                            "invalid_content_type",
                            "expected Content-Type: application/json",
                        )
                        .into(),
                        other => AppError::bad_request("invalid_json", other.to_string()).into(),
                    }
                }),
        )
        .app_data(web::FormConfig::default().limit(limit))
        .app_data(web::PayloadConfig::default().limit(limit))
        .app_data(
            web::QueryConfig::default()
                .error_handler(|e, _| AppError::bad_request("invalid_query", e.to_string()).into()),
        )
        .app_data(
            web::PathConfig::default()
                .error_handler(|e, _| AppError::bad_request("invalid_path", e.to_string()).into()),
        )
        .wrap(security_headers())
        .wrap(middleware::from_fn(popup::keep_opener))
        .wrap(middleware::from_fn(limits::limit_public))
        .wrap(middleware::from_fn(auth::log_request))
        .route("/healthz", web::get().to(pages::healthz))
        .route("/readyz", web::get().to(pages::healthz))
        .route("/livez", web::get().to(pages::livez))
        .route("/openapi.json", web::get().to(openapi::serve))
        .route("/metrics", web::get().to(scrape::serve))
        .route("/assets/{file}", web::get().to(assets::serve))
        .route("/branding/logo", web::get().to(branding::logo))
        .route("/branding/style.css", web::get().to(branding::stylesheet))
        .configure(dashboard::configure)
        .route("/connect.js", web::get().to(popup::connect_js))
        .route("/connect/opener.js", web::get().to(popup::opener_js))
        .route("/connect/result", web::get().to(pages::result))
        .route("/connect/{token}", web::get().to(pages::connect_page))
        .route(
            "/connect/{token}/authorize",
            web::get().to(pages::authorize),
        )
        .route("/oauth/callback", web::get().to(pages::callback))
        .service(
            web::scope("/v1")
                .wrap(middleware::from_fn(audit_log::record))
                .wrap(middleware::from_fn(auth::require_admin))
                // Outside auth: preflights carry no key.
                .wrap(middleware::from_fn(cors::cors))
                // The hot routes first: dynamic segments are matched by regex, in this order, on
                // every request (and again by `match_pattern` in the log and audit middleware).
                .route("/connections/{id}/token", web::get().to(admin::get_token))
                .route(
                    "/connections/{id}/proxy/{path:.*}",
                    web::route().to(proxy::forward),
                )
                .route("/links", web::post().to(admin::create_link))
                .route("/links/resolve", web::post().to(manual::resolve))
                .route("/audit", web::get().to(audit_log::list))
                .route("/backup", web::get().to(backup::download))
                .route("/vault/data-key", web::get().to(vault_keys::status))
                .route("/vault/data-key/rotate", web::post().to(vault_keys::rotate))
                .route("/tenant-sessions", web::post().to(sessions::create))
                .route("/oauth/callback", web::post().to(manual::callback))
                .route("/plugins", web::get().to(plugins::list_plugins))
                .route("/providers", web::get().to(plugins::list_providers))
                .route("/events", web::get().to(admin::list_events))
                .route("/connections", web::get().to(admin::list_connections))
                .route("/connections", web::post().to(admin::import_connection))
                .route("/connections/{id}", web::get().to(admin::get_connection))
                .route(
                    "/connections/{id}",
                    web::delete().to(admin::delete_connection),
                )
                .route(
                    "/connections/{id}/revoke",
                    web::post().to(admin::revoke_connection),
                )
                .route("/connections/{id}/request", web::post().to(proxy::request))
                .route(
                    "/tenants/{tenant_id}/plugins/{plugin}/connection",
                    web::get().to(tenants::connection),
                )
                .route(
                    "/tenants/{tenant_id}/plugins/{plugin}/token",
                    web::get().to(tenants::token),
                )
                .route(
                    "/tenants/{tenant_id}/plugins/{plugin}/proxy/{path:.*}",
                    web::route().to(tenants::proxy),
                )
                .route(
                    "/webhooks/deliveries",
                    web::get().to(webhooks::list_deliveries),
                )
                .route(
                    "/webhooks/deliveries/{id}/replay",
                    web::post().to(webhooks::replay_delivery),
                )
                .default_service(web::to(admin::not_found)),
        )
        .configure(|cfg| {
            if sandbox_enabled {
                sandbox::configure(cfg);
            }
        })
        .default_service(web::to(admin::not_found))
}

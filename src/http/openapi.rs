//! The OpenAPI 3.1 document of the admin API, generated from the handlers' annotations and served
//! at `/openapi.json`.

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin, audit_log, backup, manual, plugins, proxy, sessions, tenants, vault_keys, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "connect-appliance admin API"),
    paths(
        admin::create_link,
        manual::resolve,
        manual::callback,
        sessions::create,
        audit_log::list,
        backup::download,
        vault_keys::status,
        vault_keys::rotate,
        admin::import_connection,
        admin::list_connections,
        admin::get_connection,
        admin::delete_connection,
        admin::get_token,
        admin::revoke_connection,
        plugins::list_plugins,
        plugins::list_providers,
        admin::list_events,
        proxy::request,
        proxy::forward,
        tenants::connection,
        tenants::token,
        tenants::proxy,
        webhooks::list_deliveries,
        webhooks::replay_delivery,
    ),
    modifiers(&AdminKey),
    security(("admin_key" = [])),
)]
pub struct ApiDoc;

struct AdminKey;

impl Modify for AdminKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

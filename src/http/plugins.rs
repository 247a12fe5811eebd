//! `GET /v1/plugins` (what this appliance is configured with) and `GET /v1/providers` (the
//! built-in catalog a plugin can name).

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::catalog::{catalog, Entry, ParamSpec};
use crate::config::AuthMethod;
use crate::error::ErrorBody;
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginView<'a> {
    id: &'a str,
    display_name: &'a str,
    /// A catalog id, `sandbox` or `custom`.
    provider: &'a str,
    auth: &'a str,
    scopes: &'a [String],
    pkce: bool,
    token_auth_method: &'static str,
    credentials_present: bool,
    revocation_supported: bool,
    /// Template values each link must supply in `params`.
    link_params: Vec<String>,
    /// What stops the plugin from connecting (empty when ready).
    problems: Vec<String>,
    docs_url: Option<&'a str>,
}

fn method_name(m: AuthMethod) -> &'static str {
    match m {
        AuthMethod::ClientSecretBasic => "client_secret_basic",
        AuthMethod::ClientSecretPost => "client_secret_post",
    }
}

#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, description = "`{\"data\": [PluginView]}`", body = Vec<PluginView>), (status = 401, description = "missing or wrong admin key", body = ErrorBody)))]
pub async fn list_plugins(state: web::Data<AppState>) -> HttpResponse {
    let plugins: Vec<PluginView<'_>> = state
        .connections
        .providers()
        .iter()
        .map(|p| PluginView {
            id: &p.id,
            display_name: &p.display_name,
            provider: p.config.provider.as_deref().unwrap_or("custom"),
            auth: if p.is_api_key() { "api_key" } else { "oauth2" },
            scopes: p.config.scopes(),
            pkce: p.config.pkce(),
            token_auth_method: method_name(p.config.token_auth_method()),
            credentials_present: p.has_credentials(),
            revocation_supported: p.config.revocation_url.is_some(),
            link_params: p.config.link_params(),
            problems: p.config.problems(),
            docs_url: p.config.docs_url.as_deref(),
        })
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "data": plugins }))
}

/// One catalog entry, as a plugin would inherit it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderView<'a> {
    id: &'a str,
    name: Option<&'a str>,
    docs_url: Option<&'a str>,
    authorization_url: Option<&'a str>,
    token_url: Option<&'a str>,
    revocation_url: Option<&'a str>,
    userinfo_url: Option<&'a str>,
    api_base_url: Option<&'a str>,
    scopes: &'a [String],
    scopes_required: bool,
    scope_separator: &'a str,
    pkce: bool,
    token_auth_method: Option<&'static str>,
    authorize_params: Option<&'a BTreeMap<String, String>>,
    /// Template values used as `{name}` in the URLs: pattern, description, example.
    #[schema(value_type = Object)]
    params: &'a BTreeMap<String, ParamSpec>,
}

impl<'a> ProviderView<'a> {
    fn new(id: &'a str, e: &'a Entry) -> Self {
        ProviderView {
            id,
            name: e.name.as_deref(),
            docs_url: e.docs_url.as_deref(),
            authorization_url: e.authorization_url.as_deref(),
            token_url: e.token_url.as_deref(),
            revocation_url: e.revocation_url.as_deref(),
            userinfo_url: e.userinfo_url.as_deref(),
            api_base_url: e.api_base_url.as_deref(),
            scopes: e.scopes.as_deref().unwrap_or_default(),
            scopes_required: e.scopes_required.unwrap_or(false),
            scope_separator: e.scope_separator.as_deref().unwrap_or(" "),
            pkce: e.pkce.unwrap_or(true),
            token_auth_method: e.token_auth_method.map(method_name),
            authorize_params: e.authorize_params.as_ref(),
            params: e.param_specs(),
        }
    }
}

#[utoipa::path(get, path = "/v1/providers", tag = "plugins",
    responses((status = 200, description = "`{\"data\": [ProviderView]}`: the built-in catalog", body = Vec<ProviderView>), (status = 401, description = "missing or wrong admin key", body = ErrorBody)))]
pub async fn list_providers() -> HttpResponse {
    let providers: Vec<ProviderView<'_>> = catalog()
        .iter()
        .map(|(id, e)| ProviderView::new(id, e))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "data": providers }))
}

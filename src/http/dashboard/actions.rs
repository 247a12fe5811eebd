//! The dashboard's changes, each a POST form checked by [`Admin::check_form`] before anything
//! else: a test link, revoking a connection, deleting one (after a confirmation page).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::error::DashError;
use super::guard::{Admin, Form};
use super::sign_in::see_other;
use super::views::{query, ConnectionRow};
use super::{render, when, Chrome};
use crate::audit::AuditTarget;
use crate::connections::LinkRequest;
use crate::error::AppError;
use crate::oauth::Params;

#[derive(Template)]
#[template(path = "admin/link.html")]
struct LinkPage<'a> {
    chrome: Chrome<'a>,
    tenant: &'a str,
    plugin: &'a str,
    connect_url: &'a str,
    expires_at: String,
    connection_id: &'a str,
}

/// `POST /admin/links`: `tenant_id`, `plugin`, optional `params` ("name=value, ...").
pub async fn create_link(admin: Admin, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let result = async {
        let form = Form::parse(&body);
        admin.check_form(&req, &form)?;
        let tenant = form.get("tenant_id").trim();
        let plugin = form.get("plugin");
        let created = admin
            .state
            .connections
            .create_link(LinkRequest {
                tenant_id: tenant.to_string(),
                plugin: plugin.to_string(),
                redirect_url: None,
                scopes: None,
                connection_id: None,
                params: parse_params(form.get("params"))?,
                redirect_uri: None,
                shared: false,
            })
            .await?;
        tracing::info!(connection = %created.connection_id, "dashboard created a test link");
        admin.audit(
            "POST /admin/links",
            201,
            AuditTarget::new(&created.connection_id, tenant, plugin),
        );
        render(
            StatusCode::OK,
            &LinkPage {
                chrome: admin.chrome("overview"),
                tenant,
                plugin,
                connect_url: created.connect_url.as_str(),
                expires_at: when(created.expires_at),
                connection_id: &created.connection_id,
            },
        )
    }
    .await;
    admin.respond(result)
}

/// `name=value` pairs separated by commas or new lines.
fn parse_params(text: &str) -> Result<Params, DashError> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(AppError::bad_request(
                "invalid_params",
                "link parameters must be name=value pairs separated by commas",
            )
            .into()),
        })
        .collect()
}

/// `POST /admin/connections/{id}/revoke`.
pub async fn revoke(
    admin: Admin,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let result = async {
        admin.check_form(&req, &Form::parse(&body))?;
        let outcome = admin.state.connections.revoke(&id).await?;
        tracing::info!(connection = %outcome.connection.id, provider_revocation = outcome.provider_revocation, "dashboard revoked a connection");
        let c = &outcome.connection;
        admin.audit(
            "POST /admin/connections/{id}/revoke",
            200,
            AuditTarget::new(&c.id, &c.tenant_id, &c.plugin),
        );
        let q = query(&[("done", "revoked"), ("provider", outcome.provider_revocation)]);
        Ok(see_other(&format!(
            "/admin/connections/{}{q}",
            outcome.connection.id
        )))
    }
    .await;
    admin.respond(result)
}

#[derive(Template)]
#[template(path = "admin/delete.html")]
struct ConfirmDelete<'a> {
    chrome: Chrome<'a>,
    c: ConnectionRow,
}

/// `GET /admin/connections/{id}/delete`: the confirmation step.
pub async fn confirm_delete(admin: Admin, id: web::Path<String>) -> HttpResponse {
    let result = async {
        let c = admin.state.connections.get(&id).await?;
        render(
            StatusCode::OK,
            &ConfirmDelete {
                chrome: admin.chrome("connections"),
                c: ConnectionRow::from(&c),
            },
        )
    }
    .await;
    admin.respond(result)
}

/// `POST /admin/connections/{id}/delete`: best-effort provider revocation, then deletion.
pub async fn delete(
    admin: Admin,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let result = async {
        admin.check_form(&req, &Form::parse(&body))?;
        let c = admin.state.connections.get(&id).await?;
        admin.state.connections.delete(&id).await?;
        tracing::info!(connection = %id, "dashboard deleted a connection");
        admin.audit(
            "POST /admin/connections/{id}/delete",
            204,
            AuditTarget::new(&c.id, &c.tenant_id, &c.plugin),
        );
        Ok(see_other("/admin/connections?done=deleted"))
    }
    .await;
    admin.respond(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_params() {
        let p = parse_params(" shop = acme-store,\nregion=eu ").expect("valid");
        assert_eq!(p.get("shop").map(String::as_str), Some("acme-store"));
        assert_eq!(p.get("region").map(String::as_str), Some("eu"));
        assert!(parse_params("").expect("empty").is_empty());
        assert!(parse_params("shop").is_err());
        assert!(parse_params("=x").is_err());
    }
}

//! Addressing by tenant and plugin ("this user's GitHub"), as a product thinks of it.

use super::flow::{check_tenant_id, LinkCreated, LinkRequest};
use super::model::{Connection, Status};
use super::{ConnectError, Connections};
use crate::vault::ConnectionFilter;

/// What a tenant-addressed call resolves to.
pub enum TenantConnection {
    Connected(Connection),
    /// No usable connection: a fresh link for the end user.
    NeedsConnection(LinkCreated),
}

impl Connections {
    /// The tenant's newest `connected` connection for `plugin`, if any.
    pub async fn usable_connection(
        &self,
        tenant_id: &str,
        plugin: &str,
    ) -> Result<Option<Connection>, ConnectError> {
        check_tenant_id(tenant_id)?;
        self.provider(plugin)?;
        let filter = ConnectionFilter {
            tenant_id: Some(tenant_id.to_string()),
            plugin: Some(plugin.to_string()),
            status: Some(Status::Connected),
        };
        // Ids sort by creation time: the last one is the newest.
        let all = self
            .blocking(move |s| s.list_connections(&filter, None, usize::MAX))
            .await?;
        Ok(all.into_iter().last())
    }

    /// The plugin's team-wide connection, when it is `shared` and one is connected.
    async fn shared_connection(&self, plugin: &str) -> Result<Option<Connection>, ConnectError> {
        if !self.provider(plugin)?.config.shared {
            return Ok(None);
        }
        let filter = ConnectionFilter {
            tenant_id: Some(String::new()),
            plugin: Some(plugin.to_string()),
            status: Some(Status::Connected),
        };
        let all = self
            .blocking(move |s| s.list_connections(&filter, None, usize::MAX))
            .await?;
        Ok(all.into_iter().rfind(|c| c.shared))
    }

    /// The tenant's own usable connection, else the plugin's shared one, else a freshly issued
    /// link for the tenant.
    pub async fn resolve_tenant(
        &self,
        tenant_id: &str,
        plugin: &str,
    ) -> Result<TenantConnection, ConnectError> {
        if let Some(c) = self.usable_connection(tenant_id, plugin).await? {
            return Ok(TenantConnection::Connected(c));
        }
        if let Some(c) = self.shared_connection(plugin).await? {
            return Ok(TenantConnection::Connected(c));
        }
        // A templated provider (a Shopify shop) reconnects to the account it had before.
        let filter = ConnectionFilter {
            tenant_id: Some(tenant_id.to_string()),
            plugin: Some(plugin.to_string()),
            status: None,
        };
        let previous = self
            .blocking(move |s| s.list_connections(&filter, None, usize::MAX))
            .await?;
        let params = previous
            .last()
            .map(|c| c.params.clone())
            .unwrap_or_default();
        let link = self
            .create_link(LinkRequest {
                tenant_id: tenant_id.to_string(),
                plugin: plugin.to_string(),
                redirect_url: None,
                scopes: None,
                connection_id: None,
                params,
                redirect_uri: None,
                shared: false,
            })
            .await?;
        Ok(TenantConnection::NeedsConnection(link))
    }
}

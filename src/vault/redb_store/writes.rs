//! The bodies of the store's writes, each applied inside a transaction it does not own (a group
//! transaction of the writer thread, or a bulk import). Each reads what it depends on before it
//! writes, and may be applied again in a fresh transaction, so it never consumes its input.
//! Only the writer thread runs them: every change to a connection or its credentials is
//! recorded for the read cache (`cache.rs`), which the writer invalidates after each commit.

use redb::{ReadableTable, TableHandle, WriteTransaction};

use super::index::{connection_index_keys, expiry_key, CONNECTION_INDEX, EXPIRY};
use super::{Core, CONNECTIONS, CREDENTIALS, EVENTS, FLOWS, LINKS, REFRESH_DUE, TENANT_INDEX};
use crate::connections::events::{transition_events, Event, Pending};
use crate::connections::model::{now, Connection, Flow, Link, Status, TokenSet};
use crate::vault::{CredentialsUpdate, VaultError};

/// [`CredentialsUpdate`] owning its tokens, so a write can cross to the writer thread.
pub(super) enum Credentials {
    Keep,
    Replace(TokenSet),
    Delete,
}

impl From<CredentialsUpdate<'_>> for Credentials {
    fn from(update: CredentialsUpdate<'_>) -> Self {
        match update {
            CredentialsUpdate::Keep => Credentials::Keep,
            CredentialsUpdate::Replace(t) => Credentials::Replace(t.clone()),
            CredentialsUpdate::Delete => Credentials::Delete,
        }
    }
}

impl Core {
    pub(super) fn create_link(
        &self,
        txn: &WriteTransaction,
        link_hash: &str,
        link: &Link,
        connection: &Connection,
    ) -> Result<(), VaultError> {
        self.insert(txn, LINKS, link_hash, link)?;
        insert_key(txn, EXPIRY, &expiry_key("link", link.expires_at, link_hash))?;
        self.append_events(txn, connection, &[("link.created", None)])?;
        self.write_connection(txn, connection, &Credentials::Keep)
    }

    pub(super) fn put_flow(
        &self,
        txn: &WriteTransaction,
        state_hash: &str,
        flow: &Flow,
    ) -> Result<(), VaultError> {
        self.insert(txn, FLOWS, state_hash, flow)?;
        insert_key(
            txn,
            EXPIRY,
            &expiry_key("flow", flow.expires_at, state_hash),
        )
    }

    /// Removes and returns the flow; `None` (and nothing written) when it is gone.
    pub(super) fn take_flow(
        &self,
        txn: &WriteTransaction,
        state_hash: &str,
    ) -> Result<Option<Flow>, VaultError> {
        let Some(flow) = self.get_in::<Flow>(txn, FLOWS, state_hash)? else {
            return Ok(None);
        };
        remove_key(txn, FLOWS, state_hash)?;
        remove_key(
            txn,
            EXPIRY,
            &expiry_key("flow", flow.expires_at, state_hash),
        )?;
        Ok(Some(flow))
    }

    /// Marks the link used and writes the connection; `false` (and nothing written) when the
    /// link is gone or already used.
    pub(super) fn finish_link(
        &self,
        txn: &WriteTransaction,
        link_hash: &str,
        connection: &Connection,
        credentials: &Credentials,
    ) -> Result<bool, VaultError> {
        let link: Option<Link> = self.get_in(txn, LINKS, link_hash)?;
        let Some(mut link) = link.filter(|l| l.used_at.is_none()) else {
            return Ok(false);
        };
        link.used_at = Some(connection.updated_at);
        self.insert(txn, LINKS, link_hash, &link)?;
        self.write_connection(txn, connection, credentials)?;
        Ok(true)
    }

    /// Writes the connection, its credentials, its index entries and the events its change of
    /// state means.
    pub(super) fn write_connection(
        &self,
        txn: &WriteTransaction,
        connection: &Connection,
        credentials: &Credentials,
    ) -> Result<(), VaultError> {
        self.cache.touch(&connection.id);
        let previous: Option<Connection> = self.get_in(txn, CONNECTIONS, &connection.id)?;
        let old_due = previous.as_ref().and_then(due_key);
        let new_due = due_key(connection);
        if old_due != new_due {
            if let Some(key) = old_due {
                remove_key(txn, REFRESH_DUE, &key)?;
            }
            if let Some(key) = new_due {
                insert_key(txn, REFRESH_DUE, &key)?;
            }
        }
        let reindex = previous.as_ref().is_none_or(|p| {
            (p.plugin.as_str(), p.status) != (connection.plugin.as_str(), connection.status)
        });
        if reindex {
            if let Some(p) = &previous {
                for key in connection_index_keys(p) {
                    remove_key(txn, CONNECTION_INDEX, &key)?;
                }
            }
            for key in connection_index_keys(connection) {
                insert_key(txn, CONNECTION_INDEX, &key)?;
            }
        }
        let events = transition_events(previous.as_ref(), connection);
        self.append_events(txn, connection, &events)?;
        self.insert(txn, CONNECTIONS, &connection.id, connection)?;
        if previous
            .as_ref()
            .is_none_or(|p| p.tenant_id != connection.tenant_id)
        {
            if let Some(p) = &previous {
                remove_key(txn, TENANT_INDEX, &self.tenant_key(&p.tenant_id, &p.id))?;
            }
            let key = self.tenant_key(&connection.tenant_id, &connection.id);
            insert_key(txn, TENANT_INDEX, &key)?;
        }
        match credentials {
            Credentials::Keep => {}
            Credentials::Replace(tokens) => {
                self.insert(txn, CREDENTIALS, &connection.id, tokens)?;
            }
            Credentials::Delete => remove_key(txn, CREDENTIALS, &connection.id)?,
        }
        Ok(())
    }

    /// Deletes the connection, its credentials and index entries; `false` when it did not
    /// exist.
    pub(super) fn delete_connection(
        &self,
        txn: &WriteTransaction,
        id: &str,
    ) -> Result<bool, VaultError> {
        self.cache.touch(id);
        let Some(connection) = self.get_in::<Connection>(txn, CONNECTIONS, id)? else {
            return Ok(false);
        };
        remove_key(
            txn,
            TENANT_INDEX,
            &self.tenant_key(&connection.tenant_id, id),
        )?;
        for key in connection_index_keys(&connection) {
            remove_key(txn, CONNECTION_INDEX, &key)?;
        }
        if let Some(key) = due_key(&connection) {
            remove_key(txn, REFRESH_DUE, &key)?;
        }
        remove_key(txn, CREDENTIALS, id)?;
        remove_key(txn, CONNECTIONS, id)?;
        let mut gone = connection;
        gone.updated_at = now();
        self.append_events(txn, &gone, &[("connection.deleted", None)])?;
        Ok(true)
    }

    /// Appends an event for the stored connection; `false` when it does not exist.
    pub(super) fn append_event(
        &self,
        txn: &WriteTransaction,
        connection_id: &str,
        kind: &'static str,
        error_code: Option<String>,
    ) -> Result<bool, VaultError> {
        let Some(mut connection) = self.get_in::<Connection>(txn, CONNECTIONS, connection_id)?
        else {
            return Ok(false);
        };
        connection.updated_at = now(); // the event's time only
        self.append_events(txn, &connection, &[(kind, error_code)])?;
        Ok(true)
    }

    /// Numbers and appends events for `connection` inside `txn`.
    pub(super) fn append_events(
        &self,
        txn: &WriteTransaction,
        connection: &Connection,
        events: &[Pending],
    ) -> Result<(), VaultError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut table = txn.open_table(EVENTS).map_err(VaultError::storage)?;
        let first = match table.last().map_err(VaultError::storage)? {
            Some((k, _)) => k.value() + 1,
            None => 1,
        };
        for (next, (kind, error_code)) in (first..).zip(events) {
            let event = Event {
                id: next,
                kind: (*kind).to_string(),
                connection_id: connection.id.clone(),
                tenant_id: connection.tenant_id.clone(),
                plugin: connection.plugin.clone(),
                at: connection.updated_at,
                error_code: error_code.clone(),
            };
            let sealed = self.seal(EVENTS.name(), &next.to_string(), &event)?;
            table
                .insert(next, sealed.as_slice())
                .map_err(VaultError::storage)?;
        }
        // Before the commit is fine: the dispatcher reads in a write transaction, which waits
        // for this one to finish.
        self.events_written.notify_one();
        Ok(())
    }
}

/// Inserts a key with an empty value (index tables hold keys only).
pub(super) fn insert_key(
    txn: &WriteTransaction,
    def: redb::TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<(), VaultError> {
    txn.open_table(def)
        .map_err(VaultError::storage)?
        .insert(key, [].as_slice())
        .map_err(VaultError::storage)?;
    Ok(())
}

pub(super) fn remove_key(
    txn: &WriteTransaction,
    def: redb::TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<(), VaultError> {
    txn.open_table(def)
        .map_err(VaultError::storage)?
        .remove(key)
        .map_err(VaultError::storage)?;
    Ok(())
}

pub(super) fn due_key(c: &Connection) -> Option<String> {
    let expires_at = c.expires_at?;
    (c.status == Status::Connected && c.refreshable)
        .then(|| format!("{:016x}/{}", expires_at.max(0), c.id))
}

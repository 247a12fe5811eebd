//! [`AuditStore`] for redb. Records name tenants, so they are sealed like every other value.

use redb::{ReadableTable, TableDefinition, TableError, TableHandle};

use super::{begin_write, RedbStore};
use crate::audit::AuditRecord;
use crate::connections::model::Timestamp;
use crate::vault::audit::AuditStore;
use crate::vault::VaultError;

/// Sequence number → sealed record.
pub(super) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

impl AuditStore for RedbStore {
    fn append_audit(&self, records: &[AuditRecord]) -> Result<(), VaultError> {
        let txn = begin_write(&self.core.db)?;
        {
            let mut table = txn.open_table(AUDIT).map_err(VaultError::storage)?;
            let first = table
                .last()
                .map_err(VaultError::storage)?
                .map_or(1, |(k, _)| k.value() + 1);
            for (id, record) in (first..).zip(records) {
                let mut record = record.clone();
                record.id = id;
                let sealed = self.core.seal(AUDIT.name(), &id.to_string(), &record)?;
                table
                    .insert(id, sealed.as_slice())
                    .map_err(VaultError::storage)?;
            }
        }
        txn.commit().map_err(VaultError::storage)
    }

    fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, VaultError> {
        let txn = self.core.db.begin_read().map_err(VaultError::storage)?;
        let table = match txn.open_table(AUDIT) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(VaultError::storage(e)),
        };
        let mut out = Vec::new();
        for entry in table
            .range(after.saturating_add(1)..)
            .map_err(VaultError::storage)?
            .take(limit)
        {
            let (k, v) = entry.map_err(VaultError::storage)?;
            out.push(
                self.core
                    .open_value(AUDIT.name(), &k.value().to_string(), v.value())?,
            );
        }
        Ok(out)
    }

    fn sweep_audit(&self, before: Timestamp) -> Result<usize, VaultError> {
        self.core.sweep_log(AUDIT, before, |r: &AuditRecord| r.at)
    }
}

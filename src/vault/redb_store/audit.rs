//! [`AuditStore`] for redb. Records name tenants, so they are sealed like every other value.
//!
//! A batch of records is sealed as one row, keyed by the id of its last record: the audit log
//! takes one seal and one insert per batch rather than per record (it records every token
//! fetch, so per-record rows cost a fifth of a busy appliance's CPU). Ids stay per record, and
//! rows written one record each by older versions read the same way.

use redb::{ReadableTable, TableDefinition, TableError, TableHandle};
use serde::{Deserialize, Serialize};

use super::index::LogRow;
use super::{begin_write, RedbStore};
use crate::audit::AuditRecord;
use crate::connections::model::Timestamp;
use crate::vault::audit::AuditStore;
use crate::vault::VaultError;

/// Id of a row's last record → sealed [`Row`].
pub(super) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// Records per row at most, so paging opens rows of bounded size.
const ROW_RECORDS: usize = 256;

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Row {
    Batch(Vec<AuditRecord>),
    /// How versions before batching stored a record.
    One(AuditRecord),
}

impl Row {
    fn into_records(self) -> Vec<AuditRecord> {
        match self {
            Row::Batch(records) => records,
            Row::One(record) => vec![record],
        }
    }
}

impl LogRow for Row {
    fn newest_at(&self) -> i64 {
        match self {
            Row::Batch(records) => records.last().map_or(i64::MIN, |r| r.at),
            Row::One(record) => record.at,
        }
    }

    fn records(&self) -> usize {
        match self {
            Row::Batch(records) => records.len(),
            Row::One(_) => 1,
        }
    }
}

impl AuditStore for RedbStore {
    fn append_audit(&self, records: &[AuditRecord]) -> Result<(), VaultError> {
        let txn = begin_write(&self.core.db)?;
        {
            let mut table = txn.open_table(AUDIT).map_err(VaultError::storage)?;
            let mut next = table
                .last()
                .map_err(VaultError::storage)?
                .map_or(1, |(k, _)| k.value() + 1);
            for chunk in records.chunks(ROW_RECORDS) {
                let batch: Vec<AuditRecord> = chunk
                    .iter()
                    .zip(next..)
                    .map(|(record, id)| AuditRecord {
                        id,
                        ..record.clone()
                    })
                    .collect();
                next += batch.len() as u64;
                let key = next - 1;
                let sealed = self
                    .core
                    .seal(AUDIT.name(), &key.to_string(), &Row::Batch(batch))?;
                table
                    .insert(key, sealed.as_slice())
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
        // The first row whose last id is past `after` holds the first record to return.
        for entry in table
            .range(after.saturating_add(1)..)
            .map_err(VaultError::storage)?
        {
            let (k, v) = entry.map_err(VaultError::storage)?;
            let row: Row = self
                .core
                .open_value(AUDIT.name(), &k.value().to_string(), v.value())?;
            for record in row.into_records().into_iter().filter(|r| r.id > after) {
                if out.len() >= limit {
                    return Ok(out);
                }
                out.push(record);
            }
        }
        Ok(out)
    }

    fn sweep_audit(&self, before: Timestamp) -> Result<usize, VaultError> {
        self.core.sweep_log::<Row>(AUDIT, before)
    }
}

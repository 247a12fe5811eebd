//! Storage of the audit log (see `crate::audit`): sealed records under increasing ids.

use crate::audit::AuditRecord;
use crate::connections::model::Timestamp;

use super::{Store, VaultError};

pub trait AuditStore: Store {
    /// Appends the records (their `id`s are assigned here) in one durable transaction.
    fn append_audit(&self, records: &[AuditRecord]) -> Result<(), VaultError>;

    /// Records with id greater than `after`, oldest first, at most `limit`.
    fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, VaultError>;

    /// Deletes records older than `before`. Returns how many went.
    fn sweep_audit(&self, before: Timestamp) -> Result<usize, VaultError>;
}

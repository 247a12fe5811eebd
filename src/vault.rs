//! The vault: the age identity (key-encryption key), envelope encryption of every stored value,
//! and the typed store behind which the database sits.

pub mod audit;
mod crypto;
mod identity;
pub mod key_rotation;
mod outbox;
mod redb_store;
mod store;

pub use audit::AuditStore;
pub use crypto::{random_bytes, Keyring};
pub use identity::{generate_identity_file, load_identity};
pub use outbox::{Enqueued, WebhookStore};
pub use redb_store::{compact, verify_backup, Opened, RedbStore};
pub use store::{ConnectionFilter, CredentialsUpdate, DataKeys, Reencrypted, Store};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the identity file {path} is missing, but the database {db} already exists; restore the identity from your backup (the appliance never re-initialises existing data)")]
    IdentityMissing { path: String, db: String },
    #[error("cannot read the identity file {path}: {reason}")]
    IdentityUnreadable { path: String, reason: String },
    #[error("the identity does not open this database's keyring (wrong identity file?)")]
    WrongIdentity,
    #[error("the identity file {path} does not open the database {db} (wrong identity file?); use the identity this database was created with")]
    WrongIdentityFile { path: String, db: String },
    #[error("the database {db} is in use by another process (a running appliance?)")]
    InUse { db: String },
    #[error("encryption error: {0}")]
    Crypto(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl VaultError {
    pub(crate) fn corrupt(e: impl std::fmt::Display) -> Self {
        VaultError::Corrupt(e.to_string())
    }
    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        VaultError::Storage(e.to_string())
    }
}

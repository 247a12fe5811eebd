//! Loading and creating the age X25519 identity file (the key-encryption key).

use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;

use super::VaultError;

/// Reads an identity file: `#` comment lines and one `AGE-SECRET-KEY-1...` line.
pub fn load_identity(path: &Path) -> Result<age::x25519::Identity, VaultError> {
    let unreadable = |reason: String| VaultError::IdentityUnreadable {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| unreadable("no AGE-SECRET-KEY-1... line found".into()))?;
    age::x25519::Identity::from_str(line)
        .map_err(|_| unreadable("expected an age X25519 identity (AGE-SECRET-KEY-1...)".into()))
}

/// Writes a fresh identity with mode 0600, refusing to overwrite an existing file.
pub fn generate_identity_file(path: &Path) -> Result<age::x25519::Identity, VaultError> {
    let fail = |e: std::io::Error| VaultError::IdentityUnreadable {
        path: path.display().to_string(),
        reason: format!("cannot create it: {e}"),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let identity = age::x25519::Identity::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let contents = format!(
        "# connect-appliance vault identity (age X25519). Back it up separately from the database:\n# without it the database cannot be decrypted.\n# created: {created}\n# public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    );
    file.write_all(contents.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    Ok(identity)
}

//! `backup`, `restore` and `compact`. A stopped appliance's database is copied directly; a running one is
//! copied through its `GET /v1/backup` (redb lets one process hold the file). Backups stay
//! sealed: they restore only with the same identity file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::remote::Remote;
use crate::config::Config;
use crate::vault::{RedbStore, Store, VaultError};

fn load(config_path: &Path) -> Result<Config, ExitCode> {
    Config::load(config_path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

pub fn backup(config_path: &Path, out: &Path, url: Option<&str>) -> ExitCode {
    let config = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if out.exists() {
        eprintln!(
            "error: {} already exists; backups never overwrite",
            out.display()
        );
        return ExitCode::from(1);
    }
    let result = match RedbStore::open(&config.storage.path, &config.vault.identity_file) {
        Ok((store, _)) => store
            .backup_to(Some(out))
            .map(|_| "copied directly (the appliance is stopped)")
            .map_err(|e| e.to_string()),
        Err(VaultError::InUse { .. }) => via_server(&config, out, url)
            .map(|()| "taken by the running appliance (GET /v1/backup)"),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(how) => {
            let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
            println!(
                "backup written to {} ({size} bytes), {how}; it opens only with the identity {}",
                out.display(),
                config.vault.identity_file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Downloads a snapshot from the running appliance into `out` (via a `.partial` file).
fn via_server(config: &Config, out: &Path, url: Option<&str>) -> Result<(), String> {
    let remote = Remote::resolve(config, url)?;
    let runtime = Remote::runtime()?;
    let partial = out.with_extension("partial");
    let fetched = runtime.block_on(download(&remote.url("/v1/backup"), &remote.key, &partial));
    let finished = fetched.and_then(|()| {
        crate::vault::verify_backup(&partial).map_err(|e| e.to_string())?;
        std::fs::rename(&partial, out).map_err(|e| e.to_string())
    });
    if finished.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    finished
}

async fn download(url: &str, key: &str, to: &Path) -> Result<(), String> {
    let mut response = reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .map_err(|e| format!("cannot reach the running appliance at {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "the running appliance answered HTTP {}",
            response.status()
        ));
    }
    let mut file = std::fs::File::create(to).map_err(|e| e.to_string())?;
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        file.write_all(&chunk).map_err(|e| e.to_string())?;
    }
    file.sync_all().map_err(|e| e.to_string())
}

pub fn compact(config_path: &Path) -> ExitCode {
    let config = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match crate::vault::compact(&config.storage.path, &config.vault.identity_file) {
        Ok((before, after)) => {
            println!(
                "compacted {}: {before} bytes before, {after} after",
                config.storage.path.display()
            );
            ExitCode::SUCCESS
        }
        Err(VaultError::InUse { .. }) => {
            eprintln!("error: the appliance is running; stop it before compacting");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Puts a backup in place of the database (the appliance must be stopped). The backup is
/// checked to open with the configured identity first; the old database is kept beside it.
pub fn restore(config_path: &Path, from: &Path) -> ExitCode {
    let config = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match restore_inner(&config, from) {
        Ok(kept) => {
            println!(
                "restored {} into {}{}",
                from.display(),
                config.storage.path.display(),
                kept.map(|k| format!("; the previous database is kept as {}", k.display()))
                    .unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn restore_inner(config: &Config, from: &Path) -> Result<Option<PathBuf>, String> {
    let db = &config.storage.path;
    if !config.vault.identity_file.exists() {
        return Err(format!(
            "the identity file {} is missing: a backup opens only with the identity it was made under",
            config.vault.identity_file.display()
        ));
    }
    // Checked on a copy: opening may recover it, and the original backup stays untouched.
    let staged = db.with_extension("restoring");
    let _ = std::fs::remove_file(&staged);
    std::fs::copy(from, &staged).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let checked = crate::vault::verify_backup(&staged)
        .and_then(|()| RedbStore::open(&staged, &config.vault.identity_file))
        .and_then(|(store, _)| store.check())
        .map_err(|e| format!("{} is not a usable backup: {e}", from.display()));
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&staged);
        return Err(e);
    }
    let kept = if db.exists() {
        // Refuse while the appliance runs: it would keep writing the file we replace.
        if let Err(VaultError::InUse { .. }) = RedbStore::open(db, &config.vault.identity_file) {
            let _ = std::fs::remove_file(&staged);
            return Err("the appliance is running; stop it before restoring".into());
        }
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let kept = db.with_extension(format!("pre-restore-{stamp}"));
        std::fs::rename(db, &kept).map_err(|e| e.to_string())?;
        Some(kept)
    } else {
        None
    };
    std::fs::rename(&staged, db).map_err(|e| e.to_string())?;
    Ok(kept)
}

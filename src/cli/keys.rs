//! `rotate-key` (re-wrap the keyring under another identity, server stopped) and
//! `rotate-data-key` (through the running appliance, or directly when it is stopped).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::remote::Remote;
use crate::config::Config;
use crate::vault::key_rotation::{KeyRotation, RotationState};
use crate::vault::{generate_identity_file, load_identity, RedbStore, Store, VaultError};

pub fn rotate_key(config_path: &Path, new_identity: &Path) -> ExitCode {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !config.storage.path.exists() {
        eprintln!(
            "error: {}: no database to rotate",
            config.storage.path.display()
        );
        return ExitCode::from(2);
    }
    let store = match RedbStore::open(&config.storage.path, &config.vault.identity_file) {
        Ok((store, _)) => store,
        Err(e) => {
            eprintln!("error: {e} (is the server still running? stop it first)");
            return ExitCode::from(1);
        }
    };
    // The new identity is on disk (and synced) before the database depends on it.
    let identity = if new_identity.exists() {
        load_identity(new_identity)
    } else {
        generate_identity_file(new_identity)
    };
    let identity = match identity {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = store.rewrap_keyring(&identity.to_public()) {
        eprintln!("error: the keyring was not changed: {e}");
        return ExitCode::from(1);
    }
    println!(
        "re-wrapped the vault keys under {}; the old identity {} no longer opens {}",
        new_identity.display(),
        config.vault.identity_file.display(),
        config.storage.path.display()
    );
    println!("next: set [vault] identity_file to it (or move it into place), back it up, and start the server");
    ExitCode::SUCCESS
}

pub fn rotate_data_key(config_path: &Path, url: Option<&str>) -> ExitCode {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match RedbStore::open(&config.storage.path, &config.vault.identity_file) {
        Ok((store, _)) => directly(store),
        Err(VaultError::InUse { .. }) => via_server(&config, url),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok((total, active)) => {
            println!(
                "done: {total} values re-encrypted under data key {active}; the old data keys are retired"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}; run the command again to resume");
            ExitCode::from(1)
        }
    }
}

/// The appliance is stopped: the rotation runs here. Returns the count and the new key.
fn directly(store: RedbStore) -> Result<(u64, u32), String> {
    let keys = store.data_keys();
    if keys.old.is_empty() {
        println!(
            "replacing data key {} (the appliance is stopped)",
            keys.active
        );
    } else {
        println!("resuming the rotation to data key {}", keys.active);
    }
    let rotation = KeyRotation::new(Arc::new(store));
    let mut shown = Instant::now();
    rotation
        .run(&mut |total| {
            if shown.elapsed() >= Duration::from_secs(1) {
                println!("re-encrypted {total} values so far");
                shown = Instant::now();
            }
        })
        .map(|total| (total, rotation.status().active_key))
        .map_err(|e| e.to_string())
}

/// The appliance is running: start (or join) its background rotation and follow it.
fn via_server(config: &Config, url: Option<&str>) -> Result<(u64, u32), String> {
    let remote = Remote::resolve(config, url)?;
    let runtime = Remote::runtime()?;
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let call = |request: reqwest::RequestBuilder| async {
            let response = request.bearer_auth(&remote.key).send().await.map_err(|e| {
                format!("cannot reach the running appliance at {}: {e}", remote.base)
            })?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((status, body))
        };
        let (status, body) = call(client.post(remote.url("/v1/vault/data-key/rotate"))).await?;
        match status.as_u16() {
            202 => println!(
                "the running appliance is rotating to data key {} (it keeps serving)",
                body["active_key"]
            ),
            409 => println!("a rotation is already running in the appliance; following it"),
            _ => {
                return Err(format!(
                    "the running appliance answered HTTP {status}: {body}"
                ))
            }
        }
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (status, body) = call(client.get(remote.url("/v1/vault/data-key"))).await?;
            if !status.is_success() {
                return Err(format!(
                    "the running appliance answered HTTP {status}: {body}"
                ));
            }
            let done = body["reencrypted"].as_u64().unwrap_or(0);
            let state: Option<RotationState> = serde_json::from_value(body["state"].clone()).ok();
            match state {
                Some(RotationState::Running) => {
                    if done != last {
                        println!("re-encrypted {done} values so far");
                        last = done;
                    }
                }
                Some(RotationState::Completed) => {
                    let active = body["active_key"].as_u64().unwrap_or(0);
                    return Ok((done, u32::try_from(active).unwrap_or(0)));
                }
                _ => {
                    let why = body["error"]
                        .as_str()
                        .unwrap_or("the rotation did not finish");
                    return Err(format!("the appliance's rotation stopped: {why}"));
                }
            }
        }
    })
}

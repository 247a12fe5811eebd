//! Command line: `serve` (the default), `check`, `init`, key rotation, backups and `compact`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backup;
mod keys;
mod remote;

use crate::config::Config;
use crate::vault::{generate_identity_file, load_identity, RedbStore};

/// The example config, shipped inside the binary so `init` works air-gapped.
const EXAMPLE_CONFIG: &str = include_str!("../config.example.toml");
const EXAMPLE_ADMIN_KEY: &str = "change-me-to-a-long-random-admin-key";

#[derive(Parser, Debug)]
#[command(
    name = "connect-appliance",
    version,
    about = "Self-hosted Connect Links: hosted OAuth connect pages, callbacks and an encrypted token vault"
)]
pub struct Cli {
    /// Path to the TOML configuration file.
    #[arg(
        long,
        short,
        global = true,
        default_value = "config.toml",
        env = "CONNECT_APPLIANCE_CONFIG"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the admin API, connect pages and callbacks (the default).
    Serve,
    /// Validate the config, identity and database without serving.
    ///
    /// Lists the plugins with what is missing; exits non-zero on any problem.
    Check,
    /// Re-wrap the vault's keys under another age identity (appliance stopped).
    ///
    /// The identity file is created (mode 0600) when it does not exist. One atomic write, no
    /// value re-encrypted; afterwards only the new identity opens the database, so point
    /// `[vault] identity_file` at it.
    RotateKey {
        /// The new identity file (created when absent).
        #[arg(long)]
        new_identity: PathBuf,
    },
    /// Replace the data key and re-encrypt every stored value (no downtime).
    ///
    /// New values use the fresh key at once, stored values are re-encrypted in short steps, then
    /// the old key is dropped. While the appliance runs this goes through its admin API
    /// (`POST /v1/vault/data-key/rotate`; it keeps serving) and follows it to the end; with it
    /// stopped the work is done here. Interrupted, it resumes.
    RotateDataKey {
        /// Base URL of the running appliance (default: `server.public_url`, else the `listen`
        /// address).
        #[arg(long)]
        url: Option<String>,
    },
    /// Write a consistent backup of the database to a new file.
    ///
    /// Works while the appliance runs (through its `GET /v1/backup`, with an admin key from the
    /// config or CONNECT_APPLIANCE_ADMIN_KEY) or is stopped. The backup stays encrypted: it
    /// restores only with the same identity file.
    Backup {
        /// The backup file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Base URL of the running appliance (default: `server.public_url`, else the `listen`
        /// address).
        #[arg(long)]
        url: Option<String>,
    },
    /// Put a backup in place of the database (appliance stopped).
    ///
    /// The backup must open with the configured identity; the previous database is kept beside
    /// it.
    Restore {
        /// The backup file to restore.
        #[arg(long)]
        from: PathBuf,
    },
    /// Shrink the database file (appliance stopped).
    ///
    /// redb reuses freed space but never returns it to the file system by itself, so a file
    /// grown by a burst of writes or deletions stays large until compacted.
    Compact,
    /// Write a ready config and a fresh identity into a directory.
    ///
    /// The config has a random admin key and the sandbox enabled; existing files are never
    /// overwritten.
    Init {
        /// Where to write `config.toml` and `data/vault-identity.txt`.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => crate::server::run(&cli.config),
        Command::Check => check(&cli.config),
        Command::Init { dir } => init(&dir),
        Command::RotateKey { new_identity } => keys::rotate_key(&cli.config, &new_identity),
        Command::RotateDataKey { url } => keys::rotate_data_key(&cli.config, url.as_deref()),
        Command::Backup { out, url } => backup::backup(&cli.config, &out, url.as_deref()),
        Command::Restore { from } => backup::restore(&cli.config, &from),
        Command::Compact => backup::compact(&cli.config),
    }
}

fn check(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("config: {} is valid", path.display());
    let mut ok = true;
    if config.storage.path.exists() {
        match RedbStore::open(&config.storage.path, &config.vault.identity_file) {
            Ok((store, _)) => {
                println!(
                    "vault: {} opens with {}",
                    config.storage.path.display(),
                    config.vault.identity_file.display()
                );
                let keys = crate::vault::Store::data_keys(&store);
                if !keys.old.is_empty() {
                    println!(
                        "vault: a data-key rotation to key {} is unfinished (old keys {:?}); it resumes when the appliance starts",
                        keys.active, keys.old
                    );
                }
            }
            Err(e) => {
                ok = false;
                println!("vault: PROBLEM: {e}");
            }
        }
    } else if config.vault.identity_file.exists() {
        match load_identity(&config.vault.identity_file) {
            Ok(_) => println!("vault: no database yet; it will be created on first start with the existing identity"),
            Err(e) => {
                ok = false;
                println!("vault: PROBLEM: {e}");
            }
        }
    } else {
        println!("vault: no database or identity yet; both will be created on first start");
    }
    for (id, plugin) in &config.plugins {
        let mut notes = Vec::new();
        if !plugin.has_credentials() {
            notes.push("MISSING client secret (set it or its environment variable)".to_string());
        }
        if plugin.scopes_required == Some(true) && plugin.scopes().is_empty() {
            ok = false;
            notes.push(format!(
                "PROBLEM: the provider needs scopes; set plugins.{id}.scopes"
            ));
        }
        let link_params = plugin.link_params();
        if !link_params.is_empty() {
            notes.push(format!(
                "each link must give params: {} (or set plugins.{id}.params)",
                link_params.join(", ")
            ));
        }
        let state = if notes.is_empty() {
            "ready".to_string()
        } else {
            notes.join("; ")
        };
        let provider = plugin.provider.as_deref().unwrap_or("custom");
        println!(
            "plugin {id}: {} ({provider}) — {state}",
            plugin.display_name_or(id)
        );
    }
    for hook in &config.webhooks {
        // The origin only: a receiver's URL may carry its own token.
        let events = hook.events.as_ref().map_or("*".into(), |e| e.join(", "));
        let credentials = if hook.deliver_credentials {
            ", with credentials"
        } else {
            ""
        };
        println!(
            "webhook {}: {} — events {events}{credentials}",
            hook.id,
            hook.url.origin().ascii_serialization()
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn init(dir: &Path) -> ExitCode {
    let config_path = dir.join("config.toml");
    let identity_path = dir.join("data/vault-identity.txt");
    for p in [&config_path, &identity_path] {
        if p.exists() {
            eprintln!(
                "error: {} already exists; refusing to overwrite it",
                p.display()
            );
            return ExitCode::from(2);
        }
    }
    let key = hex::encode(crate::vault::random_bytes::<32>());
    let text = EXAMPLE_CONFIG.replace(EXAMPLE_ADMIN_KEY, &key);
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        use std::io::Write;
        options.open(&config_path)?.write_all(text.as_bytes())
    });
    if let Err(e) = written {
        eprintln!("error: cannot write {}: {e}", config_path.display());
        return ExitCode::from(1);
    }
    if let Err(e) = generate_identity_file(&identity_path) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    println!("wrote {} (admin key: {key})", config_path.display());
    println!(
        "wrote {} — back it up separately: without it the database cannot be read",
        identity_path.display()
    );
    println!(
        "start with: connect-appliance --config {}",
        config_path.display()
    );
    ExitCode::SUCCESS
}

/// Whether the config still uses the example's placeholder admin key.
pub fn uses_example_key(config: &Config) -> bool {
    config.admin.api_keys.iter().any(|k| k == EXAMPLE_ADMIN_KEY)
}

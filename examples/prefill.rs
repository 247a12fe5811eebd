//! Pre-fills the database of a config with connected connections, for `scripts/load.sh`. It
//! writes through the store exactly as `POST /v1/connections` does (sealed rows, blind tenant
//! index, listing and refresh indexes, one `connection.connected` event each), 10,000 per
//! transaction. The server must be stopped.
//!
//! `cargo run --release --example prefill -- --config FILE --connections N [--plugin sandbox]
//! [--ids-out FILE]` (`--ids-out` gets up to 10,000 ids spread over the whole range).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use connect_appliance::config::Config;
use connect_appliance::connections::model::{new_secret_token, now, Connection, TokenSet};
use connect_appliance::vault::RedbStore;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    connections: usize,
    #[arg(long, default_value = "sandbox")]
    plugin: String,
    #[arg(long)]
    ids_out: Option<PathBuf>,
}

const PER_TRANSACTION: usize = 10_000;
const SAMPLE: usize = 10_000;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load(&args.config)?;
    let (store, _) = RedbStore::open(&config.storage.path, &config.vault.identity_file)?;
    let started = Instant::now();
    let every = (args.connections / SAMPLE).max(1);
    let mut sample = Vec::new();
    let mut written = 0;
    while written < args.connections {
        let count = PER_TRANSACTION.min(args.connections - written);
        let batch: Vec<(Connection, TokenSet)> = (written..written + count)
            .map(|i| connected(&format!("tenant-{i}"), &args.plugin))
            .collect();
        store.import_connections(&batch)?;
        for (i, (c, _)) in (written..).zip(&batch) {
            if i % every == 0 && sample.len() < SAMPLE {
                sample.push(c.id.clone());
            }
        }
        written += count;
    }
    drop(store); // closes the database cleanly
    let secs = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&config.storage.path)?.len();
    println!(
        "wrote {written} connections in {secs:.1} s; {} now {bytes} bytes",
        config.storage.path.display()
    );
    if let Some(path) = &args.ids_out {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for id in &sample {
            writeln!(out, "{id}")?;
        }
    }
    Ok(())
}

/// A connection as an import creates it: tokens of typical sizes, valid for 30 days (so a
/// token fetch never refreshes during a run), refreshable.
fn connected(tenant: &str, plugin: &str) -> (Connection, TokenSet) {
    let t = now();
    let tokens = TokenSet {
        access_token: format!("at_{}", new_secret_token()),
        token_type: "Bearer".into(),
        refresh_token: Some(format!("rt_{}", new_secret_token())),
        expires_at: Some(t + 30 * 86_400),
        scopes: vec!["profile".into(), "offline_access".into()],
        id_token: None,
        extra: serde_json::Map::new(),
        obtained_at: t,
    };
    let mut connection = Connection::new_pending(tenant, plugin, tokens.scopes.clone());
    connection.mark_connected(&tokens);
    (connection, tokens)
}

//! Start-up: load config, open the vault, bind, serve until SIGTERM/SIGINT (actix finishes
//! in-flight requests before it stops).

use std::net::TcpListener;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpServer;
use url::Url;

use crate::app::build_app;
use crate::config::{Config, ConfigError, LogFormat};
use crate::connections::{Connections, Settings};
use crate::oauth::{join, Backchannel, OAuthError, Providers};
use crate::sandbox::Sandbox;
use crate::sessions::SessionKey;
use crate::state::AppState;
use crate::vault::{RedbStore, Store, VaultError};
use crate::webhooks::{WebhookError, Webhooks};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error("cannot start webhook delivery: {0}")]
    Webhooks(#[from] WebhookError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

pub fn run(config_path: &Path) -> ExitCode {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Held until the end: dropping it writes out the log lines still queued.
    let _log_writer = init_tracing(config.server.log_format);
    match actix_web::rt::System::new().block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Log lines go to stderr from a writer thread, in batches: a request never waits for a write
/// system call of its access-log line. Nothing is dropped (a full queue makes loggers wait).
fn init_tracing(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("CONNECT_APPLIANCE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // Bounds the queue's memory (lines of ~200 bytes); when full, loggers wait.
        .buffered_lines_limit(4096)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
    guard
}

pub async fn serve(config: Config) -> Result<(), StartError> {
    let (store, opened) = RedbStore::open(&config.storage.path, &config.vault.identity_file)?;
    match opened {
        crate::vault::Opened::Existing => {
            tracing::info!(db = %config.storage.path.display(), "opened the vault")
        }
        crate::vault::Opened::Created { identity_generated } => {
            if identity_generated {
                tracing::warn!(identity = %config.vault.identity_file.display(), "generated a new vault identity; back it up separately from the database");
            }
            tracing::info!(db = %config.storage.path.display(), "created a new vault");
        }
    }
    if crate::cli::uses_example_key(&config) {
        tracing::warn!("the admin key is the example's placeholder; run `connect-appliance init` or set a long random key");
    }
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr).map_err(|source| StartError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let bound = listener.local_addr()?;
    let tls = match &config.server.tls {
        Some(t) => Some(crate::tls::load(t).map_err(|(key, message)| {
            StartError::Config(ConfigError::Invalid {
                file: config.file.display().to_string(),
                key: key.to_string(),
                message,
            })
        })?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = match &config.server.public_url {
        Some(u) => u.clone(),
        None => Url::parse(&format!("{scheme}://{bound}"))
            .map_err(|e| StartError::Io(std::io::Error::other(e)))?,
    };
    if config.sandbox.enabled && !crate::config::is_loopback(&public_url) {
        tracing::warn!("the sandbox test provider is enabled on a non-loopback address; set [sandbox] enabled = false in production");
    }
    let providers = Arc::new(Providers::from_config(&config, &public_url)?);
    let sandbox = config.sandbox.enabled.then(|| {
        Arc::new(Sandbox::new(
            &config,
            join(&public_url, "sandbox").to_string(),
            join(&public_url, "oauth/callback").to_string(),
        ))
    });
    let settings = Settings {
        secure_cookies: public_url.scheme() == "https",
        public_url: public_url.clone(),
        link_ttl_seconds: i64::try_from(config.links.ttl_seconds).unwrap_or(900),
        allowed_redirect_urls: config.links.allowed_redirect_urls.clone(),
        flow_ttl_seconds: 600,
        min_validity_seconds: i64::try_from(config.refresh.min_validity_seconds).unwrap_or(300),
    };
    let store = Arc::new(store);
    let session_secret = store.derived_secret("tenant-sessions v1");
    let webhooks = Webhooks::new(store.clone(), &config.webhooks, store.events_written())?
        .start(i64::from(config.events.retention_days) * 86_400)
        .await?;
    let audit_store: Arc<dyn crate::vault::AuditStore> = store.clone();
    let key_rotation = crate::vault::key_rotation::KeyRotation::new(store.clone());
    let (auditor, audit_writer) = crate::audit::Auditor::start(Arc::clone(&audit_store));
    let connections = Connections::new(
        store,
        providers,
        Backchannel::new(Duration::from_secs(config.server.outbound_timeout_seconds))?,
        settings,
    );
    let state = AppState {
        connections: Arc::new(connections),
        admin_key_hashes: Arc::new(config.admin.key_hashes()),
        sandbox,
        limits: Arc::new(crate::http::limits::Limits::new(&config.limits)),
        max_body_bytes: config.server.max_body_bytes,
        webhooks,
        sessions: Arc::new(SessionKey::new(session_secret)),
        metrics: config.metrics.clone(),
        auditor,
        audit_store: Arc::clone(&audit_store),
        cors: Arc::new(crate::http::cors::Cors::new(
            config.cors.allowed_origins.clone(),
        )),
        branding: Arc::new(crate::http::branding::Branding::new(&config.branding)),
        dashboard: Arc::default(),
        key_rotation: Arc::clone(&key_rotation),
        request_ids: Arc::default(),
    };
    key_rotation.resume_if_unfinished();
    let sweeper = Arc::clone(&state.connections);
    let sweeper_limits = Arc::clone(&state.limits);
    let retention = i64::from(config.events.retention_days) * 86_400;
    let audit_retention = i64::from(config.audit.retention_days) * 86_400;
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            sweeper_limits.sweep();
            if let Err(e) = sweeper.sweep_events(retention).await {
                tracing::warn!(error = %e, "sweeping old events failed");
            }
            let store = Arc::clone(&audit_store);
            let before = crate::connections::model::now() - audit_retention;
            match tokio::task::spawn_blocking(move || store.sweep_audit(before)).await {
                Ok(Err(e)) => tracing::warn!(error = %e, "sweeping old audit records failed"),
                Err(e) => tracing::warn!(error = %e, "the audit sweep panicked"),
                Ok(Ok(_)) => {}
            }
            match sweeper.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "swept expired links and flows"),
                Err(e) => tracing::warn!(error = %e, "sweeping expired links and flows failed"),
            }
        }
    });
    if config.refresh.interval_seconds > 0 {
        let refresher = Arc::clone(&state.connections);
        let refresh = config.refresh.clone();
        actix_web::rt::spawn(async move {
            let mut tick =
                actix_web::rt::time::interval(Duration::from_secs(refresh.interval_seconds));
            let lead = i64::try_from(refresh.lead_seconds).unwrap_or(600);
            loop {
                tick.tick().await;
                match refresher
                    .refresh_due(lead, refresh.concurrency, refresh.per_plugin_concurrency)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(attempted = n, "background refresh pass"),
                    Err(e) => tracing::warn!(error = %e, "background refresh pass failed"),
                }
            }
        });
    }
    let server = HttpServer::new(move || build_app(state.clone())).shutdown_timeout(30);
    let server = match tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls)?,
        None => server.listen(listener)?,
    }
    .run();
    tracing::info!(%public_url, "serving");
    println!("listening on {scheme}://{bound}");
    server.await?;
    // Stops after its current step; the next start resumes it.
    let _ = tokio::task::spawn_blocking(move || key_rotation.stop()).await;
    // Every request handler is gone, so the audit queue is closed: let it write what it holds.
    if tokio::time::timeout(Duration::from_secs(10), audit_writer)
        .await
        .is_err()
    {
        tracing::warn!("the audit log was not flushed within 10 s");
    }
    tracing::info!("stopped");
    Ok(())
}

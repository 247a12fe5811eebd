//! Optional HTTPS with rustls (`[server.tls]`), for installs without a reverse proxy.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// The rustls server config from the PEM files. Errors name the config key at fault.
pub fn load(tls: &TlsConfig) -> Result<rustls::ServerConfig, (&'static str, String)> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            (
                "server.tls.cert_file",
                format!(
                    "expected a readable PEM certificate chain at {} ({e})",
                    tls.cert_file.display()
                ),
            )
        })?;
    if certs.is_empty() {
        return Err((
            "server.tls.cert_file",
            format!("{} holds no PEM certificate", tls.cert_file.display()),
        ));
    }
    // The key's own error text could quote key material: keep only its kind.
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|_| {
        (
            "server.tls.key_file",
            format!(
                "expected a readable PEM private key (PKCS#8, PKCS#1 or SEC1) at {}",
                tls.key_file.display()
            ),
        )
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .map_err(|e| ("server.tls", e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| {
        (
            "server.tls.key_file",
            format!("the key does not match the certificate or is unsupported ({e})"),
        )
    })?;
    // HTTP/1.1 only: the actix build here has no HTTP/2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

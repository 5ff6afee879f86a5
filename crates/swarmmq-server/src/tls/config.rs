//! Reading PEM files and building rustls configurations: TLS 1.3 only, aws-lc-rs as
//! the one crypto provider of the process.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ServerError;

/// Largest PEM file read (a certificate chain or CA bundle is a few KiB; a CA bundle
/// of every public root is about 250 KiB).
const MAX_PEM_BYTES: u64 = 1024 * 1024;
/// Most certificates taken from one file.
const MAX_CERTS: usize = 1000;

fn tls_err(path: &Path, reason: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(format!("{}: {reason}", path.display()))
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, ServerError> {
    let file = std::fs::File::open(path).map_err(|e| tls_err(path, format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| tls_err(path, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(tls_err(
            path,
            format!("is larger than {MAX_PEM_BYTES} bytes; not a PEM file"),
        ));
    }
    Ok(bytes)
}

/// Every certificate in a PEM file, in order; at least one.
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let pem = read_bounded(path)?;
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| tls_err(path, format!("bad PEM: {e}")))?;
        if certs.len() == MAX_CERTS {
            return Err(tls_err(
                path,
                format!("holds more than {MAX_CERTS} certificates"),
            ));
        }
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(tls_err(path, "holds no CERTIFICATE block"));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    let pem = read_bounded(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => tls_err(path, "holds no PRIVATE KEY block"),
        e => tls_err(path, format!("bad PEM: {e}")),
    })
}

/// A root store of every certificate in a CA file.
pub(crate) fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, ServerError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| tls_err(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// A TLS 1.3 server config. With `client_ca`, every client must present a
/// certificate that chains to it (mutual TLS).
pub(crate) fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<ServerConfig, ServerError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ServerError::Tls(format!("TLS 1.3 unavailable: {e}")))?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(load_roots(ca)?, provider)
                .build()
                .map_err(|e| tls_err(ca, format!("cannot verify clients with it: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    let mut config = builder.with_single_cert(chain, key_der).map_err(|e| {
        ServerError::Tls(format!(
            "{} and {} do not form a usable certificate and key: {e}",
            cert.display(),
            key.display()
        ))
    })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A TLS 1.3 client config trusting only `ca`, presenting `cert`/`key`.
pub(crate) fn client_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<ClientConfig, ServerError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ServerError::Tls(format!("TLS 1.3 unavailable: {e}")))?
        .with_root_certificates(load_roots(ca)?);
    builder
        .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| {
            ServerError::Tls(format!(
                "{} and {} do not form a usable certificate and key: {e}",
                cert.display(),
                key.display()
            ))
        })
}

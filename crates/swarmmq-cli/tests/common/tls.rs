//! TLS clients for tests: HTTPS GET, bare handshakes with chosen protocol versions.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, SupportedProtocolVersion};

/// A client config trusting `ca`, speaking only `versions`, with an optional client
/// certificate (cert, key).
pub fn client_config(
    ca: &Path,
    versions: &[&'static SupportedProtocolVersion],
    client_cert: Option<(&Path, &Path)>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots);
    let config = match client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Connects and runs the handshake to completion, then reads briefly: with TLS 1.3 a
/// refused client certificate only shows as an alert after the client's side is done.
pub fn handshake(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<(), String> {
    let name = ServerName::try_from("localhost").unwrap().to_owned();
    let mut conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut sock =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let mut buf = [0u8; 1];
    match tls.read(&mut buf) {
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            Ok(())
        }
        Err(e) => Err(e.to_string()),
        Ok(0) => Err("closed by the node".to_string()),
        Ok(_) => Ok(()),
    }
}

/// HTTP/1.0 GET over TLS 1.3 trusting `ca`; status and body.
pub fn https_get(addr: SocketAddr, path: &str, ca: &Path) -> Option<(u16, String)> {
    let config = client_config(ca, &[&rustls::version::TLS13], None);
    let name = ServerName::try_from("localhost").ok()?.to_owned();
    let mut conn = ClientConnection::new(config, name).ok()?;
    let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    write!(tls, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    // The server may close without close_notify after an HTTP/1.0 answer.
    let _ = tls.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

//! The client side of TLS: TLS 1.3 only, trusting exactly the configured CA.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::ClientError;
use crate::options::TlsOptions;

/// Socket reads under TLS go through a buffer of this size: rustls asks for at most a
/// few KiB at a time, and a syscall per 4 KiB costs more than the decryption.
const SOCKET_READ_BUF: usize = 64 * 1024;

/// A client-side TLS connection.
pub(crate) type ClientTls = TlsStream<BufReader<TcpStream>>;

/// Largest PEM file read (certificates and CA bundles are a few KiB).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

fn tls_err(path: &Path, reason: impl std::fmt::Display) -> ClientError {
    ClientError::Tls(format!("{}: {reason}", path.display()))
}

fn read_pem(path: &Path) -> Result<Vec<u8>, ClientError> {
    let file = std::fs::File::open(path).map_err(|e| tls_err(path, format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| tls_err(path, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(tls_err(
            path,
            format!("is larger than {MAX_PEM_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let pem = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(path, "holds no CERTIFICATE block"));
    }
    Ok(certs)
}

fn config(opts: &TlsOptions) -> Result<ClientConfig, ClientError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(&opts.ca_file)? {
        roots
            .add(cert)
            .map_err(|e| tls_err(&opts.ca_file, format!("not a usable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Tls(format!("TLS 1.3 unavailable: {e}")))?
        .with_root_certificates(roots);
    match (&opts.cert_file, &opts.key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let key_der = PrivateKeyDer::from_pem_slice(&read_pem(key)?)
                .map_err(|e| tls_err(key, format!("no usable private key: {e}")))?;
            builder
                .with_client_auth_cert(certs(cert)?, key_der)
                .map_err(|e| {
                    ClientError::Tls(format!(
                        "{} and {} do not form a usable certificate and key: {e}",
                        cert.display(),
                        key.display()
                    ))
                })
        }
        _ => Err(ClientError::Tls(
            "a client certificate needs both its certificate and its key file".into(),
        )),
    }
}

/// The name the node's certificate must carry: the override, else the host of `addr`
/// (`host:port`, `[v6]:port`); IP addresses are checked as IP SANs.
pub(crate) fn server_name(
    opts: &TlsOptions,
    addr: &str,
) -> Result<ServerName<'static>, ClientError> {
    let host = match &opts.server_name {
        Some(name) => name.as_str(),
        None => match addr.parse::<SocketAddr>() {
            Ok(sa) => return Ok(ServerName::IpAddress(sa.ip().into())),
            Err(_) => addr.rsplit_once(':').map_or(addr, |(h, _)| h),
        },
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|_| ClientError::Tls(format!("{host:?} is not a valid TLS server name")))
}

/// Runs the client handshake over a connected socket.
pub(crate) async fn connect(
    opts: &TlsOptions,
    addr: &str,
    tcp: TcpStream,
) -> Result<ClientTls, ClientError> {
    let name = server_name(opts, addr)?;
    let connector = TlsConnector::from(Arc::new(config(opts)?));
    connector
        .connect(name, BufReader::with_capacity(SOCKET_READ_BUF, tcp))
        .await
        .map_err(|e| ClientError::Connect {
            addr: addr.to_string(),
            reason: format!("TLS handshake failed: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(addr: &str, over: Option<&str>) -> String {
        let mut o = TlsOptions::new("ca.pem");
        o.server_name = over.map(str::to_string);
        match server_name(&o, addr).unwrap() {
            ServerName::DnsName(d) => format!("dns:{}", d.as_ref()),
            ServerName::IpAddress(ip) => format!("ip:{:?}", std::net::IpAddr::from(ip)),
            _ => "other".into(),
        }
    }

    #[test]
    fn server_name_comes_from_the_address_host() {
        assert_eq!(name("localhost:9001", None), "dns:localhost");
        assert_eq!(
            name("broker.example.com:9001", None),
            "dns:broker.example.com"
        );
        assert_eq!(name("127.0.0.1:9001", None), "ip:127.0.0.1");
        assert_eq!(name("[::1]:9001", None), "ip:::1");
        assert_eq!(name("127.0.0.1:9001", Some("node-1")), "dns:node-1");
        assert!(server_name(&TlsOptions::new("x"), "bad name:1").is_err());
    }

    #[test]
    fn unusable_files_fail_with_the_file_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let missing = dir.join("missing.pem");
        let err = config(&TlsOptions::new(&missing)).unwrap_err();
        assert!(matches!(err, ClientError::Tls(_)));
        assert!(
            err.to_string().contains("missing.pem: cannot read"),
            "{err}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = config(&TlsOptions::new(&empty)).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    }
}

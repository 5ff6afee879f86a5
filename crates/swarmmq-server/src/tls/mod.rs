//! TLS for the node: TLS 1.3 only, rustls with the aws-lc-rs provider.
//!
//! Client listener and HTTP serve TLS with the same certificate when one is configured;
//! with a CA, client certificates are required on the client listener (mutual TLS) and
//! the verified subject CN reaches the session. Files are read again on SIGHUP
//! ([`crate::RunningNode::reload_tls`]) and when they change ([`RELOAD_POLL`]).
//!
//! For links between nodes, [`internal_server_config`] and [`internal_client_config`]
//! build the mutual-TLS configurations both ends must use (see `docs/security/tls.md`).
//!
//! This module is not a certificate authority: `swarmmq certs init` (the CLI) makes
//! development certificates.

mod accept;
mod config;
pub(crate) mod https;
mod reload;
mod subject;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use rustls::{ClientConfig, ServerConfig};

pub(crate) use accept::{
    HandshakeFailures, ServerTls, client_identity, handshake, protocol_notice,
};
pub(crate) use reload::{TlsState, watch};

use crate::error::ServerError;

/// How often the certificate, key and CA files are checked for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// The PEM files a node serves TLS with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA bundle client certificates must chain to; `None`: no client certificates.
    pub ca: Option<PathBuf>,
}

/// Server side of a link between nodes: TLS 1.3, the peer must present a certificate
/// issued by the cluster CA `ca`; this node presents `cert`/`key`.
pub fn internal_server_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, ServerError> {
    config::server_config(cert, key, Some(ca), &[INTERNAL_ALPN]).map(Arc::new)
}

/// Client side of a link between nodes: TLS 1.3, trusts only the cluster CA `ca` (no
/// system roots) and presents `cert`/`key` as this node's identity.
pub fn internal_client_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<ClientConfig>, ServerError> {
    let mut config = config::client_config(ca, cert, key)?;
    config.alpn_protocols = vec![INTERNAL_ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// ALPN of node-to-node links: a peer offering another protocol is refused in the
/// handshake, so the link is never confused with HTTPS.
const INTERNAL_ALPN: &[u8] = b"swarmmq-internal/1";

#[cfg(test)]
pub(crate) mod test_pki;

#[cfg(test)]
mod tests {
    use super::test_pki::TestCa;
    use super::*;
    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    /// Serves one connection with `server`; the client side connects with `client`.
    /// Returns (server handshake ok, client got the server's greeting).
    async fn exchange(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> (bool, bool) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_side = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            match TlsAcceptor::from(server).accept(tcp).await {
                Ok(mut tls) => {
                    tls.write_all(b"hello peer").await.unwrap();
                    tls.flush().await.unwrap();
                    let mut rest = Vec::new();
                    let _ = tls.read_to_end(&mut rest).await;
                    true
                }
                Err(_) => false,
            }
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let greeted = match TlsConnector::from(client).connect(name, tcp).await {
            Ok(mut tls) => {
                let mut buf = [0u8; 10];
                let got = tls.read_exact(&mut buf).await.is_ok() && &buf == b"hello peer";
                let _ = tls.shutdown().await;
                got
            }
            Err(_) => false,
        };
        (server_side.await.unwrap(), greeted)
    }

    #[tokio::test]
    async fn internal_links_accept_the_cluster_ca_and_refuse_any_other() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = TestCa::new(dir.path(), "cluster");
        let rogue = TestCa::new(dir.path(), "rogue");
        let (a_cert, a_key) = cluster.leaf("node-a");
        let (b_cert, b_key) = cluster.leaf("node-b");
        let (r_cert, r_key) = rogue.leaf("intruder");
        let server = internal_server_config(&cluster.ca_pem, &a_cert, &a_key).unwrap();

        // A peer with a certificate from the cluster CA is accepted.
        let peer = internal_client_config(&cluster.ca_pem, &b_cert, &b_key).unwrap();
        assert_eq!(exchange(Arc::clone(&server), peer).await, (true, true));

        // A peer whose certificate comes from another CA is refused by the server
        // (it trusts the cluster CA, so only the server's check stops it).
        let intruder = internal_client_config(&cluster.ca_pem, &r_cert, &r_key).unwrap();
        assert_eq!(
            exchange(Arc::clone(&server), intruder).await,
            (false, false)
        );

        // A peer without any certificate is refused.
        let anonymous = ClientConfig::builder_with_provider(config::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(config::load_roots(&cluster.ca_pem).unwrap())
            .with_no_client_auth();
        assert_eq!(
            exchange(Arc::clone(&server), Arc::new(anonymous)).await,
            (false, false)
        );

        // A node does not talk to a "node" whose certificate another CA issued.
        let rogue_server = internal_server_config(&rogue.ca_pem, &r_cert, &r_key).unwrap();
        let peer = internal_client_config(&cluster.ca_pem, &b_cert, &b_key).unwrap();
        assert_eq!(exchange(rogue_server, peer).await, (false, false));
    }

    #[test]
    fn unusable_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path(), "cluster");
        let (cert, key) = ca.leaf("node");
        let (_, other_key) = ca.leaf("other");
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n!!!\n").unwrap();

        let err = internal_server_config(&ca.ca_pem, &missing, &key).unwrap_err();
        assert!(
            err.to_string().contains("missing.pem: cannot read"),
            "{err}"
        );
        let err = internal_server_config(&garbage, &cert, &key).unwrap_err();
        assert!(err.to_string().contains("garbage.pem: bad PEM"), "{err}");
        let err = internal_server_config(&ca.ca_pem, &cert, &cert).unwrap_err();
        assert!(err.to_string().contains("no PRIVATE KEY"), "{err}");
        let err = internal_server_config(&ca.ca_pem, &key, &key).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
        let err = internal_server_config(&ca.ca_pem, &cert, &other_key).unwrap_err();
        assert!(
            err.to_string()
                .contains("do not form a usable certificate and key"),
            "{err}"
        );
        let huge = dir.path().join("huge.pem");
        std::fs::write(&huge, vec![b'a'; 2 * 1024 * 1024]).unwrap();
        let err = internal_client_config(&huge, &cert, &key).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }
}

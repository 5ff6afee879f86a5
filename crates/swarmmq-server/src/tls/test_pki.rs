//! Test certificates: a CA and leaves it signs, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use super::TlsFiles;

pub(crate) struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub ca_pem: PathBuf,
    dir: PathBuf,
}

impl TestCa {
    pub(crate) fn new(dir: &Path, name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_pem, issuer.pem()).unwrap();
        TestCa {
            issuer,
            ca_pem,
            dir: dir.to_path_buf(),
        }
    }

    /// A leaf for `localhost`/127.0.0.1 with subject CN `cn`: (cert.pem, key.pem).
    pub(crate) fn leaf(&self, cn: &str) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.dir.join(format!("{cn}.pem")),
            self.dir.join(format!("{cn}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// Server files for a node: its leaf, and this CA for client certificates if `mutual`.
    pub(crate) fn node_files(&self, mutual: bool) -> TlsFiles {
        let (cert, key) = self.leaf("node");
        TlsFiles {
            cert,
            key,
            ca: mutual.then(|| self.ca_pem.clone()),
        }
    }
}

/// A TLS 1.3 client config trusting `ca`, with an optional client certificate.
pub(crate) fn client(
    ca: &Path,
    cert: Option<&(PathBuf, PathBuf)>,
) -> std::sync::Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(super::config::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(super::config::load_roots(ca).unwrap());
    let config = match cert {
        Some((c, k)) => builder
            .with_client_auth_cert(
                super::config::load_certs(c).unwrap(),
                super::config::load_key(k).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    std::sync::Arc::new(config)
}

/// Runs one handshake through the node's own `handshake` with `acceptor` and a client
/// using `client`, then exchanges one byte each way. `Some(identity)` on success.
pub(crate) async fn accepts(
    acceptor: tokio_rustls::TlsAcceptor,
    client: std::sync::Arc<rustls::ClientConfig>,
) -> Option<Option<String>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.unwrap();
        let failures = super::HandshakeFailures::new("test");
        let mut tls = super::handshake(acceptor, tcp, peer, &failures, b"").await?;
        let identity = super::client_identity(&tls);
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).await.ok()?;
        tls.write_all(&b).await.ok()?;
        tls.flush().await.ok()?;
        Some(identity)
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let client_ok = async {
        let mut tls = tokio_rustls::TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .ok()?;
        tls.write_all(b"x").await.ok()?;
        tls.flush().await.ok()?;
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).await.ok()?;
        Some(())
    }
    .await;
    let identity = server.await.unwrap();
    client_ok.and(identity)
}

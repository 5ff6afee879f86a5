//! How to reach a node: its address and, optionally, TLS.

use std::path::PathBuf;

/// Where and how to connect. A `&str` or `String` converts into options with the
/// address alone (plain TCP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// `host:port`; the host also names the server for TLS unless overridden.
    pub addr: String,
    /// TLS 1.3 to the node; `None`: plain TCP.
    pub tls: Option<TlsOptions>,
}

/// TLS 1.3 settings of a connection. Only the given CA is trusted (no system roots).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM CA bundle the node's certificate must chain to.
    pub ca_file: PathBuf,
    /// PEM client certificate chain, for nodes that require mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Name checked against the node's certificate; default: the host part of `addr`
    /// (a DNS name or an IP address).
    pub server_name: Option<String>,
}

impl ConnectOptions {
    /// Plain TCP to `addr`.
    pub fn new(addr: impl Into<String>) -> Self {
        ConnectOptions {
            addr: addr.into(),
            tls: None,
        }
    }

    /// Connects with TLS.
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }
}

impl TlsOptions {
    /// Trusts the CA in `ca_file`; no client certificate; server name from the address.
    pub fn new(ca_file: impl Into<PathBuf>) -> Self {
        TlsOptions {
            ca_file: ca_file.into(),
            cert_file: None,
            key_file: None,
            server_name: None,
        }
    }

    /// Presents this certificate and key (mutual TLS).
    pub fn with_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.cert_file = Some(cert.into());
        self.key_file = Some(key.into());
        self
    }

    /// Checks the node's certificate against `name` instead of the address's host.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }
}

impl From<&str> for ConnectOptions {
    fn from(addr: &str) -> Self {
        ConnectOptions::new(addr)
    }
}

impl From<String> for ConnectOptions {
    fn from(addr: String) -> Self {
        ConnectOptions::new(addr)
    }
}

impl From<&String> for ConnectOptions {
    fn from(addr: &String) -> Self {
        ConnectOptions::new(addr.as_str())
    }
}

impl From<&ConnectOptions> for ConnectOptions {
    fn from(options: &ConnectOptions) -> Self {
        options.clone()
    }
}

//! How to reach a node: its address, optionally TLS, and, when the node requires one,
//! an API key sent as the first request of every connection and reconnection.

use std::fmt;
use std::path::PathBuf;

/// Where and how to connect. A `&str` or `String` converts into options with the
/// address alone (plain TCP, no key).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// `host:port`; the host also names the server for TLS unless overridden.
    pub addr: String,
    /// TLS 1.3 to the node; `None`: plain TCP.
    pub tls: Option<TlsOptions>,
    /// `smq_<id>_<secret>`: sent in an Authenticate request first on every
    /// (re)connect; a refused key fails the connect. `Debug` does not print it.
    pub api_key: Option<String>,
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
            api_key: None,
        }
    }

    /// Authenticates every (re)connection with this key.
    pub fn with_api_key(mut self, api_key: String) -> Self {
        self.api_key = Some(api_key);
        self
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

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_alone_converts() {
        let o: ConnectOptions = "127.0.0.1:9001".into();
        assert_eq!(o.addr, "127.0.0.1:9001");
        assert_eq!(o.api_key, None);
        let o: ConnectOptions = String::from("h:1").into();
        assert_eq!(o, ConnectOptions::new("h:1"));
    }

    #[test]
    fn debug_never_prints_the_key() {
        let o = ConnectOptions::new("h:1").with_api_key("smq_0123456789ab_topsecret".into());
        let text = format!("{o:?}");
        assert!(!text.contains("topsecret"), "{text}");
        assert!(text.contains("redacted"), "{text}");
    }
}

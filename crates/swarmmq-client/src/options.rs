//! Where and how to connect: the node's address and, when the node requires one, an API
//! key sent as the first request of every connection and reconnection.

use std::fmt;

/// How to reach a node. `"host:port"` converts into options with nothing else set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// `host:port` of the node's client listener.
    pub addr: String,
    /// `smq_<id>_<secret>`: sent in an Authenticate request first on every
    /// (re)connect; a refused key fails the connect. `Debug` does not print it.
    pub api_key: Option<String>,
}

impl ConnectOptions {
    pub fn new(addr: impl Into<String>) -> Self {
        ConnectOptions {
            addr: addr.into(),
            api_key: None,
        }
    }

    pub fn with_api_key(mut self, api_key: String) -> Self {
        self.api_key = Some(api_key);
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

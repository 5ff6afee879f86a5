use swarmmq_types::ErrorCode;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("connection to {addr} lost: {reason}")]
    ConnectionLost { addr: String, reason: String },
    #[error("{code}: {message}")]
    Server { code: ErrorCode, message: String },
    /// The node refused the connection's API key (or the address is blocked for too
    /// many failed attempts).
    #[error("{addr} refused the API key: {code}: {message}")]
    AuthRefused {
        addr: String,
        code: ErrorCode,
        message: String,
    },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("the client is closed")]
    Closed,
    /// An end-to-end key could not be loaded, written or used.
    #[error("e2e key: {0}")]
    E2eKey(String),
    /// A delivered message could not be opened with the consumer's end-to-end key
    /// (`Consumer::pull_opened` reports such messages one by one instead).
    #[error("message at partition {partition} offset {offset}: {reason}")]
    E2e {
        partition: u32,
        offset: u64,
        reason: String,
    },
    /// TLS files or settings are unusable (not retried: they will not fix themselves).
    #[error("TLS: {0}")]
    Tls(String),
}

impl ClientError {
    /// The node's error code, when the node answered with an error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } | ClientError::AuthRefused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether sending the same request again (after reconnecting) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::ConnectionLost { .. }
            | ClientError::Timeout(_) => true,
            ClientError::Server { code, .. } | ClientError::AuthRefused { code, .. } => {
                code.is_retriable()
            }
            _ => false,
        }
    }
}

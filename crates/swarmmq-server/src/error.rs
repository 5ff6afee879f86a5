use std::net::SocketAddr;
use std::path::PathBuf;

use swarmmq_types::ErrorCode;

/// Why a node could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("data dir {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error("storage: {0}")]
    Storage(#[from] swarmmq_storage::StorageError),
    #[error("delivery state: {0}")]
    Delivery(#[from] swarmmq_delivery::DeliveryError),
    /// A TLS file is missing or unusable; the text names the file and the reason.
    #[error("TLS: {0}")]
    Tls(String),
    /// The node cannot take its place in its cluster; the text says why.
    #[error("cluster: {0}")]
    Cluster(String),
}

impl ServerError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ServerError {
        let path = path.into();
        move |source| ServerError::Io { path, source }
    }
}

/// A request's failure as the client sees it: a stable code and one line of text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RequestError {
    pub code: ErrorCode,
    pub message: String,
}

impl RequestError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RequestError {
            code,
            message: message.into(),
        }
    }

    pub fn unknown_destination(name: &str) -> Self {
        RequestError::new(
            ErrorCode::UnknownDestination,
            format!("destination {name:?} does not exist"),
        )
    }

    pub fn shutting_down() -> Self {
        RequestError::new(ErrorCode::ShuttingDown, "the node is shutting down")
    }
}

impl From<swarmmq_storage::StorageError> for RequestError {
    fn from(e: swarmmq_storage::StorageError) -> Self {
        use swarmmq_storage::StorageError as S;
        let code = match &e {
            S::DiskFull { .. } => ErrorCode::DiskFull,
            _ => ErrorCode::StorageFailure,
        };
        RequestError::new(code, e.to_string())
    }
}

impl From<swarmmq_delivery::DeliveryError> for RequestError {
    fn from(e: swarmmq_delivery::DeliveryError) -> Self {
        RequestError::new(ErrorCode::StorageFailure, e.to_string())
    }
}

impl From<swarmmq_types::NameError> for RequestError {
    fn from(e: swarmmq_types::NameError) -> Self {
        RequestError::new(ErrorCode::InvalidName, e.to_string())
    }
}

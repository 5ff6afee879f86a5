//! The chaos harness's one error type.

use std::path::PathBuf;

/// Why a chaos run (or one harness operation) could not go on. A checker violation is
/// not an error: it is a finding, in the [`crate::CheckReport`].
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid chaos configuration: {0}")]
    Config(String),
    #[error("{node} (pid {pid}) exited with {status}; its log is {}", log.display())]
    NodeExited {
        node: String,
        pid: u32,
        status: String,
        log: PathBuf,
    },
    #[error("network namespaces: {0}")]
    Netns(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("master key: {0}")]
    Key(String),
    #[error("client: {0}")]
    Client(#[from] swarmmq_client::ClientError),
    #[error("interrupted")]
    Interrupted,
    #[error("cannot encode the report: {0}")]
    Json(#[from] serde_json::Error),
}

impl ChaosError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> ChaosError {
        ChaosError::Io {
            what: what.into(),
            source,
        }
    }
}

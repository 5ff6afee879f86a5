use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use swarmmq_crypto::CryptoError;

/// Every way the storage layer fails.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system I/O error on `path` during `op`.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// ENOSPC or EDQUOT while writing; the partial write was cut off and the log is
    /// unchanged and still usable.
    #[error("disk full writing {}: {source}", path.display())]
    DiskFull {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An earlier fsync (or a failed rollback) failed; the log refuses every write until
    /// it is reopened, because the kernel may have dropped dirty pages it had accepted.
    #[error("partition log is poisoned by an earlier failure ({op} {}): {source}", path.display())]
    Poisoned {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// Stored data failed validation at a known place; it is never skipped.
    #[error("corrupt log {} at byte {position}{}: {reason}", path.display(), offset.map(|o| format!(" (offset {o})")).unwrap_or_default())]
    Corrupt {
        path: PathBuf,
        position: u64,
        offset: Option<u64>,
        reason: String,
    },
    /// Bytes handed to a decoder are not a valid batch or record.
    #[error("malformed batch: {0}")]
    Malformed(&'static str),
    /// A read asked for an offset the log does not hold.
    #[error("offset {requested} is out of range [{start}, {end}]")]
    OffsetOutOfRange {
        requested: u64,
        start: u64,
        end: u64,
    },
    /// A caller passed something the operation cannot accept.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The log configuration is inconsistent.
    #[error("invalid log config: {0}")]
    InvalidConfig(String),
    /// Encryption or decryption failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        position: u64,
        offset: Option<u64>,
        reason: impl Into<String>,
    ) -> Self {
        StorageError::Corrupt {
            path: path.into(),
            position,
            offset,
            reason: reason.into(),
        }
    }
}

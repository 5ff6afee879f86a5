use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("delivery state {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("delivery state {path} is corrupt at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("delivery state {path} failed to sync earlier and takes no more writes: {reason}")]
    Poisoned { path: PathBuf, reason: String },
}

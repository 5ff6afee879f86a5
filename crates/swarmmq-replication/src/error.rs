use std::io;

use swarmmq_storage::StorageError;

/// Every way replication fails.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The partition log refused or failed an operation.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A Raft side file (`entries.bin`, `vote.json`, `committed.json`) failed.
    #[error("raft side file: {0}")]
    Io(#[from] io::Error),
    /// The Raft side files and the partition log disagree in a way recovery must not
    /// guess about (acknowledged data would be renumbered or dropped).
    #[error("raft index and partition log disagree: {0}")]
    Inconsistent(String),
    /// openraft refused or failed a request.
    #[error("raft: {0}")]
    Raft(String),
    /// This replica does not lead the group; `leader` is the one it knows, if any.
    #[error("not the partition leader (leader: {leader:?})")]
    NotLeader { leader: Option<String> },
}

//! An fsync taken off the log so it can run on another thread while appends go on.
//!
//! With fsync policy `interval`, making the writer wait for each periodic fsync (2-4 ms
//! on virtio disks) delays every publish that arrives meanwhile; that wait was the tail
//! of the publish-to-consume latency. The log hands out a [`PendingSync`] holding its
//! own handle of the active file; the caller runs it anywhere and reports the outcome
//! back with [`crate::PartitionLog::finish_sync`], which poisons the log on failure
//! exactly as [`crate::PartitionLog::sync`] would.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::io::{sync_data, sync_dir};

/// One fsync of a log's active file (and its directory when a segment was created),
/// covering everything appended before it was begun.
#[derive(Debug)]
pub struct PendingSync {
    pub(crate) file: Option<File>,
    pub(crate) file_path: PathBuf,
    pub(crate) dir: Option<PathBuf>,
    /// The log's next offset when the sync began: what it makes durable.
    pub(crate) upto: u64,
}

impl PendingSync {
    /// Runs the fsyncs. Blocking: call it from a thread that may wait on the disk.
    pub fn run(&self) -> io::Result<()> {
        if let Some(f) = &self.file {
            sync_data(f)?;
        }
        if let Some(d) = &self.dir {
            sync_dir(d)?;
        }
        Ok(())
    }

    /// Offsets below this are durable once [`PendingSync::run`] succeeded.
    pub fn upto(&self) -> u64 {
        self.upto
    }

    pub(crate) fn failed_path(&self, file_failed: bool) -> &Path {
        match (&self.dir, file_failed) {
            (Some(d), false) => d,
            _ => &self.file_path,
        }
    }
}

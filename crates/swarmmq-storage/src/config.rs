use std::time::Duration;

use crate::StorageError;
use crate::batch::{HEADER_LEN, MAX_BATCH_LEN};

/// When the owner of a log should call [`crate::PartitionLog::sync`]. The log never
/// fsyncs inside `append` (except to seal a segment it rolls away from); the policy
/// only drives [`crate::PartitionLog::sync_if_due`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every group of appends (group commit): acknowledged means on disk.
    Always,
    /// At most once per interval; a crash may lose up to one interval of acknowledged data.
    Interval(Duration),
    /// Never by policy (the OS writes back when it likes); explicit `sync` still works.
    Never,
}

/// How the active segment's `.log` is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoMode {
    /// `O_DIRECT` writes of whole 4 KiB blocks from an aligned staging buffer, so
    /// appends never allocate page-cache pages. Falls back to [`IoMode::Buffered`]
    /// (with one `info` log line) where the file system does not support it (tmpfs on
    /// older kernels, for example); [`crate::PartitionLog::io_mode`] says which one
    /// is in use.
    #[default]
    Direct,
    /// Plain `writev` appends through the page cache.
    Buffered,
}

/// Largest tail cache a log accepts (per partition).
pub(crate) const MAX_TAIL_CACHE_BYTES: u64 = 16 << 30;

/// Tunables of one partition log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment before the active one would pass this size.
    pub segment_max_bytes: u64,
    /// Roll to a new segment when the active one is older than this.
    pub segment_max_age: Duration,
    /// Delete whole old segments whose newest record is older than this.
    pub retention_max_age: Option<Duration>,
    /// Delete whole old segments while the log is larger than this.
    pub retention_max_bytes: Option<u64>,
    /// One `.index` entry per this many log bytes (0: one per batch).
    pub index_interval_bytes: u32,
    pub fsync: FsyncPolicy,
    /// Largest batch `append` accepts.
    pub max_batch_bytes: u32,
    /// How the active segment is written (default [`IoMode::Direct`]).
    pub io: IoMode,
    /// Bytes of the most recently appended batches kept in memory for readers (0
    /// disables the cache). Readers near the tail are served from it instead of the
    /// file, which with direct writes is not in the page cache.
    pub tail_cache_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_max_bytes: 128 * 1024 * 1024,
            segment_max_age: Duration::from_secs(7 * 24 * 3600),
            retention_max_age: None,
            retention_max_bytes: None,
            index_interval_bytes: 4096,
            fsync: FsyncPolicy::Always,
            max_batch_bytes: 16 * 1024 * 1024,
            io: IoMode::Direct,
            tail_cache_bytes: 32 * 1024 * 1024,
        }
    }
}

impl LogConfig {
    /// Checks the bounds the on-disk format depends on: index positions are u32, so a
    /// segment (which may overshoot its max by one batch) must stay below 4 GiB.
    pub fn validate(&self) -> Result<(), StorageError> {
        let min_batch = (HEADER_LEN + 21) as u32;
        if self.max_batch_bytes < min_batch || self.max_batch_bytes > MAX_BATCH_LEN {
            return Err(StorageError::InvalidConfig(format!(
                "max_batch_bytes must be {min_batch}..={MAX_BATCH_LEN}, got {}",
                self.max_batch_bytes
            )));
        }
        if self.segment_max_bytes == 0
            || self
                .segment_max_bytes
                .saturating_add(u64::from(self.max_batch_bytes))
                > u64::from(u32::MAX)
        {
            return Err(StorageError::InvalidConfig(format!(
                "segment_max_bytes must be 1..={}, got {}",
                u64::from(u32::MAX) - u64::from(self.max_batch_bytes),
                self.segment_max_bytes
            )));
        }
        if self.segment_max_age.is_zero() {
            return Err(StorageError::InvalidConfig(
                "segment_max_age must be positive".into(),
            ));
        }
        if self.tail_cache_bytes > MAX_TAIL_CACHE_BYTES {
            return Err(StorageError::InvalidConfig(format!(
                "tail_cache_bytes must be at most {MAX_TAIL_CACHE_BYTES}, got {}",
                self.tail_cache_bytes
            )));
        }
        if let FsyncPolicy::Interval(d) = self.fsync
            && d.is_zero()
        {
            return Err(StorageError::InvalidConfig(
                "fsync interval must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (found by feeding a node `storage.segment_size: 16EiB - 1`): the
    /// check itself overflowed `segment_max_bytes + max_batch_bytes` and panicked in
    /// the partition's recovery task instead of refusing the config.
    #[test]
    fn a_segment_size_near_u64_max_is_refused_not_overflowed() {
        for segment_max_bytes in [u64::MAX, u64::MAX - 1, u64::from(u32::MAX)] {
            let c = LogConfig {
                segment_max_bytes,
                ..LogConfig::default()
            };
            assert!(matches!(c.validate(), Err(StorageError::InvalidConfig(_))));
        }
        let most = u64::from(u32::MAX) - u64::from(LogConfig::default().max_batch_bytes);
        let c = LogConfig {
            segment_max_bytes: most,
            ..LogConfig::default()
        };
        assert!(c.validate().is_ok());
    }
}

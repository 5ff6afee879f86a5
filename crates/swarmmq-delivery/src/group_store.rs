//! Durable delivery state of one consumer group on one destination.
//!
//! Two files in the group's directory: `<destination>.acks`, an append-only log, and
//! `<destination>.snap`, the whole state at some point. Replay = snapshot + log. When
//! the log grows past a bound the owner writes a new snapshot and the log starts over,
//! so restart time and disk use stay bounded.
//!
//! Log record: `len u32 LE | crc32c(payload) u32 LE | payload`, payload =
//! `kind u8 | count u32 | count × entry`, all LE, where by kind:
//! - 1 = acknowledged: entry `(partition u32, start u64, end u64)`;
//! - 2 = attempts granted: entry `(partition u32, start u64, end u64, attempt u32)`;
//! - 3 = settled (dead-lettered or expired; done like an ack): entry as kind 1;
//! - 4 = committed offset (ordered mode): entry `(partition u32, next_offset u64)`.
//!
//! Replay: kinds 1 and 3 make offsets done (and forget their attempts); kind 2 raises
//! the attempts of offsets not done to at least `attempt`; kind 4 keeps the latest value
//! per partition.
//!
//! Snapshot v2: `b"SQSNAP02" | count u32 | count × (partition u32, floor u64,
//! has_committed u8, committed u64, n u32, n × (start u64, end u64), m u32,
//! m × (start u64, end u64, attempts u32)) | crc32c(all before) u32`, all LE.
//! Snapshot v1 (still read): `b"SQSNAP01" | count u32 | count × (partition u32,
//! floor u64, n u32, n × (start u64, end u64)) | crc32c(all before) u32`.

mod codec;
#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::DeliveryError;
use crate::range_map::{RangeMap, RangeSet};

const RECORD_HEADER: usize = 8;
const KIND_ACKS: u8 = 1;
const KIND_ATTEMPTS: u8 = 2;
const KIND_SETTLED: u8 = 3;
const KIND_COMMITTED: u8 = 4;
const RANGE_ENTRY: usize = 4 + 8 + 8;
const ATTEMPT_ENTRY: usize = 4 + 8 + 8 + 4;
const COMMITTED_ENTRY: usize = 4 + 8;
/// Bounds what replay reads into memory per record; the owner snapshots long before this.
const MAX_RECORD: usize = 16 * 1024 * 1024;
/// Bounds the snapshot read into memory at open.
const MAX_SNAPSHOT: u64 = 1024 * 1024 * 1024;

/// What the log keeps of one partition: everything below `floor` and the `acked`
/// ranges are done (acknowledged or settled); `attempts` counts deliveries of offsets
/// not done; `committed` is the ordered-mode position, if one was stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionDurable {
    pub partition: u32,
    pub floor: u64,
    pub acked: RangeSet,
    pub attempts: RangeMap<u32>,
    pub committed: Option<u64>,
}

pub struct GroupStore {
    dir: PathBuf,
    log_path: PathBuf,
    snap_path: PathBuf,
    log: File,
    log_bytes: u64,
    poisoned: Option<String>,
    scratch: Vec<u8>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DeliveryError + '_ {
    move |source| DeliveryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl GroupStore {
    /// Opens (creating if needed) the store for `stem` (the destination name) in `dir`,
    /// and returns what was durable, one entry per partition ever mentioned, in
    /// partition order. A torn last record is cut off and logged; a damaged record with
    /// data after it is reported as corruption, never skipped.
    pub fn open(
        dir: &Path,
        stem: &str,
    ) -> Result<(GroupStore, Vec<PartitionDurable>), DeliveryError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let log_path = dir.join(format!("{stem}.acks"));
        let snap_path = dir.join(format!("{stem}.snap"));
        let mut replay = codec::Replay::default();
        if snap_path.exists() {
            let len = fs::metadata(&snap_path).map_err(io_err(&snap_path))?.len();
            if len > MAX_SNAPSHOT {
                return Err(codec::corrupt(
                    &snap_path,
                    0,
                    "snapshot larger than the limit",
                ));
            }
            let bytes = fs::read(&snap_path).map_err(io_err(&snap_path))?;
            codec::load_snapshot(&snap_path, &bytes, &mut replay)?;
        }
        let mut log = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes).map_err(io_err(&log_path))?;
        let valid = codec::replay_log(&log_path, &bytes, &mut replay)?;
        if valid < bytes.len() as u64 {
            tracing::warn!(
                path = %log_path.display(),
                kept_bytes = valid,
                dropped_bytes = bytes.len() as u64 - valid,
                "ack log had a torn tail; truncated it"
            );
            log.set_len(valid).map_err(io_err(&log_path))?;
            log.sync_data().map_err(io_err(&log_path))?;
        }
        Ok((
            GroupStore {
                dir: dir.to_path_buf(),
                log_path,
                snap_path,
                log,
                log_bytes: valid,
                poisoned: None,
                scratch: Vec::new(),
            },
            replay.into_durables(),
        ))
    }

    /// Bytes in the log since the last snapshot.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    fn check_poison(&self) -> Result<(), DeliveryError> {
        match &self.poisoned {
            Some(reason) => Err(DeliveryError::Poisoned {
                path: self.log_path.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Appends acknowledged ranges `(partition, start, end)` as one record (one write, so
    /// a crash keeps all of them or none). Survives a process kill at once; survives power
    /// loss after [`GroupStore::sync`].
    pub fn append_acks(&mut self, acks: &[(u32, u64, u64)]) -> Result<(), DeliveryError> {
        self.append_ranges(KIND_ACKS, acks)
    }

    /// Appends settled ranges `(partition, start, end)` (dead-lettered or expired and
    /// handled by the node): done, like acks.
    pub fn append_settled(&mut self, settled: &[(u32, u64, u64)]) -> Result<(), DeliveryError> {
        self.append_ranges(KIND_SETTLED, settled)
    }

    fn append_ranges(&mut self, kind: u8, ranges: &[(u32, u64, u64)]) -> Result<(), DeliveryError> {
        self.append_record(kind, ranges, RANGE_ENTRY, |buf, (p, s, e)| {
            buf.extend_from_slice(&p.to_le_bytes());
            buf.extend_from_slice(&s.to_le_bytes());
            buf.extend_from_slice(&e.to_le_bytes());
        })
    }

    /// Appends the attempts of granted ranges `(partition, start, end, attempt)`; the
    /// node writes one record per poll's grants before answering the pull, so attempt
    /// counts survive a crash.
    pub fn append_attempts(
        &mut self,
        grants: &[(u32, u64, u64, u32)],
    ) -> Result<(), DeliveryError> {
        self.append_record(KIND_ATTEMPTS, grants, ATTEMPT_ENTRY, |buf, (p, s, e, a)| {
            buf.extend_from_slice(&p.to_le_bytes());
            buf.extend_from_slice(&s.to_le_bytes());
            buf.extend_from_slice(&e.to_le_bytes());
            buf.extend_from_slice(&a.to_le_bytes());
        })
    }

    /// Appends committed ordered-mode positions `(partition, next_offset)`; replay keeps
    /// the latest per partition.
    pub fn append_committed(&mut self, commits: &[(u32, u64)]) -> Result<(), DeliveryError> {
        self.append_record(
            KIND_COMMITTED,
            commits,
            COMMITTED_ENTRY,
            |buf, (p, next)| {
                buf.extend_from_slice(&p.to_le_bytes());
                buf.extend_from_slice(&next.to_le_bytes());
            },
        )
    }

    /// Writes `entries` as records of `kind` in one write. More entries than one record
    /// may hold (never in practice) become several records; every kind replays correctly
    /// from any prefix of them.
    fn append_record<T>(
        &mut self,
        kind: u8,
        entries: &[T],
        entry_len: usize,
        encode: impl Fn(&mut Vec<u8>, &T),
    ) -> Result<(), DeliveryError> {
        self.check_poison()?;
        if entries.is_empty() {
            return Ok(());
        }
        let per_record = (MAX_RECORD - 5) / entry_len;
        let buf = &mut self.scratch;
        buf.clear();
        for chunk in entries.chunks(per_record) {
            let payload_len = 5 + chunk.len() * entry_len;
            let at = buf.len();
            buf.reserve(RECORD_HEADER + payload_len);
            buf.extend_from_slice(&(payload_len as u32).to_le_bytes());
            buf.extend_from_slice(&[0; 4]);
            buf.push(kind);
            buf.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
            for entry in chunk {
                encode(buf, entry);
            }
            let crc = crc32c::crc32c(&buf[at + RECORD_HEADER..]);
            buf[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        }
        if let Err(e) = self.log.write_all(buf) {
            // A partial record would be cut as a torn tail on replay, but later records
            // would then sit behind it; cut it now so the log stays well-formed.
            let _ = self.log.set_len(self.log_bytes);
            return Err(io_err(&self.log_path)(e));
        }
        self.log_bytes += buf.len() as u64;
        Ok(())
    }

    /// fsyncs the log. A failure poisons the store: the same fd is never retried.
    pub fn sync(&mut self) -> Result<(), DeliveryError> {
        self.check_poison()?;
        if let Err(e) = self.log.sync_data() {
            self.poisoned = Some(e.to_string());
            return Err(io_err(&self.log_path)(e));
        }
        Ok(())
    }

    /// A handle that fsyncs the log without holding the store, so appends can go on
    /// while an fsync runs (group commit of acknowledgements).
    pub fn syncer(&self) -> Result<StoreSyncer, DeliveryError> {
        Ok(StoreSyncer {
            file: self.log.try_clone().map_err(io_err(&self.log_path))?,
            path: self.log_path.clone(),
        })
    }

    /// Replaces snapshot and log with the given full state (v2 format): snapshot to a
    /// temp file, fsync, rename, fsync the directory, then empty the log.
    pub fn write_snapshot(&mut self, parts: &[PartitionDurable]) -> Result<(), DeliveryError> {
        self.check_poison()?;
        let buf = codec::encode_snapshot(parts);
        let tmp = self.snap_path.with_extension("snap.tmp");
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&buf).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &self.snap_path).map_err(io_err(&self.snap_path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        // Only now may the log go. A crash before this replays old records over the new
        // snapshot: acks and settles are idempotent and attempts only rise to values the
        // snapshot already holds, but an old commit record would put a committed offset
        // back to an earlier value: redelivery, never loss.
        self.log.set_len(0).map_err(io_err(&self.log_path))?;
        if let Err(e) = self.log.sync_data() {
            self.poisoned = Some(e.to_string());
            return Err(io_err(&self.log_path)(e));
        }
        self.log_bytes = 0;
        Ok(())
    }
}

/// fsyncs a [`GroupStore`]'s log from another thread.
pub struct StoreSyncer {
    file: File,
    path: PathBuf,
}

impl StoreSyncer {
    /// Makes every record appended before this call durable. The caller must treat a
    /// failure as permanent (never retry an fsync on the same file).
    pub fn sync(&self) -> Result<(), DeliveryError> {
        self.file.sync_data().map_err(io_err(&self.path))
    }
}

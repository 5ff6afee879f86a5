use std::io::{Error as IoError, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use swarmmq_types::now_ms;

use crate::StorageError;
use crate::batch::{Batch, EncodedBatch};
use crate::config::{FsyncPolicy, IoMode, LogConfig};
use crate::index::{INDEX_ENTRY_LEN, IndexCursor, TIME_ENTRY_LEN, index_entry, time_entry};
use crate::io::{self, SegmentWriter};
use crate::pending_sync::PendingSync;
use crate::reader::{LogReader, Shared};
use crate::recovery::{RecoveryReport, recover};
use crate::retention::RetentionReport;
use crate::segment::{Extent, Segment};

/// What an append assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Base offset of each appended batch, in order.
    pub base_offsets: Vec<u64>,
    /// The offset the next record will get.
    pub next_offset: u64,
}

/// One batch about to be written, whichever path it came from.
struct Pending<'a> {
    bytes: &'a [u8],
    /// The same bytes, shared, for the tail cache.
    shared: Bytes,
    base_offset: u64,
    record_count: u32,
    max_timestamp: i64,
    term: u64,
}

/// Writer state to return to when an append fails half way (disk full).
struct Checkpoint {
    segments: usize,
    extent: Extent,
    cursor: IndexCursor,
    active_created_ms: i64,
    next_offset: u64,
    last_term: u64,
    dirty: bool,
}

/// Why the log refuses writes.
#[derive(Clone, Debug)]
struct Poison {
    op: &'static str,
    path: PathBuf,
    cause: Arc<IoError>,
}

/// The single writer of one partition's log. Owned by one task (`&mut self`); hand
/// [`LogReader`]s to everyone else.
#[derive(Debug)]
pub struct PartitionLog {
    config: LogConfig,
    shared: Arc<Shared>,
    segments: Vec<Arc<Segment>>,
    /// Writes the active segment's log (buffered or direct).
    writer: SegmentWriter,
    cursor: IndexCursor,
    active_created_ms: i64,
    next_offset: u64,
    last_term: u64,
    synced_offset: u64,
    /// Appended bytes not yet covered by an fsync.
    dirty: bool,
    /// A segment file was created since the directory was last fsynced.
    dir_dirty: bool,
    last_sync: Instant,
    poison: Option<Poison>,
    index_buf: Vec<u8>,
    time_buf: Vec<u8>,
    #[cfg(any(test, feature = "fault-injection"))]
    fail_next_sync: bool,
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, recovering the tail: see
    /// [`RecoveryReport`] and `docs/storage.md` for the rules.
    pub fn open(
        dir: &Path,
        config: LogConfig,
    ) -> Result<(PartitionLog, RecoveryReport), StorageError> {
        config.validate()?;
        let rec = recover(dir, &config)?;
        let next_offset = rec.segments.last().map_or(0, |s| s.next_offset());
        let active = rec
            .segments
            .last()
            .ok_or_else(|| StorageError::InvalidArgument("log has no segment".into()))?;
        let writer = SegmentWriter::open(&active.log, &active.log_path, active.size(), config.io)?;
        let shared = Arc::new(Shared::new(
            dir.to_path_buf(),
            rec.segments.clone(),
            config.tail_cache_bytes,
        ));
        let log = PartitionLog {
            config,
            shared,
            segments: rec.segments,
            writer,
            cursor: rec.cursor,
            active_created_ms: rec.active_created_ms,
            next_offset,
            last_term: rec.last_term,
            synced_offset: next_offset,
            dirty: false,
            dir_dirty: false,
            last_sync: Instant::now(),
            poison: None,
            index_buf: Vec::new(),
            time_buf: Vec::new(),
            #[cfg(any(test, feature = "fault-injection"))]
            fail_next_sync: false,
        };
        Ok((log, rec.report))
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Offset the next appended record gets.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// First offset still in the log (retention moves it up).
    pub fn start_offset(&self) -> u64 {
        self.segments.first().map_or(0, |s| s.base_offset)
    }

    /// Every offset below this is covered by a successful fsync.
    pub fn synced_offset(&self) -> u64 {
        self.synced_offset
    }

    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size()).sum()
    }

    /// Raft term of the last batch (0 for an empty log).
    pub fn last_term(&self) -> u64 {
        self.last_term
    }

    /// Number of segments (the active one included).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// How the active segment is written: [`LogConfig::io`], unless direct I/O fell
    /// back to buffered because the file system does not support it.
    pub fn io_mode(&self) -> IoMode {
        self.writer.mode()
    }

    /// Bytes and batches held by the tail cache now (bounded by
    /// [`LogConfig::tail_cache_bytes`]).
    pub fn tail_cache_usage(&self) -> (u64, usize) {
        self.shared.cache.usage()
    }

    /// Whether an earlier failure made the log refuse writes.
    pub fn is_poisoned(&self) -> bool {
        self.poison.is_some()
    }

    pub fn reader(&self) -> LogReader {
        LogReader::new(self.shared.clone())
    }

    fn check_poison(&self) -> Result<(), StorageError> {
        match &self.poison {
            Some(p) => Err(StorageError::Poisoned {
                op: p.op,
                path: p.path.clone(),
                source: p.cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records a fatal failure; every later write returns it.
    fn poison(&mut self, op: &'static str, path: &Path, cause: IoError) -> StorageError {
        tracing::error!(path = %path.display(), op, error = %cause, "partition log poisoned");
        let cause = Arc::new(cause);
        self.poison = Some(Poison {
            op,
            path: path.to_path_buf(),
            cause: cause.clone(),
        });
        StorageError::Poisoned {
            op,
            path: path.to_path_buf(),
            source: cause,
        }
    }

    /// Poisons with a storage error that is not a raw io::Error.
    fn poison_with(&mut self, op: &'static str, path: &Path, err: &StorageError) -> StorageError {
        self.poison(op, path, IoError::other(err.to_string()))
    }

    fn active(&self) -> Result<&Arc<Segment>, StorageError> {
        self.segments
            .last()
            .ok_or_else(|| StorageError::InvalidArgument("log has no segment".into()))
    }

    /// Appends the batches in order with dense offsets under `term`, stamping base
    /// offset, term and CRC into each. One `writev` per segment touched; no fsync (see
    /// [`PartitionLog::sync`]), except that rolling away from a full segment makes that
    /// segment durable first. On [`StorageError::DiskFull`] nothing of this call stays.
    pub fn append(
        &mut self,
        batches: &mut [EncodedBatch],
        term: u64,
    ) -> Result<AppendOutcome, StorageError> {
        self.check_poison()?;
        let mut base_offsets = Vec::with_capacity(batches.len());
        let mut next = self.next_offset;
        for b in batches.iter() {
            if b.record_count() == 0 {
                return Err(StorageError::InvalidArgument("empty batch".into()));
            }
            if b.len() > self.config.max_batch_bytes as usize {
                return Err(StorageError::InvalidArgument(format!(
                    "batch of {} bytes is above max_batch_bytes {}",
                    b.len(),
                    self.config.max_batch_bytes
                )));
            }
            base_offsets.push(next);
            next = next
                .checked_add(u64::from(b.record_count()))
                .ok_or_else(|| StorageError::InvalidArgument("offsets overflow".into()))?;
        }
        if term < self.last_term {
            return Err(StorageError::InvalidArgument(format!(
                "term {term} is below the log's last term {}",
                self.last_term
            )));
        }
        for (b, &base) in batches.iter_mut().zip(&base_offsets) {
            b.stamp(base, term);
        }
        let pending: Vec<Pending<'_>> = batches
            .iter()
            .map(|b| Pending {
                bytes: b.as_bytes(),
                shared: b.shared_bytes(),
                base_offset: b.base_offset(),
                record_count: b.record_count(),
                max_timestamp: b.max_timestamp_ms(),
                term,
            })
            .collect();
        self.write_batches(&pending)?;
        Ok(AppendOutcome {
            base_offsets,
            next_offset: self.next_offset,
        })
    }

    /// Appends a batch that already carries its offsets, term and CRC (a Raft follower
    /// copying the leader's log). Its base offset must be [`PartitionLog::next_offset`].
    ///
    /// The tail cache keeps the batch's `Bytes` as given: if they are a slice of a larger
    /// buffer (a network frame, a read chunk), the whole buffer stays in memory while
    /// the batch is cached. Pass batches that own their bytes where that matters.
    pub fn append_raw(&mut self, batch: &Batch) -> Result<AppendOutcome, StorageError> {
        self.check_poison()?;
        if batch.base_offset() != self.next_offset {
            return Err(StorageError::InvalidArgument(format!(
                "batch base offset {} is not the log's next offset {}",
                batch.base_offset(),
                self.next_offset
            )));
        }
        if batch.len() > self.config.max_batch_bytes as usize {
            return Err(StorageError::InvalidArgument(format!(
                "batch of {} bytes is above max_batch_bytes {}",
                batch.len(),
                self.config.max_batch_bytes
            )));
        }
        if batch.term() < self.last_term {
            return Err(StorageError::InvalidArgument(format!(
                "term {} is below the log's last term {}",
                batch.term(),
                self.last_term
            )));
        }
        let pending = [Pending {
            bytes: batch.as_bytes(),
            shared: batch.as_bytes().clone(),
            base_offset: batch.base_offset(),
            record_count: batch.record_count(),
            max_timestamp: batch.max_timestamp_ms(),
            term: batch.term(),
        }];
        self.write_batches(&pending)?;
        Ok(AppendOutcome {
            base_offsets: vec![batch.base_offset()],
            next_offset: self.next_offset,
        })
    }

    fn checkpoint(&self) -> Result<Checkpoint, StorageError> {
        Ok(Checkpoint {
            segments: self.segments.len(),
            extent: self.active()?.extent(),
            cursor: self.cursor.clone(),
            active_created_ms: self.active_created_ms,
            next_offset: self.next_offset,
            last_term: self.last_term,
            dirty: self.dirty,
        })
    }

    fn write_batches(&mut self, items: &[Pending<'_>]) -> Result<(), StorageError> {
        let cp = self.checkpoint()?;
        match self.write_batches_inner(items) {
            Ok(()) => Ok(()),
            Err(e @ StorageError::Poisoned { .. }) => Err(e),
            Err(e) => {
                // Cut off whatever part of this call reached the files, so the log is
                // exactly as before it; if even that fails, the log cannot be trusted.
                if let Err(rollback) = self.rollback(&cp) {
                    let path = self.shared.dir.clone();
                    return Err(self.poison_with("rollback", &path, &rollback));
                }
                if matches!(e, StorageError::Io { .. }) {
                    // An I/O error other than a full disk (EIO) may have left pages in
                    // an unknown state: refuse further writes.
                    let path = self.shared.dir.clone();
                    return Err(self.poison_with("write", &path, &e));
                }
                Err(e)
            }
        }
    }

    fn write_batches_inner(&mut self, items: &[Pending<'_>]) -> Result<(), StorageError> {
        let now = now_ms();
        let max_age = i64::try_from(self.config.segment_max_age.as_millis()).unwrap_or(i64::MAX);
        let mut i = 0;
        while i < items.len() {
            let mut e = self.active()?.extent();
            let first = &items[i];
            let needs_roll = e.size > 0
                && (e.size + first.bytes.len() as u64 > self.config.segment_max_bytes
                    || now.saturating_sub(self.active_created_ms) >= max_age
                    || first.base_offset + u64::from(first.record_count)
                        - self.active()?.base_offset
                        > u64::from(u32::MAX));
            if needs_roll {
                self.roll_segment(now)?;
                e = self.active()?.extent();
            }
            let seg = self.active()?.clone();
            self.index_buf.clear();
            self.time_buf.clear();
            let mut slices = Vec::new();
            let mut j = i;
            let mut pos = e.size;
            while let Some(it) = items.get(j) {
                let len = it.bytes.len() as u64;
                if j > i && pos + len > self.config.segment_max_bytes {
                    break;
                }
                let rel = u32::try_from(it.base_offset - seg.base_offset).map_err(|_| {
                    StorageError::InvalidArgument("relative offset overflow".into())
                })?;
                if j > i && u64::from(rel) + u64::from(it.record_count) > u64::from(u32::MAX) {
                    break;
                }
                let pos32 = u32::try_from(pos)
                    .map_err(|_| StorageError::InvalidArgument("segment too large".into()))?;
                let (ni, nt) = self.cursor.on_batch(
                    pos32,
                    rel,
                    len as u32,
                    it.max_timestamp,
                    &mut self.index_buf,
                    &mut self.time_buf,
                );
                e.index_entries += ni;
                e.time_entries += nt;
                e.max_timestamp = e.max_timestamp.max(it.max_timestamp);
                e.next_offset = it.base_offset + u64::from(it.record_count);
                e.last_term = it.term;
                slices.push(IoSlice::new(it.bytes));
                pos += len;
                j += 1;
            }
            e.size = pos;
            self.dirty = true;
            self.writer.append(&mut slices)?;
            if !self.index_buf.is_empty() {
                io::append_all(&seg.index, &seg.index_path, &self.index_buf)?;
            }
            if !self.time_buf.is_empty() {
                io::append_all(&seg.time, &seg.time_path, &self.time_buf)?;
            }
            seg.publish(e);
            // Cached only once published: the cache never runs ahead of the log.
            self.shared
                .cache
                .push(items[i..j].iter().map(|it| it.shared.clone()));
            self.next_offset = e.next_offset;
            self.last_term = e.last_term;
            i = j;
        }
        Ok(())
    }

    /// Undoes a failed append: drops segments it created and cuts the active files
    /// back to their sizes before it.
    fn rollback(&mut self, cp: &Checkpoint) -> Result<(), StorageError> {
        self.shared.cache.truncate_from(cp.next_offset);
        let mut removed = Vec::new();
        while self.segments.len() > cp.segments {
            if let Some(s) = self.segments.pop() {
                removed.push(s);
            }
        }
        if !removed.is_empty() {
            self.shared.publish(&self.segments);
            for s in &removed {
                io::remove_file(&s.log_path)?;
                io::remove_file(&s.index_path)?;
                io::remove_file(&s.time_path)?;
            }
            self.dir_dirty = true;
        }
        let seg = self.active()?.clone();
        seg.publish(cp.extent);
        self.shared.key_usage.note_rewrite();
        io::set_len(&seg.log, &seg.log_path, cp.extent.size)?;
        self.writer
            .attach(&seg.log, &seg.log_path, cp.extent.size)?;
        io::set_len(
            &seg.index,
            &seg.index_path,
            cp.extent.index_entries * INDEX_ENTRY_LEN,
        )?;
        io::set_len(
            &seg.time,
            &seg.time_path,
            cp.extent.time_entries * TIME_ENTRY_LEN,
        )?;
        self.cursor = cp.cursor.clone();
        self.active_created_ms = cp.active_created_ms;
        self.next_offset = cp.next_offset;
        self.last_term = cp.last_term;
        self.dirty = cp.dirty;
        Ok(())
    }

    /// Seals the active segment (its data and indexes made durable, so every segment
    /// but the last is always complete on disk) and starts a new one at next_offset.
    fn roll_segment(&mut self, now: i64) -> Result<(), StorageError> {
        let old = self.active()?.clone();
        // A sealed segment ends exactly at its last batch (recovery checks older
        // segments against that): cut direct-I/O padding before the fsync.
        self.writer.trim()?;
        for (file, path) in [
            (&old.log, &old.log_path),
            (&old.index, &old.index_path),
            (&old.time, &old.time_path),
        ] {
            if let Err(e) = io::sync_data(file) {
                return Err(self.poison("fsync", path, e));
            }
        }
        if self.dir_dirty {
            if let Err(e) = io::sync_dir(&self.shared.dir) {
                let dir = self.shared.dir.clone();
                return Err(self.poison("fsync dir", &dir, e));
            }
            self.dir_dirty = false;
        }
        self.synced_offset = self.synced_offset.max(old.next_offset());
        let seg = Arc::new(Segment::create(&self.shared.dir, self.next_offset)?);
        tracing::debug!(dir = %self.shared.dir.display(), base_offset = self.next_offset, "rolled segment");
        self.segments.push(seg.clone());
        self.shared.publish(&self.segments);
        // After the push, so a failure here is undone by the caller's rollback.
        self.writer.attach(&seg.log, &seg.log_path, 0)?;
        self.cursor = IndexCursor::new(self.config.index_interval_bytes);
        self.active_created_ms = now;
        self.dir_dirty = true;
        Ok(())
    }

    /// Starts a new segment now if the active one holds data (for example before a
    /// Raft snapshot); a no-op on an empty active segment.
    pub fn roll(&mut self) -> Result<(), StorageError> {
        self.check_poison()?;
        if self.active()?.size() == 0 {
            return Ok(());
        }
        let cp = self.checkpoint()?;
        if let Err(e) = self.roll_segment(now_ms()) {
            if !matches!(e, StorageError::Poisoned { .. })
                && let Err(r) = self.rollback(&cp)
            {
                let path = self.shared.dir.clone();
                return Err(self.poison_with("rollback", &path, &r));
            }
            return Err(e);
        }
        Ok(())
    }

    /// Makes everything appended so far durable: fdatasync of the active log, and of
    /// the directory if a segment was created. On failure the log is poisoned: the
    /// kernel may have dropped the dirty pages, so retrying on the same file could
    /// report success for data that is gone.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_poison()?;
        #[cfg(any(test, feature = "fault-injection"))]
        if std::mem::take(&mut self.fail_next_sync) {
            let path = self.active()?.log_path.clone();
            return Err(self.poison("fsync", &path, IoError::other("injected fsync failure")));
        }
        if self.dirty
            && let Err(e) = self.writer.sync()
        {
            let path = self.active()?.log_path.clone();
            return Err(self.poison("fsync", &path, e));
        }
        if self.dir_dirty
            && let Err(e) = io::sync_dir(&self.shared.dir)
        {
            let dir = self.shared.dir.clone();
            return Err(self.poison("fsync dir", &dir, e));
        }
        self.dirty = false;
        self.dir_dirty = false;
        self.synced_offset = self.next_offset;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Begins a sync that runs outside the log (see [`PendingSync`]); `None` when
    /// nothing is unsynced. Appends may continue while it runs; a later sync covers them.
    pub fn begin_sync(&mut self) -> Result<Option<PendingSync>, StorageError> {
        self.check_poison()?;
        if !self.dirty && !self.dir_dirty {
            return Ok(None);
        }
        let file_path = self.active()?.log_path.clone();
        let file = if self.dirty {
            Some(self.writer.dup_file()?)
        } else {
            None
        };
        let dir = self.dir_dirty.then(|| self.shared.dir.clone());
        self.dirty = false;
        self.dir_dirty = false;
        self.last_sync = Instant::now();
        Ok(Some(PendingSync {
            file,
            file_path,
            dir,
            upto: self.next_offset,
        }))
    }

    /// Records the outcome of a [`PendingSync`]: on success its offsets are durable; on
    /// failure the log is poisoned (see [`PartitionLog::sync`] for why).
    pub fn finish_sync(
        &mut self,
        pending: PendingSync,
        outcome: std::io::Result<()>,
    ) -> Result<(), StorageError> {
        #[cfg(any(test, feature = "fault-injection"))]
        let outcome = if std::mem::take(&mut self.fail_next_sync) {
            Err(IoError::other("injected fsync failure"))
        } else {
            outcome
        };
        match outcome {
            Ok(()) => {
                self.synced_offset = self.synced_offset.max(pending.upto.min(self.next_offset));
                Ok(())
            }
            Err(e) => {
                let op = if pending.dir.is_some() && pending.file.is_none() {
                    "fsync dir"
                } else {
                    "fsync"
                };
                let path = pending.failed_path(pending.file.is_some()).to_path_buf();
                Err(self.poison(op, &path, e))
            }
        }
    }

    /// Whether the fsync policy wants a sync now (there is unsynced data and, for
    /// `Interval`, the interval has passed).
    pub fn sync_due(&self) -> bool {
        let unsynced = self.dirty || self.dir_dirty;
        match self.config.fsync {
            FsyncPolicy::Always => unsynced,
            FsyncPolicy::Interval(d) => unsynced && self.last_sync.elapsed() >= d,
            FsyncPolicy::Never => false,
        }
    }

    /// Syncs if [`PartitionLog::sync_due`]; returns whether it did.
    pub fn sync_if_due(&mut self) -> Result<bool, StorageError> {
        self.check_poison()?;
        if self.sync_due() {
            self.sync()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Makes the next [`PartitionLog::sync`] fail as if fdatasync had returned EIO.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn inject_fsync_failure(&mut self) {
        self.fail_next_sync = true;
    }

    /// Drops every batch at or above `from_offset`, which must be a batch boundary in
    /// `[start_offset, next_offset]` (Raft conflict resolution, repair). Whole later
    /// segments are deleted. Durable when it returns (files and directory fsynced).
    pub fn truncate_suffix(&mut self, from_offset: u64) -> Result<(), StorageError> {
        self.check_poison()?;
        if from_offset == self.next_offset {
            return Ok(());
        }
        let start = self.start_offset();
        if from_offset > self.next_offset || from_offset < start {
            return Err(StorageError::OffsetOutOfRange {
                requested: from_offset,
                start,
                end: self.next_offset,
            });
        }
        let idx = self
            .segments
            .partition_point(|s| s.base_offset <= from_offset)
            .saturating_sub(1);
        let seg = self
            .segments
            .get(idx)
            .cloned()
            .ok_or_else(|| StorageError::InvalidArgument("no segment".into()))?;
        let e = seg.extent();
        let (new_size, last_term) = if from_offset == seg.base_offset {
            let prev_term = idx
                .checked_sub(1)
                .and_then(|i| self.segments.get(i))
                .map_or(0, |s| s.last_term());
            (0, prev_term)
        } else {
            let (pos, h) = seg.locate(from_offset - 1, &e)?;
            if h.next_offset() != from_offset {
                return Err(StorageError::InvalidArgument(format!(
                    "offset {from_offset} is inside the batch {}..={}",
                    h.base_offset,
                    h.last_offset()
                )));
            }
            (pos + u64::from(h.length), h.term)
        };
        let rel_cut = from_offset - seg.base_offset;
        let index = match io::read_small(&seg.index_path, e.index_entries * INDEX_ENTRY_LEN)? {
            io::SmallFile::Bytes(b) => b,
            _ => Vec::new(),
        };
        let time = match io::read_small(&seg.time_path, e.time_entries * TIME_ENTRY_LEN)? {
            io::SmallFile::Bytes(b) => b,
            _ => Vec::new(),
        };
        let keep_index = (0..e.index_entries as usize)
            .take_while(|&i| u64::from(index_entry(&index, i).0) < rel_cut)
            .count();
        let keep_time = (0..e.time_entries as usize)
            .take_while(|&i| u64::from(time_entry(&time, i).1) < rel_cut)
            .count();
        let last_index_pos = keep_index
            .checked_sub(1)
            .map_or(0, |i| u64::from(index_entry(&index, i).1));
        let last_time = keep_time.checked_sub(1).map(|i| time_entry(&time, i).0);
        let new_extent = Extent {
            size: new_size,
            next_offset: from_offset,
            max_timestamp: last_time.unwrap_or(i64::MIN),
            last_term,
            index_entries: keep_index as u64,
            time_entries: keep_time as u64,
        };

        // Readers first lose sight of what goes away, then the files shrink.
        self.shared.cache.truncate_from(from_offset);
        let removed: Vec<Arc<Segment>> = self.segments.drain(idx + 1..).collect();
        seg.publish(new_extent);
        self.shared.publish(&self.segments);
        // After the shorter log is visible: a key-usage scan that sees the new
        // generation also sees the shorter extent.
        self.shared.key_usage.note_rewrite();
        let result = (|| -> Result<(), StorageError> {
            for s in removed.iter().rev() {
                io::remove_file(&s.log_path)?;
                io::remove_file(&s.index_path)?;
                io::remove_file(&s.time_path)?;
            }
            io::set_len(&seg.log, &seg.log_path, new_size)?;
            self.writer.attach(&seg.log, &seg.log_path, new_size)?;
            io::set_len(
                &seg.index,
                &seg.index_path,
                new_extent.index_entries * INDEX_ENTRY_LEN,
            )?;
            io::set_len(
                &seg.time,
                &seg.time_path,
                new_extent.time_entries * TIME_ENTRY_LEN,
            )?;
            Ok(())
        })();
        if let Err(e) = result {
            return Err(self.poison_with("truncate", &seg.log_path.clone(), &e));
        }
        for (file, path) in [
            (&seg.log, &seg.log_path),
            (&seg.index, &seg.index_path),
            (&seg.time, &seg.time_path),
        ] {
            if let Err(e) = io::sync_data(file) {
                return Err(self.poison("fsync", path, e));
            }
        }
        if let Err(e) = io::sync_dir(&self.shared.dir) {
            let dir = self.shared.dir.clone();
            return Err(self.poison("fsync dir", &dir, e));
        }
        self.dir_dirty = false;
        self.cursor = IndexCursor::resume(
            self.config.index_interval_bytes,
            last_index_pos,
            new_size,
            last_time,
        );
        if !removed.is_empty() {
            self.active_created_ms = last_time.unwrap_or_else(now_ms).min(now_ms());
        }
        self.next_offset = from_offset;
        self.last_term = last_term;
        self.synced_offset = self.synced_offset.min(from_offset);
        tracing::info!(dir = %self.shared.dir.display(), from_offset, segments_removed = removed.len(), "truncated log suffix");
        Ok(())
    }

    /// Deletes whole old segments (never the active one), oldest first: those whose
    /// newest record is older than `retention_max_age`, and then while the log is
    /// larger than `retention_max_bytes`.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<RetentionReport, StorageError> {
        self.check_poison()?;
        let plan = crate::retention::plan(&self.segments, &self.config, now_ms);
        if plan == 0 {
            return Ok(RetentionReport {
                segments_deleted: 0,
                bytes_deleted: 0,
                start_offset: self.start_offset(),
            });
        }
        let removed: Vec<Arc<Segment>> = self.segments.drain(..plan).collect();
        self.shared.publish(&self.segments);
        self.shared.cache.drop_below(self.start_offset());
        let mut bytes = 0;
        for s in &removed {
            bytes += s.size();
            // The log goes first: a segment without its log is just orphan index files,
            // which open() removes.
            io::remove_file(&s.log_path)?;
            io::remove_file(&s.index_path)?;
            io::remove_file(&s.time_path)?;
        }
        io::sync_dir(&self.shared.dir)
            .map_err(|e| StorageError::io("fsync dir", &self.shared.dir, e))?;
        let report = RetentionReport {
            segments_deleted: removed.len(),
            bytes_deleted: bytes,
            start_offset: self.start_offset(),
        };
        tracing::info!(
            dir = %self.shared.dir.display(),
            segments_deleted = report.segments_deleted,
            bytes_deleted = report.bytes_deleted,
            start_offset = report.start_offset,
            "retention deleted segments"
        );
        Ok(report)
    }

    /// Cuts direct-I/O padding off the active segment, syncs and closes the log, so
    /// the next open finds the files exactly as long as their batches.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.check_poison()?;
        if self.writer.trim()? {
            self.dirty = true;
        }
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, RecordInput};
    use swarmmq_crypto::{KeyRing, MasterKey};

    fn batch(ring: &KeyRing, n: u32) -> EncodedBatch {
        let mut b = BatchBuilder::new(ring, 1, 256).unwrap();
        for _ in 0..n {
            b.push(RecordInput {
                timestamp_ms: 1,
                priority: 5,
                id: None,
                key: None,
                headers: &[],
                deliver_at_ms: None,
                expires_at_ms: None,
                payload: b"0123456789",
            })
            .unwrap();
        }
        b.finish()
    }

    #[test]
    fn failed_fsync_poisons_every_later_write() {
        for io in [IoMode::Direct, IoMode::Buffered] {
            failed_fsync_poisons(LogConfig {
                io,
                ..LogConfig::default()
            });
        }
    }

    fn failed_fsync_poisons(config: LogConfig) {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::single(MasterKey::from_bytes([3; 32]));
        let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
        log.append(&mut [batch(&ring, 2)], 1).unwrap();
        log.sync().unwrap();
        assert_eq!(log.synced_offset(), 2);
        log.append(&mut [batch(&ring, 3)], 1).unwrap();
        log.inject_fsync_failure();
        let err = log.sync().unwrap_err();
        assert!(
            matches!(err, StorageError::Poisoned { op: "fsync", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("injected fsync failure"));
        assert!(log.is_poisoned());
        assert_eq!(log.synced_offset(), 2);
        // Every write path refuses, with the original cause; nothing is retried.
        for r in [
            log.append(&mut [batch(&ring, 1)], 1).map(|_| ()),
            log.sync(),
            log.sync_if_due().map(|_| ()),
            log.roll(),
            log.truncate_suffix(2),
            log.enforce_retention(0).map(|_| ()),
        ] {
            match r {
                Err(StorageError::Poisoned { source, .. }) => {
                    assert!(source.to_string().contains("injected"));
                }
                other => panic!("expected Poisoned, got {other:?}"),
            }
        }
        assert_eq!(log.next_offset(), 5);
        // Readers keep serving what is there.
        assert_eq!(log.reader().read(0, 1 << 20, 2).unwrap().batches.len(), 1);
        drop(log);
        // Reopening (a fresh fd, a fresh scan) is the way back.
        let (mut log, _) = PartitionLog::open(dir.path(), config).unwrap();
        assert_eq!(log.next_offset(), 5);
        log.append(&mut [batch(&ring, 1)], 1).unwrap();
        log.sync().unwrap();
    }

    #[test]
    fn sync_policy_decides_when_a_sync_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::single(MasterKey::from_bytes([3; 32]));
        let cfg = |fsync| LogConfig {
            fsync,
            ..LogConfig::default()
        };
        let (mut log, _) = PartitionLog::open(dir.path(), cfg(FsyncPolicy::Always)).unwrap();
        assert!(!log.sync_due());
        log.append(&mut [batch(&ring, 1)], 0).unwrap();
        assert!(log.sync_due());
        assert!(log.sync_if_due().unwrap());
        assert!(!log.sync_due());
        drop(log);
        let (mut log, _) = PartitionLog::open(dir.path(), cfg(FsyncPolicy::Never)).unwrap();
        log.append(&mut [batch(&ring, 1)], 0).unwrap();
        assert!(!log.sync_if_due().unwrap());
        assert_eq!(log.synced_offset(), 1);
        log.sync().unwrap();
        assert_eq!(log.synced_offset(), 2);
        drop(log);
        let (mut log, _) = PartitionLog::open(
            dir.path(),
            cfg(FsyncPolicy::Interval(std::time::Duration::from_secs(3600))),
        )
        .unwrap();
        log.append(&mut [batch(&ring, 1)], 0).unwrap();
        assert!(!log.sync_due());
    }

    #[test]
    fn a_detached_sync_covers_what_was_appended_before_it_began() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::single(MasterKey::from_bytes([4; 32]));
        let (mut log, _) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&mut [batch(&ring, 2)], 0).unwrap();
        let pending = log.begin_sync().unwrap().expect("unsynced data");
        assert_eq!(pending.upto(), 2);
        // Appends go on while it runs (here: before it runs at all).
        log.append(&mut [batch(&ring, 3)], 0).unwrap();
        let outcome = std::thread::spawn(move || {
            let r = pending.run();
            (pending, r)
        })
        .join()
        .unwrap();
        log.finish_sync(outcome.0, outcome.1).unwrap();
        assert_eq!(log.synced_offset(), 2, "only what preceded the sync");
        let next = log
            .begin_sync()
            .unwrap()
            .expect("the later append is unsynced");
        assert_eq!(next.upto(), 5);
        let r = next.run();
        log.finish_sync(next, r).unwrap();
        assert_eq!(log.synced_offset(), 5);
        assert!(log.begin_sync().unwrap().is_none(), "nothing left to sync");
    }

    #[test]
    fn a_failed_detached_sync_poisons_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::single(MasterKey::from_bytes([5; 32]));
        let (mut log, _) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&mut [batch(&ring, 1)], 0).unwrap();
        let pending = log.begin_sync().unwrap().unwrap();
        let err = log
            .finish_sync(pending, Err(IoError::other("device gone")))
            .unwrap_err();
        assert!(matches!(err, StorageError::Poisoned { .. }), "{err}");
        assert!(log.is_poisoned());
        assert_eq!(log.synced_offset(), 0);
        assert!(matches!(
            log.append(&mut [batch(&ring, 1)], 0),
            Err(StorageError::Poisoned { .. })
        ));
        assert!(matches!(
            log.begin_sync(),
            Err(StorageError::Poisoned { .. })
        ));
    }

    #[test]
    fn config_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            LogConfig {
                segment_max_bytes: 0,
                ..LogConfig::default()
            },
            LogConfig {
                segment_max_bytes: u64::from(u32::MAX),
                ..LogConfig::default()
            },
            LogConfig {
                max_batch_bytes: 10,
                ..LogConfig::default()
            },
            LogConfig {
                fsync: FsyncPolicy::Interval(std::time::Duration::ZERO),
                ..LogConfig::default()
            },
        ] {
            assert!(matches!(
                PartitionLog::open(dir.path(), bad),
                Err(StorageError::InvalidConfig(_))
            ));
        }
    }
}

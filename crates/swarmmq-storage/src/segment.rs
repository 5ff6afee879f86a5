use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::BytesMut;

use crate::StorageError;
use crate::batch::{Batch, BatchHeader, HEADER_LEN};
use crate::index::{lookup_offset, lookup_time};
use crate::io::{self, read_at};

pub(crate) const LOG_EXT: &str = "log";
pub(crate) const INDEX_EXT: &str = "index";
pub(crate) const TIME_EXT: &str = "timeindex";

/// `00000000000000000042.log` for base offset 42.
pub(crate) fn file_name(base: u64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}

/// The base offset and extension of a segment file name, if it is one.
pub(crate) fn parse_file_name(name: &str) -> Option<(u64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if ![LOG_EXT, INDEX_EXT, TIME_EXT].contains(&ext) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

/// One segment as both the writer and the readers see it: shared file handles (reads
/// are positional, so readers never disturb the writer) and the published extent.
/// Only the writer stores to the atomics; readers load them.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub log_path: PathBuf,
    pub index_path: PathBuf,
    pub time_path: PathBuf,
    pub log: File,
    pub index: File,
    pub time: File,
    /// Bytes of whole batches readers may read.
    size: AtomicU64,
    next_offset: AtomicU64,
    max_timestamp: AtomicI64,
    last_term: AtomicU64,
    index_entries: AtomicU64,
    time_entries: AtomicU64,
}

/// The published extent of a segment, set together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Extent {
    pub size: u64,
    pub next_offset: u64,
    pub max_timestamp: i64,
    pub last_term: u64,
    pub index_entries: u64,
    pub time_entries: u64,
}

impl Segment {
    pub(crate) fn paths(dir: &Path, base: u64) -> (PathBuf, PathBuf, PathBuf) {
        (
            dir.join(file_name(base, LOG_EXT)),
            dir.join(file_name(base, INDEX_EXT)),
            dir.join(file_name(base, TIME_EXT)),
        )
    }

    /// Creates the files of a new, empty segment (the log must not exist yet).
    pub(crate) fn create(dir: &Path, base: u64) -> Result<Segment, StorageError> {
        let (log_path, index_path, time_path) = Self::paths(dir, base);
        let log = io::create_new_append(&log_path)?;
        // Index files may be left over from a crash; an empty log makes them stale.
        let indexes = (|| {
            let index = io::open_append(&index_path)?;
            io::set_len(&index, &index_path, 0)?;
            let time = io::open_append(&time_path)?;
            io::set_len(&time, &time_path, 0)?;
            Ok((index, time))
        })();
        let (index, time) = match indexes {
            Ok(files) => files,
            Err(e) => {
                // Leave no half-made segment behind (a later create would collide).
                let _ = io::remove_file(&log_path);
                let _ = io::remove_file(&index_path);
                let _ = io::remove_file(&time_path);
                return Err(e);
            }
        };
        Ok(Self::assemble(
            base,
            (log_path, index_path, time_path),
            (log, index, time),
            Extent {
                size: 0,
                next_offset: base,
                max_timestamp: i64::MIN,
                last_term: 0,
                index_entries: 0,
                time_entries: 0,
            },
        ))
    }

    /// Opens the files of an existing segment whose extent recovery established.
    pub(crate) fn open(dir: &Path, base: u64, extent: Extent) -> Result<Segment, StorageError> {
        let (log_path, index_path, time_path) = Self::paths(dir, base);
        let log = io::open_append(&log_path)?;
        let index = io::open_append(&index_path)?;
        let time = io::open_append(&time_path)?;
        Ok(Self::assemble(
            base,
            (log_path, index_path, time_path),
            (log, index, time),
            extent,
        ))
    }

    fn assemble(
        base: u64,
        paths: (PathBuf, PathBuf, PathBuf),
        files: (File, File, File),
        e: Extent,
    ) -> Segment {
        Segment {
            base_offset: base,
            log_path: paths.0,
            index_path: paths.1,
            time_path: paths.2,
            log: files.0,
            index: files.1,
            time: files.2,
            size: AtomicU64::new(e.size),
            next_offset: AtomicU64::new(e.next_offset),
            max_timestamp: AtomicI64::new(e.max_timestamp),
            last_term: AtomicU64::new(e.last_term),
            index_entries: AtomicU64::new(e.index_entries),
            time_entries: AtomicU64::new(e.time_entries),
        }
    }

    pub(crate) fn extent(&self) -> Extent {
        // next_offset is loaded first: it is stored last, so the other fields cover at
        // least the batches below it.
        let next_offset = self.next_offset.load(Ordering::Acquire);
        Extent {
            size: self.size.load(Ordering::Acquire),
            next_offset,
            max_timestamp: self.max_timestamp.load(Ordering::Acquire),
            last_term: self.last_term.load(Ordering::Acquire),
            index_entries: self.index_entries.load(Ordering::Acquire),
            time_entries: self.time_entries.load(Ordering::Acquire),
        }
    }

    /// Publishes a new extent. Growing: size first, then index counts (entries never
    /// point past the visible size), then next offset. Shrinking: next offset and index
    /// counts first, so no reader follows an entry into bytes about to go away.
    pub(crate) fn publish(&self, e: Extent) {
        let growing = e.size >= self.size.load(Ordering::Relaxed);
        if growing {
            self.size.store(e.size, Ordering::Release);
            self.max_timestamp.store(e.max_timestamp, Ordering::Release);
            self.last_term.store(e.last_term, Ordering::Release);
            self.index_entries.store(e.index_entries, Ordering::Release);
            self.time_entries.store(e.time_entries, Ordering::Release);
            self.next_offset.store(e.next_offset, Ordering::Release);
        } else {
            self.next_offset.store(e.next_offset, Ordering::Release);
            self.index_entries.store(e.index_entries, Ordering::Release);
            self.time_entries.store(e.time_entries, Ordering::Release);
            self.max_timestamp.store(e.max_timestamp, Ordering::Release);
            self.last_term.store(e.last_term, Ordering::Release);
            self.size.store(e.size, Ordering::Release);
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.last_term.load(Ordering::Acquire)
    }

    fn corrupt(&self, pos: u64, offset: Option<u64>, reason: impl Into<String>) -> StorageError {
        StorageError::corrupt(&self.log_path, pos, offset, reason)
    }

    /// The header of the batch at `pos`, which must lie within `size`.
    pub(crate) fn read_header(&self, pos: u64, size: u64) -> Result<BatchHeader, StorageError> {
        if pos + HEADER_LEN as u64 > size {
            return Err(self.corrupt(pos, None, "batch header runs past the segment end"));
        }
        let mut buf = [0u8; HEADER_LEN];
        let n = read_at(&self.log, &self.log_path, &mut buf, pos)?;
        if n != HEADER_LEN {
            return Err(self.corrupt(pos, None, "segment file is shorter than its recorded size"));
        }
        let h = BatchHeader::parse(&buf).map_err(|e| self.corrupt(pos, None, e.to_string()))?;
        if pos + u64::from(h.length) > size {
            return Err(self.corrupt(pos, Some(h.base_offset), "batch runs past the segment end"));
        }
        Ok(h)
    }

    /// Position and header of the batch holding `offset` (which the caller checked is
    /// in this segment's published range): sparse index, then header steps.
    pub(crate) fn locate(
        &self,
        offset: u64,
        e: &Extent,
    ) -> Result<(u64, BatchHeader), StorageError> {
        let rel = offset
            .checked_sub(self.base_offset)
            .and_then(|r| u32::try_from(r).ok())
            .ok_or_else(|| {
                StorageError::InvalidArgument(format!("offset {offset} is not in this segment"))
            })?;
        let (start_rel, mut pos) =
            lookup_offset(&self.index, &self.index_path, e.index_entries, rel)?
                .map_or((0, 0), |(r, p)| (r, u64::from(p)));
        let mut expected = self.base_offset + u64::from(start_rel);
        loop {
            let h = self.read_header(pos, e.size)?;
            if h.base_offset != expected {
                return Err(self.corrupt(
                    pos,
                    Some(h.base_offset),
                    format!("expected a batch at offset {expected}"),
                ));
            }
            if h.next_offset() > offset {
                return Ok((pos, h));
            }
            expected = h.next_offset();
            pos += u64::from(h.length);
        }
    }

    /// Reads and validates the whole batch whose header `h` sits at `pos`.
    pub(crate) fn read_batch(&self, pos: u64, h: &BatchHeader) -> Result<Batch, StorageError> {
        let mut buf = BytesMut::zeroed(h.length as usize);
        let n = read_at(&self.log, &self.log_path, &mut buf, pos)?;
        if n != buf.len() {
            return Err(self.corrupt(
                pos,
                Some(h.base_offset),
                "segment file is shorter than its recorded size",
            ));
        }
        Batch::parse(buf.freeze())
            .map_err(|e| self.corrupt(pos, Some(h.base_offset), e.to_string()))
    }

    /// First offset in this segment whose record timestamp is `>= ts`.
    pub(crate) fn offset_for_timestamp(&self, ts: i64) -> Result<Option<u64>, StorageError> {
        let e = self.extent();
        let Some((_, rel)) = lookup_time(&self.time, &self.time_path, e.time_entries, ts)? else {
            return Ok(None);
        };
        let start = self.base_offset + u64::from(rel);
        if start >= e.next_offset {
            return Ok(None);
        }
        let (mut pos, mut h) = self.locate(start, &e)?;
        loop {
            if h.max_timestamp_ms >= ts {
                let batch = self.read_batch(pos, &h)?;
                for meta in batch.records_meta() {
                    let meta = meta
                        .map_err(|err| self.corrupt(pos, Some(h.base_offset), err.to_string()))?;
                    if meta.timestamp_ms >= ts {
                        return Ok(Some(meta.offset));
                    }
                }
            }
            pos += u64::from(h.length);
            if pos >= e.size || h.next_offset() >= e.next_offset {
                return Ok(None);
            }
            h = self.read_header(pos, e.size)?;
        }
    }
}

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::BytesMut;

use crate::StorageError;
use crate::batch::{Batch, BatchHeader, HEADER_LEN};
use crate::cache::{CacheRead, TailCache};
use crate::io::read_at;
use crate::key_usage::{KeyUsage, KeyUsageCache};
use crate::segment::Segment;

/// Largest single `pread` of a read (a bigger batch is still read whole).
const READ_CHUNK: u64 = 8 << 20;

pub(crate) type SegmentList = Arc<Vec<Arc<Segment>>>;

/// What the writer and its readers share: the segment list, swapped whole on roll,
/// retention and truncation so a reader always works on one consistent list, and the
/// tail cache of the newest batches.
#[derive(Debug)]
pub(crate) struct Shared {
    pub dir: PathBuf,
    segments: RwLock<SegmentList>,
    pub cache: TailCache,
    pub key_usage: KeyUsageCache,
}

impl Shared {
    pub(crate) fn new(dir: PathBuf, segments: Vec<Arc<Segment>>, cache_bytes: u64) -> Self {
        Shared {
            dir,
            segments: RwLock::new(Arc::new(segments)),
            cache: TailCache::new(cache_bytes),
            key_usage: KeyUsageCache::default(),
        }
    }

    pub(crate) fn snapshot(&self) -> SegmentList {
        // A poisoned lock only means a panic elsewhere; the list itself is always whole.
        self.segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn publish(&self, segments: &[Arc<Segment>]) {
        let list = Arc::new(segments.to_vec());
        *self.segments.write().unwrap_or_else(|e| e.into_inner()) = list;
    }
}

fn bounds(segs: &[Arc<Segment>]) -> (u64, u64) {
    let start = segs.first().map_or(0, |s| s.base_offset);
    let end = segs.last().map_or(0, |s| s.next_offset());
    (start, end)
}

/// The result of a read: whole, CRC-checked batches in offset order. The first batch
/// may start before the requested offset (batches are never split); skip its records
/// below the offset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadResult {
    pub batches: Vec<Batch>,
}

impl ReadResult {
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Total bytes of the batches.
    pub fn bytes_len(&self) -> usize {
        self.batches.iter().map(Batch::len).sum()
    }

    /// The offset after the last batch, where the next read continues.
    pub fn next_offset(&self) -> Option<u64> {
        self.batches.last().map(Batch::next_offset)
    }
}

/// A cheap, cloneable, thread-safe read handle on a partition log. Reads near the end
/// of the log are served from the in-memory tail cache; older data is read with
/// `pread`s on file handles shared with the writer. Neither blocks the writer beyond a
/// brief read lock (to copy the segment list, or to clone cached batches).
#[derive(Clone, Debug)]
pub struct LogReader {
    shared: Arc<Shared>,
}

impl LogReader {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        LogReader { shared }
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// First offset still in the log.
    pub fn start_offset(&self) -> u64 {
        bounds(&self.shared.snapshot()).0
    }

    /// Offset the next appended record will get.
    pub fn next_offset(&self) -> u64 {
        bounds(&self.shared.snapshot()).1
    }

    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.shared.snapshot().iter().map(|s| s.size()).sum()
    }

    /// Bytes and batches per master key id over the whole log, from batch headers
    /// (bodies are not read). Cached per segment: a repeated call reads only the
    /// headers appended since the last one.
    pub fn key_usage(&self) -> Result<KeyUsage, StorageError> {
        let generation = self.shared.key_usage.generation();
        let segments = self.shared.snapshot();
        self.shared.key_usage.usage(generation, &segments)
    }

    /// Whole batches starting with the one holding `offset`, up to `max_bytes` (at least
    /// one batch, even a larger one), and only batches wholly below `upto` (the caller's
    /// visible end, such as the last fsynced or committed offset). Every batch read from
    /// the file has its CRC and offset continuity checked; a bad batch is
    /// [`StorageError::Corrupt`], never skipped. Batches served from the tail cache are
    /// the bytes the writer wrote and never left memory, so their CRC is not checked
    /// again.
    ///
    /// `offset < start_offset` or `offset > next_offset` is
    /// [`StorageError::OffsetOutOfRange`]; `offset == next_offset`, or a first batch that
    /// reaches `upto`, gives an empty result (the caller waits for more).
    pub fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        upto: u64,
    ) -> Result<ReadResult, StorageError> {
        let mut segs = self.shared.snapshot();
        let (start, end) = bounds(&segs);
        if offset < start || offset > end {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        let mut limit = upto.min(end);
        let mut out = ReadResult::default();
        if offset >= limit {
            return Ok(out);
        }
        let mut budget = max_bytes;
        if self.shared.cache.read(offset, limit, &mut budget, &mut out) == CacheRead::Done {
            return Ok(out);
        }
        // The cache ran out before the read was complete (the writer is between
        // publishing a batch and caching it, or the log changed since the snapshot) or
        // never held `offset`. After a partial hit the file part must see the log the
        // cache saw, not an older list (a truncation may have replaced those offsets).
        if !out.is_empty() {
            segs = self.shared.snapshot();
            limit = upto.min(bounds(&segs).1);
        }
        let mut cur = out.next_offset().unwrap_or(offset);
        if cur >= limit {
            return Ok(out);
        }
        let mut idx = segs
            .partition_point(|s| s.base_offset <= cur)
            .saturating_sub(1);
        let mut next_pos: Option<u64> = None;
        while let Some(seg) = segs.get(idx) {
            let e = seg.extent();
            if cur >= limit || cur >= e.next_offset {
                if cur >= limit {
                    break;
                }
                idx += 1;
                next_pos = Some(0);
                continue;
            }
            let (pos, h) = match next_pos {
                Some(p) => (p, seg.read_header(p, e.size)?),
                None => seg.locate(cur, &e)?,
            };
            if !out.is_empty() && h.length as usize > budget {
                break;
            }
            // Bounded reads: a huge max_bytes is served in chunks, never one buffer.
            let want = (budget as u64)
                .min(e.size - pos)
                .min(READ_CHUNK)
                .max(u64::from(h.length));
            let (taken, done) = self.take_batches(
                seg,
                pos,
                want as usize,
                &h,
                cur,
                limit,
                &mut budget,
                &mut out,
            )?;
            if done || taken == 0 {
                break;
            }
            cur = out.next_offset().unwrap_or(cur);
            let new_pos = pos + taken;
            if new_pos >= e.size {
                idx += 1;
                next_pos = Some(0);
            } else {
                next_pos = Some(new_pos);
            }
        }
        Ok(out)
    }

    /// Reads `want` bytes at `pos` and takes the whole batches in them; returns the
    /// bytes consumed and whether the read is complete.
    #[allow(clippy::too_many_arguments)]
    fn take_batches(
        &self,
        seg: &Segment,
        pos: u64,
        want: usize,
        first: &BatchHeader,
        mut expected: u64,
        limit: u64,
        budget: &mut usize,
        out: &mut ReadResult,
    ) -> Result<(u64, bool), StorageError> {
        let mut buf = BytesMut::zeroed(want);
        let n = read_at(&seg.log, &seg.log_path, &mut buf, pos)?;
        buf.truncate(n);
        let buf = buf.freeze();
        let mut p = 0usize;
        let first_batch = out.is_empty();
        while p + HEADER_LEN <= buf.len() {
            let at = pos + p as u64;
            let h = BatchHeader::parse(&buf[p..]).map_err(|e| {
                StorageError::corrupt(&seg.log_path, at, Some(expected), e.to_string())
            })?;
            if p == 0 && h != *first {
                return Err(StorageError::corrupt(
                    &seg.log_path,
                    at,
                    Some(expected),
                    "batch changed under the reader",
                ));
            }
            let len = h.length as usize;
            if p + len > buf.len() {
                if p == 0 {
                    return Err(StorageError::corrupt(
                        &seg.log_path,
                        at,
                        Some(h.base_offset),
                        "segment file is shorter than its recorded size",
                    ));
                }
                return Ok((p as u64, false));
            }
            // The first batch contains the requested offset; every later one follows on.
            let continuous = if p == 0 && first_batch {
                h.base_offset <= expected && expected < h.next_offset()
            } else {
                h.base_offset == expected
            };
            if !continuous {
                return Err(StorageError::corrupt(
                    &seg.log_path,
                    at,
                    Some(h.base_offset),
                    format!("offset discontinuity: expected {expected}"),
                ));
            }
            if h.last_offset() >= limit {
                return Ok((p as u64, true));
            }
            if !out.is_empty() && len > *budget {
                return Ok((p as u64, true));
            }
            let batch = Batch::parse(buf.slice(p..p + len)).map_err(|e| {
                StorageError::corrupt(&seg.log_path, at, Some(h.base_offset), e.to_string())
            })?;
            out.batches.push(batch);
            *budget = budget.saturating_sub(len);
            expected = h.next_offset();
            p += len;
            if *budget == 0 {
                return Ok((p as u64, true));
            }
        }
        Ok((p as u64, false))
    }

    /// The first offset whose record timestamp is `>= ts_ms`, or `None` if every record
    /// is older.
    pub fn offset_for_timestamp(&self, ts_ms: i64) -> Result<Option<u64>, StorageError> {
        for seg in self.shared.snapshot().iter() {
            if seg.max_timestamp() >= ts_ms
                && let Some(o) = seg.offset_for_timestamp(ts_ms)?
            {
                return Ok(Some(o));
            }
        }
        Ok(None)
    }
}

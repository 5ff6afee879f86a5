//! Which master key ids a partition log's batches are encrypted under, and how many
//! bytes and batches each id covers: what an operator needs to know before retiring a
//! key.
//!
//! Only batch headers are read (the key id sits at a fixed place in every header);
//! bodies are skipped. Results are cached per segment: a segment's bytes below its
//! published size never change while the log is only appended to, so a later call
//! scans only what was appended since (nothing at all for sealed segments). A
//! truncation or a rolled-back append bumps the log's rewrite generation, which
//! drops the cache.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::StorageError;
use crate::batch::{BatchHeader, HEADER_LEN};
use crate::io::read_at;
use crate::reader::SegmentList;
use crate::segment::Segment;

/// Most distinct key ids one log may report. A key ring never holds more than 1024
/// keys, so more ids than this in headers can only be damage.
pub const MAX_KEY_IDS: usize = 4096;

/// Bounds of the window read per `pread` while walking headers. Small batches are
/// walked through large windows (few syscalls); once a batch overruns the window, the
/// window drops to one page, so large batches cost one small read each and their
/// bodies are skipped.
const MIN_WINDOW: usize = 4096;
const MAX_WINDOW: usize = 1 << 20;
const START_WINDOW: usize = 64 * 1024;

/// What one key id covers in a log: whole batches, header included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyIdUsage {
    pub bytes: u64,
    pub batches: u64,
}

/// Usage per key id of one log (or, merged, of many).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyUsage {
    by_id: BTreeMap<u32, KeyIdUsage>,
}

impl KeyUsage {
    /// What `id` covers (zero when no batch uses it).
    pub fn get(&self, id: u32) -> KeyIdUsage {
        self.by_id.get(&id).copied().unwrap_or_default()
    }

    /// Every key id used, ascending, with its usage.
    pub fn iter(&self) -> impl Iterator<Item = (u32, KeyIdUsage)> + '_ {
        self.by_id.iter().map(|(k, v)| (*k, *v))
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Adds one batch of `bytes` under `id`.
    pub fn add(&mut self, id: u32, bytes: u64) -> Result<(), StorageError> {
        self.add_usage(id, KeyIdUsage { bytes, batches: 1 })
    }

    /// Adds everything `other` counts.
    pub fn merge(&mut self, other: &KeyUsage) -> Result<(), StorageError> {
        for (id, u) in other.iter() {
            self.add_usage(id, u)?;
        }
        Ok(())
    }

    fn add_usage(&mut self, id: u32, u: KeyIdUsage) -> Result<(), StorageError> {
        if !self.by_id.contains_key(&id) && self.by_id.len() >= MAX_KEY_IDS {
            return Err(StorageError::InvalidArgument(format!(
                "more than {MAX_KEY_IDS} distinct key ids in batch headers"
            )));
        }
        let e = self.by_id.entry(id).or_default();
        e.bytes = e.bytes.saturating_add(u.bytes);
        e.batches = e.batches.saturating_add(u.batches);
        Ok(())
    }
}

/// How far one segment has been scanned, and what was found there.
#[derive(Debug)]
struct SegmentScan {
    /// Byte position up to which headers were walked.
    scanned_to: u64,
    /// Offset of the batch expected at `scanned_to`.
    next_offset: u64,
    usage: KeyUsage,
}

/// The per-log cache behind [`crate::LogReader::key_usage`]. One entry per segment
/// still in the log, so memory is bounded by the segment count times the (few) key
/// ids per segment.
#[derive(Debug, Default)]
pub(crate) struct KeyUsageCache {
    /// Bumped (after the shorter extent is published) whenever bytes a reader may
    /// have seen are taken back: truncation, a rolled-back append.
    rewrites: AtomicU64,
    scans: Mutex<ScanCache>,
}

#[derive(Debug, Default)]
struct ScanCache {
    generation: u64,
    segments: HashMap<u64, SegmentScan>,
}

impl KeyUsageCache {
    /// Called by the writer after it has published a log that lost bytes.
    pub(crate) fn note_rewrite(&self) {
        self.rewrites.fetch_add(1, Ordering::AcqRel);
    }

    /// Key id usage of every segment of `snapshot`. The generation is read before
    /// the caller took the snapshot, so a rewrite racing with this scan tags the
    /// results with the older generation and a later call discards them.
    pub(crate) fn usage(
        &self,
        generation: u64,
        snapshot: &SegmentList,
    ) -> Result<KeyUsage, StorageError> {
        let mut cache = self.scans.lock().unwrap_or_else(|e| e.into_inner());
        if cache.generation != generation {
            cache.segments.clear();
            cache.generation = generation;
        }
        // Forget segments retention or truncation removed.
        cache
            .segments
            .retain(|base, _| snapshot.iter().any(|s| s.base_offset == *base));
        let mut total = KeyUsage::default();
        let mut buf = Vec::new();
        for seg in snapshot.iter() {
            let scan = cache
                .segments
                .entry(seg.base_offset)
                .or_insert_with(|| SegmentScan {
                    scanned_to: 0,
                    next_offset: seg.base_offset,
                    usage: KeyUsage::default(),
                });
            scan_segment(seg, scan, &mut buf)?;
            total.merge(&scan.usage)?;
        }
        Ok(total)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.rewrites.load(Ordering::Acquire)
    }
}

/// Walks the headers of `seg` from where `scan` stopped to the segment's published
/// size. A failure leaves `scan` at the last good batch.
fn scan_segment(
    seg: &Segment,
    scan: &mut SegmentScan,
    buf: &mut Vec<u8>,
) -> Result<(), StorageError> {
    let size = seg.extent().size;
    let corrupt = |pos: u64, offset: Option<u64>, reason: String| {
        StorageError::corrupt(&seg.log_path, pos, offset, reason)
    };
    if size < scan.scanned_to {
        // Only a rewrite shrinks a segment, and a rewrite clears the cache first.
        return Err(corrupt(
            size,
            None,
            "segment shrank under the key-usage scan".into(),
        ));
    }
    let mut window = START_WINDOW;
    while scan.scanned_to < size {
        let pos = scan.scanned_to;
        let want = usize::try_from(size - pos).unwrap_or(window).min(window);
        if want < HEADER_LEN {
            return Err(corrupt(
                pos,
                None,
                "batch header runs past the segment end".into(),
            ));
        }
        buf.resize(want, 0);
        let n = read_at(&seg.log, &seg.log_path, buf, pos)?;
        if n < HEADER_LEN {
            return Err(corrupt(
                pos,
                None,
                "segment file is shorter than its recorded size".into(),
            ));
        }
        let mut q = 0usize;
        let mut walked = 0usize;
        while q + HEADER_LEN <= n {
            let at = pos + q as u64;
            let h = buf
                .get(q..n)
                .ok_or_else(|| corrupt(at, None, "scan position past the read".into()))
                .and_then(|b| {
                    BatchHeader::parse(b).map_err(|e| corrupt(at, None, e.to_string()))
                })?;
            if h.base_offset != scan.next_offset {
                return Err(corrupt(
                    at,
                    Some(h.base_offset),
                    format!("expected a batch at offset {}", scan.next_offset),
                ));
            }
            let len = u64::from(h.length);
            if at + len > size {
                return Err(corrupt(
                    at,
                    Some(h.base_offset),
                    "batch runs past the segment end".into(),
                ));
            }
            scan.usage.add(h.key_id, len)?;
            scan.next_offset = h.next_offset();
            scan.scanned_to = at + len;
            q += h.length as usize;
            walked += 1;
        }
        window = if q > n && walked == 1 {
            MIN_WINDOW
        } else {
            (window * 2).min(MAX_WINDOW)
        };
    }
    Ok(())
}

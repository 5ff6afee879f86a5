//! The two sparse per-segment index files.
//!
//! `.index`: 8-byte entries `relative offset u32 LE || file position u32 LE`, one for
//! the first batch after every `index_interval_bytes` of log (position 0 is implied).
//! `.timeindex`: 12-byte entries `max timestamp i64 LE || relative offset u32 LE`, one
//! for each batch whose max timestamp is above every earlier one in the segment.
//! Both are strictly increasing in every field, so lookups are binary searches.

use std::fs::File;
use std::path::Path;

use crate::StorageError;
use crate::io::read_at;

pub(crate) const INDEX_ENTRY_LEN: u64 = 8;
pub(crate) const TIME_ENTRY_LEN: u64 = 12;

/// Decides which batches get index entries; the writer and recovery share it so a
/// rebuilt index is byte-identical to the one written live.
#[derive(Clone, Debug)]
pub(crate) struct IndexCursor {
    interval: u64,
    bytes_since_entry: u64,
    last_time: Option<i64>,
}

impl IndexCursor {
    pub(crate) fn new(interval: u32) -> Self {
        IndexCursor {
            interval: u64::from(interval),
            bytes_since_entry: 0,
            last_time: None,
        }
    }

    /// Notes a batch of `len` bytes at `pos` with relative offset `rel`, appending the
    /// entries it earns; returns how many (index, time) entries were added.
    pub(crate) fn on_batch(
        &mut self,
        pos: u32,
        rel: u32,
        len: u32,
        max_ts: i64,
        index: &mut Vec<u8>,
        time: &mut Vec<u8>,
    ) -> (u64, u64) {
        let mut added = (0, 0);
        if pos > 0 && self.bytes_since_entry >= self.interval {
            index.extend_from_slice(&rel.to_le_bytes());
            index.extend_from_slice(&pos.to_le_bytes());
            self.bytes_since_entry = 0;
            added.0 = 1;
        }
        self.bytes_since_entry += u64::from(len);
        if self.last_time.is_none_or(|t| max_ts > t) {
            time.extend_from_slice(&max_ts.to_le_bytes());
            time.extend_from_slice(&rel.to_le_bytes());
            self.last_time = Some(max_ts);
            added.1 = 1;
        }
        added
    }

    /// Restores the cursor for a segment whose last index entry is at `last_entry_pos`
    /// (0 if none) and whose log is `size` bytes.
    pub(crate) fn resume(
        interval: u32,
        last_entry_pos: u64,
        size: u64,
        last_time: Option<i64>,
    ) -> Self {
        IndexCursor {
            interval: u64::from(interval),
            bytes_since_entry: size.saturating_sub(last_entry_pos),
            last_time,
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0)
}

fn i64_at(b: &[u8], off: usize) -> i64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map(i64::from_le_bytes)
        .unwrap_or(0)
}

/// (relative offset, position) of entry `i` in an index file image.
pub(crate) fn index_entry(b: &[u8], i: usize) -> (u32, u32) {
    let o = i * INDEX_ENTRY_LEN as usize;
    (u32_at(b, o), u32_at(b, o + 4))
}

/// (timestamp, relative offset) of entry `i` in a time index image.
pub(crate) fn time_entry(b: &[u8], i: usize) -> (i64, u32) {
    let o = i * TIME_ENTRY_LEN as usize;
    (i64_at(b, o), u32_at(b, o + 8))
}

/// Whether an index image is well-formed for a segment of `log_size` bytes holding
/// relative offsets below `rel_end`.
pub(crate) fn index_is_sane(b: &[u8], log_size: u64, rel_end: u64) -> bool {
    if !(b.len() as u64).is_multiple_of(INDEX_ENTRY_LEN) {
        return false;
    }
    let n = b.len() / INDEX_ENTRY_LEN as usize;
    let mut prev: Option<(u32, u32)> = None;
    for i in 0..n {
        let (rel, pos) = index_entry(b, i);
        if pos == 0 || u64::from(pos) >= log_size || u64::from(rel) >= rel_end {
            return false;
        }
        if prev.is_some_and(|(pr, pp)| rel <= pr || pos <= pp) {
            return false;
        }
        prev = Some((rel, pos));
    }
    true
}

/// Whether a time index image is well-formed for relative offsets below `rel_end`.
pub(crate) fn time_index_is_sane(b: &[u8], rel_end: u64) -> bool {
    if !(b.len() as u64).is_multiple_of(TIME_ENTRY_LEN) {
        return false;
    }
    let n = b.len() / TIME_ENTRY_LEN as usize;
    let mut prev: Option<(i64, u32)> = None;
    for i in 0..n {
        let (ts, rel) = time_entry(b, i);
        if u64::from(rel) >= rel_end {
            return false;
        }
        if prev.is_some_and(|(pt, pr)| ts <= pt || rel <= pr) {
            return false;
        }
        prev = Some((ts, rel));
    }
    // A non-empty segment always has an entry for its first batch.
    n == 0 || time_entry(b, 0).1 == 0
}

fn read_entry<const N: usize>(file: &File, path: &Path, i: u64) -> Result<[u8; N], StorageError> {
    let mut e = [0u8; N];
    let n = read_at(file, path, &mut e, i * N as u64)?;
    if n != N {
        return Err(StorageError::corrupt(
            path,
            i * N as u64,
            None,
            "index entry past end of file",
        ));
    }
    Ok(e)
}

/// Binary search in an index file of `count` entries: the last entry whose relative
/// offset is `<= rel`, as (relative offset, position).
pub(crate) fn lookup_offset(
    file: &File,
    path: &Path,
    count: u64,
    rel: u32,
) -> Result<Option<(u32, u32)>, StorageError> {
    let (mut lo, mut hi) = (0u64, count);
    let mut best = None;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let e = read_entry::<8>(file, path, mid)?;
        let (r, p) = index_entry(&e, 0);
        if r <= rel {
            best = Some((r, p));
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(best)
}

/// Binary search in a time index of `count` entries: the first entry whose timestamp
/// is `>= ts`, as (timestamp, relative offset).
pub(crate) fn lookup_time(
    file: &File,
    path: &Path,
    count: u64,
    ts: i64,
) -> Result<Option<(i64, u32)>, StorageError> {
    let (mut lo, mut hi) = (0u64, count);
    let mut best = None;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let e = read_entry::<12>(file, path, mid)?;
        let (t, r) = time_entry(&e, 0);
        if t >= ts {
            best = Some((t, r));
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_spaces_entries_by_interval() {
        let mut c = IndexCursor::new(100);
        let (mut idx, mut time) = (Vec::new(), Vec::new());
        let mut pos = 0u32;
        for (rel, ts) in [(0u32, 5i64), (1, 4), (2, 9), (3, 9), (4, 10)] {
            c.on_batch(pos, rel, 60, ts, &mut idx, &mut time);
            pos += 60;
        }
        // Entries at the first batches after 100 bytes: pos 120 (rel 2) and pos 240 (rel 4).
        assert_eq!(idx.len(), 16);
        assert_eq!(index_entry(&idx, 0), (2, 120));
        assert_eq!(index_entry(&idx, 1), (4, 240));
        assert!(index_is_sane(&idx, 300, 5));
        assert!(!index_is_sane(&idx, 240, 5));
        // Time entries only when the max timestamp grows.
        assert_eq!(time.len(), 36);
        assert_eq!(time_entry(&time, 0), (5, 0));
        assert_eq!(time_entry(&time, 1), (9, 2));
        assert_eq!(time_entry(&time, 2), (10, 4));
        assert!(time_index_is_sane(&time, 5));
        assert!(!time_index_is_sane(&time[..35], 5));
    }
}

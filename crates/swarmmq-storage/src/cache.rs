//! The tail cache: the most recently appended batches of one log, in memory, so that
//! readers near the end (the common case: consumers keeping up) are served without
//! touching the file. With direct writes the page cache does not hold new data, and a
//! buffered read of it would go to the disk and allocate fresh page-cache pages.
//!
//! The cache holds a contiguous run of whole batches ending at the log's end: the
//! writer pushes every batch it appends (after publishing it to readers), evicts the
//! oldest past the byte bound, and cuts it on truncation, rollback and retention before
//! readers can see the shorter log. Offsets never change meaning while a batch is
//! cached (they only go away), so rolling needs no invalidation. The bytes are the
//! `Bytes` the writer wrote, shared, never copied; their CRC was computed or checked
//! in memory and is not checked again on a hit.

use std::collections::VecDeque;
use std::sync::RwLock;

use bytes::Bytes;

use crate::batch::{Batch, BatchHeader};
use crate::reader::ReadResult;

#[derive(Debug)]
struct Entry {
    header: BatchHeader,
    bytes: Bytes,
}

#[derive(Debug, Default)]
struct Inner {
    entries: VecDeque<Entry>,
    bytes: u64,
}

/// A bounded, shared cache of the newest batches of one log.
#[derive(Debug)]
pub(crate) struct TailCache {
    max_bytes: u64,
    inner: RwLock<Inner>,
}

/// What serving a read from the cache achieved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CacheRead {
    /// The read is complete (limit or byte budget reached).
    Done,
    /// The cache ran out (or never held the offset): continue from the file at the
    /// offset after the last batch taken, if any.
    Continue,
}

impl TailCache {
    pub(crate) fn new(max_bytes: u64) -> Self {
        TailCache {
            max_bytes,
            inner: RwLock::new(Inner::default()),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; every update below leaves the
        // deque whole.
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds batches the writer just appended and published, in offset order, then
    /// evicts the oldest past the bound. A batch that does not follow on from the
    /// cached run (not expected) empties the cache first, keeping it contiguous.
    pub(crate) fn push(&self, batches: impl IntoIterator<Item = Bytes>) {
        if self.max_bytes == 0 {
            return;
        }
        let mut inner = self.write();
        for bytes in batches {
            let Ok(header) = BatchHeader::parse(&bytes) else {
                inner.entries.clear();
                inner.bytes = 0;
                continue;
            };
            if inner
                .entries
                .back()
                .is_some_and(|last| last.header.next_offset() != header.base_offset)
            {
                inner.entries.clear();
                inner.bytes = 0;
            }
            inner.bytes += bytes.len() as u64;
            inner.entries.push_back(Entry { header, bytes });
        }
        while inner.bytes > self.max_bytes {
            match inner.entries.pop_front() {
                Some(e) => inner.bytes -= e.bytes.len() as u64,
                None => break,
            }
        }
    }

    /// Drops every batch that reaches `offset` or beyond (truncation, rollback). Call
    /// it before readers can see the shorter log.
    pub(crate) fn truncate_from(&self, offset: u64) {
        let mut inner = self.write();
        while inner
            .entries
            .back()
            .is_some_and(|e| e.header.next_offset() > offset)
        {
            if let Some(e) = inner.entries.pop_back() {
                inner.bytes -= e.bytes.len() as u64;
            }
        }
    }

    /// Drops every batch below `offset` (retention deleted its segment).
    pub(crate) fn drop_below(&self, offset: u64) {
        let mut inner = self.write();
        while inner
            .entries
            .front()
            .is_some_and(|e| e.header.base_offset < offset)
        {
            if let Some(e) = inner.entries.pop_front() {
                inner.bytes -= e.bytes.len() as u64;
            }
        }
    }

    /// Bytes and batches held.
    pub(crate) fn usage(&self) -> (u64, usize) {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        (inner.bytes, inner.entries.len())
    }

    /// Serves a read from `offset` with the file path's rules (whole batches, the
    /// first one even past `budget`, none reaching `limit`), appending to `out`.
    pub(crate) fn read(
        &self,
        offset: u64,
        limit: u64,
        budget: &mut usize,
        out: &mut ReadResult,
    ) -> CacheRead {
        if self.max_bytes == 0 {
            return CacheRead::Continue;
        }
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if inner
            .entries
            .front()
            .is_none_or(|e| e.header.base_offset > offset)
        {
            return CacheRead::Continue;
        }
        let first = inner
            .entries
            .partition_point(|e| e.header.next_offset() <= offset);
        for e in inner.entries.range(first..) {
            if e.header.last_offset() >= limit {
                return CacheRead::Done;
            }
            let len = e.bytes.len();
            if !out.is_empty() && len > *budget {
                return CacheRead::Done;
            }
            out.batches
                .push(Batch::from_trusted(e.bytes.clone(), e.header));
            *budget = budget.saturating_sub(len);
            if *budget == 0 {
                return CacheRead::Done;
            }
        }
        CacheRead::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, RecordInput};
    use swarmmq_crypto::{KeyRing, MasterKey};

    /// A stamped batch of `n` records at `base` with a `len`-byte payload each.
    fn batch(base: u64, n: u32, len: usize) -> Bytes {
        let ring = KeyRing::single(MasterKey::from_bytes([5; 32]));
        let mut b = BatchBuilder::new(&ring, 1, 256).unwrap();
        let payload = vec![7u8; len];
        for _ in 0..n {
            b.push(RecordInput {
                timestamp_ms: 1,
                priority: 5,
                id: None,
                key: None,
                headers: &[],
                deliver_at_ms: None,
                expires_at_ms: None,
                payload: &payload,
            })
            .unwrap();
        }
        b.finish().into_batch(base, 1).unwrap().into_bytes()
    }

    /// Batches of 2 records at 0, 2, 4, ...
    fn run(from: u64, count: u64) -> Vec<Bytes> {
        (0..count).map(|i| batch(from + 2 * i, 2, 50)).collect()
    }

    fn offsets(out: &ReadResult) -> Vec<u64> {
        out.batches.iter().map(|b| b.base_offset()).collect()
    }

    #[test]
    fn evicts_oldest_past_the_bound() {
        let one = run(0, 1)[0].len() as u64;
        let cache = TailCache::new(5 * one + one / 2);
        cache.push(run(0, 20));
        assert_eq!(cache.usage(), (5 * one, 5));
        let mut out = ReadResult::default();
        let mut budget = usize::MAX;
        // Before the cached run: a miss, nothing taken.
        assert_eq!(
            cache.read(29, u64::MAX, &mut budget, &mut out),
            CacheRead::Continue
        );
        assert!(out.is_empty());
        // Inside it: from the batch holding the offset to the end, then "continue".
        assert_eq!(
            cache.read(31, u64::MAX, &mut budget, &mut out),
            CacheRead::Continue
        );
        assert_eq!(offsets(&out), vec![30, 32, 34, 36, 38]);
        // A batch bigger than the whole bound leaves the cache empty, never partial.
        cache.push([batch(40, 1, 2000)]);
        assert_eq!(cache.usage(), (0, 0));
        // And the run restarts contiguous from there.
        cache.push(run(41, 2));
        assert_eq!(cache.usage().1, 2);
    }

    #[test]
    fn reads_follow_the_file_rules() {
        let cache = TailCache::new(1 << 20);
        let batches = run(0, 10);
        let len = batches[0].len();
        cache.push(batches);
        let read = |offset, limit, max: usize| {
            let mut out = ReadResult::default();
            let mut budget = max;
            let r = cache.read(offset, limit, &mut budget, &mut out);
            (offsets(&out), r)
        };
        // The first batch even past the budget; then only whole batches that fit.
        assert_eq!(read(0, u64::MAX, 1), (vec![0], CacheRead::Done));
        assert_eq!(read(0, u64::MAX, 0), (vec![0], CacheRead::Done));
        assert_eq!(read(3, u64::MAX, 2 * len), (vec![2, 4], CacheRead::Done));
        assert_eq!(
            read(3, u64::MAX, 2 * len + 1),
            (vec![2, 4], CacheRead::Done)
        );
        // Nothing reaching the limit, not even the first batch.
        assert_eq!(read(0, 5, usize::MAX), (vec![0, 2], CacheRead::Done));
        assert_eq!(read(4, 5, usize::MAX), (vec![], CacheRead::Done));
        // Past the cached end: continue from the file.
        assert_eq!(
            read(20, u64::MAX, usize::MAX),
            (vec![], CacheRead::Continue)
        );
    }

    #[test]
    fn truncation_and_retention_cut_the_run() {
        let cache = TailCache::new(1 << 20);
        cache.push(run(0, 10));
        cache.truncate_from(12);
        assert_eq!(cache.usage().1, 6);
        // A cut inside a batch drops that batch too.
        cache.truncate_from(9);
        assert_eq!(cache.usage().1, 4);
        cache.drop_below(4);
        assert_eq!(cache.usage().1, 2);
        let mut out = ReadResult::default();
        let mut budget = usize::MAX;
        assert_eq!(
            cache.read(4, u64::MAX, &mut budget, &mut out),
            CacheRead::Continue
        );
        assert_eq!(offsets(&out), vec![4, 6]);
        // New batches at the cut replace the dropped ones; a gap clears the cache.
        cache.push(run(8, 1));
        assert_eq!(cache.usage().1, 3);
        cache.push(run(100, 1));
        assert_eq!(cache.usage().1, 1);
        cache.truncate_from(0);
        assert_eq!(cache.usage(), (0, 0));
    }

    #[test]
    fn a_zero_bound_disables_the_cache() {
        let cache = TailCache::new(0);
        cache.push(run(0, 3));
        assert_eq!(cache.usage(), (0, 0));
        let mut out = ReadResult::default();
        let mut budget = usize::MAX;
        assert_eq!(
            cache.read(0, u64::MAX, &mut budget, &mut out),
            CacheRead::Continue
        );
        assert!(out.is_empty());
    }
}

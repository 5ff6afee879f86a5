//! The in-memory tail cache seen through the public API: hits give exactly what file
//! reads give, it is bounded and keeps the newest batches, and it never serves a batch
//! that truncation or retention removed.

mod common;

use std::fs;
use std::path::Path;

use common::{append_tagged, batch, open, read_all, records, ring, small_config};
use swarmmq_storage::{Batch, IoMode, LogConfig, LogReader, PartitionLog, StorageError};

/// Overwrites every segment file with garbage of the same length while the log stays
/// open: from now on only the cache can answer correctly.
fn scribble_over_segments(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "log") {
            let len = fs::metadata(&p).unwrap().len() as usize;
            fs::write(&p, vec![0x5au8; len]).unwrap();
        }
    }
}

/// A spread of reads: every offset with small and large budgets, and `upto` cuts.
fn probe(reader: &LogReader, end: u64) -> Vec<Result<Vec<Batch>, String>> {
    let mut out = Vec::new();
    for o in 0..end {
        for (max, upto) in [
            (0, u64::MAX),
            (1, u64::MAX),
            (3000, u64::MAX),
            (usize::MAX, u64::MAX),
            (5000, end / 2),
            (5000, o + 3),
        ] {
            out.push(
                reader
                    .read(o, max, upto)
                    .map(|r| r.batches)
                    .map_err(|e| e.to_string()),
            );
        }
    }
    out
}

fn cache_hits_equal_file_reads(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let cfg = LogConfig {
        segment_max_bytes: 16 * 1024,
        ..small_config(mode)
    };
    let mut log = open(dir.path(), cfg.clone());
    append_tagged(&mut log, &ring, 120);
    let end = log.next_offset();
    assert!(log.segment_count() > 3);
    // Everything fits the default 32 MiB: every read below is a hit.
    assert_eq!(log.tail_cache_usage().1, 120);
    let reader = log.reader();
    let from_cache = probe(&reader, end);
    assert!(from_cache.iter().all(|r| r.is_ok()));
    // Proof they were hits: with the files scribbled over, the same answers.
    scribble_over_segments(dir.path());
    assert_eq!(probe(&reader, end), from_cache);
    drop(log);
    drop(reader);

    // The same reads from the file (a fresh log, an empty cache) of the same bytes.
    let dir2 = tempfile::tempdir().unwrap();
    let mut log = open(dir2.path(), cfg.clone());
    for b in from_cache[3].as_ref().unwrap() {
        log.append_raw(b).unwrap();
    }
    assert_eq!(log.next_offset(), end);
    log.close().unwrap();
    let (log, _) = PartitionLog::open(dir2.path(), cfg).unwrap();
    assert_eq!(log.tail_cache_usage(), (0, 0));
    let from_file = probe(&log.reader(), end);
    assert_eq!(from_file, from_cache);
}

fn cache_is_bounded_and_keeps_the_newest_batches(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let bound = 6000;
    let cfg = LogConfig {
        tail_cache_bytes: bound,
        segment_max_bytes: 1 << 20,
        ..small_config(mode)
    };
    let mut log = open(dir.path(), cfg);
    let mut lens = Vec::new();
    for _ in 0..60 {
        let before = log.size_bytes();
        append_tagged(&mut log, &ring, 1);
        lens.push((log.next_offset(), log.size_bytes() - before));
        let (bytes, _) = log.tail_cache_usage();
        assert!(bytes <= bound);
    }
    // Exactly the newest batches that fit.
    let mut want_bytes = 0;
    let mut want_batches = 0;
    for &(_, len) in lens.iter().rev() {
        if want_bytes + len > bound {
            break;
        }
        want_bytes += len;
        want_batches += 1;
    }
    assert_eq!(log.tail_cache_usage(), (want_bytes, want_batches));
    let oldest_cached = lens[lens.len() - want_batches - 1].0;
    let reader = log.reader();
    scribble_over_segments(dir.path());
    // Cached: still right. Evicted: only the file could answer, and it is garbage now.
    let got = read_all(&reader, &ring, oldest_cached, u64::MAX);
    assert_eq!(got.len() as u64, log.next_offset() - oldest_cached);
    for (o, p) in got {
        assert_eq!(p, common::payload(o, 100));
    }
    assert!(matches!(
        reader.read(oldest_cached - 1, 1, u64::MAX),
        Err(StorageError::Corrupt { .. })
    ));
    drop(log);

    // A batch larger than the bound is not cached, and empties the cache.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            tail_cache_bytes: bound,
            ..small_config(mode)
        },
    );
    append_tagged(&mut log, &ring, 3);
    log.append(&mut [batch(&ring, log.next_offset(), 1, 7000, 1)], 1)
        .unwrap();
    assert_eq!(log.tail_cache_usage(), (0, 0));
    assert_eq!(read_all(&log.reader(), &ring, 0, u64::MAX).len(), 7);
    // Disabled: nothing is ever held.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            tail_cache_bytes: 0,
            ..small_config(mode)
        },
    );
    append_tagged(&mut log, &ring, 5);
    assert_eq!(log.tail_cache_usage(), (0, 0));
}

fn cache_never_serves_truncated_batches(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut log = open(dir.path(), small_config(mode));
    append_tagged(&mut log, &ring, 30);
    let reader = log.reader();
    let all = reader.read(0, usize::MAX, u64::MAX).unwrap().batches;
    let cut = all[12].base_offset();
    let end = log.next_offset();
    log.truncate_suffix(cut).unwrap();
    assert_eq!(log.tail_cache_usage().1, 12);
    // Nothing at or past the cut, from any offset a reader still remembers.
    assert!(reader.read(cut, usize::MAX, u64::MAX).unwrap().is_empty());
    for o in cut + 1..end {
        assert!(matches!(
            reader.read(o, usize::MAX, u64::MAX),
            Err(StorageError::OffsetOutOfRange { .. })
        ));
    }
    let kept = reader.read(0, usize::MAX, u64::MAX).unwrap().batches;
    assert_eq!(kept, all[..12]);
    // New batches (a new term, other payloads) at the same offsets replace them.
    for i in 0..5u64 {
        let next = log.next_offset();
        log.append(&mut [batch(&ring, 1000 + i, 2, 77, 1)], 2)
            .unwrap();
        assert_eq!(next, cut + 2 * i);
    }
    let res = reader.read(cut, usize::MAX, u64::MAX).unwrap().batches;
    assert_eq!(res.len(), 5);
    for (i, b) in res.iter().enumerate() {
        assert_eq!(b.term(), 2);
        assert_eq!(records(b, &ring)[0].1, common::payload(1000 + i as u64, 77));
    }
    // Back to empty: the cache follows.
    log.truncate_suffix(0).unwrap();
    assert_eq!(log.tail_cache_usage(), (0, 0));
    assert!(reader.read(0, usize::MAX, u64::MAX).unwrap().is_empty());
}

fn cache_forgets_segments_retention_deleted(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let cfg = LogConfig {
        retention_max_bytes: Some(3 * 4096),
        ..small_config(mode)
    };
    let mut log = open(dir.path(), cfg);
    append_tagged(&mut log, &ring, 100);
    assert_eq!(log.tail_cache_usage().1, 100);
    let report = log.enforce_retention(0).unwrap();
    assert!(report.segments_deleted > 0);
    let start = log.start_offset();
    let (bytes, _) = log.tail_cache_usage();
    assert_eq!(bytes, log.size_bytes());
    let reader = log.reader();
    assert!(matches!(
        reader.read(start - 1, 1, u64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        read_all(&reader, &ring, start, u64::MAX).len() as u64,
        log.next_offset() - start
    );
}

in_both_modes!(
    cache_hits_equal_file_reads,
    cache_is_bounded_and_keeps_the_newest_batches,
    cache_never_serves_truncated_batches,
    cache_forgets_segments_retention_deleted,
);

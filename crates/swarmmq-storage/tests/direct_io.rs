//! The direct-I/O write path on real files: which mode is in use, block padding on
//! disk and where it goes (close, drop, roll, recovery after a crash), and that the
//! file holds every appended byte as soon as `append` returns.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{batch, open, read_all, ring};
use swarmmq_storage::{EncodedBatch, IoMode, LogConfig, PartitionLog};

const BLOCK: u64 = 4096;

fn config(io: IoMode) -> LogConfig {
    LogConfig {
        segment_max_bytes: 64 << 20,
        ..common::small_config(io)
    }
}

fn last_log(dir: &Path) -> PathBuf {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v.pop().unwrap()
}

/// Whether the file system under `dir` accepts O_DIRECT opens at all.
fn supports_o_direct(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(dir.join("probe"))
        .is_ok()
}

/// A batch of exactly `len` bytes (within a few hundred of the default size), found by
/// adjusting the payload.
fn batch_of_len(tag: u64, len: usize) -> EncodedBatch {
    let ring = ring();
    for p in 18..len {
        let b = batch(&ring, tag, 1, p, 1);
        if b.len() == len {
            return b;
        }
        if b.len() > len {
            break;
        }
    }
    panic!("no batch of {len} bytes");
}

#[test]
fn direct_io_is_used_where_the_file_system_supports_it() {
    let dir = tempfile::tempdir().unwrap();
    let want = if supports_o_direct(dir.path()) {
        IoMode::Direct
    } else {
        IoMode::Buffered
    };
    let (mut log, _) = PartitionLog::open(&dir.path().join("d"), config(IoMode::Direct)).unwrap();
    assert_eq!(log.io_mode(), want);
    eprintln!(
        "io mode in use on {}: {:?}",
        dir.path().display(),
        log.io_mode()
    );
    let (buffered, _) =
        PartitionLog::open(&dir.path().join("b"), config(IoMode::Buffered)).unwrap();
    assert_eq!(buffered.io_mode(), IoMode::Buffered);
    if want == IoMode::Buffered {
        return;
    }
    // What only the direct path does: whole blocks on disk, zero padding after the data.
    let ring = ring();
    log.append(&mut [batch(&ring, 0, 3, 100, 1)], 1).unwrap();
    let size = log.size_bytes();
    assert_ne!(size % BLOCK, 0);
    let bytes = fs::read(last_log(&dir.path().join("d"))).unwrap();
    assert_eq!(bytes.len() as u64, size.next_multiple_of(BLOCK));
    assert!(bytes[size as usize..].iter().all(|&b| b == 0));
}

#[test]
fn the_file_holds_every_appended_byte_as_soon_as_append_returns() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    // No cache: every read below goes to the file.
    let cfg = LogConfig {
        tail_cache_bytes: 0,
        ..config(IoMode::Direct)
    };
    let mut log = open(dir.path(), cfg.clone());
    let path = last_log(dir.path());
    let mut expected: Vec<u8> = Vec::new();
    let check = |log: &PartitionLog, batches: &[EncodedBatch], expected: &mut Vec<u8>| {
        let start = expected.len();
        for b in batches {
            expected.extend_from_slice(b.as_bytes());
        }
        let on_disk = fs::read(&path).unwrap();
        assert!(on_disk.len() >= expected.len());
        assert_eq!(&on_disk[..expected.len()], &expected[..]);
        // A reader sees the same bytes at once (from the file: no cache).
        let first = batches[0].base_offset();
        let res = log.reader().read(first, usize::MAX, u64::MAX).unwrap();
        let got: Vec<u8> = res
            .batches
            .iter()
            .flat_map(|b| b.as_bytes().to_vec())
            .collect();
        assert_eq!(&got[..], &expected[start..]);
    };
    // Unaligned ends, an end exactly on a block boundary, a group larger than the
    // 1 MiB staging buffer, and small appends rewriting the same partial block.
    for i in 0..5 {
        let mut b = [batch(&ring, i, 2, 150, 1)];
        log.append(&mut b, 1).unwrap();
        check(&log, &b, &mut expected);
    }
    let to_boundary = (BLOCK as usize - expected.len() % BLOCK as usize) % BLOCK as usize;
    let to_boundary = if to_boundary < 300 {
        to_boundary + BLOCK as usize
    } else {
        to_boundary
    };
    let mut b = [batch_of_len(9, to_boundary)];
    log.append(&mut b, 1).unwrap();
    check(&log, &b, &mut expected);
    assert_eq!(expected.len() as u64 % BLOCK, 0);
    assert_eq!(fs::metadata(&path).unwrap().len(), expected.len() as u64);
    let mut group: Vec<_> = (0..40)
        .map(|i| batch(&ring, 100 + i * 50, 50, 1000, 1))
        .collect();
    log.append(&mut group, 1).unwrap();
    check(&log, &group, &mut expected);
    for i in 0..20 {
        let mut b = [batch(&ring, 5000 + i, 1, 30 + i as usize, 1)];
        log.append(&mut b, 1).unwrap();
        check(&log, &b, &mut expected);
    }
    log.sync().unwrap();
    let next = log.next_offset();
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), cfg).unwrap();
    assert!(report.torn_tail.is_none());
    assert_eq!(fs::read(&path).unwrap(), expected);
    assert_eq!(read_all(&log.reader(), &ring, 0, next).len() as u64, next);
}

#[test]
fn padding_is_cut_on_close_and_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut log = open(dir.path(), config(IoMode::Direct));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    log.append(&mut [batch(&ring, 0, 3, 100, now)], 1).unwrap();
    let size = log.size_bytes();
    log.close().unwrap();
    let path = last_log(dir.path());
    assert_eq!(fs::metadata(&path).unwrap().len(), size);
    let (mut log, report) = PartitionLog::open(dir.path(), config(IoMode::Direct)).unwrap();
    assert!(report.torn_tail.is_none(), "{report:?}");
    assert_eq!(log.size_bytes(), size);
    // Appending after a reopen continues the partial block read back from the file
    // (timestamps near now, or the reopened segment would be old enough to roll).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    log.append(&mut [batch(&ring, 3, 2, 333, now)], 1).unwrap();
    assert_eq!(log.segment_count(), 1);
    let size = log.size_bytes();
    drop(log);
    assert_eq!(fs::metadata(&path).unwrap().len(), size);
    let (log, report) = PartitionLog::open(dir.path(), config(IoMode::Direct)).unwrap();
    assert!(report.torn_tail.is_none(), "{report:?}");
    assert_eq!(read_all(&log.reader(), &ring, 0, u64::MAX).len(), 5);
}

#[test]
fn a_crash_leaves_zero_padding_that_recovery_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut log = open(dir.path(), config(IoMode::Direct));
    if log.io_mode() != IoMode::Direct {
        eprintln!("skipping: no direct I/O here");
        return;
    }
    common::append_tagged(&mut log, &ring, 10);
    log.sync().unwrap();
    let (next, size) = (log.next_offset(), log.size_bytes());
    // A crash: no close, no drop, so the padding stays on disk.
    std::mem::forget(log);
    let path = last_log(dir.path());
    let padded = fs::metadata(&path).unwrap().len();
    assert_eq!(padded, size.next_multiple_of(BLOCK));
    assert!(padded > size);
    let (log, report) = PartitionLog::open(dir.path(), config(IoMode::Direct)).unwrap();
    let torn = report.torn_tail.expect("padding reported");
    assert!(torn.zero_fill, "{torn:?}");
    assert_eq!(torn.position, size);
    assert_eq!(torn.bytes_dropped, padded - size);
    assert_eq!((log.next_offset(), log.size_bytes()), (next, size));
    assert_eq!(fs::metadata(&path).unwrap().len(), size);
    assert_eq!(read_all(&log.reader(), &ring, 0, next).len() as u64, next);
    drop(log);
    // Space the file system extended but nobody wrote reads as zeros too.
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(size + (1 << 20)).unwrap();
    drop(f);
    let (log, report) = PartitionLog::open(dir.path(), config(IoMode::Direct)).unwrap();
    let torn = report.torn_tail.expect("zero tail reported");
    assert!(torn.zero_fill);
    assert_eq!(torn.bytes_dropped, 1 << 20);
    assert_eq!(log.next_offset(), next);
}

#[test]
fn rolled_segments_end_exactly_at_their_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let cfg = common::small_config(IoMode::Direct);
    let mut log = open(dir.path(), cfg.clone());
    common::append_tagged(&mut log, &ring, 60);
    assert!(log.segment_count() > 5);
    let next = log.next_offset();
    // Even without a close, every sealed segment is exactly its batches, so a crash
    // now leaves only the active segment's padding for recovery.
    let reader = log.reader();
    std::mem::forget(log);
    let logs: Vec<_> = {
        let mut v: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        v.sort();
        v
    };
    let mut sealed = 0;
    for p in &logs[..logs.len() - 1] {
        let bytes = fs::read(p).unwrap();
        let len = bytes.len();
        let batches: usize = swarmmq_storage::decode_batches(bytes.into())
            .map(|b| b.unwrap().len())
            .sum();
        assert_eq!(batches, len, "{p:?}");
        sealed += len as u64;
    }
    let active = reader.size_bytes() - sealed;
    let on_disk = fs::metadata(logs.last().unwrap()).unwrap().len();
    assert_eq!(on_disk, active.next_multiple_of(BLOCK));
    let (log, report) = PartitionLog::open(dir.path(), cfg).unwrap();
    assert!(report.indexes_rebuilt.is_empty(), "{report:?}");
    assert!(report.torn_tail.is_none_or(|t| t.zero_fill));
    assert_eq!(log.next_offset(), next);
    assert_eq!(read_all(&log.reader(), &ring, 0, next).len() as u64, next);
}

#[test]
fn a_log_can_switch_modes_between_opens() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut total = 0;
    for (round, mode) in [
        IoMode::Buffered,
        IoMode::Direct,
        IoMode::Buffered,
        IoMode::Direct,
    ]
    .into_iter()
    .enumerate()
    {
        let mut log = open(dir.path(), config(mode));
        assert_eq!(log.next_offset(), total);
        common::append_tagged(&mut log, &ring, 7);
        total = log.next_offset();
        if round % 2 == 0 {
            log.close().unwrap();
        } else {
            // The direct rounds stop as after a crash.
            log.sync().unwrap();
            std::mem::forget(log);
        }
    }
    let (log, _) = PartitionLog::open(dir.path(), config(IoMode::Buffered)).unwrap();
    // One segment: every round continued the previous round's partial block.
    assert_eq!(log.segment_count(), 1);
    let got = read_all(&log.reader(), &ring, 0, u64::MAX);
    assert_eq!(got.len() as u64, total);
    for (o, p) in got {
        assert_eq!(p, common::payload(o, 100));
    }
}

//! The partition log on real files: append/read, rolls, retention, recovery from torn
//! and corrupt files, index rebuilds, Raft primitives, disk full, concurrency.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{batch, open, read_all, records, ring, small_config};
use swarmmq_crypto::KeyRing;
use swarmmq_storage::{IoMode, LogConfig, LogReader, PartitionLog, StorageError};

/// Appends `batches` batches of 1..=4 records (100-byte payloads); returns the model
/// of (offset, payload tag) and the batch boundaries.
fn fill(log: &mut PartitionLog, n_batches: u64, ts0: i64) -> (Vec<(u64, Vec<u8>)>, Vec<u64>) {
    let ring = ring();
    let mut model = Vec::new();
    let mut bounds = Vec::new();
    for i in 0..n_batches {
        let next = log.next_offset();
        let n = (i % 4 + 1) as u32;
        let mut b = [batch(&ring, next, n, 100, ts0 + next as i64)];
        let out = log.append(&mut b, 1).unwrap();
        assert_eq!(out.base_offsets, vec![next]);
        bounds.push(next);
        for k in 0..u64::from(n) {
            model.push((next + k, common::payload(next + k, 100)));
        }
    }
    (model, bounds)
}

fn segment_logs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn append_and_read_back_across_many_segments(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut log = open(dir.path(), small_config(mode));
    let (model, _) = fill(&mut log, 80, 1000);
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    assert_eq!(log.next_offset(), model.len() as u64);
    let reader = log.reader();
    assert_eq!(read_all(&reader, &ring, 0, log.next_offset()), model);
    // From every offset, including the middle of a batch: the first batch holds it.
    for o in 0..log.next_offset() {
        let res = reader.read(o, 1, u64::MAX).unwrap();
        assert_eq!(res.batches.len(), 1);
        let b = &res.batches[0];
        assert!(b.base_offset() <= o && o <= b.last_offset());
        let got = records(b, &ring);
        assert!(
            got.iter()
                .any(|(off, p)| *off == o && *p == model[o as usize].1)
        );
    }
    // max_bytes is honoured (at least one batch), reads span segments.
    let res = reader.read(0, 100_000, u64::MAX).unwrap();
    assert_eq!(res.next_offset(), Some(log.next_offset()));
    assert!(res.bytes_len() as u64 == log.size_bytes());
    // `upto` hides batches that are not wholly below it.
    let res = reader.read(0, 100_000, 10).unwrap();
    assert!(res.next_offset().unwrap() <= 10);
    assert!(res.batches.iter().all(|b| b.last_offset() < 10));
    // At the end: empty; past the end: out of range.
    assert!(
        reader
            .read(log.next_offset(), 1000, u64::MAX)
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        reader.read(log.next_offset() + 1, 1000, u64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(reader.start_offset(), 0);
    assert_eq!(reader.next_offset(), log.next_offset());
    assert_eq!(reader.size_bytes(), log.size_bytes());
}

fn several_batches_in_one_append_get_dense_offsets(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut log = open(dir.path(), small_config(mode));
    let mut batches: Vec<_> = (0..30).map(|i| batch(&ring, i * 3, 3, 150, 5)).collect();
    let out = log.append(&mut batches, 4).unwrap();
    assert_eq!(out.base_offsets, (0..30).map(|i| i * 3).collect::<Vec<_>>());
    assert_eq!(out.next_offset, 90);
    assert!(log.segment_count() > 3);
    let got = read_all(&log.reader(), &ring, 0, 90);
    assert_eq!(got.len(), 90);
    for (o, p) in got {
        assert_eq!(p, common::payload(o, 150));
    }
    assert_eq!(log.last_term(), 4);
    assert!(matches!(
        log.append(&mut [batch(&ring, 0, 1, 10, 0)], 3),
        Err(StorageError::InvalidArgument(_))
    ));
}

fn reads_by_timestamp(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut log = open(dir.path(), small_config(mode));
    // Timestamps go up by batch, with one batch back in time.
    let mut model = Vec::new();
    for i in 0..40i64 {
        let ts = if i == 20 { 5 } else { 1000 + i * 100 };
        let next = log.next_offset();
        log.append(&mut [batch(&ring, next, 3, 80, ts)], 1).unwrap();
        for k in 0..3 {
            model.push((next + k, ts + k as i64));
        }
    }
    let reader = log.reader();
    for ts in [
        i64::MIN,
        0,
        5,
        6,
        999,
        1000,
        1001,
        1002,
        1003,
        1550,
        2902,
        4000,
        4902,
        4903,
        i64::MAX,
    ] {
        let want = model.iter().find(|(_, t)| *t >= ts).map(|(o, _)| *o);
        assert_eq!(reader.offset_for_timestamp(ts).unwrap(), want, "ts {ts}");
    }
}

fn rolls_by_size_and_by_age(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let config = LogConfig {
        segment_max_bytes: 1_000_000,
        segment_max_age: Duration::from_millis(30),
        ..small_config(mode)
    };
    let mut log = open(dir.path(), config);
    log.append(&mut [batch(&ring, 0, 2, 100, 1)], 1).unwrap();
    log.append(&mut [batch(&ring, 2, 2, 100, 1)], 1).unwrap();
    assert_eq!(log.segment_count(), 1);
    std::thread::sleep(Duration::from_millis(60));
    log.append(&mut [batch(&ring, 4, 2, 100, 1)], 1).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(segment_logs(dir.path()).len(), 2);
    assert!(segment_logs(dir.path())[1].ends_with("00000000000000000004.log"));

    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(mode));
    let one = batch(&ring, 0, 1, 100, 1).len() as u64;
    let per_segment = 4096 / one;
    for i in 0..per_segment * 3 {
        log.append(&mut [batch(&ring, i, 1, 100, 1)], 1).unwrap();
    }
    assert_eq!(log.segment_count(), 3);
    for p in segment_logs(dir.path()) {
        assert!(fs::metadata(&p).unwrap().len() <= 4096);
    }
    // A batch larger than a segment still goes in, alone.
    let big = batch(&ring, log.next_offset(), 1, 6000, 1);
    log.append(&mut [big], 1).unwrap();
    assert_eq!(
        read_all(&log.reader(), &ring, 0, log.next_offset()).len() as u64,
        log.next_offset()
    );
}

fn retention_by_age_and_by_bytes_deletes_whole_old_segments(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let config = LogConfig {
        retention_max_age: Some(Duration::from_millis(1000)),
        ..small_config(mode)
    };
    let mut log = open(dir.path(), config);
    // Old data (timestamps around 1000), then new data (around 100_000).
    fill(&mut log, 30, 1000);
    let old_end = log.next_offset();
    log.roll().unwrap();
    fill(&mut log, 30, 100_000);
    let segments = log.segment_count();
    let report = log.enforce_retention(100_000 + 500).unwrap();
    assert!(report.segments_deleted > 0);
    assert_eq!(report.start_offset, old_end);
    assert_eq!(log.start_offset(), old_end);
    assert_eq!(log.segment_count(), segments - report.segments_deleted);
    let reader = log.reader();
    assert!(matches!(
        reader.read(0, 100, u64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        read_all(&reader, &ring, old_end, log.next_offset()).len() as u64,
        log.next_offset() - old_end
    );
    // Much later everything is expired, but the active segment stays.
    let report = log.enforce_retention(10_000_000).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert!(report.segments_deleted > 0);
    assert!(log.size_bytes() > 0);
    drop(log);
    let (log, rep) = PartitionLog::open(dir.path(), small_config(mode)).unwrap();
    assert_eq!(rep.segments, 1);
    assert_eq!(log.start_offset(), report.start_offset);

    // By bytes: keep at most ~3 segments' worth.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_max_bytes: Some(3 * 4096),
        ..small_config(mode)
    };
    let mut log = open(dir.path(), config);
    fill(&mut log, 100, 1);
    let before = log.size_bytes();
    let report = log.enforce_retention(0).unwrap();
    assert!(report.segments_deleted > 0);
    assert_eq!(log.size_bytes(), before - report.bytes_deleted);
    assert!(log.size_bytes() <= 3 * 4096);
    assert_eq!(log.enforce_retention(0).unwrap().segments_deleted, 0);
    let start = log.start_offset();
    assert_eq!(
        read_all(&log.reader(), &ring, start, log.next_offset()).len() as u64,
        log.next_offset() - start
    );
}

fn reopen_after_clean_close_preserves_everything(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut log = open(dir.path(), small_config(mode));
    let (model, _) = fill(&mut log, 50, 1);
    log.append(&mut [batch(&ring, log.next_offset(), 2, 100, 1)], 9)
        .unwrap();
    let (next, size, segs) = (log.next_offset(), log.size_bytes(), log.segment_count());
    log.close().unwrap();
    let (log, report) = PartitionLog::open(dir.path(), small_config(mode)).unwrap();
    assert!(report.torn_tail.is_none());
    assert!(
        report.indexes_rebuilt.is_empty(),
        "{:?}",
        report.indexes_rebuilt
    );
    assert!(!report.created);
    assert_eq!(
        (log.next_offset(), log.size_bytes(), log.segment_count()),
        (next, size, segs)
    );
    assert_eq!(log.last_term(), 9);
    assert_eq!(report.last_term, 9);
    let got = read_all(&log.reader(), &ring, 0, log.next_offset());
    assert_eq!(&got[..model.len()], &model[..]);
    assert_eq!(got.len() as u64, next);
}

fn copy_dir(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn torn_tail_is_cut_at_every_byte_position(mode: IoMode) {
    let src = tempfile::tempdir().unwrap();
    let ring = ring();
    let config = LogConfig {
        segment_max_bytes: 1_000_000,
        ..small_config(mode)
    };
    let mut log = open(src.path(), config.clone());
    fill(&mut log, 6, 1);
    let last_base = log.next_offset();
    let before_len = log.size_bytes();
    log.append(&mut [batch(&ring, last_base, 3, 120, 1)], 1)
        .unwrap();
    let full_len = log.size_bytes();
    drop(log);
    let seg = segment_logs(src.path()).pop().unwrap();
    let name = seg.file_name().unwrap().to_owned();
    for cut in before_len..full_len {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let f = fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(&name))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let (log, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
        assert_eq!(log.next_offset(), last_base, "cut {cut}");
        assert_eq!(log.size_bytes(), before_len);
        if cut > before_len {
            let torn = report.torn_tail.expect("torn tail reported");
            assert_eq!(torn.position, before_len);
            assert_eq!(torn.bytes_dropped, cut - before_len);
        } else {
            assert!(report.torn_tail.is_none());
        }
        let got = read_all(&log.reader(), &ring, 0, log.next_offset());
        assert_eq!(got.len() as u64, last_base);
        drop(log);
        // The repair is durable and idempotent.
        let (log, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
        assert!(report.torn_tail.is_none());
        assert_eq!(log.next_offset(), last_base);
    }
}

fn trailing_zeros_are_a_torn_tail(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(mode));
    fill(&mut log, 3, 1);
    let (next, size) = (log.next_offset(), log.size_bytes());
    drop(log);
    let seg = segment_logs(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[0u8; 700]);
    fs::write(&seg, bytes).unwrap();
    let (log, report) = PartitionLog::open(dir.path(), small_config(mode)).unwrap();
    let torn = report.torn_tail.unwrap();
    assert_eq!(torn.bytes_dropped, 700);
    assert!(torn.zero_fill);
    assert_eq!((log.next_offset(), log.size_bytes()), (next, size));
}

fn damage_in_the_middle_of_the_last_segment_is_corruption(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_max_bytes: 1_000_000,
        ..small_config(mode)
    };
    let mut log = open(dir.path(), config.clone());
    fill(&mut log, 10, 1);
    drop(log);
    let seg = segment_logs(dir.path()).pop().unwrap();
    let original = fs::read(&seg).unwrap();
    let second = u32::from_le_bytes(original[0..4].try_into().unwrap()) as usize;
    // A flipped payload bit, a flipped length, zeros: each with valid batches after.
    for (at, mask) in [
        (second + 200, 0x10u8),
        (second + 1, 0x01),
        (second + 20, 0xff),
    ] {
        let mut bytes = original.clone();
        bytes[at] ^= mask;
        fs::write(&seg, &bytes).unwrap();
        match PartitionLog::open(dir.path(), config.clone()) {
            Err(StorageError::Corrupt { position, path, .. }) => {
                assert_eq!(position, second as u64);
                assert_eq!(path, seg);
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // Nothing was truncated.
        assert_eq!(fs::read(&seg).unwrap(), bytes);
    }
    fs::write(&seg, &original).unwrap();
    assert!(PartitionLog::open(dir.path(), config).is_ok());
}

fn damage_in_an_old_segment_is_reported_by_read(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut log = open(dir.path(), small_config(mode));
    fill(&mut log, 40, 1);
    drop(log);
    let first = segment_logs(dir.path()).remove(0);
    let mut bytes = fs::read(&first).unwrap();
    bytes[150] ^= 0x04; // inside the first batch's records
    fs::write(&first, &bytes).unwrap();
    let (log, _) = PartitionLog::open(dir.path(), small_config(mode)).unwrap();
    let reader = log.reader();
    match reader.read(0, 10, u64::MAX) {
        Err(StorageError::Corrupt {
            path,
            position,
            offset,
            ..
        }) => {
            assert_eq!(path, first);
            assert_eq!(position, 0);
            assert_eq!(offset, Some(0));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Later segments still read fine.
    let later = log
        .reader()
        .read(log.next_offset() - 1, 10, u64::MAX)
        .unwrap();
    assert_eq!(
        records(&later.batches[0], &ring).len() as u32,
        later.batches[0].record_count()
    );
}

fn missing_and_garbage_indexes_are_rebuilt(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut log = open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 100,
            ..small_config(mode)
        },
    );
    let (model, _) = fill(&mut log, 60, 1000);
    let next = log.next_offset();
    drop(log);
    let logs = segment_logs(dir.path());
    assert!(logs.len() >= 4);
    let idx = |p: &Path, ext: &str| p.with_extension(ext);
    fs::remove_file(idx(&logs[0], "index")).unwrap();
    fs::remove_file(idx(&logs[0], "timeindex")).unwrap();
    fs::write(idx(&logs[1], "index"), b"garbage!garbage!").unwrap();
    fs::write(idx(&logs[2], "timeindex"), [0xffu8; 36]).unwrap();
    let last = logs.last().unwrap();
    fs::write(idx(last, "index"), [1u8; 5]).unwrap();
    fs::remove_file(idx(last, "timeindex")).unwrap();
    fs::write(dir.path().join("00000000000000999999.index"), b"orphan").unwrap();

    let (log, report) = PartitionLog::open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 100,
            ..small_config(mode)
        },
    )
    .unwrap();
    assert!(
        report.indexes_rebuilt.len() >= 6,
        "{:?}",
        report.indexes_rebuilt
    );
    assert_eq!(report.files_removed.len(), 1);
    assert_eq!(log.next_offset(), next);
    let reader = log.reader();
    assert_eq!(read_all(&reader, &ring, 0, next), model);
    for o in (0..next).step_by(7) {
        let b = &reader.read(o, 1, u64::MAX).unwrap().batches[0];
        assert!(b.base_offset() <= o && o <= b.last_offset());
    }
    assert_eq!(reader.offset_for_timestamp(1000 + 77).unwrap(), Some(77));
    drop(log);
    // Rebuilt files are what the writer would have written: nothing to redo.
    let (_, report) = PartitionLog::open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 100,
            ..small_config(mode)
        },
    )
    .unwrap();
    assert!(
        report.indexes_rebuilt.is_empty(),
        "{:?}",
        report.indexes_rebuilt
    );
}

fn truncate_suffix_drops_whole_batches_and_later_segments(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut log = open(dir.path(), small_config(mode));
    let (_, b1) = fill(&mut log, 20, 1);
    let mid = log.next_offset();
    // A later term, as after a leader change.
    for _ in 0..20 {
        let next = log.next_offset();
        log.append(&mut [batch(&ring, next, 2, 100, 1)], 2).unwrap();
    }
    let segments = log.segment_count();
    assert_eq!(log.last_term(), 2);
    // Not a batch boundary.
    let inside = b1[5] + 1;
    assert!(b1[6] > inside);
    assert!(matches!(
        log.truncate_suffix(inside),
        Err(StorageError::InvalidArgument(_))
    ));
    assert!(matches!(
        log.truncate_suffix(log.next_offset() + 1),
        Err(StorageError::OffsetOutOfRange { .. })
    ));

    log.truncate_suffix(mid).unwrap();
    assert_eq!(log.next_offset(), mid);
    assert_eq!(log.last_term(), 1);
    assert!(log.segment_count() < segments);
    assert_eq!(
        read_all(&log.reader(), &ring, 0, u64::MAX).len() as u64,
        mid
    );
    log.truncate_suffix(b1[10]).unwrap();
    assert_eq!(log.next_offset(), b1[10]);
    // Appending continues at the cut, with a new term.
    let next = log.next_offset();
    log.append(&mut [batch(&ring, next, 2, 100, 1)], 3).unwrap();
    assert_eq!(log.last_term(), 3);
    let got = read_all(&log.reader(), &ring, 0, u64::MAX);
    assert_eq!(got.len() as u64, next + 2);
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), small_config(mode)).unwrap();
    assert!(report.torn_tail.is_none());
    assert_eq!(log.next_offset(), next + 2);
    assert_eq!(log.last_term(), 3);
    // Back to empty.
    let mut log = log;
    log.truncate_suffix(0).unwrap();
    assert_eq!(
        (log.next_offset(), log.size_bytes(), log.last_term()),
        (0, 0, 0)
    );
    assert_eq!(log.segment_count(), 1);
}

fn append_raw_copies_a_leader_log(mode: IoMode) {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut leader = open(leader_dir.path(), small_config(mode));
    let (model, _) = fill(&mut leader, 30, 1);
    let mut follower = open(follower_dir.path(), small_config(mode));
    let res = leader.reader().read(0, 1 << 20, u64::MAX).unwrap();
    let first = &res.batches[0];
    let mut bad = res.batches[1].clone();
    assert!(matches!(
        follower.append_raw(&bad),
        Err(StorageError::InvalidArgument(_))
    ));
    bad = first.clone();
    for b in &res.batches {
        follower.append_raw(b).unwrap();
    }
    assert!(matches!(
        follower.append_raw(&bad),
        Err(StorageError::InvalidArgument(_))
    ));
    follower.sync().unwrap();
    assert_eq!(follower.next_offset(), leader.next_offset());
    assert_eq!(follower.size_bytes(), leader.size_bytes());
    assert_eq!(read_all(&follower.reader(), &ring, 0, u64::MAX), model);
    // Byte-identical segments.
    let a: Vec<_> = segment_logs(leader_dir.path())
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    let b: Vec<_> = segment_logs(follower_dir.path())
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    assert_eq!(a, b);
}

fn no_plaintext_reaches_any_file(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut log = open(dir.path(), small_config(mode));
    let marker = b"SECRET-MARKER-7f3a9c";
    for i in 0..30u64 {
        let mut b = swarmmq_storage::BatchBuilder::new(&ring, 1, 512).unwrap();
        let mut payload = marker.to_vec();
        payload.extend_from_slice(format!("-{i}").as_bytes());
        b.push(swarmmq_storage::RecordInput {
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
        log.append(&mut [b.finish()], 1).unwrap();
    }
    log.close().unwrap();
    let mut files = 0;
    for e in fs::read_dir(dir.path()).unwrap() {
        let bytes = fs::read(e.unwrap().path()).unwrap();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker));
        files += 1;
    }
    assert!(files >= 3);
    // ...while the records decrypt to the marker.
    let (log, _) = PartitionLog::open(dir.path(), small_config(mode)).unwrap();
    let got = read_all(&log.reader(), &ring, 0, u64::MAX);
    assert!(got.iter().all(|(_, p)| p.starts_with(marker)));
}

/// Reads from `from` to the reader's current end, `max_bytes` at a time, checking
/// every batch and every record; returns the offset reached.
fn read_and_check(reader: &LogReader, ring: &KeyRing, from: u64, max_bytes: usize) -> u64 {
    let mut next = from;
    let end = reader.next_offset();
    while next < end {
        let res = reader.read(next, max_bytes, end).unwrap();
        assert!(!res.is_empty());
        for b in &res.batches {
            assert!(b.verify_crc());
            for (o, p) in records(b, ring) {
                if o >= next {
                    assert_eq!(o, next);
                    assert_eq!(p, common::payload(o, 90));
                    next += 1;
                }
            }
        }
    }
    next
}

fn concurrent_reader_sees_whole_valid_batches(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_max_bytes: 2048,
            // Small: the tailing reader mostly hits, the lagging one mostly misses.
            tail_cache_bytes: 3000,
            ..small_config(mode)
        },
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A reader right behind the writer, one reading a batch at a time (falling behind
    // the cache), and one re-reading from the start over and over.
    let readers: Vec<_> = [(1500usize, false), (1, false), (4000, true)]
        .into_iter()
        .map(|(max_bytes, restart)| {
            let stop = stop.clone();
            let ring = ring.clone();
            let reader = log.reader();
            std::thread::spawn(move || {
                let mut next = 0u64;
                let mut reads = 0u64;
                loop {
                    let done = stop.load(std::sync::atomic::Ordering::Acquire);
                    let from = if restart { 0 } else { next };
                    next = read_and_check(&reader, &ring, from, max_bytes);
                    reads += 1;
                    if done {
                        return (next, reads);
                    }
                }
            })
        })
        .collect();
    for i in 0..400 {
        let next = log.next_offset();
        log.append(&mut [batch(&ring, next, 3, 90, 1)], 1).unwrap();
        if i % 10 == 0 {
            log.sync().unwrap();
        }
        if i % 37 == 0 {
            log.roll().unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    for h in readers {
        let (seen, reads) = h.join().unwrap();
        assert_eq!(seen, log.next_offset());
        assert!(reads > 0);
    }
    assert!(log.segment_count() > 50);
}

/// A small file system to fill up.
#[derive(Clone, Copy, Debug)]
enum SmallFs {
    /// 256 KiB tmpfs (page-cache backed; accepts O_DIRECT opens on recent kernels).
    Tmpfs,
    /// 8 MiB ext4 on a loop device: real direct I/O and real block allocation.
    Ext4,
}

fn run(cmd: &str, args: &[&std::ffi::OsStr]) -> bool {
    std::process::Command::new(cmd)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `f` with a small file system mounted at a fresh directory, if this process
/// may mount (root in a permissive container, loop devices for ext4); otherwise says
/// so and skips.
fn with_small_fs(kind: SmallFs, f: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let ok = match kind {
        SmallFs::Tmpfs => run(
            "mount",
            &[
                "-t".as_ref(),
                "tmpfs".as_ref(),
                "-o".as_ref(),
                "size=256k".as_ref(),
                "tmpfs".as_ref(),
                mnt.as_os_str(),
            ],
        ),
        SmallFs::Ext4 => {
            let img = dir.path().join("fs.img");
            fs::File::create(&img).unwrap().set_len(8 << 20).unwrap();
            run(
                "mkfs.ext4",
                &["-q".as_ref(), "-F".as_ref(), img.as_os_str()],
            ) && run(
                "mount",
                &[
                    "-o".as_ref(),
                    "loop".as_ref(),
                    img.as_os_str(),
                    mnt.as_os_str(),
                ],
            )
        }
    };
    if !ok {
        eprintln!(
            "skipping disk-full test on {kind:?}: cannot mount it here (not root, no CAP_SYS_ADMIN, no loop device or no mkfs.ext4)"
        );
        return;
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mnt)));
    let _ = run("umount", &[mnt.as_os_str()]);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// Appends until the file system is full; checks that the failed append left nothing
/// behind and that the log stays usable.
fn fill_until_disk_full(mnt: &Path, mode: IoMode, expect_direct: bool) {
    let ring = ring();
    let dir = mnt.join("p0");
    let config = LogConfig {
        segment_max_bytes: 64 * 1024,
        ..small_config(mode)
    };
    let mut log = open(&dir, config.clone());
    if expect_direct {
        assert_eq!(log.io_mode(), IoMode::Direct);
    }
    let mut full = None;
    for i in 0..2000u64 {
        let next = log.next_offset();
        let (size, segs) = (log.size_bytes(), log.segment_count());
        let mut b: Vec<_> = (0..3)
            .map(|k| batch(&ring, next + k * 4, 4, 1000, 1))
            .collect();
        match log.append(&mut b, 1) {
            Ok(_) => {}
            Err(StorageError::DiskFull { path, .. }) => {
                if expect_direct {
                    // The direct write of the log itself ran out of space.
                    assert!(path.extension().is_some_and(|e| e == "log"), "{path:?}");
                }
                // Nothing of the failed call stays: offsets, sizes, segments, files
                // (not even direct-I/O padding: the rollback cut the file to size).
                assert_eq!(log.next_offset(), next);
                assert_eq!(log.size_bytes(), size);
                assert_eq!(log.segment_count(), segs);
                let on_disk: u64 = segment_logs(&dir)
                    .iter()
                    .map(|p| fs::metadata(p).unwrap().len())
                    .sum();
                assert_eq!(on_disk, size);
                full = Some(i);
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(full.is_some(), "the file system never filled");
    assert!(!log.is_poisoned());
    let next = log.next_offset();
    assert_eq!(read_all(&log.reader(), &ring, 0, next).len() as u64, next);
    // The same log keeps working where space allows: a sync, and reads from the file.
    log.sync().unwrap();
    // Free space by retention, then appending works again.
    let config2 = LogConfig {
        retention_max_bytes: Some(64 * 1024),
        ..config.clone()
    };
    drop(log);
    let (mut log, report) = PartitionLog::open(&dir, config2).unwrap();
    assert!(report.torn_tail.is_none());
    assert_eq!(log.next_offset(), next);
    log.enforce_retention(0).unwrap();
    log.append(&mut [batch(&ring, next, 2, 1000, 1)], 1)
        .unwrap();
    log.sync().unwrap();
    assert_eq!(log.next_offset(), next + 2);
    let start = log.start_offset();
    assert_eq!(
        read_all(&log.reader(), &ring, start, next + 2).len() as u64,
        next + 2 - start
    );
}

fn disk_full_cuts_the_partial_write_and_the_log_stays_usable(mode: IoMode) {
    with_small_fs(SmallFs::Tmpfs, |mnt| fill_until_disk_full(mnt, mode, false));
}

fn disk_full_on_ext4_cuts_the_partial_write_and_the_log_stays_usable(mode: IoMode) {
    with_small_fs(SmallFs::Ext4, |mnt| {
        fill_until_disk_full(mnt, mode, mode == IoMode::Direct)
    });
}

fn a_last_batch_failing_its_crc_is_a_torn_tail(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let config = LogConfig {
        segment_max_bytes: 1_000_000,
        ..small_config(mode)
    };
    let mut log = open(dir.path(), config.clone());
    fill(&mut log, 5, 1);
    let (next, size) = (log.next_offset(), log.size_bytes());
    log.append(&mut [batch(&ring, next, 3, 100, 1)], 1).unwrap();
    drop(log);
    let seg = segment_logs(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    let at = size as usize + 150;
    bytes[at] ^= 0x20;
    fs::write(&seg, &bytes).unwrap();
    let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
    let torn = report.torn_tail.unwrap();
    assert_eq!(torn.position, size);
    assert_eq!(torn.offsets_dropped, Some((next, next + 3)));
    assert!(torn.reason.contains("CRC"), "{}", torn.reason);
    assert!(!torn.zero_fill);
    assert_eq!((log.next_offset(), log.size_bytes()), (next, size));
}

fn a_short_older_segment_is_corruption_not_a_torn_tail(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(mode));
    fill(&mut log, 40, 1);
    drop(log);
    let first = segment_logs(dir.path()).remove(0);
    let len = fs::metadata(&first).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&first).unwrap();
    f.set_len(len - 10).unwrap();
    drop(f);
    match PartitionLog::open(dir.path(), small_config(mode)) {
        Err(StorageError::Corrupt { path, .. }) => assert_eq!(path, first),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(fs::metadata(&first).unwrap().len(), len - 10);
}

// Every test above runs in both write modes.
in_both_modes!(
    append_and_read_back_across_many_segments,
    several_batches_in_one_append_get_dense_offsets,
    reads_by_timestamp,
    rolls_by_size_and_by_age,
    retention_by_age_and_by_bytes_deletes_whole_old_segments,
    reopen_after_clean_close_preserves_everything,
    torn_tail_is_cut_at_every_byte_position,
    trailing_zeros_are_a_torn_tail,
    damage_in_the_middle_of_the_last_segment_is_corruption,
    damage_in_an_old_segment_is_reported_by_read,
    missing_and_garbage_indexes_are_rebuilt,
    truncate_suffix_drops_whole_batches_and_later_segments,
    append_raw_copies_a_leader_log,
    no_plaintext_reaches_any_file,
    concurrent_reader_sees_whole_valid_batches,
    disk_full_cuts_the_partial_write_and_the_log_stays_usable,
    disk_full_on_ext4_cuts_the_partial_write_and_the_log_stays_usable,
    a_last_batch_failing_its_crc_is_a_torn_tail,
    a_short_older_segment_is_corruption_not_a_torn_tail,
);

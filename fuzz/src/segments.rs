//! Partition log recovery: arbitrary bytes written as segment files (`.log`,
//! `.index`, `.timeindex`, leftover `.tmp`) of up to three segments, then the log is
//! opened, read end to end, appended to, closed and opened again.
//!
//! Rules checked (docs/storage.md, "Recovery"): `open` either succeeds or refuses with
//! `Corrupt`, never panics; reads return whole batches with dense offsets from where
//! they were asked, or `Corrupt`/crypto errors, and always make progress; a recovered
//! log takes appends and reads them back; a log that was opened and closed opens again
//! unchanged, with no torn tail.
//!
//! Input format (also written by the seed generator): `flags u8, base1 u32 LE,
//! base2 u32 LE`, then files as `kind u8, len u16 LE, bytes`. `kind` bits 0-1: 0 `.log`,
//! 1 `.index`, 2 `.timeindex`, 3 `.index.tmp`; bits 2-3: the segment slot, whose base
//! offsets are 0, base1 and base2 (slot 3 names an unrelated file). `flags` bit 0:
//! direct I/O; bit 1: append a batch after recovery.

use std::path::Path;

use swarmmq_crypto::KeyRing;
use swarmmq_storage::{
    BatchBuilder, FsyncPolicy, IoMode, LogConfig, LogReader, PartitionLog, RecordInput,
    StorageError,
};

use crate::batch::{check_batch, ring};

/// One file of a packed input.
pub struct File<'a> {
    pub kind: u8,
    pub bytes: &'a [u8],
}

/// Packs files into the input format (for the seed generator and regression tests).
pub fn pack(flags: u8, base1: u32, base2: u32, files: &[File<'_>]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&base1.to_le_bytes());
    out.extend_from_slice(&base2.to_le_bytes());
    for f in files {
        let len = u16::try_from(f.bytes.len()).expect("seed file larger than 64 KiB");
        out.push(f.kind);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(f.bytes);
    }
    out
}

/// The file name a `kind` byte stands for.
pub fn file_name(kind: u8, bases: [u64; 3]) -> String {
    let slot = usize::from(kind >> 2 & 3);
    let Some(base) = bases.get(slot) else {
        return format!("unrelated-{}.log", kind & 3);
    };
    let ext = match kind & 3 {
        0 => "log",
        1 => "index",
        2 => "timeindex",
        _ => "index.tmp",
    };
    format!("{base:020}.{ext}")
}

/// The log settings of every run: tiny segments and index intervals so that small
/// inputs reach rolls and index entries.
pub fn config(flags: u8) -> LogConfig {
    LogConfig {
        segment_max_bytes: 4096,
        index_interval_bytes: 256,
        fsync: FsyncPolicy::Never,
        max_batch_bytes: 64 * 1024,
        io: if flags & 1 == 1 {
            IoMode::Direct
        } else {
            IoMode::Buffered
        },
        tail_cache_bytes: 16 * 1024,
        ..LogConfig::default()
    }
}

/// Writes the files of `data` into `dir`; returns the flags, or `None` when the input
/// is too short to hold the fixed part.
pub fn unpack_into(data: &[u8], dir: &Path) -> Option<u8> {
    let flags = *data.first()?;
    let word = |at: usize| -> Option<u64> {
        let b = data.get(at..at + 4)?;
        Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    };
    let bases = [0, word(1)?, word(5)?];
    let mut rest = data.get(9..)?;
    while let [kind, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        std::fs::write(dir.join(file_name(*kind, bases)), bytes).expect("write segment file");
        rest = after;
    }
    Some(flags)
}

fn allowed_read_error(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::Corrupt { .. } | StorageError::Malformed(_) | StorageError::Crypto(_)
    )
}

/// Reads `[from, upto)` batch by batch; returns how far it got.
pub fn read_all(reader: &LogReader, ring: &KeyRing, from: u64, upto: u64) -> u64 {
    let mut next = from;
    while next < upto {
        let res = match reader.read(next, 8 * 1024, upto) {
            Ok(r) => r,
            Err(e) => {
                assert!(
                    allowed_read_error(&e),
                    "read at {next}: unexpected error {e:?}"
                );
                return next;
            }
        };
        assert!(
            !res.is_empty(),
            "read at {next} below the end {upto} returned nothing"
        );
        let mut expected = None;
        for b in &res.batches {
            match expected {
                None => assert!(
                    b.base_offset() <= next && next < b.next_offset(),
                    "first batch {}..{} does not hold offset {next}",
                    b.base_offset(),
                    b.next_offset()
                ),
                Some(e) => assert_eq!(b.base_offset(), e, "batches not contiguous"),
            }
            expected = Some(b.next_offset());
            assert!(b.next_offset() <= upto, "read past upto");
            check_batch(b, ring);
        }
        let after = res.next_offset().unwrap_or(next);
        assert!(after > next, "read at {next} made no progress");
        next = after;
    }
    next
}

fn appended_batch(ring: &KeyRing) -> swarmmq_storage::EncodedBatch {
    let mut b = BatchBuilder::new(ring, 3, 256).expect("builder");
    for i in 0..3u8 {
        b.push(RecordInput {
            timestamp_ms: 1_700_000_000_000 + i64::from(i),
            priority: 5,
            id: None,
            key: None,
            headers: &[],
            deliver_at_ms: None,
            expires_at_ms: None,
            payload: &[b'p', i],
        })
        .expect("push");
    }
    b.finish()
}

pub fn check_input(data: &[u8]) {
    let base = Path::new("/dev/shm");
    let tmp = if base.is_dir() {
        tempfile::tempdir_in(base)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
    let dir = tmp.path().join("p");
    std::fs::create_dir(&dir).expect("partition dir");
    let Some(flags) = unpack_into(data, &dir) else {
        return;
    };
    check_dir(&dir, flags);
}

/// Opens, reads, appends, closes and reopens the log in `dir`.
pub fn check_dir(dir: &Path, flags: u8) {
    let ring = ring();
    let (mut log, report) = match PartitionLog::open(dir, config(flags)) {
        Ok(x) => x,
        Err(e) => {
            assert!(
                matches!(e, StorageError::Corrupt { .. }),
                "open: unexpected error {e:?}"
            );
            return;
        }
    };
    assert_eq!(report.next_offset, log.next_offset());
    assert!(log.start_offset() <= log.next_offset());
    let reader = log.reader();
    read_all(&reader, &ring, log.start_offset(), log.next_offset());
    for ts in [i64::MIN, 0, 1_700_000_000_000, i64::MAX] {
        if let Err(e) = reader.offset_for_timestamp(ts) {
            assert!(
                allowed_read_error(&e),
                "offset_for_timestamp: unexpected error {e:?}"
            );
        }
    }
    if flags & 2 == 2 {
        let before = log.next_offset();
        let term = log.last_term();
        let out = log
            .append(&mut [appended_batch(&ring)], term)
            .unwrap_or_else(|e| panic!("append after recovery failed: {e:?}"));
        assert_eq!(out.base_offsets, [before]);
        let res = reader
            .read(before, 1 << 20, log.next_offset())
            .unwrap_or_else(|e| panic!("reading the appended batch failed: {e:?}"));
        let batch = res.batches.first().expect("the appended batch");
        let payloads: Vec<_> = batch
            .decrypt_records(&ring)
            .map(|r| r.expect("decrypt the appended batch").payload)
            .collect();
        assert_eq!(payloads, [&b"p\0"[..], b"p\x01", b"p\x02"]);
    }
    let next = log.next_offset();
    let start = log.start_offset();
    log.close()
        .unwrap_or_else(|e| panic!("close failed: {e:?}"));
    let (again, report) = PartitionLog::open(dir, config(flags))
        .unwrap_or_else(|e| panic!("a log that opened and closed does not reopen: {e:?}"));
    assert_eq!((again.start_offset(), again.next_offset()), (start, next));
    assert_eq!(
        report.torn_tail, None,
        "a closed log reopened with a torn tail"
    );
}

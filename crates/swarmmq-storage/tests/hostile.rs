//! Hostile bytes against storage: the stable-toolchain twin of the `fuzz/` targets
//! `batch` and `segment_recovery` (see `docs/security/hostile.md`).
//!
//! Batches (from disk or a replica): decoding arbitrary or damaged bytes returns
//! `Malformed` or a crypto error, never panics; a parsed batch yields dense offsets from
//! its base, and the metadata decrypted with the key equals the metadata read without
//! it; every strict prefix of a batch is refused.
//!
//! Recovery (docs/storage.md): segment files damaged in any one way, or made of random
//! bytes, either open or are refused as `Corrupt`; an opened log reads back end to end
//! (or stops at a `Corrupt`/crypto error) with progress on every read, takes an append,
//! and after `close` reopens unchanged with no torn tail. A last segment cut at any
//! length always opens, keeping exactly the whole batches before the cut.
//!
//! Cases per property: 256 (batches) and 64 (recovery, which writes files) by default;
//! `SWARMMQ_FUZZ_CASES=200000` for a long run.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;
use proptest::prelude::*;
use swarmmq_crypto::KeyRing;
use swarmmq_storage::{
    Batch, BatchBuilder, EncodedBatch, FsyncPolicy, HEADER_LEN, IoMode, LogConfig, LogReader,
    PartitionLog, RecordHeaderRef, RecordInput, StorageError, decode_batches,
};
use swarmmq_types::MessageId;

/// `default_cases`, or `SWARMMQ_FUZZ_CASES` when set.
fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("SWARMMQ_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- batches ----

/// Rewrites each whole length-prefixed batch's CRC so damage reaches the record
/// decoder instead of stopping at the CRC check.
fn fix_crcs(bytes: &mut [u8]) {
    let mut pos = 0usize;
    while let Some(len) = bytes.get(pos..pos + 4) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len < HEADER_LEN || pos + len > bytes.len() {
            return;
        }
        let crc = crc32c::crc32c(&bytes[pos + 8..pos + len]);
        bytes[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        pos += len;
    }
}

fn allowed(e: &StorageError) -> bool {
    matches!(e, StorageError::Malformed(_) | StorageError::Crypto(_))
}

fn check_batch(batch: &Batch, ring: &KeyRing) {
    assert!(batch.record_count() >= 1);
    assert_eq!(
        batch.next_offset() - batch.base_offset(),
        u64::from(batch.record_count())
    );
    let mut metas = Vec::new();
    for m in batch.records_meta() {
        match m {
            Ok(m) => {
                assert_eq!(m.offset, batch.base_offset() + metas.len() as u64);
                assert!(m.headers.iter().count() <= 64);
                metas.push(m);
            }
            Err(e) => {
                assert!(allowed(&e), "{e:?}");
                break;
            }
        }
    }
    for (i, r) in batch.decrypt_records(ring).enumerate() {
        match r {
            Ok(r) => {
                assert_eq!(Some(&r.meta), metas.get(i), "decrypted metadata differs");
                assert_eq!(r.payload.len() as u64, u64::from(r.meta.payload_len));
            }
            Err(e) => {
                assert!(allowed(&e), "{e:?}");
                break;
            }
        }
    }
}

fn check_batches(bytes: Vec<u8>) {
    let ring = common::ring();
    for b in decode_batches(Bytes::from(bytes)) {
        match b {
            Ok(b) => check_batch(&b, &ring),
            Err(e) => assert!(allowed(&e), "{e:?}"),
        }
    }
}

/// A record as the builder takes it, with owned parts.
#[derive(Debug, Clone)]
struct Rec {
    priority: u8,
    id: Option<MessageId>,
    key: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    deliver_in: Option<i64>,
    payload: Vec<u8>,
}

fn rec() -> impl Strategy<Value = Rec> {
    let id = prop_oneof![
        Just(None),
        any::<[u8; 16]>().prop_map(|u| Some(MessageId::Uuid(u))),
        "[a-z0-9-]{1,40}".prop_map(|t| MessageId::text(t).ok()),
    ];
    (
        1u8..=10,
        id,
        prop::option::of(prop::collection::vec(any::<u8>(), 0..12)),
        prop::collection::vec(
            ("[a-z]{0,6}", prop::collection::vec(any::<u8>(), 0..6)),
            0..3,
        ),
        prop::option::of(-5000i64..5000),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(priority, id, key, headers, deliver_in, payload)| Rec {
            priority,
            id,
            key,
            headers,
            deliver_in,
            payload,
        })
}

fn build(ring: &KeyRing, recs: &[Rec], ts: i64) -> EncodedBatch {
    let mut b = BatchBuilder::new(ring, 5, 1024).unwrap();
    for (i, r) in recs.iter().enumerate() {
        let headers: Vec<RecordHeaderRef<'_>> = r
            .headers
            .iter()
            .map(|(n, v)| RecordHeaderRef { name: n, value: v })
            .collect();
        let t = ts + i as i64;
        b.push(RecordInput {
            timestamp_ms: t,
            priority: r.priority,
            id: r.id.as_ref(),
            key: r.key.as_deref(),
            headers: &headers,
            deliver_at_ms: r.deliver_in.map(|d| t + d),
            expires_at_ms: None,
            payload: &r.payload,
        })
        .unwrap();
    }
    b.finish()
}

/// One or two valid, stamped batches back to back.
fn valid_batches() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(rec(), 1..4),
        prop::collection::vec(rec(), 0..3),
        0u64..1 << 40,
        1_600_000_000_000i64..1_800_000_000_000,
    )
        .prop_map(|(a, b, base, ts)| {
            let ring = common::ring();
            let first = build(&ring, &a, ts).into_batch(base, 1).unwrap();
            let mut out = first.as_bytes().to_vec();
            if !b.is_empty() {
                let second = build(&ring, &b, ts + 10)
                    .into_batch(first.next_offset(), 1)
                    .unwrap();
                out.extend_from_slice(second.as_bytes());
            }
            out
        })
}

/// One change to a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    FlipBit(usize, u8),
    SetU32(usize, u32),
    SetU8(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let word = prop_oneof![
        Just(0u32),
        Just(1),
        Just(u32::MAX),
        Just(0x7fff_ffff),
        Just(HEADER_LEN as u32),
        Just(64 * 1024 * 1024 + 1),
        any::<u32>()
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), word).prop_map(|(i, v)| Mutation::SetU32(i, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetU8(i, v)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

/// Little-endian words: the storage format's byte order.
fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |i: usize, len: usize| i % len.max(1);
    match m {
        Mutation::Truncate(i) => bytes.truncate(at(*i, bytes.len())),
        Mutation::FlipBit(i, bit) => {
            let i = at(*i, bytes.len());
            if let Some(b) = bytes.get_mut(i) {
                *b ^= 1 << bit;
            }
        }
        Mutation::SetU32(i, v) => {
            let i = at(*i, bytes.len());
            for (k, b) in v.to_le_bytes().iter().enumerate() {
                if let Some(slot) = bytes.get_mut(i + k) {
                    *slot = *b;
                }
            }
        }
        Mutation::SetU8(i, v) => {
            let i = at(*i, bytes.len());
            if let Some(slot) = bytes.get_mut(i) {
                *slot = *v;
            }
        }
        Mutation::Insert(i, v) => {
            let i = at(*i, bytes.len() + 1);
            bytes.splice(i..i, v.iter().copied());
        }
        Mutation::Remove(i, n) => {
            let i = at(*i, bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn random_bytes_as_batches_follow_the_rules(
        bytes in prop::collection::vec(any::<u8>(), 0..700),
        fix: bool,
    ) {
        let mut bytes = bytes;
        if fix {
            fix_crcs(&mut bytes);
        }
        check_batches(bytes);
    }

    #[test]
    fn valid_batches_with_mutations_follow_the_rules(
        bytes in valid_batches(),
        mutations in prop::collection::vec(mutation(), 1..3),
        fix: bool,
    ) {
        let mut bytes = bytes;
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if fix {
            fix_crcs(&mut bytes);
        }
        check_batches(bytes);
    }

    /// Valid batches decode to exactly what was built, and every strict prefix of one
    /// is refused as malformed (never read as a shorter batch).
    #[test]
    fn every_truncation_of_a_batch_is_refused(bytes in valid_batches()) {
        let ring = common::ring();
        let all: Vec<_> = decode_batches(Bytes::from(bytes.clone())).collect();
        prop_assert!(all.iter().all(Result::is_ok));
        let first_len = all[0].as_ref().unwrap().len();
        for n in 1..first_len {
            let prefix = Bytes::copy_from_slice(&bytes[..n]);
            prop_assert!(matches!(Batch::parse(prefix.clone()), Err(StorageError::Malformed(_))));
            let got: Vec<_> = decode_batches(prefix).collect();
            prop_assert_eq!(got.len(), 1);
            prop_assert!(matches!(got[0], Err(StorageError::Malformed(_))));
        }
        for b in all.iter().flatten() {
            check_batch(b, &ring);
            prop_assert!(b.decrypt_records(&ring).all(|r| r.is_ok()));
        }
    }
}

// ---- recovery ----

fn log_config(io: IoMode) -> LogConfig {
    LogConfig {
        io,
        segment_max_bytes: 1024,
        index_interval_bytes: 256,
        fsync: FsyncPolicy::Never,
        max_batch_bytes: 64 * 1024,
        tail_cache_bytes: 16 * 1024,
        ..LogConfig::default()
    }
}

/// The files of a real log of three segments, built once: (name, bytes).
fn pristine() -> &'static Vec<(String, Vec<u8>)> {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let ring = common::ring();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let (mut log, _) = PartitionLog::open(&dir, log_config(IoMode::Buffered)).unwrap();
        let mut n = 0;
        while log.segment_count() < 3 {
            log.append(
                &mut [common::batch(&ring, n, 2, 60, 1_700_000_000_000 + n as i64)],
                1,
            )
            .unwrap();
            n += 2;
        }
        log.close().unwrap();
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        assert_eq!(files.len(), 9, "three segments of three files");
        files
    })
}

fn write_files(files: &[(String, Vec<u8>)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    std::fs::create_dir(&dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    (tmp, dir)
}

fn allowed_read_error(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::Corrupt { .. } | StorageError::Malformed(_) | StorageError::Crypto(_)
    )
}

/// Reads `[from, upto)`; returns how far it got before an allowed error.
fn read_all(reader: &LogReader, ring: &KeyRing, from: u64, upto: u64) -> u64 {
    let mut next = from;
    while next < upto {
        let res = match reader.read(next, 2048, upto) {
            Ok(r) => r,
            Err(e) => {
                assert!(allowed_read_error(&e), "read at {next}: {e:?}");
                return next;
            }
        };
        assert!(
            !res.is_empty(),
            "read at {next} below {upto} returned nothing"
        );
        let first = &res.batches[0];
        assert!(first.base_offset() <= next && next < first.next_offset());
        for w in res.batches.windows(2) {
            assert_eq!(
                w[0].next_offset(),
                w[1].base_offset(),
                "batches not contiguous"
            );
        }
        for b in &res.batches {
            assert!(b.next_offset() <= upto);
            check_batch(b, ring);
        }
        let after = res.next_offset().unwrap();
        assert!(after > next, "no progress at {next}");
        next = after;
    }
    next
}

/// Opens, reads, appends, closes and reopens the log in `dir` (the recovery rules).
/// Returns the offsets the first open recovered, or `None` if it refused the files.
fn check_dir(dir: &Path, io: IoMode) -> Option<(u64, u64)> {
    let ring = common::ring();
    let (mut log, report) = match PartitionLog::open(dir, log_config(io)) {
        Ok(x) => x,
        Err(e) => {
            assert!(matches!(e, StorageError::Corrupt { .. }), "open: {e:?}");
            return None;
        }
    };
    let recovered = (log.start_offset(), log.next_offset());
    assert_eq!(report.next_offset, log.next_offset());
    let reader = log.reader();
    read_all(&reader, &ring, log.start_offset(), log.next_offset());
    for ts in [i64::MIN, 0, 1_700_000_000_003, i64::MAX] {
        if let Err(e) = reader.offset_for_timestamp(ts) {
            assert!(allowed_read_error(&e), "{e:?}");
        }
    }
    let before = log.next_offset();
    let term = log.last_term();
    log.append(
        &mut [common::batch(&ring, before, 3, 20, 1_700_000_000_000)],
        term,
    )
    .unwrap_or_else(|e| panic!("append after recovery: {e:?}"));
    let got = common::read_all(&reader, &ring, before, log.next_offset());
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].1, common::payload(before, 20));
    let end = (log.start_offset(), log.next_offset());
    log.close().unwrap();
    let (again, report) = PartitionLog::open(dir, log_config(io))
        .unwrap_or_else(|e| panic!("an opened and closed log does not reopen: {e:?}"));
    assert_eq!((again.start_offset(), again.next_offset()), end);
    assert_eq!(report.torn_tail, None);
    Some(recovered)
}

/// Damage to the files of a log directory.
#[derive(Debug, Clone)]
enum Damage {
    /// One mutation of the file at this index.
    Mutate(usize, Mutation),
    Delete(usize),
    /// The file at this index replaced by random bytes.
    Replace(usize, Vec<u8>),
    /// A file that belongs to no segment, or a leftover of an index rebuild.
    Extra(String, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => (0usize..9, mutation()).prop_map(|(i, m)| Damage::Mutate(i, m)),
        1 => (0usize..9).prop_map(Damage::Delete),
        1 => (0usize..9, prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(i, b)| Damage::Replace(i, b)),
        1 => (
            prop::sample::select(vec![
                "00000000000000000000.index.tmp",
                "00000000000000000099.index",
                "00000000000000000099.log",
                "99999999999999999999.log",
                "notes.txt",
            ]),
            prop::collection::vec(any::<u8>(), 0..200),
        )
            .prop_map(|(n, b)| Damage::Extra(n.to_owned(), b)),
    ]
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn damaged_segment_files_open_or_are_refused_as_corrupt(
        damages in prop::collection::vec(damage(), 1..3),
        direct: bool,
    ) {
        let mut files = pristine().clone();
        for d in &damages {
            match d {
                Damage::Mutate(i, m) => {
                    let i = i % files.len();
                    apply(&mut files[i].1, m);
                }
                Damage::Delete(i) => {
                    let i = i % files.len();
                    files.remove(i);
                }
                Damage::Replace(i, b) => {
                    let i = i % files.len();
                    files[i].1 = b.clone();
                }
                Damage::Extra(n, b) => files.push((n.clone(), b.clone())),
            }
            if files.is_empty() {
                break;
            }
        }
        let (_tmp, dir) = write_files(&files);
        check_dir(&dir, if direct { IoMode::Direct } else { IoMode::Buffered });
    }

    #[test]
    fn random_bytes_as_segment_files_open_or_are_refused_as_corrupt(
        log in prop::collection::vec(any::<u8>(), 0..600),
        index in prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        time in prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        second_base in prop::option::of(1u64..1000),
        fix: bool,
    ) {
        let mut log = log;
        if fix {
            fix_crcs(&mut log);
        }
        let mut files = vec![("00000000000000000000.log".to_owned(), log.clone())];
        if let Some(b) = index {
            files.push(("00000000000000000000.index".to_owned(), b));
        }
        if let Some(b) = time {
            files.push(("00000000000000000000.timeindex".to_owned(), b));
        }
        if let Some(base) = second_base {
            files.push((format!("{base:020}.log"), log));
        }
        let (_tmp, dir) = write_files(&files);
        check_dir(&dir, IoMode::Buffered);
    }
}

/// A crash can cut the last segment anywhere: at every length it opens, keeping
/// exactly the batches wholly before the cut.
#[test]
fn a_last_segment_cut_at_every_length_opens_with_the_whole_batches_before_it() {
    let files = pristine();
    let last_log = files
        .iter()
        .filter(|(n, _)| n.ends_with(".log"))
        .max()
        .unwrap()
        .clone();
    let base: u64 = last_log.0[..20].parse().unwrap();
    // Batch ends in the last segment, from its own bytes.
    let mut ends = vec![(0usize, base)];
    for b in decode_batches(Bytes::from(last_log.1.clone())) {
        let b = b.unwrap();
        let (pos, _) = *ends.last().unwrap();
        ends.push((pos + b.len(), b.next_offset()));
    }
    for cut in 0..last_log.1.len() {
        let mut damaged = files.clone();
        for (name, bytes) in &mut damaged {
            if *name == last_log.0 {
                bytes.truncate(cut);
            }
        }
        let (_tmp, dir) = write_files(&damaged);
        let want = ends.iter().rev().find(|(pos, _)| *pos <= cut).unwrap().1;
        let (_, next) = check_dir(&dir, IoMode::Buffered)
            .unwrap_or_else(|| panic!("a cut at byte {cut} was refused"));
        assert_eq!(next, want, "cut at byte {cut}");
    }
}

//! Model test: random sequences of append / sync / roll / truncate_suffix / reopen
//! against a plain in-memory list of records.

mod common;

use proptest::prelude::*;
use swarmmq_storage::{IoMode, LogConfig, PartitionLog};

#[derive(Clone, Debug)]
enum Op {
    /// Batches of these record counts in one append; bump the term first if set.
    Append(Vec<u32>, bool),
    Sync,
    Roll,
    /// Truncate at the batch boundary picked by this index (mod boundaries + 1).
    Truncate(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (proptest::collection::vec(1u32..5, 1..4), proptest::bool::weighted(0.2)).prop_map(|(v, b)| Op::Append(v, b)),
        1 => Just(Op::Sync),
        1 => Just(Op::Roll),
        1 => any::<usize>().prop_map(Op::Truncate),
        1 => Just(Op::Reopen),
    ]
}

fn config(mode: IoMode) -> LogConfig {
    LogConfig {
        segment_max_bytes: 1500,
        index_interval_bytes: 300,
        // Small enough that reads mix cache hits and file reads.
        tail_cache_bytes: 2000,
        ..common::small_config(mode)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn log_matches_model(
        ops in proptest::collection::vec(op(), 1..30),
        mode in prop_oneof![Just(IoMode::Direct), Just(IoMode::Buffered)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let ring = common::ring();
        let mut log = PartitionLog::open(dir.path(), config(mode)).unwrap().0;
        // (offset, payload) of every record, and (base offset, term) of every batch.
        let mut model: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut batches: Vec<(u64, u64)> = Vec::new();
        let mut term = 1u64;
        let mut tag = 0u64;
        for op in ops {
            match op {
                Op::Append(counts, bump) => {
                    if bump { term += 1; }
                    let mut next = model.len() as u64;
                    let mut enc = Vec::new();
                    for n in counts {
                        enc.push(common::batch(&ring, tag, n, 60, 1000 + next as i64));
                        batches.push((next, term));
                        for k in 0..u64::from(n) {
                            model.push((next + k, common::payload(tag + k, 60)));
                        }
                        tag += u64::from(n);
                        next += u64::from(n);
                    }
                    let out = log.append(&mut enc, term).unwrap();
                    prop_assert_eq!(out.next_offset, next);
                }
                Op::Sync => log.sync().unwrap(),
                Op::Roll => log.roll().unwrap(),
                Op::Truncate(i) => {
                    let i = i % (batches.len() + 1);
                    let at = batches.get(i).map_or(model.len() as u64, |b| b.0);
                    log.truncate_suffix(at).unwrap();
                    batches.truncate(i);
                    model.truncate(at as usize);
                }
                Op::Reopen => {
                    drop(log);
                    let (l, report) = PartitionLog::open(dir.path(), config(mode)).unwrap();
                    prop_assert!(report.torn_tail.is_none());
                    log = l;
                }
            }
            prop_assert_eq!(log.next_offset(), model.len() as u64);
            prop_assert_eq!(log.last_term(), batches.last().map_or(0, |b| b.1));
            let got = common::read_all(&log.reader(), &ring, 0, u64::MAX);
            prop_assert_eq!(&got, &model);
        }
    }
}

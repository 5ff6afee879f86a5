//! The partition Raft log on real files: data entries are the partition log's batches,
//! blank and membership entries live in the side index, and every crash shape recovery
//! can meet leaves a Raft view that agrees with the partition log.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::entry::RaftEntry;
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, VoteOf};
use openraft::vote::{RaftLeaderId, RaftVote};
use openraft::{Membership, RaftTypeConfig};
use swarmmq_replication::{
    PartitionConfig, PartitionEntry, PartitionLogStore, PartitionStateMachine, ReplicaNode,
    ReplicationError,
};
use swarmmq_storage::{LogConfig, PartitionLog};

type C = PartitionConfig;
type E = <C as RaftTypeConfig>::Entry;

fn lid(term: u64, index: u64) -> LogIdOf<C> {
    openraft::LogId::new(
        openraft::vote::leader_id_std::CommittedLeaderId::new(term),
        index,
    )
}

fn membership() -> Membership<String, ReplicaNode> {
    let voters = BTreeSet::from(["a".to_string(), "b".to_string(), "c".to_string()]);
    let nodes: BTreeMap<String, ReplicaNode> = voters
        .iter()
        .map(|id| (id.clone(), ReplicaNode::default()))
        .collect();
    Membership::new(vec![voters], nodes).unwrap()
}

fn open(dir: &Path) -> (PartitionLogStore<C>, swarmmq_replication::OpenReport) {
    let (log, _) = PartitionLog::open(&dir.join("log"), LogConfig::default()).unwrap();
    PartitionLogStore::open(log, &dir.join("raft")).unwrap()
}

/// Membership at 0, blank at 1 (term 1), then `n` one-record... data entries from 2.
fn first_entries(ring: &swarmmq_crypto::KeyRing, n: u64) -> Vec<E> {
    let mut v = vec![
        E::new_membership(lid(1, 0), membership()),
        E::new_blank(lid(1, 1)),
    ];
    for i in 0..n {
        v.push(E::new_normal(
            lid(1, 2 + i),
            common::fresh_batch(ring, &format!("e{i}"), 3),
        ));
    }
    v
}

async fn all(store: &mut PartitionLogStore<C>) -> Vec<E> {
    store.try_get_log_entries(0..u64::MAX).await.unwrap()
}

/// (index, term, kind, batch offsets) of each entry.
type Summary = (u64, u64, &'static str, Option<(u64, u64)>);

fn summary(entries: &[E]) -> Vec<Summary> {
    entries
        .iter()
        .map(|e| {
            let kind = if e.batch().is_some() {
                "data"
            } else if e.get_membership().is_some() {
                "membership"
            } else {
                "blank"
            };
            let offs = e.batch().map(|b| {
                let h = b.header().unwrap();
                (h.base_offset, h.next_offset())
            });
            (e.index(), e.log_id().leader_id.term, kind, offs)
        })
        .collect()
}

fn segment(dir: &Path) -> std::path::PathBuf {
    dir.join("log").join("00000000000000000000.log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_entries_are_the_partition_batches_and_everything_survives_reopen() {
    let ring = common::ring();
    let dir = tempfile::tempdir().unwrap();
    let (mut store, report) = open(dir.path());
    assert_eq!(report.last_index, None);
    store
        .blocking_append(first_entries(&ring, 3))
        .await
        .unwrap();
    let vote = VoteOf::<C>::from_leader_id(
        openraft::impls::leader_id_std::LeaderId::new(1, "a".to_string()),
        true,
    );
    store.save_vote(&vote).await.unwrap();
    store.save_committed(Some(lid(1, 3))).await.unwrap();

    let entries = all(&mut store).await;
    let expected = vec![
        (0, 1, "membership", None),
        (1, 1, "blank", None),
        (2, 1, "data", Some((0, 3))),
        (3, 1, "data", Some((3, 6))),
        (4, 1, "data", Some((6, 9))),
    ];
    assert_eq!(summary(&entries), expected);
    assert_eq!(store.end_offset(), 9);
    assert_eq!(store.end_offset_of(3), Some(6));
    assert_eq!(store.end_offset_of(1), Some(0));

    // The Raft log IS the partition log: the entries carry its stored bytes, stamped
    // with offsets and the entry's term, and the records decrypt.
    let reader = store.partition_reader();
    let read = reader.read(0, 1 << 20, u64::MAX).unwrap();
    assert_eq!(read.batches.len(), 3);
    for (b, e) in read.batches.iter().zip(&entries[2..]) {
        assert_eq!(b.as_bytes(), e.batch().unwrap().as_bytes());
        assert_eq!(b.term(), 1);
    }
    let rec: Vec<_> = read.batches[1]
        .decrypt_records(&ring)
        .map(|r| r.unwrap().payload)
        .collect();
    assert_eq!(rec[2].as_ref(), b"e1-2");
    // Payload bytes are written once: the side index holds no batch bytes.
    let side = std::fs::metadata(dir.path().join("raft/entries.bin"))
        .unwrap()
        .len();
    assert!(side < 600, "entries.bin is {side} bytes");

    // The apply path streams the same entries (in bounded chunks).
    let mut reader = store.get_log_reader().await;
    let streamed: Vec<E> =
        futures_util::StreamExt::collect::<Vec<_>>(reader.entries_stream(1..5).await)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
    assert_eq!(streamed, entries[1..5].to_vec());

    drop(store);
    let (mut store, report) = open(dir.path());
    assert_eq!(report.last_index, Some(4));
    assert_eq!(report.entries_adopted + report.entries_dropped, 0);
    assert_eq!(summary(&all(&mut store).await), expected);
    assert_eq!(all(&mut store).await, entries);
    assert_eq!(store.read_vote().await.unwrap(), Some(vote));
    assert_eq!(store.read_committed().await.unwrap(), Some(lid(1, 3)));
    let st = store.get_log_state().await.unwrap();
    assert_eq!(st.last_log_id, Some(lid(1, 4)));
    assert_eq!(st.last_purged_log_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_cuts_the_partition_log_and_a_new_leader_continues() {
    let ring = common::ring();
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = open(dir.path());
    store
        .blocking_append(first_entries(&ring, 4))
        .await
        .unwrap();
    // Entries 4 and 5 conflict with a new leader's log.
    store.truncate_after(Some(lid(1, 3))).await.unwrap();
    assert_eq!(store.partition_reader().next_offset(), 6);
    store
        .blocking_append([
            E::new_blank(lid(2, 4)),
            E::new_normal(lid(2, 5), common::fresh_batch(&ring, "new", 2)),
        ])
        .await
        .unwrap();
    let expected = vec![
        (0, 1, "membership", None),
        (1, 1, "blank", None),
        (2, 1, "data", Some((0, 3))),
        (3, 1, "data", Some((3, 6))),
        (4, 2, "blank", None),
        (5, 2, "data", Some((6, 8))),
    ];
    assert_eq!(summary(&all(&mut store).await), expected);
    assert_eq!(
        store
            .partition_reader()
            .read(6, 1 << 20, 8)
            .unwrap()
            .batches[0]
            .term(),
        2
    );
    drop(store);
    let (mut store, report) = open(dir.path());
    assert_eq!(report.entries_adopted + report.entries_dropped, 0);
    assert_eq!(summary(&all(&mut store).await), expected);

    // Truncating everything empties the partition log too.
    store.truncate_after(None).await.unwrap();
    assert_eq!(store.partition_reader().next_offset(), 0);
    drop(store);
    let (mut store, _) = open(dir.path());
    assert!(all(&mut store).await.is_empty());
    assert_eq!(store.get_log_state().await.unwrap().last_log_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_forgets_entries_but_keeps_the_batches_and_survives_reopen() {
    let ring = common::ring();
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = open(dir.path());
    store
        .blocking_append(first_entries(&ring, 3))
        .await
        .unwrap();
    store.purge(lid(1, 3)).await.unwrap();
    let st = store.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(lid(1, 3)));
    assert_eq!(st.last_log_id, Some(lid(1, 4)));
    assert_eq!(
        summary(&all(&mut store).await),
        vec![(4, 1, "data", Some((6, 9)))]
    );
    // Deleting partition data is retention's job.
    assert_eq!(store.partition_reader().start_offset(), 0);
    store
        .blocking_append([E::new_normal(lid(1, 5), common::fresh_batch(&ring, "x", 1))])
        .await
        .unwrap();
    drop(store);
    let (mut store, _) = open(dir.path());
    assert_eq!(
        summary(&all(&mut store).await),
        vec![(4, 1, "data", Some((6, 9))), (5, 1, "data", Some((9, 10)))]
    );
    assert_eq!(
        store.get_log_state().await.unwrap().last_purged_log_id,
        Some(lid(1, 3))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_partition_tail_is_cut_and_the_raft_view_agrees() {
    let ring = common::ring();
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut store, _) = open(dir.path());
        store
            .blocking_append(first_entries(&ring, 3))
            .await
            .unwrap();
    }
    // A crash mid-write of the last batch: its second half never reached the disk.
    let seg = segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 40).unwrap();
    drop(f);

    let (log, rec) = PartitionLog::open(&dir.path().join("log"), LogConfig::default()).unwrap();
    let torn = rec.torn_tail.expect("storage recovery cuts the torn batch");
    assert_eq!(torn.offsets_dropped, Some((6, 9)));
    let (mut store, report) = PartitionLogStore::<C>::open(log, &dir.path().join("raft")).unwrap();
    assert_eq!(report.entries_dropped, 1);
    assert_eq!(report.last_index, Some(3));
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(lid(1, 3))
    );
    assert_eq!(store.end_offset(), 6);
    // The group carries on from there, and that survives another reopen.
    store
        .blocking_append([E::new_normal(lid(2, 4), common::fresh_batch(&ring, "y", 2))])
        .await
        .unwrap();
    drop(store);
    let (mut store, report) = open(dir.path());
    assert_eq!(report.entries_dropped + report.entries_adopted, 0);
    assert_eq!(
        summary(&all(&mut store).await)[2..],
        [
            (2, 1, "data", Some((0, 3))),
            (3, 1, "data", Some((3, 6))),
            (4, 2, "data", Some((6, 8)))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_whose_index_frames_were_lost_are_adopted_in_place() {
    let ring = common::ring();
    let dir = tempfile::tempdir().unwrap();
    let side = dir.path().join("raft/entries.bin");
    let before;
    {
        let (mut store, _) = open(dir.path());
        store
            .blocking_append(first_entries(&ring, 1))
            .await
            .unwrap();
        let cut = std::fs::metadata(&side).unwrap().len();
        store
            .blocking_append(
                (0..2).map(|i| E::new_normal(lid(1, 3 + i), common::fresh_batch(&ring, "z", 1))),
            )
            .await
            .unwrap();
        before = all(&mut store).await;
        drop(store);
        // Data frames are not fsynced (the batches are): a crash can lose them, and a
        // torn half frame may follow.
        let mut bytes = std::fs::read(&side).unwrap();
        bytes.truncate(cut as usize + 20);
        std::fs::write(&side, &bytes).unwrap();
    }
    let (mut store, report) = open(dir.path());
    assert_eq!(report.side_bytes_cut, 20);
    assert_eq!(report.entries_adopted, 2);
    assert_eq!(all(&mut store).await, before);
    drop(store);
    let (mut store, report) = open(dir.path());
    assert_eq!(report.entries_adopted, 0);
    assert_eq!(all(&mut store).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_without_damage() {
    let ring = common::ring();
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut store, _) = open(dir.path());
        store
            .blocking_append(first_entries(&ring, 1))
            .await
            .unwrap();
        // A stamped batch for the wrong offset (a follower fed the wrong bytes).
        let wrong = store.try_get_log_entries(2..3).await.unwrap();
        let bytes = wrong[0].batch().unwrap().clone();
        let r = store
            .blocking_append([E::new_normal(lid(1, 3), bytes)])
            .await;
        assert!(r.is_err());
        assert_eq!(store.end_offset(), 3);
        assert_eq!(store.partition_reader().next_offset(), 3);
    }
    // A partition log with data but no Raft index is not silently adopted.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("log")).unwrap();
    for f in std::fs::read_dir(dir.path().join("log")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), other.path().join("log").join(f.file_name())).unwrap();
    }
    let (log, _) = PartitionLog::open(&other.path().join("log"), LogConfig::default()).unwrap();
    let err = PartitionLogStore::<C>::open(log, &other.path().join("raft")).err();
    assert!(
        matches!(err, Some(ReplicationError::Inconsistent(_))),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_machine_publishes_the_committed_end_offset() {
    let ring = common::ring();
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = PartitionLog::open(&dir.path().join("log"), LogConfig::default()).unwrap();
    let mut sm = PartitionStateMachine::<C>::new(log.reader());
    let (mut store, _) = PartitionLogStore::<C>::open(log, &dir.path().join("raft")).unwrap();
    let mut watch = sm.commit_watch();
    assert_eq!(watch.current().end_offset, 0);
    store
        .blocking_append(first_entries(&ring, 3))
        .await
        .unwrap();
    let waiter = {
        let mut w = watch.clone();
        tokio::spawn(async move { w.wait_for_offset(6).await })
    };
    // Apply what openraft would: committed entries read back from the log.
    let committed = store.try_get_log_entries(0..4).await.unwrap();
    let items: Vec<Result<_, std::io::Error>> =
        committed.into_iter().map(|e| Ok((e, None))).collect();
    sm.apply(futures_util::stream::iter(items)).await.unwrap();
    let point = waiter.await.unwrap().unwrap();
    assert_eq!(point.index, Some(3));
    assert_eq!(point.end_offset, 6);
    assert_eq!(watch.changed().await.unwrap().end_offset, 6);
    let (applied, m) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(lid(1, 3)));
    assert_eq!(m.log_id(), &Some(lid(1, 0)));
    // Consumers read with `upto` = the committed end: entry 4 is not visible yet.
    let visible = store
        .partition_reader()
        .read(0, 1 << 20, watch.current().end_offset)
        .unwrap();
    assert_eq!(visible.next_offset(), Some(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_before_a_membership_entry_is_refused_not_renumbered() {
    let ring = common::ring();
    let dir = tempfile::tempdir().unwrap();
    let side = dir.path().join("raft/entries.bin");
    let data_frame_at;
    {
        let (mut store, _) = open(dir.path());
        store
            .blocking_append(first_entries(&ring, 1))
            .await
            .unwrap();
        data_frame_at = std::fs::metadata(&side).unwrap().len() - 41;
        store
            .blocking_append([E::new_membership(lid(1, 3), membership())])
            .await
            .unwrap();
    }
    // A bit flip in the data frame at index 2: cutting there would lose the membership
    // entry at 3 and adoption would renumber the batch.
    let mut bytes = std::fs::read(&side).unwrap();
    bytes[data_frame_at as usize + 12] ^= 0x40;
    std::fs::write(&side, &bytes).unwrap();
    let (log, _) = PartitionLog::open(&dir.path().join("log"), LogConfig::default()).unwrap();
    let err = PartitionLogStore::<C>::open(log, &dir.path().join("raft")).err();
    assert!(
        matches!(err, Some(ReplicationError::Inconsistent(_))),
        "{err:?}"
    );
}

use super::*;

fn floor_and_ranges(r: &PartitionDurable) -> (u64, Vec<(u64, u64)>) {
    (r.floor, r.acked.iter().map(|(s, e, _)| (s, e)).collect())
}

fn attempts(r: &PartitionDurable) -> Vec<(u64, u64, u32)> {
    r.attempts.iter().map(|(s, e, n)| (s, e, *n)).collect()
}

#[test]
fn acks_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut st, restored) = GroupStore::open(dir.path(), "orders").unwrap();
        assert!(restored.is_empty());
        st.append_acks(&[(0, 0, 10), (1, 5, 7)]).unwrap();
        st.append_acks(&[(0, 12, 20)]).unwrap();
        st.sync().unwrap();
    }
    let (_, restored) = GroupStore::open(dir.path(), "orders").unwrap();
    assert_eq!(restored.len(), 2);
    assert_eq!(floor_and_ranges(&restored[0]), (10, vec![(12, 20)]));
    assert_eq!(floor_and_ranges(&restored[1]), (0, vec![(5, 7)]));
}

/// Every record kind replays: attempts rise and are forgotten once done (by ack or by
/// settle), the latest commit wins, kind-1 records keep their meaning.
#[test]
fn replay_of_all_record_kinds() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = GroupStore::open(dir.path(), "d").unwrap();
        st.append_attempts(&[(0, 0, 10, 1), (1, 0, 4, 1)]).unwrap();
        st.append_acks(&[(0, 0, 3)]).unwrap();
        st.append_attempts(&[(0, 5, 8, 2)]).unwrap();
        st.append_attempts(&[(0, 6, 7, 1)]).unwrap(); // lower: keeps 2
        st.append_settled(&[(0, 9, 10)]).unwrap();
        st.append_committed(&[(2, 40)]).unwrap();
        st.append_committed(&[(2, 35), (3, 7)]).unwrap();
        st.append_attempts(&[(0, 0, 3, 4)]).unwrap(); // already acked: ignored
    }
    let (_, restored) = GroupStore::open(dir.path(), "d").unwrap();
    assert_eq!(restored.len(), 4);
    let p0 = &restored[0];
    assert_eq!(floor_and_ranges(p0), (3, vec![(9, 10)]));
    assert_eq!(attempts(p0), vec![(3, 5, 1), (5, 8, 2), (8, 9, 1)]);
    assert_eq!(p0.committed, None);
    assert_eq!(attempts(&restored[1]), vec![(0, 4, 1)]);
    assert_eq!(restored[2].committed, Some(35), "latest commit wins");
    assert_eq!(restored[3].committed, Some(7));
}

#[test]
fn snapshot_v2_round_trips_then_log_applies_on_top() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = RangeSet::new();
    acked.insert(150, 160, ());
    let mut att = RangeMap::new();
    att.insert(100, 120, 3u32);
    att.insert(170, 171, 1);
    let parts = vec![
        PartitionDurable {
            partition: 0,
            floor: 100,
            acked,
            attempts: att,
            committed: None,
        },
        PartitionDurable {
            partition: 5,
            floor: 0,
            acked: RangeSet::new(),
            attempts: RangeMap::new(),
            committed: Some(77),
        },
    ];
    {
        let (mut st, _) = GroupStore::open(dir.path(), "d").unwrap();
        st.append_acks(&[(0, 0, 100)]).unwrap();
        st.write_snapshot(&parts).unwrap();
        assert_eq!(st.log_bytes(), 0);
    }
    let (mut st, restored) = GroupStore::open(dir.path(), "d").unwrap();
    assert_eq!(restored, parts, "snapshot alone restores exactly");
    st.append_acks(&[(0, 100, 110)]).unwrap();
    st.append_attempts(&[(0, 110, 112, 4)]).unwrap();
    drop(st);
    let (_, restored) = GroupStore::open(dir.path(), "d").unwrap();
    assert_eq!(floor_and_ranges(&restored[0]), (110, vec![(150, 160)]));
    assert_eq!(
        attempts(&restored[0]),
        vec![(110, 112, 4), (112, 120, 3), (170, 171, 1)]
    );
    assert_eq!(restored[1].committed, Some(77));
}

#[test]
fn v1_snapshot_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = RangeSet::new();
    acked.insert(20, 30, ());
    fs::write(
        dir.path().join("d.snap"),
        codec::encode_snapshot_v1(&[(0, 10, &acked), (2, 4, &RangeSet::new())]),
    )
    .unwrap();
    let (mut st, restored) = GroupStore::open(dir.path(), "d").unwrap();
    assert_eq!(restored.len(), 2);
    assert_eq!(floor_and_ranges(&restored[0]), (10, vec![(20, 30)]));
    assert!(restored[0].attempts.is_empty());
    assert_eq!(restored[0].committed, None);
    assert_eq!(floor_and_ranges(&restored[1]), (4, vec![]));
    // The next snapshot is written as v2 and reads back the same.
    st.write_snapshot(&restored).unwrap();
    assert!(
        fs::read(dir.path().join("d.snap"))
            .unwrap()
            .starts_with(b"SQSNAP02")
    );
    let (_, again) = GroupStore::open(dir.path(), "d").unwrap();
    assert_eq!(again, restored);
}

/// Cutting the log anywhere keeps exactly the whole records before the cut, for every
/// record kind.
#[test]
fn torn_tail_is_cut_at_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.acks");
    let mut bounds = vec![0usize];
    {
        let (mut st, _) = GroupStore::open(dir.path(), "d").unwrap();
        st.append_acks(&[(0, 0, 5)]).unwrap();
        bounds.push(st.log_bytes() as usize);
        st.append_attempts(&[(0, 5, 9, 2)]).unwrap();
        bounds.push(st.log_bytes() as usize);
        st.append_settled(&[(0, 5, 6)]).unwrap();
        bounds.push(st.log_bytes() as usize);
        st.append_committed(&[(0, 3)]).unwrap();
        bounds.push(st.log_bytes() as usize);
    }
    let full = fs::read(&path).unwrap();
    assert_eq!(full.len(), *bounds.last().unwrap());
    // The state after each whole-record prefix.
    let mut expected = Vec::new();
    for b in &bounds {
        fs::write(&path, &full[..*b]).unwrap();
        expected.push(GroupStore::open(dir.path(), "d").unwrap().1);
    }
    assert_eq!(floor_and_ranges(&expected[1][0]), (5, vec![]));
    assert_eq!(attempts(&expected[2][0]), vec![(5, 9, 2)]);
    assert_eq!(attempts(&expected[3][0]), vec![(6, 9, 2)]);
    assert_eq!(expected[3][0].floor, 6);
    assert_eq!(expected[4][0].committed, Some(3));
    for cut in 0..full.len() {
        let whole = bounds.iter().rposition(|b| *b <= cut).unwrap();
        fs::write(&path, &full[..cut]).unwrap();
        let (_, restored) = GroupStore::open(dir.path(), "d").unwrap();
        assert_eq!(restored, expected[whole], "cut at {cut}");
        assert_eq!(
            fs::metadata(&path).unwrap().len() as usize,
            bounds[whole],
            "cut at {cut}: torn tail truncated"
        );
    }
}

#[test]
fn damage_before_valid_records_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.acks");
    {
        let (mut st, _) = GroupStore::open(dir.path(), "d").unwrap();
        st.append_acks(&[(0, 0, 5)]).unwrap();
        st.append_attempts(&[(0, 5, 9, 1)]).unwrap();
    }
    let mut bytes = fs::read(&path).unwrap();
    bytes[12] ^= 0x40; // inside the first record's payload
    fs::write(&path, &bytes).unwrap();
    let err = GroupStore::open(dir.path(), "d").err().unwrap();
    assert!(
        matches!(err, DeliveryError::Corrupt { position: 0, .. }),
        "{err}"
    );
    assert_eq!(fs::read(&path).unwrap(), bytes, "nothing was truncated");
}

#[test]
fn unknown_record_kind_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.acks");
    let payload = [9u8, 0, 0, 0, 0];
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    fs::write(&path, &bytes).unwrap();
    let err = GroupStore::open(dir.path(), "d").err().unwrap();
    assert!(err.to_string().contains("unknown record kind"), "{err}");
}

#[test]
fn corrupt_snapshot_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = GroupStore::open(dir.path(), "d").unwrap();
        let mut attempts = RangeMap::new();
        attempts.insert(7, 9, 2);
        st.write_snapshot(&[PartitionDurable {
            partition: 0,
            floor: 7,
            acked: RangeSet::new(),
            attempts,
            committed: Some(3),
        }])
        .unwrap();
    }
    let snap = dir.path().join("d.snap");
    let good = fs::read(&snap).unwrap();
    for at in [3, 13, good.len() - 6, good.len() - 1] {
        let mut bytes = good.clone();
        bytes[at] ^= 1;
        fs::write(&snap, &bytes).unwrap();
        let err = GroupStore::open(dir.path(), "d").err().unwrap();
        assert!(err.to_string().contains("snapshot"), "byte {at}: {err}");
    }
    fs::write(&snap, &good[..good.len() - 1]).unwrap();
    assert!(
        GroupStore::open(dir.path(), "d").is_err(),
        "truncated snapshot"
    );
}

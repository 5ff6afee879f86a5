//! Durable acknowledgements of one consumer group on one destination.
//!
//! Two files in the group's directory: `<destination>.acks`, an append-only log of
//! acknowledged ranges, and `<destination>.snap`, the whole state at some point. Replay =
//! snapshot + log. When the log grows past a bound the owner writes a new snapshot and
//! the log starts over, so restart time and disk use stay bounded.
//!
//! Log record: `len u32 LE | crc32c(payload) u32 LE | payload`, payload =
//! `kind u8 (1 = acks) | count u32 | count × (partition u32, start u64, end u64)`, all LE.
//! Snapshot: `b"SQSNAP01" | count u32 | count × (partition u32, floor u64, n u32,
//! n × (start u64, end u64)) | crc32c(all before) u32`, all LE.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::DeliveryError;
use crate::range_map::RangeSet;

const RECORD_HEADER: usize = 8;
const KIND_ACKS: u8 = 1;
const ACK_ENTRY: usize = 4 + 8 + 8;
const SNAP_MAGIC: &[u8; 8] = b"SQSNAP01";
/// Bounds what replay reads into memory; the owner snapshots long before this.
const MAX_RECORD: usize = 16 * 1024 * 1024;

/// One partition's acknowledgements: everything below `floor` and the `acked` ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionAcks {
    pub partition: u32,
    pub floor: u64,
    pub acked: RangeSet,
}

pub struct GroupStore {
    dir: PathBuf,
    log_path: PathBuf,
    snap_path: PathBuf,
    log: File,
    log_bytes: u64,
    poisoned: Option<String>,
    scratch: Vec<u8>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DeliveryError + '_ {
    move |source| DeliveryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
}

#[derive(Default)]
struct Replay {
    parts: BTreeMap<u32, (u64, RangeSet)>,
}

impl Replay {
    fn apply_ack(&mut self, partition: u32, start: u64, end: u64) {
        let (floor, acked) = self
            .parts
            .entry(partition)
            .or_insert_with(|| (0, RangeSet::new()));
        if end <= *floor {
            return;
        }
        acked.insert(start.max(*floor), end, ());
        while let Some((s, e, _)) = acked.first() {
            if s > *floor {
                break;
            }
            *floor = (*floor).max(e);
            acked.pop_first();
        }
    }
}

impl GroupStore {
    /// Opens (creating if needed) the store for `stem` (the destination name) in `dir`,
    /// and returns what was acknowledged. A torn last record is cut off and logged; a
    /// damaged record with data after it is reported as corruption, never skipped.
    pub fn open(dir: &Path, stem: &str) -> Result<(GroupStore, Vec<PartitionAcks>), DeliveryError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let log_path = dir.join(format!("{stem}.acks"));
        let snap_path = dir.join(format!("{stem}.snap"));
        let mut replay = Replay::default();
        if snap_path.exists() {
            load_snapshot(&snap_path, &mut replay)?;
        }
        let mut log = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes).map_err(io_err(&log_path))?;
        let valid = replay_log(&log_path, &bytes, &mut replay)?;
        if valid < bytes.len() as u64 {
            tracing::warn!(
                path = %log_path.display(),
                kept_bytes = valid,
                dropped_bytes = bytes.len() as u64 - valid,
                "ack log had a torn tail; truncated it"
            );
            log.set_len(valid).map_err(io_err(&log_path))?;
            log.sync_data().map_err(io_err(&log_path))?;
        }
        let restored = replay
            .parts
            .into_iter()
            .map(|(partition, (floor, acked))| PartitionAcks {
                partition,
                floor,
                acked,
            })
            .collect();
        Ok((
            GroupStore {
                dir: dir.to_path_buf(),
                log_path,
                snap_path,
                log,
                log_bytes: valid,
                poisoned: None,
                scratch: Vec::new(),
            },
            restored,
        ))
    }

    /// Bytes in the ack log since the last snapshot.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    fn check_poison(&self) -> Result<(), DeliveryError> {
        match &self.poisoned {
            Some(reason) => Err(DeliveryError::Poisoned {
                path: self.log_path.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Appends acknowledged ranges `(partition, start, end)` as one record (one write, so
    /// a crash keeps all of them or none). Survives a process kill at once; survives power
    /// loss after [`GroupStore::sync`].
    pub fn append_acks(&mut self, acks: &[(u32, u64, u64)]) -> Result<(), DeliveryError> {
        self.check_poison()?;
        if acks.is_empty() {
            return Ok(());
        }
        let payload_len = 1 + 4 + acks.len() * ACK_ENTRY;
        let buf = &mut self.scratch;
        buf.clear();
        buf.reserve(RECORD_HEADER + payload_len);
        buf.extend_from_slice(&(payload_len as u32).to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        buf.push(KIND_ACKS);
        buf.extend_from_slice(&(acks.len() as u32).to_le_bytes());
        for (p, s, e) in acks {
            buf.extend_from_slice(&p.to_le_bytes());
            buf.extend_from_slice(&s.to_le_bytes());
            buf.extend_from_slice(&e.to_le_bytes());
        }
        let crc = crc32c::crc32c(&buf[RECORD_HEADER..]);
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        if let Err(e) = self.log.write_all(buf) {
            // A partial record would be cut as a torn tail on replay, but later records
            // would then sit behind it; cut it now so the log stays well-formed.
            let _ = self.log.set_len(self.log_bytes);
            return Err(io_err(&self.log_path)(e));
        }
        self.log_bytes += buf.len() as u64;
        Ok(())
    }

    /// fsyncs the ack log. A failure poisons the store: the same fd is never retried.
    pub fn sync(&mut self) -> Result<(), DeliveryError> {
        self.check_poison()?;
        if let Err(e) = self.log.sync_data() {
            self.poisoned = Some(e.to_string());
            return Err(io_err(&self.log_path)(e));
        }
        Ok(())
    }

    /// A handle that fsyncs the ack log without holding the store, so appends can go on
    /// while an fsync runs (group commit of acknowledgements).
    pub fn syncer(&self) -> Result<StoreSyncer, DeliveryError> {
        Ok(StoreSyncer {
            file: self.log.try_clone().map_err(io_err(&self.log_path))?,
            path: self.log_path.clone(),
        })
    }

    /// Replaces snapshot and log with the given full state: snapshot to a temp file,
    /// fsync, rename, fsync the directory, then empty the log.
    pub fn write_snapshot(&mut self, parts: &[PartitionAcks]) -> Result<(), DeliveryError> {
        self.check_poison()?;
        let mut buf = Vec::with_capacity(16 + parts.len() * 16);
        buf.extend_from_slice(SNAP_MAGIC);
        buf.extend_from_slice(&(parts.len() as u32).to_le_bytes());
        for part in parts {
            buf.extend_from_slice(&part.partition.to_le_bytes());
            buf.extend_from_slice(&part.floor.to_le_bytes());
            buf.extend_from_slice(&(part.acked.range_count() as u32).to_le_bytes());
            for (s, e, _) in part.acked.iter() {
                buf.extend_from_slice(&s.to_le_bytes());
                buf.extend_from_slice(&e.to_le_bytes());
            }
        }
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        let tmp = self.snap_path.with_extension("snap.tmp");
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&buf).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &self.snap_path).map_err(io_err(&self.snap_path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        // Only now may the log go: a crash before this replays old acks over the new
        // snapshot, which is harmless because acks are idempotent.
        self.log.set_len(0).map_err(io_err(&self.log_path))?;
        if let Err(e) = self.log.sync_data() {
            self.poisoned = Some(e.to_string());
            return Err(io_err(&self.log_path)(e));
        }
        self.log_bytes = 0;
        Ok(())
    }
}

/// fsyncs a [`GroupStore`]'s ack log from another thread.
pub struct StoreSyncer {
    file: File,
    path: PathBuf,
}

impl StoreSyncer {
    /// Makes every ack appended before this call durable. The caller must treat a
    /// failure as permanent (never retry an fsync on the same file).
    pub fn sync(&self) -> Result<(), DeliveryError> {
        self.file.sync_data().map_err(io_err(&self.path))
    }
}

fn corrupt(path: &Path, position: u64, reason: impl Into<String>) -> DeliveryError {
    DeliveryError::Corrupt {
        path: path.to_path_buf(),
        position,
        reason: reason.into(),
    }
}

/// Applies every whole record; returns the length of the valid prefix.
fn replay_log(path: &Path, bytes: &[u8], replay: &mut Replay) -> Result<u64, DeliveryError> {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let (Some(len), Some(crc)) = (read_u32(rest, 0), read_u32(rest, 4)) else {
            break; // torn header at the tail
        };
        let len = len as usize;
        if len > MAX_RECORD {
            return tail_or_corrupt(path, bytes, pos, "record length past the limit");
        }
        let Some(payload) = rest.get(RECORD_HEADER..RECORD_HEADER + len) else {
            break; // torn payload at the tail
        };
        if crc32c::crc32c(payload) != crc {
            return tail_or_corrupt(path, bytes, pos, "checksum mismatch");
        }
        apply_record(path, pos as u64, payload, replay)?;
        pos += RECORD_HEADER + len;
    }
    Ok(pos as u64)
}

/// A bad record is a torn tail only if nothing but zeros or a partial record follows it
/// in the file; otherwise acknowledged state after it would be lost, so it is corruption.
fn tail_or_corrupt(
    path: &Path,
    bytes: &[u8],
    pos: usize,
    reason: &str,
) -> Result<u64, DeliveryError> {
    let claimed = read_u32(bytes, pos)
        .map(|l| pos.saturating_add(RECORD_HEADER).saturating_add(l as usize))
        .unwrap_or(usize::MAX);
    let rest_is_tail = claimed >= bytes.len()
        || bytes
            .get(claimed..)
            .is_some_and(|after| after.iter().all(|b| *b == 0));
    if rest_is_tail {
        Ok(pos as u64)
    } else {
        Err(corrupt(path, pos as u64, reason))
    }
}

fn apply_record(
    path: &Path,
    pos: u64,
    payload: &[u8],
    replay: &mut Replay,
) -> Result<(), DeliveryError> {
    if payload.first() != Some(&KIND_ACKS) {
        return Err(corrupt(path, pos, "unknown record kind"));
    }
    let count = read_u32(payload, 1).ok_or_else(|| corrupt(path, pos, "short record"))? as usize;
    if payload.len() != 5 + count.saturating_mul(ACK_ENTRY) {
        return Err(corrupt(path, pos, "record length does not match its count"));
    }
    for i in 0..count {
        let at = 5 + i * ACK_ENTRY;
        let (Some(p), Some(s), Some(e)) = (
            read_u32(payload, at),
            read_u64(payload, at + 4),
            read_u64(payload, at + 12),
        ) else {
            return Err(corrupt(path, pos, "short ack entry"));
        };
        if s < e {
            replay.apply_ack(p, s, e);
        }
    }
    Ok(())
}

fn load_snapshot(path: &Path, replay: &mut Replay) -> Result<(), DeliveryError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let body_len = bytes
        .len()
        .checked_sub(4)
        .ok_or_else(|| corrupt(path, 0, "snapshot shorter than its checksum"))?;
    let stored = read_u32(&bytes, body_len).unwrap_or(0);
    let body = &bytes[..body_len];
    if crc32c::crc32c(body) != stored || !body.starts_with(SNAP_MAGIC) {
        return Err(corrupt(path, 0, "snapshot checksum or magic mismatch"));
    }
    let short = || corrupt(path, 0, "snapshot truncated inside an entry");
    let count = read_u32(body, 8).ok_or_else(short)?;
    let mut at = 12usize;
    for _ in 0..count {
        let p = read_u32(body, at).ok_or_else(short)?;
        let floor = read_u64(body, at + 4).ok_or_else(short)?;
        let n = read_u32(body, at + 12).ok_or_else(short)?;
        at += 16;
        let entry = replay
            .parts
            .entry(p)
            .or_insert_with(|| (0, RangeSet::new()));
        entry.0 = entry.0.max(floor);
        for _ in 0..n {
            let s = read_u64(body, at).ok_or_else(short)?;
            let e = read_u64(body, at + 8).ok_or_else(short)?;
            at += 16;
            replay.apply_ack(p, s, e);
        }
    }
    if at != body.len() {
        return Err(corrupt(path, at as u64, "trailing bytes in snapshot"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floor_and_ranges(r: &PartitionAcks) -> (u64, Vec<(u64, u64)>) {
        (r.floor, r.acked.iter().map(|(s, e, _)| (s, e)).collect())
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

    #[test]
    fn snapshot_then_log_replays_both() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut st, _) = GroupStore::open(dir.path(), "d").unwrap();
            st.append_acks(&[(0, 0, 100)]).unwrap();
            let mut acked = RangeSet::new();
            acked.insert(150, 160, ());
            st.write_snapshot(&[PartitionAcks {
                partition: 0,
                floor: 100,
                acked,
            }])
            .unwrap();
            assert_eq!(st.log_bytes(), 0);
            st.append_acks(&[(0, 100, 150)]).unwrap();
        }
        let (_, restored) = GroupStore::open(dir.path(), "d").unwrap();
        assert_eq!(floor_and_ranges(&restored[0]), (160, vec![]));
    }

    #[test]
    fn torn_tail_is_cut_at_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.acks");
        {
            let (mut st, _) = GroupStore::open(dir.path(), "d").unwrap();
            st.append_acks(&[(0, 0, 5)]).unwrap();
            st.append_acks(&[(0, 5, 9)]).unwrap();
        }
        let full = fs::read(&path).unwrap();
        let first_len = full.len() / 2;
        for cut in first_len..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            let (_, restored) = GroupStore::open(dir.path(), "d").unwrap();
            assert_eq!(floor_and_ranges(&restored[0]), (5, vec![]), "cut at {cut}");
            assert_eq!(fs::metadata(&path).unwrap().len(), first_len as u64);
        }
    }

    #[test]
    fn damage_before_valid_records_is_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.acks");
        {
            let (mut st, _) = GroupStore::open(dir.path(), "d").unwrap();
            st.append_acks(&[(0, 0, 5)]).unwrap();
            st.append_acks(&[(0, 5, 9)]).unwrap();
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
    fn corrupt_snapshot_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut st, _) = GroupStore::open(dir.path(), "d").unwrap();
            st.write_snapshot(&[PartitionAcks {
                partition: 0,
                floor: 7,
                acked: RangeSet::new(),
            }])
            .unwrap();
        }
        let snap = dir.path().join("d.snap");
        let mut bytes = fs::read(&snap).unwrap();
        bytes[13] ^= 1;
        fs::write(&snap, &bytes).unwrap();
        let err = GroupStore::open(dir.path(), "d").err().unwrap();
        assert!(err.to_string().contains("snapshot"), "{err}");
    }
}

//! Decoding of the log and the snapshot (both versions) and encoding of a v2 snapshot.

use std::collections::BTreeMap;
use std::path::Path;

use super::{
    ATTEMPT_ENTRY, COMMITTED_ENTRY, KIND_ACKS, KIND_ATTEMPTS, KIND_COMMITTED, KIND_SETTLED,
    MAX_RECORD, PartitionDurable, RANGE_ENTRY, RECORD_HEADER,
};
use crate::error::DeliveryError;
#[cfg(test)]
use crate::range_map::RangeSet;

const SNAP_MAGIC_V1: &[u8; 8] = b"SQSNAP01";
const SNAP_MAGIC_V2: &[u8; 8] = b"SQSNAP02";

pub(super) fn corrupt(path: &Path, position: u64, reason: impl Into<String>) -> DeliveryError {
    DeliveryError::Corrupt {
        path: path.to_path_buf(),
        position,
        reason: reason.into(),
    }
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at.checked_add(8)?)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
}

/// The state being rebuilt, per partition.
#[derive(Default)]
pub(super) struct Replay {
    parts: BTreeMap<u32, PartitionDurable>,
}

impl Replay {
    fn part(&mut self, partition: u32) -> &mut PartitionDurable {
        self.parts
            .entry(partition)
            .or_insert_with(|| PartitionDurable {
                partition,
                ..PartitionDurable::default()
            })
    }

    /// Offsets `start..end` are done (acked or settled).
    fn apply_done(&mut self, partition: u32, start: u64, end: u64) {
        let part = self.part(partition);
        if end <= part.floor || start >= end {
            return;
        }
        part.acked.insert(start.max(part.floor), end, ());
        part.attempts.remove(start, end);
        while let Some((s, e, _)) = part.acked.first() {
            if s > part.floor {
                break;
            }
            part.floor = part.floor.max(e);
            part.acked.pop_first();
        }
    }

    /// Offsets `start..end` not done were delivered at least `attempt` times.
    fn apply_attempts(&mut self, partition: u32, start: u64, end: u64, attempt: u32) {
        let part = self.part(partition);
        if attempt == 0 {
            return;
        }
        for (a, b) in part.acked.gaps(start.max(part.floor), end) {
            let mut pos = a;
            for (s, e, n) in part.attempts.overlapping(a, b) {
                if pos < s {
                    part.attempts.insert(pos, s, attempt);
                }
                part.attempts.insert(s, e, n.max(attempt));
                pos = e;
            }
            if pos < b {
                part.attempts.insert(pos, b, attempt);
            }
        }
    }

    fn apply_floor(&mut self, partition: u32, floor: u64) {
        let part = self.part(partition);
        if floor > part.floor {
            let old = part.floor;
            part.acked.remove(old, floor);
            part.attempts.remove(old, floor);
            part.floor = floor;
        }
    }

    pub(super) fn into_durables(self) -> Vec<PartitionDurable> {
        self.parts.into_values().collect()
    }
}

/// Applies every whole record; returns the length of the valid prefix.
pub(super) fn replay_log(
    path: &Path,
    bytes: &[u8],
    replay: &mut Replay,
) -> Result<u64, DeliveryError> {
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
/// in the file; otherwise durable state after it would be lost, so it is corruption.
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
    let kind = *payload
        .first()
        .ok_or_else(|| corrupt(path, pos, "empty record"))?;
    let entry_len = match kind {
        KIND_ACKS | KIND_SETTLED => RANGE_ENTRY,
        KIND_ATTEMPTS => ATTEMPT_ENTRY,
        KIND_COMMITTED => COMMITTED_ENTRY,
        _ => return Err(corrupt(path, pos, "unknown record kind")),
    };
    let count = read_u32(payload, 1).ok_or_else(|| corrupt(path, pos, "short record"))? as usize;
    if payload.len() != 5 + count.saturating_mul(entry_len) {
        return Err(corrupt(path, pos, "record length does not match its count"));
    }
    let short = || corrupt(path, pos, "short entry");
    for i in 0..count {
        let at = 5 + i * entry_len;
        let p = read_u32(payload, at).ok_or_else(short)?;
        let a = read_u64(payload, at + 4).ok_or_else(short)?;
        match kind {
            KIND_COMMITTED => replay.part(p).committed = Some(a),
            _ => {
                let b = read_u64(payload, at + 12).ok_or_else(short)?;
                if kind == KIND_ATTEMPTS {
                    let n = read_u32(payload, at + 20).ok_or_else(short)?;
                    replay.apply_attempts(p, a, b, n);
                } else {
                    replay.apply_done(p, a, b);
                }
            }
        }
    }
    Ok(())
}

/// Applies a snapshot (v1 or v2) to an empty replay.
pub(super) fn load_snapshot(
    path: &Path,
    bytes: &[u8],
    replay: &mut Replay,
) -> Result<(), DeliveryError> {
    let body_len = bytes
        .len()
        .checked_sub(4)
        .ok_or_else(|| corrupt(path, 0, "snapshot shorter than its checksum"))?;
    let stored = read_u32(bytes, body_len).unwrap_or(0);
    let body = &bytes[..body_len];
    let v2 = body.starts_with(SNAP_MAGIC_V2);
    if crc32c::crc32c(body) != stored || !(v2 || body.starts_with(SNAP_MAGIC_V1)) {
        return Err(corrupt(path, 0, "snapshot checksum or magic mismatch"));
    }
    let short = || corrupt(path, 0, "snapshot truncated inside an entry");
    let count = read_u32(body, 8).ok_or_else(short)?;
    let mut at = 12usize;
    for _ in 0..count {
        let p = read_u32(body, at).ok_or_else(short)?;
        let floor = read_u64(body, at + 4).ok_or_else(short)?;
        at += 12;
        if v2 {
            let has = *body.get(at).ok_or_else(short)?;
            let committed = read_u64(body, at + 1).ok_or_else(short)?;
            at += 9;
            match has {
                0 => {}
                1 => replay.part(p).committed = Some(committed),
                _ => return Err(corrupt(path, at as u64, "bad committed flag in snapshot")),
            }
        }
        replay.apply_floor(p, floor);
        let n = read_u32(body, at).ok_or_else(short)?;
        at += 4;
        for _ in 0..n {
            let s = read_u64(body, at).ok_or_else(short)?;
            let e = read_u64(body, at + 8).ok_or_else(short)?;
            at += 16;
            replay.apply_done(p, s, e);
        }
        if v2 {
            let m = read_u32(body, at).ok_or_else(short)?;
            at += 4;
            for _ in 0..m {
                let s = read_u64(body, at).ok_or_else(short)?;
                let e = read_u64(body, at + 8).ok_or_else(short)?;
                let a = read_u32(body, at + 16).ok_or_else(short)?;
                at += 20;
                replay.apply_attempts(p, s, e, a);
            }
        }
    }
    if at != body.len() {
        return Err(corrupt(path, at as u64, "trailing bytes in snapshot"));
    }
    Ok(())
}

/// A v2 snapshot of `parts`, checksum included.
pub(super) fn encode_snapshot(parts: &[PartitionDurable]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 + parts.len() * 32);
    buf.extend_from_slice(SNAP_MAGIC_V2);
    buf.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for part in parts {
        buf.extend_from_slice(&part.partition.to_le_bytes());
        buf.extend_from_slice(&part.floor.to_le_bytes());
        buf.push(u8::from(part.committed.is_some()));
        buf.extend_from_slice(&part.committed.unwrap_or(0).to_le_bytes());
        buf.extend_from_slice(&(part.acked.range_count() as u32).to_le_bytes());
        for (s, e, _) in part.acked.iter() {
            buf.extend_from_slice(&s.to_le_bytes());
            buf.extend_from_slice(&e.to_le_bytes());
        }
        buf.extend_from_slice(&(part.attempts.range_count() as u32).to_le_bytes());
        for (s, e, n) in part.attempts.iter() {
            buf.extend_from_slice(&s.to_le_bytes());
            buf.extend_from_slice(&e.to_le_bytes());
            buf.extend_from_slice(&n.to_le_bytes());
        }
    }
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

#[cfg(test)]
pub(super) fn encode_snapshot_v1(parts: &[(u32, u64, &RangeSet)]) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(SNAP_MAGIC_V1);
    buf.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for (p, floor, acked) in parts {
        buf.extend_from_slice(&p.to_le_bytes());
        buf.extend_from_slice(&floor.to_le_bytes());
        buf.extend_from_slice(&(acked.range_count() as u32).to_le_bytes());
        for (s, e, _) in acked.iter() {
            buf.extend_from_slice(&s.to_le_bytes());
            buf.extend_from_slice(&e.to_le_bytes());
        }
    }
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

//! Which Raft log index is which batch: the in-memory index of a partition's Raft log
//! and the frames of its side file `entries.bin` that rebuild it on open.
//!
//! A data entry is the batch at partition offsets `[base, end)`; its bytes live only in
//! the partition log. Blank and membership entries have no batch: they live only here.
//! Every entry remembers `end`, the partition's next offset after it, which is what lets
//! recovery line the two files up (see `docs/adr/0009-partition-raft-log.md`).
//!
//! Frame: `[len u32 LE][crc32c u32 LE][payload]`, payload `[kind u8][fields, u64 LE]`:
//! - `INIT end`: written once when the side file is created over a log ending at `end`;
//! - `DATA index term base end`, `BLANK index term end`,
//!   `MEMBERSHIP index term end json`: one entry each;
//! - `TRUNCATE has_keep(u8) keep end`: entries after `keep` (all, if none) are gone;
//! - `PURGE index term end`: entries up to `index` are purged.

use std::collections::VecDeque;
use std::sync::Arc;

use openraft::Membership;
use openraft::RaftTypeConfig;
use openraft::type_config::alias::LogIdOf;

use crate::types::{PartitionTypes, log_id};

/// Largest frame payload (a membership entry is the only variable one).
pub(crate) const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Entries kept in memory at most (~40 bytes each); past it appends are refused until
/// the log is purged, rather than growing without bound.
pub(crate) const MAX_LIVE_ENTRIES: usize = 32 * 1024 * 1024;
const FRAME_HEADER: usize = 8;

const KIND_INIT: u8 = 0;
const KIND_DATA: u8 = 1;
const KIND_BLANK: u8 = 2;
const KIND_MEMBERSHIP: u8 = 3;
const KIND_TRUNCATE: u8 = 4;
const KIND_PURGE: u8 = 5;

type MembershipOf<C> = Membership<<C as RaftTypeConfig>::NodeId, <C as RaftTypeConfig>::Node>;

/// What an entry holds.
pub(crate) enum Slot<C: PartitionTypes> {
    /// The batch at partition offsets `[base, Meta::end)`.
    Data {
        base: u64,
    },
    Blank,
    Membership(Arc<MembershipOf<C>>),
}

impl<C: PartitionTypes> Clone for Slot<C> {
    fn clone(&self) -> Self {
        match self {
            Slot::Data { base } => Slot::Data { base: *base },
            Slot::Blank => Slot::Blank,
            Slot::Membership(m) => Slot::Membership(m.clone()),
        }
    }
}

/// One entry of the index.
pub(crate) struct Meta<C: PartitionTypes> {
    pub term: u64,
    /// The partition's next offset after this entry.
    pub end: u64,
    pub slot: Slot<C>,
}

impl<C: PartitionTypes> Clone for Meta<C> {
    fn clone(&self) -> Self {
        Meta {
            term: self.term,
            end: self.end,
            slot: self.slot.clone(),
        }
    }
}

/// A decoded side-file frame.
pub(crate) enum Frame<C: PartitionTypes> {
    Init { end: u64 },
    Entry { index: u64, meta: Meta<C> },
    Truncate { keep: Option<u64>, end: u64 },
    Purge { index: u64, term: u64, end: u64 },
}

/// The Raft log as this replica holds it: indexes `[first, first + entries.len())`.
pub(crate) struct EntryIndex<C: PartitionTypes> {
    first: u64,
    entries: VecDeque<Meta<C>>,
    /// Partition offset before `entries[0]` (or the log's end when there are none).
    base_end: u64,
    last_purged: Option<LogIdOf<C>>,
}

impl<C: PartitionTypes> EntryIndex<C> {
    pub fn new(end: u64) -> Self {
        EntryIndex {
            first: 0,
            entries: VecDeque::new(),
            base_end: end,
            last_purged: None,
        }
    }

    /// Index the next entry gets.
    pub fn next_index(&self) -> u64 {
        if self.entries.is_empty() {
            return self
                .last_purged
                .as_ref()
                .map_or(self.first, |p| p.index + 1);
        }
        self.first + self.entries.len() as u64
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Partition offset after the last entry.
    pub fn end(&self) -> u64 {
        self.entries.back().map_or(self.base_end, |m| m.end)
    }

    pub fn last_purged(&self) -> Option<LogIdOf<C>> {
        self.last_purged
    }

    pub fn last_log_id(&self) -> Option<LogIdOf<C>> {
        match self.entries.back() {
            Some(m) => Some(log_id(m.term, self.next_index() - 1)),
            None => self.last_purged,
        }
    }

    pub fn last_term(&self) -> u64 {
        self.last_log_id().map_or(0, |id| id.leader_id.term)
    }

    pub fn get(&self, index: u64) -> Option<&Meta<C>> {
        let i = index.checked_sub(self.first)?;
        self.entries.get(usize::try_from(i).ok()?)
    }

    /// The entries in `[start, end)` that are held, with their indexes.
    pub fn range(&self, start: u64, end: u64) -> Vec<(u64, Meta<C>)> {
        let lo = start.max(self.first);
        let hi = end.min(self.first + self.entries.len() as u64);
        (lo..hi)
            .filter_map(|i| self.get(i).map(|m| (i, m.clone())))
            .collect()
    }

    /// Adds the entry at `index`. An index below the next one replaces the suffix from
    /// there (a rewrite after a cut); a gap is refused.
    pub fn push(&mut self, index: u64, meta: Meta<C>) -> Result<(), String> {
        if self.entries.len() >= MAX_LIVE_ENTRIES {
            return Err(format!(
                "{MAX_LIVE_ENTRIES} unpurged entries held; purge the Raft log first"
            ));
        }
        if self.entries.is_empty() {
            if let Some(p) = &self.last_purged
                && index <= p.index
            {
                return Err(format!("entry {index} is at or below the purge point {p}"));
            }
            if self.last_purged.is_some() && index != self.next_index() {
                return Err(format!(
                    "entry {index} leaves a hole after {}",
                    self.next_index()
                ));
            }
            self.first = index;
        } else if index < self.first {
            return Err(format!(
                "entry {index} is below the first held {}",
                self.first
            ));
        } else if index < self.next_index() {
            self.truncate_after(Some(index - 1));
        } else if index > self.next_index() {
            return Err(format!(
                "entry {index} leaves a hole after {}",
                self.next_index()
            ));
        }
        let end_before = self.end();
        if let Slot::Data { base } = meta.slot
            && (base != end_before || meta.end <= base)
        {
            return Err(format!(
                "data entry {index} at offsets {base}..{} does not follow offset {end_before}",
                meta.end
            ));
        }
        if !matches!(meta.slot, Slot::Data { .. }) && meta.end != end_before {
            return Err(format!(
                "entry {index} claims end offset {}, the log ends at {end_before}",
                meta.end
            ));
        }
        self.entries.push_back(meta);
        Ok(())
    }

    /// Drops entries after `keep` (all of them for `None`); returns the partition offset
    /// the log now ends at.
    pub fn truncate_after(&mut self, keep: Option<u64>) -> u64 {
        let n = match keep {
            None => 0,
            Some(k) if k < self.first => 0,
            Some(k) => usize::try_from(k - self.first + 1).unwrap_or(usize::MAX),
        };
        self.entries.truncate(n);
        self.end()
    }

    /// Partition offset before the first held entry.
    pub fn end_before_first(&self) -> u64 {
        self.base_end
    }

    fn end_before(&self, pos: usize) -> u64 {
        match pos.checked_sub(1) {
            None => self.base_end,
            Some(p) => self.entries.get(p).map_or(self.base_end, |m| m.end),
        }
    }

    /// Drops entries up to `index` inclusive and records the purge point.
    pub fn purge(&mut self, index: u64, term: u64) {
        let drop = index
            .checked_sub(self.first)
            .map_or(0, |d| usize::try_from(d + 1).unwrap_or(usize::MAX))
            .min(self.entries.len());
        if drop > 0 {
            self.base_end = self.end_before(drop);
            self.entries.drain(..drop);
        }
        self.first = index + 1;
        self.last_purged = Some(log_id(term, index));
    }

    /// Sets the purge point and base without dropping anything (replaying a frame whose
    /// effect the file already reflects, or a rewritten file's first frame).
    fn set_purged(&mut self, index: u64, term: u64, end: u64) {
        self.entries.clear();
        self.first = index + 1;
        self.base_end = end;
        self.last_purged = Some(log_id(term, index));
    }

    /// Applies one replayed frame.
    pub fn replay(&mut self, frame: Frame<C>) -> Result<(), String> {
        match frame {
            Frame::Init { end } => {
                if self.entries.is_empty() && self.last_purged.is_none() {
                    self.base_end = end;
                }
                Ok(())
            }
            Frame::Entry { index, meta } => self.push(index, meta),
            Frame::Truncate { keep, end } => {
                let now = self.truncate_after(keep);
                if self.entries.is_empty() {
                    self.base_end = end;
                } else if now != end {
                    return Err(format!(
                        "truncate to {keep:?} ends at {now}, frame says {end}"
                    ));
                }
                Ok(())
            }
            Frame::Purge { index, term, end } => {
                let held = self.get(index).map(|m| m.end);
                if held.is_some() {
                    self.purge(index, term);
                } else {
                    self.set_purged(index, term, end);
                }
                Ok(())
            }
        }
    }

    /// Frames that rebuild this index from nothing (for a rewrite of the side file).
    pub fn encode_all(&self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        match &self.last_purged {
            Some(p) => encode(
                buf,
                &Frame::<C>::Purge {
                    index: p.index,
                    term: p.leader_id.term,
                    end: self.base_end,
                },
            )?,
            None => encode(buf, &Frame::<C>::Init { end: self.base_end })?,
        }
        for (i, m) in self.entries.iter().enumerate() {
            let frame = Frame::Entry {
                index: self.first + i as u64,
                meta: m.clone(),
            };
            encode(buf, &frame)?;
        }
        Ok(())
    }
}

fn put(buf: &mut Vec<u8>, vals: &[u64]) {
    for v in vals {
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// Appends one frame to `buf`.
pub(crate) fn encode<C: PartitionTypes>(
    buf: &mut Vec<u8>,
    frame: &Frame<C>,
) -> std::io::Result<()> {
    let mut p = Vec::with_capacity(40);
    match frame {
        Frame::Init { end } => {
            p.push(KIND_INIT);
            put(&mut p, &[*end]);
        }
        Frame::Entry { index, meta } => match &meta.slot {
            Slot::Data { base } => {
                p.push(KIND_DATA);
                put(&mut p, &[*index, meta.term, *base, meta.end]);
            }
            Slot::Blank => {
                p.push(KIND_BLANK);
                put(&mut p, &[*index, meta.term, meta.end]);
            }
            Slot::Membership(m) => {
                p.push(KIND_MEMBERSHIP);
                put(&mut p, &[*index, meta.term, meta.end]);
                serde_json::to_writer(&mut p, m.as_ref())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            }
        },
        Frame::Truncate { keep, end } => {
            p.push(KIND_TRUNCATE);
            p.push(u8::from(keep.is_some()));
            put(&mut p, &[keep.unwrap_or(0), *end]);
        }
        Frame::Purge { index, term, end } => {
            p.push(KIND_PURGE);
            put(&mut p, &[*index, *term, *end]);
        }
    }
    if p.len() > MAX_FRAME_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "raft side frame of {} bytes exceeds {MAX_FRAME_BYTES}",
                p.len()
            ),
        ));
    }
    // Checked above: fits in u32.
    buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(&p).to_le_bytes());
    buf.extend_from_slice(&p);
    Ok(())
}

fn u64_at(b: &[u8], n: usize) -> Option<u64> {
    let s = b.get(n * 8..n * 8 + 8)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

fn decode_one<C: PartitionTypes>(payload: &[u8]) -> Result<Frame<C>, String> {
    let (&kind, body) = payload.split_first().ok_or("empty frame")?;
    let short = || format!("frame kind {kind} too short");
    let fields = |n: usize| -> Result<Vec<u64>, String> {
        (0..n).map(|i| u64_at(body, i).ok_or_else(short)).collect()
    };
    match kind {
        KIND_INIT => Ok(Frame::Init { end: fields(1)?[0] }),
        KIND_DATA => {
            let f = fields(4)?;
            Ok(Frame::Entry {
                index: f[0],
                meta: Meta {
                    term: f[1],
                    end: f[3],
                    slot: Slot::Data { base: f[2] },
                },
            })
        }
        KIND_BLANK => {
            let f = fields(3)?;
            Ok(Frame::Entry {
                index: f[0],
                meta: Meta {
                    term: f[1],
                    end: f[2],
                    slot: Slot::Blank,
                },
            })
        }
        KIND_MEMBERSHIP => {
            let f = fields(3)?;
            let json = body.get(24..).ok_or_else(short)?;
            let m: MembershipOf<C> =
                serde_json::from_slice(json).map_err(|e| format!("membership: {e}"))?;
            Ok(Frame::Entry {
                index: f[0],
                meta: Meta {
                    term: f[1],
                    end: f[2],
                    slot: Slot::Membership(Arc::new(m)),
                },
            })
        }
        KIND_TRUNCATE => {
            let has = *body.first().ok_or_else(short)?;
            let rest = body.get(1..).ok_or_else(short)?;
            let keep = u64_at(rest, 0).ok_or_else(short)?;
            let end = u64_at(rest, 1).ok_or_else(short)?;
            Ok(Frame::Truncate {
                keep: (has == 1).then_some(keep),
                end,
            })
        }
        KIND_PURGE => {
            let f = fields(3)?;
            Ok(Frame::Purge {
                index: f[0],
                term: f[1],
                end: f[2],
            })
        }
        k => Err(format!("unknown frame kind {k}")),
    }
}

/// Decodes frames until the end or the first bad one; returns them, the length of the
/// good prefix and why decoding stopped early, if it did.
pub(crate) fn decode_frames<C: PartitionTypes>(
    bytes: &[u8],
) -> (Vec<Frame<C>>, usize, Option<String>) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let Some(header) = bytes.get(pos..pos + FRAME_HEADER) else {
            return (out, pos, Some("short frame header".into()));
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_FRAME_BYTES {
            return (out, pos, Some(format!("bad frame length {len}")));
        }
        let start = pos + FRAME_HEADER;
        let Some(payload) = bytes.get(start..start + len) else {
            return (out, pos, Some("short frame payload".into()));
        };
        if crc32c::crc32c(payload) != crc {
            return (out, pos, Some("crc mismatch".into()));
        }
        match decode_one(payload) {
            Ok(f) => out.push(f),
            Err(e) => return (out, pos, Some(e)),
        }
        pos = start + len;
    }
    (out, pos, None)
}

/// Whether a valid frame that is not a `DATA` frame starts anywhere after `pos`. Data
/// frames past a bad spot are rebuilt from the batches; any other frame there means
/// damage in the middle that cutting would turn into a renumbered log.
pub(crate) fn non_data_frame_after<C: PartitionTypes>(bytes: &[u8], pos: usize) -> bool {
    let mut p = pos + 1;
    while p + FRAME_HEADER < bytes.len() {
        let h = &bytes[p..p + FRAME_HEADER];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        if len > 0
            && len <= MAX_FRAME_BYTES
            && let Some(payload) = bytes.get(p + FRAME_HEADER..p + FRAME_HEADER + len)
            && crc32c::crc32c(payload) == crc
            && payload.first().is_some_and(|k| *k != KIND_DATA)
            && decode_one::<C>(payload).is_ok()
        {
            return true;
        }
        p += 1;
    }
    false
}

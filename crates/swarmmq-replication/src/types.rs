//! openraft's type configuration for a partition group, and the entry payload.
//!
//! Node ids are `String` (the cluster's `NodeId` text, as in the metadata group), so a
//! partition group names its replicas exactly as placement does. The leader id is
//! openraft's *standard* one (at most one leader per term): its committed form is the
//! bare term, which is exactly what a batch header stores, so a data entry's log id is
//! recoverable from the partition log alone. The store is generic over [`PartitionTypes`]
//! only so openraft's conformance suite (which wants `u64` node ids) can drive it.

use std::fmt;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use openraft::EntryPayload;
use openraft::vote::RaftLeaderId;
use openraft::vote::leader_id_std::CommittedLeaderId;
use serde::{Deserialize, Serialize};
use swarmmq_storage::{BatchHeader, EncodedBatch, HEADER_LEN, MAX_BATCH_LEN};

/// Byte positions of the header fields a leader stamps (docs/storage.md, "Record batch").
const OFF_CRC: usize = 4;
const CRC_START: usize = 8;
const OFF_BASE_OFFSET: usize = 16;
const OFF_TERM: usize = 24;

/// The payload of a data entry: one encoded record batch, byte for byte as the storage
/// format has it.
///
/// A leader proposes a *fresh* batch (builder output: base offset, term and CRC still
/// zero); the log store stamps it when it appends it. Every entry read back from a log
/// (and so everything replicated to followers or applied) is stamped.
#[derive(Clone, PartialEq, Eq)]
pub struct BatchData(Bytes);

impl BatchData {
    /// A fresh batch from the builder, to propose.
    pub fn from_encoded(batch: EncodedBatch) -> Self {
        BatchData(batch.into_bytes())
    }

    /// Any batch bytes (fresh or stamped); validated when appended.
    pub fn from_bytes(bytes: Bytes) -> Self {
        BatchData(bytes)
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The decoded header, if the bytes start with a valid one.
    pub fn header(&self) -> Option<BatchHeader> {
        BatchHeader::parse(&self.0).ok()
    }

    /// A fresh batch has no CRC, offsets or term yet (the builder leaves them zero).
    pub(crate) fn is_fresh(&self) -> bool {
        self.header()
            .is_some_and(|h| h.crc == 0 && h.term == 0 && h.base_offset == 0)
    }

    /// The bytes with `base_offset` and `term` stamped and the CRC computed, as
    /// `PartitionLog::append` would stamp them.
    pub(crate) fn stamped(&self, base_offset: u64, term: u64) -> Bytes {
        let mut buf = BytesMut::from(&self.0[..]);
        if buf.len() >= HEADER_LEN {
            buf[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_le_bytes());
            buf[OFF_TERM..OFF_TERM + 8].copy_from_slice(&term.to_le_bytes());
            let crc = crc32c::crc32c(&buf[CRC_START..]);
            buf[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        }
        buf.freeze()
    }
}

impl fmt::Debug for BatchData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for BatchData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.header() {
            Some(h) => write!(
                f,
                "batch(offsets {}..{}, term {}, {} bytes)",
                h.base_offset,
                h.next_offset(),
                h.term,
                self.0.len()
            ),
            None => write!(f, "batch(invalid, {} bytes)", self.0.len()),
        }
    }
}

impl Serialize for BatchData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Text formats (the JSON of Raft messages) would write bytes as an array of
        // numbers, about 3.5 times their size: base64 is 1.33 times.
        if s.is_human_readable() {
            use base64::Engine as _;
            s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for BatchData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(BatchVisitor)
        } else {
            d.deserialize_bytes(BatchVisitor)
        }
    }
}

struct BatchVisitor;

impl<'de> serde::de::Visitor<'de> for BatchVisitor {
    type Value = BatchData;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the bytes of one record batch (at most {MAX_BATCH_LEN})")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<BatchData, E> {
        if v.len() > MAX_BATCH_LEN as usize {
            return Err(E::custom("batch larger than MAX_BATCH_LEN"));
        }
        Ok(BatchData(Bytes::copy_from_slice(v)))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<BatchData, E> {
        if v.len() > MAX_BATCH_LEN as usize {
            return Err(E::custom("batch larger than MAX_BATCH_LEN"));
        }
        Ok(BatchData(Bytes::from(v)))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BatchData, E> {
        use base64::Engine as _;
        // Checked before decoding: base64 is 4 characters per 3 bytes.
        if v.len() / 4 * 3 > MAX_BATCH_LEN as usize {
            return Err(E::custom("batch larger than MAX_BATCH_LEN"));
        }
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .map(|b| BatchData(Bytes::from(b)))
            .map_err(|e| E::custom(format!("batch is not base64: {e}")))
    }

    // Older messages carried bytes as a sequence of numbers.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<BatchData, A::Error> {
        let hint = seq.size_hint().unwrap_or(0).min(64 * 1024);
        let mut v = Vec::with_capacity(hint);
        while let Some(b) = seq.next_element::<u8>()? {
            if v.len() >= MAX_BATCH_LEN as usize {
                return Err(serde::de::Error::custom("batch larger than MAX_BATCH_LEN"));
            }
            v.push(b);
        }
        Ok(BatchData(Bytes::from(v)))
    }
}

/// What the state machine answers a proposer: where the entry landed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReply {
    /// Raft log index of the entry.
    pub index: u64,
    /// Offsets `[base_offset, next_offset)` the batch got (equal for a non-data entry).
    pub base_offset: u64,
    pub next_offset: u64,
}

/// What openraft stores about a replica: where its internal link listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaNode {
    pub addr: SocketAddr,
}

impl Default for ReplicaNode {
    fn default() -> Self {
        ReplicaNode {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

impl fmt::Display for ReplicaNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)
    }
}

/// Access to a data entry's batch, whatever the concrete entry type.
pub trait PartitionEntry {
    /// The batch of a data entry; `None` for blank and membership entries.
    fn batch(&self) -> Option<&BatchData>;
}

impl<NID, N> PartitionEntry
    for openraft::Entry<CommittedLeaderId<u64>, EntryPayload<BatchData, NID, N>>
where
    NID: openraft::NodeId,
    N: openraft::Node,
{
    fn batch(&self) -> Option<&BatchData> {
        match &self.payload {
            EntryPayload::Normal(b) => Some(b),
            _ => None,
        }
    }
}

/// The type configurations a partition store works with: batch payloads, `u64` terms,
/// the standard (term-only) committed leader id.
pub trait PartitionTypes:
    openraft::RaftTypeConfig<
        D = BatchData,
        R = AppendReply,
        Term = u64,
        LeaderId: RaftLeaderId<Committed = CommittedLeaderId<u64>>,
        Entry: PartitionEntry + Clone,
    >
{
}

impl<T> PartitionTypes for T where
    T: openraft::RaftTypeConfig<
            D = BatchData,
            R = AppendReply,
            Term = u64,
            LeaderId: RaftLeaderId<Committed = CommittedLeaderId<u64>>,
            Entry: PartitionEntry + Clone,
        >
{
}

openraft::declare_raft_types!(
    /// The partition group's openraft types: string node ids, replicas known by their
    /// internal address, one record batch per data entry, one leader per term.
    pub PartitionConfig:
        D = BatchData,
        R = AppendReply,
        NodeId = String,
        Node = ReplicaNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, String>,
);

/// The log id of `index` written in `term`.
pub(crate) fn log_id(term: u64, index: u64) -> openraft::LogId<CommittedLeaderId<u64>> {
    openraft::LogId::new(CommittedLeaderId::new(term), index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_travel_as_base64_in_json_and_old_number_arrays_still_read() {
        let b = BatchData::from_bytes(Bytes::from_static(b"\x00\x01batch\xff"));
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"AAFiYXRjaP8=\"");
        let back: BatchData = serde_json::from_str(&json).unwrap();
        assert_eq!(back.as_bytes(), b.as_bytes());
        let old: BatchData = serde_json::from_str("[0,1,98,97,116,99,104,255]").unwrap();
        assert_eq!(old.as_bytes(), b.as_bytes());
        assert!(serde_json::from_str::<BatchData>("\"not base64!\"").is_err());
    }
}

use swarmmq_crypto::SALT_LEN;

use crate::StorageError;

/// First byte after the CRC: identifies a SwarmMQ batch.
pub const MAGIC: u8 = 0x53; // 'S'
/// The batch format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes of the fixed batch header; records follow it.
pub const HEADER_LEN: usize = 88;
/// Hard upper bound of one batch, whatever the config says: a length field above it is
/// corruption, and no buffer is ever sized from a larger one.
pub const MAX_BATCH_LEN: u32 = 64 * 1024 * 1024;
/// Smallest possible record: length, attributes, timestamp delta, offset delta, id tag
/// (one byte each) and the tag.
pub(crate) const MIN_RECORD_LEN: usize = 5 + 16;

pub(crate) const OFF_LENGTH: usize = 0;
pub(crate) const OFF_CRC: usize = 4;
/// The CRC covers every byte from here to the end of the batch.
pub(crate) const CRC_START: usize = 8;
pub(crate) const OFF_MAGIC: usize = 8;
pub(crate) const OFF_VERSION: usize = 9;
pub(crate) const OFF_ATTRIBUTES: usize = 10;
pub(crate) const OFF_RECORD_COUNT: usize = 12;
pub(crate) const OFF_BASE_OFFSET: usize = 16;
pub(crate) const OFF_TERM: usize = 24;
pub(crate) const OFF_LAST_OFFSET_DELTA: usize = 32;
pub(crate) const OFF_KEY_ID: usize = 36;
pub(crate) const OFF_FIRST_TIMESTAMP: usize = 40;
pub(crate) const OFF_MAX_TIMESTAMP: usize = 48;
pub(crate) const OFF_PRODUCER_ID: usize = 56;
pub(crate) const OFF_PRODUCER_SEQ: usize = 64;
pub(crate) const OFF_SALT: usize = 72;

pub(crate) fn le_u16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
        .unwrap_or(0)
}

pub(crate) fn le_u32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0)
}

pub(crate) fn le_u64(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

pub(crate) fn put(b: &mut [u8], off: usize, v: &[u8]) {
    if let Some(dst) = b.get_mut(off..off + v.len()) {
        dst.copy_from_slice(v);
    }
}

/// Fills base offset and term (append time) in a finished batch.
pub(crate) fn stamp_offsets(b: &mut [u8], base_offset: u64, term: u64) {
    put(b, OFF_BASE_OFFSET, &base_offset.to_le_bytes());
    put(b, OFF_TERM, &term.to_le_bytes());
}

/// Computes the CRC over `[CRC_START, len)` and stores it; returns it.
pub(crate) fn put_crc(b: &mut [u8]) -> u32 {
    let crc = crc32c::crc32c(b.get(CRC_START..).unwrap_or(&[]));
    put(b, OFF_CRC, &crc.to_le_bytes());
    crc
}

/// The fixed header of a batch, decoded and checked for internal consistency (not the
/// CRC, which needs the whole batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Total bytes of the batch, header included.
    pub length: u32,
    pub crc: u32,
    pub attributes: u16,
    pub record_count: u32,
    pub base_offset: u64,
    pub term: u64,
    pub last_offset_delta: u32,
    pub key_id: u32,
    pub first_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub producer_id: u64,
    pub producer_seq: u64,
    pub salt: [u8; SALT_LEN],
}

impl BatchHeader {
    /// Decodes the header at the start of `buf` (at least [`HEADER_LEN`] bytes).
    pub fn parse(buf: &[u8]) -> Result<Self, StorageError> {
        if buf.len() < HEADER_LEN {
            return Err(StorageError::Malformed("shorter than a batch header"));
        }
        let length = le_u32(buf, OFF_LENGTH);
        if (length as usize) < HEADER_LEN + MIN_RECORD_LEN || length > MAX_BATCH_LEN {
            return Err(StorageError::Malformed("batch length out of bounds"));
        }
        if buf.get(OFF_MAGIC) != Some(&MAGIC) {
            return Err(StorageError::Malformed("bad magic byte"));
        }
        if buf.get(OFF_VERSION) != Some(&FORMAT_VERSION) {
            return Err(StorageError::Malformed("unsupported batch format version"));
        }
        let attributes = le_u16(buf, OFF_ATTRIBUTES);
        if attributes != 0 {
            return Err(StorageError::Malformed("unknown batch attribute bits"));
        }
        let record_count = le_u32(buf, OFF_RECORD_COUNT);
        let last_offset_delta = le_u32(buf, OFF_LAST_OFFSET_DELTA);
        let max_records = (length as usize - HEADER_LEN) / MIN_RECORD_LEN;
        if record_count == 0 || record_count as usize > max_records {
            return Err(StorageError::Malformed("record count out of bounds"));
        }
        // Offsets are dense, so the last delta is always count - 1 in this format.
        if last_offset_delta != record_count - 1 {
            return Err(StorageError::Malformed(
                "last offset delta does not match record count",
            ));
        }
        let base_offset = le_u64(buf, OFF_BASE_OFFSET);
        if base_offset.checked_add(u64::from(record_count)).is_none() {
            return Err(StorageError::Malformed("offsets overflow"));
        }
        let mut salt = [0u8; SALT_LEN];
        if let Some(s) = buf.get(OFF_SALT..OFF_SALT + SALT_LEN) {
            salt.copy_from_slice(s);
        }
        Ok(BatchHeader {
            length,
            crc: le_u32(buf, OFF_CRC),
            attributes,
            record_count,
            base_offset,
            term: le_u64(buf, OFF_TERM),
            last_offset_delta,
            key_id: le_u32(buf, OFF_KEY_ID),
            first_timestamp_ms: le_u64(buf, OFF_FIRST_TIMESTAMP) as i64,
            max_timestamp_ms: le_u64(buf, OFF_MAX_TIMESTAMP) as i64,
            producer_id: le_u64(buf, OFF_PRODUCER_ID),
            producer_seq: le_u64(buf, OFF_PRODUCER_SEQ),
            salt,
        })
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }

    /// Offset just past the last record.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count)
    }
}

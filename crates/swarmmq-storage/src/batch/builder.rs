use bytes::{Bytes, BytesMut};
use swarmmq_crypto::{BatchCipher, KeyRing, TAG_LEN};
use swarmmq_types::MessageId;

use super::header::{
    FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_BATCH_LEN, OFF_ATTRIBUTES, OFF_FIRST_TIMESTAMP,
    OFF_KEY_ID, OFF_LAST_OFFSET_DELTA, OFF_LENGTH, OFF_MAGIC, OFF_MAX_TIMESTAMP, OFF_PRODUCER_ID,
    OFF_PRODUCER_SEQ, OFF_RECORD_COUNT, OFF_SALT, OFF_VERSION, put, put_crc, stamp_offsets,
};
use super::record::{
    ATTR_DELIVER_AT, ATTR_EXPIRES_AT, ATTR_HEADERS, ATTR_KEY, ID_NONE, ID_TEXT, ID_UUID,
    MAX_HEADER_BYTES, MAX_HEADER_NAME_BYTES, MAX_HEADERS, MAX_KEY_BYTES,
};
use super::view::Batch;
use crate::StorageError;
use crate::varint::{put_ivarint, put_uvarint, uvarint_len};

/// One header of a record to write (or read back), borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeaderRef<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
}

/// One record to append, borrowed from the caller (nothing is copied until it is
/// encrypted into the batch buffer).
#[derive(Clone, Copy, Debug)]
pub struct RecordInput<'a> {
    pub timestamp_ms: i64,
    /// 1 (lowest) to 10 (highest).
    pub priority: u8,
    pub id: Option<&'a MessageId>,
    pub key: Option<&'a [u8]>,
    pub headers: &'a [RecordHeaderRef<'a>],
    pub deliver_at_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    pub payload: &'a [u8],
}

/// Builds one batch: each pushed record is encoded and encrypted straight into the
/// batch buffer (one allocation per batch, none per record once the buffer is sized).
pub struct BatchBuilder {
    cipher: BatchCipher,
    buf: BytesMut,
    /// Reused scratch for a record's metadata, whose length must be known before the
    /// record's length prefix is written.
    meta: Vec<u8>,
    count: u32,
    first_ts: i64,
    max_ts: i64,
    producer_id: u64,
    producer_seq: u64,
}

impl BatchBuilder {
    /// A builder under the ring's active key with a fresh salt; `capacity_hint` is the
    /// expected encoded size in bytes.
    pub fn new(
        ring: &KeyRing,
        producer_id: u64,
        capacity_hint: usize,
    ) -> Result<Self, StorageError> {
        let cipher = BatchCipher::for_write(ring)?;
        let mut buf =
            BytesMut::with_capacity(HEADER_LEN + capacity_hint.min(MAX_BATCH_LEN as usize));
        buf.resize(HEADER_LEN, 0);
        Ok(BatchBuilder {
            cipher,
            buf,
            meta: Vec::with_capacity(64),
            count: 0,
            first_ts: 0,
            max_ts: i64::MIN,
            producer_id,
            producer_seq: 0,
        })
    }

    /// Sets the producer sequence number stored in the header (for idempotence).
    pub fn set_producer_seq(&mut self, seq: u64) {
        self.producer_seq = seq;
    }

    /// Records pushed so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch would take if finished now.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// An upper bound of the bytes a record adds to a batch (for callers that cut
    /// batches by size).
    pub fn record_len_estimate(rec: &RecordInput<'_>) -> usize {
        let headers: usize = rec
            .headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 4)
            .sum();
        let body = 24
            + 16
            + 128
            + rec.key.map_or(0, |k| k.len() + 3)
            + headers
            + rec.payload.len()
            + TAG_LEN;
        body + uvarint_len(body as u64)
    }

    /// Encodes and encrypts one record into the batch.
    pub fn push(&mut self, rec: RecordInput<'_>) -> Result<(), StorageError> {
        if !(1..=10).contains(&rec.priority) {
            return Err(StorageError::InvalidArgument(format!(
                "priority {} is not 1-10",
                rec.priority
            )));
        }
        if self.count == u32::MAX {
            return Err(StorageError::InvalidArgument(
                "batch record count limit reached".into(),
            ));
        }
        let first_ts = if self.count == 0 {
            rec.timestamp_ms
        } else {
            self.first_ts
        };
        let ts_delta = rec.timestamp_ms.checked_sub(first_ts).ok_or_else(|| {
            StorageError::InvalidArgument("timestamp too far from the batch's first".into())
        })?;
        let rel = |t: Option<i64>, what: &str| -> Result<Option<i64>, StorageError> {
            t.map(|t| {
                t.checked_sub(rec.timestamp_ms).ok_or_else(|| {
                    StorageError::InvalidArgument(format!("{what} too far from the timestamp"))
                })
            })
            .transpose()
        };
        let deliver_delta = rel(rec.deliver_at_ms, "deliver_at")?;
        let expires_delta = rel(rec.expires_at_ms, "expires_at")?;
        if let Some(k) = rec.key
            && k.len() > MAX_KEY_BYTES
        {
            return Err(StorageError::InvalidArgument(format!(
                "key is {} bytes; the limit is {MAX_KEY_BYTES}",
                k.len()
            )));
        }
        if rec.headers.len() > MAX_HEADERS {
            return Err(StorageError::InvalidArgument(format!(
                "{} headers; the limit is {MAX_HEADERS}",
                rec.headers.len()
            )));
        }
        let mut header_bytes = 0usize;
        for h in rec.headers {
            if h.name.len() > MAX_HEADER_NAME_BYTES {
                return Err(StorageError::InvalidArgument(format!(
                    "header name is {} bytes; the limit is {MAX_HEADER_NAME_BYTES}",
                    h.name.len()
                )));
            }
            header_bytes += h.name.len() + h.value.len();
        }
        if header_bytes > MAX_HEADER_BYTES {
            return Err(StorageError::InvalidArgument(format!(
                "headers are {header_bytes} bytes; the limit is {MAX_HEADER_BYTES}"
            )));
        }

        let m = &mut self.meta;
        m.clear();
        let mut attr = rec.priority;
        if deliver_delta.is_some() {
            attr |= ATTR_DELIVER_AT;
        }
        if expires_delta.is_some() {
            attr |= ATTR_EXPIRES_AT;
        }
        if rec.key.is_some() {
            attr |= ATTR_KEY;
        }
        if !rec.headers.is_empty() {
            attr |= ATTR_HEADERS;
        }
        m.push(attr);
        put_ivarint(m, ts_delta);
        put_uvarint(m, u64::from(self.count));
        if let Some(d) = deliver_delta {
            put_ivarint(m, d);
        }
        if let Some(d) = expires_delta {
            put_ivarint(m, d);
        }
        match rec.id {
            None => m.push(ID_NONE),
            Some(MessageId::Uuid(u)) => {
                m.push(ID_UUID);
                m.extend_from_slice(u);
            }
            Some(MessageId::Text(s)) => {
                if s.is_empty() || s.len() > MessageId::MAX_TEXT_LEN {
                    return Err(StorageError::InvalidArgument(
                        "text message id must be 1-128 bytes".into(),
                    ));
                }
                m.push(ID_TEXT);
                put_uvarint(m, s.len() as u64);
                m.extend_from_slice(s.as_bytes());
            }
        }
        if let Some(k) = rec.key {
            put_uvarint(m, k.len() as u64);
            m.extend_from_slice(k);
        }
        if !rec.headers.is_empty() {
            put_uvarint(m, rec.headers.len() as u64);
            for h in rec.headers {
                put_uvarint(m, h.name.len() as u64);
                m.extend_from_slice(h.name.as_bytes());
                put_uvarint(m, h.value.len() as u64);
                m.extend_from_slice(h.value);
            }
        }

        let body_len = m.len() + rec.payload.len() + TAG_LEN;
        let total = uvarint_len(body_len as u64) + body_len;
        if self.buf.len() + total > MAX_BATCH_LEN as usize {
            return Err(StorageError::InvalidArgument(format!(
                "record would grow the batch past {MAX_BATCH_LEN} bytes"
            )));
        }
        let start = self.buf.len();
        self.buf.reserve(total);
        let mut prefix = [0u8; 10];
        // The length prefix goes through a stack buffer: varints fit in 10 bytes.
        let n = encode_uvarint(&mut prefix, body_len as u64);
        self.buf.extend_from_slice(prefix.get(..n).unwrap_or(&[]));
        self.buf.extend_from_slice(m);
        let payload_start = self.buf.len();
        self.buf.extend_from_slice(rec.payload);
        let sealed = {
            let (head, tail) = self.buf.split_at_mut(payload_start);
            self.cipher
                .seal(self.count, head.get(start..).unwrap_or(&[]), tail)
        };
        let tag = match sealed {
            Ok(tag) => tag,
            Err(e) => {
                self.buf.truncate(start);
                return Err(e.into());
            }
        };
        self.buf.extend_from_slice(&tag);

        if self.count == 0 {
            self.first_ts = rec.timestamp_ms;
        }
        self.max_ts = self.max_ts.max(rec.timestamp_ms);
        self.count += 1;
        Ok(())
    }

    /// Fills the header and hands the batch over. Base offset, term and CRC stay zero:
    /// the log stamps them at append time.
    pub fn finish(self) -> EncodedBatch {
        let mut buf = self.buf;
        let len = buf.len() as u32;
        let b = &mut buf[..];
        put(b, OFF_LENGTH, &len.to_le_bytes());
        put(b, OFF_MAGIC, &[MAGIC]);
        put(b, OFF_VERSION, &[FORMAT_VERSION]);
        put(b, OFF_ATTRIBUTES, &0u16.to_le_bytes());
        put(b, OFF_RECORD_COUNT, &self.count.to_le_bytes());
        put(
            b,
            OFF_LAST_OFFSET_DELTA,
            &self.count.saturating_sub(1).to_le_bytes(),
        );
        put(b, OFF_KEY_ID, &self.cipher.key_id().to_le_bytes());
        put(b, OFF_FIRST_TIMESTAMP, &self.first_ts.to_le_bytes());
        put(b, OFF_MAX_TIMESTAMP, &self.max_ts.to_le_bytes());
        put(b, OFF_PRODUCER_ID, &self.producer_id.to_le_bytes());
        put(b, OFF_PRODUCER_SEQ, &self.producer_seq.to_le_bytes());
        put(b, OFF_SALT, self.cipher.salt());
        EncodedBatch {
            buf: buf.freeze(),
            record_count: self.count,
            first_ts: self.first_ts,
            max_ts: self.max_ts,
            base_offset: 0,
        }
    }
}

fn encode_uvarint(out: &mut [u8; 10], mut v: u64) -> usize {
    let mut i = 0;
    while v >= 0x80 && i < 9 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// A finished batch owned by the caller until it is appended. Appending stamps the
/// base offset, term and CRC into its header in place; the log's tail cache then
/// shares the bytes (no copy).
#[derive(Debug)]
pub struct EncodedBatch {
    buf: Bytes,
    record_count: u32,
    first_ts: i64,
    max_ts: i64,
    base_offset: u64,
}

impl EncodedBatch {
    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    pub fn first_timestamp_ms(&self) -> i64 {
        self.first_ts
    }

    pub fn max_timestamp_ms(&self) -> i64 {
        self.max_ts
    }

    /// The base offset stamped by the last append (0 before).
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Stamps base offset and term and computes the CRC (once per batch).
    pub(crate) fn stamp(&mut self, base_offset: u64, term: u64) {
        // Normally the only owner, so this is no copy; a reader may still hold the
        // bytes of an earlier append of this same batch (after a failed append), and
        // those must not change under it.
        let mut buf = std::mem::take(&mut self.buf)
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        stamp_offsets(&mut buf, base_offset, term);
        put_crc(&mut buf);
        self.buf = buf.freeze();
        self.base_offset = base_offset;
    }

    /// The bytes, shared (for the tail cache).
    pub(crate) fn shared_bytes(&self) -> Bytes {
        self.buf.clone()
    }

    /// Stamps the batch as `append` would and returns it as a validated [`Batch`]; for
    /// callers that replicate or test without a log.
    pub fn into_batch(mut self, base_offset: u64, term: u64) -> Result<Batch, StorageError> {
        self.stamp(base_offset, term);
        Batch::parse(self.buf)
    }

    /// The stamped bytes (after an append), for replication without a copy.
    pub fn into_bytes(self) -> Bytes {
        self.buf
    }
}

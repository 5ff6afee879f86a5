use bytes::Bytes;
use swarmmq_crypto::TAG_LEN;
use swarmmq_types::{Limits, MessageId, Priority};

use super::builder::RecordHeaderRef;
use crate::StorageError;
use crate::varint::{get_ivarint, get_uvarint};

// Record attribute byte: low nibble is the priority, high bits say which optional
// fields follow.
pub(crate) const ATTR_PRIORITY_MASK: u8 = 0x0f;
pub(crate) const ATTR_DELIVER_AT: u8 = 0x10;
pub(crate) const ATTR_EXPIRES_AT: u8 = 0x20;
pub(crate) const ATTR_KEY: u8 = 0x40;
pub(crate) const ATTR_HEADERS: u8 = 0x80;

pub(crate) const ID_NONE: u8 = 0;
pub(crate) const ID_UUID: u8 = 1;
pub(crate) const ID_TEXT: u8 = 2;

/// Format limits on record metadata: the protocol's fixed limits, so anything a node
/// accepted on the wire can be stored, and nothing larger is ever decoded.
pub(crate) const MAX_KEY_BYTES: usize = Limits::DEFAULT.max_key_bytes as usize;
pub(crate) const MAX_HEADERS: usize = Limits::DEFAULT.max_headers as usize;
pub(crate) const MAX_HEADER_NAME_BYTES: usize = Limits::DEFAULT.max_header_name_bytes as usize;
pub(crate) const MAX_HEADER_BYTES: usize = Limits::DEFAULT.max_header_bytes as usize;

/// A record's headers, validated when the record was decoded; iterating borrows from
/// the batch bytes and allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RecordHeaders {
    raw: Bytes,
    count: usize,
}

impl RecordHeaders {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The headers in stored order.
    pub fn iter(&self) -> impl Iterator<Item = RecordHeaderRef<'_>> + '_ {
        let mut pos = 0;
        let raw = &self.raw[..];
        (0..self.count).map_while(move |_| read_header(raw, &mut pos).ok())
    }

    /// The value of the first header named `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|h| h.name == name).map(|h| h.value)
    }
}

fn read_len(
    buf: &[u8],
    pos: &mut usize,
    max: usize,
    what: &'static str,
) -> Result<usize, StorageError> {
    let n = get_uvarint(buf, pos)?;
    if n > max as u64 || n > (buf.len() - (*pos).min(buf.len())) as u64 {
        return Err(StorageError::Malformed(what));
    }
    Ok(n as usize)
}

fn read_header<'a>(buf: &'a [u8], pos: &mut usize) -> Result<RecordHeaderRef<'a>, StorageError> {
    let n = read_len(buf, pos, MAX_HEADER_NAME_BYTES, "header name too long")?;
    let name = buf
        .get(*pos..*pos + n)
        .ok_or(StorageError::Malformed("header name"))?;
    let name = std::str::from_utf8(name)
        .map_err(|_| StorageError::Malformed("header name is not UTF-8"))?;
    *pos += n;
    let n = read_len(buf, pos, MAX_HEADER_BYTES, "header value too long")?;
    let value = buf
        .get(*pos..*pos + n)
        .ok_or(StorageError::Malformed("header value"))?;
    *pos += n;
    Ok(RecordHeaderRef { name, value })
}

/// A record's metadata, readable without the key: everything but the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub priority: Priority,
    pub id: Option<MessageId>,
    pub key: Option<Bytes>,
    pub headers: RecordHeaders,
    pub deliver_at_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    /// Plaintext (= ciphertext) payload length in bytes.
    pub payload_len: u32,
}

/// A decrypted record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub meta: RecordMeta,
    pub payload: Bytes,
}

/// Where a decoded record's parts sit in the batch bytes.
pub(crate) struct RecordSpan {
    /// Start of the record (its length varint); the AAD is `[start, payload_start)`.
    pub start: usize,
    pub payload_start: usize,
    /// End of the ciphertext; the tag follows.
    pub payload_end: usize,
}

/// Decodes the record at `pos` (index `index` in its batch) from `batch`, whose records
/// end at `batch.len()`. Every length is checked against what remains and the format
/// limits before it is used.
pub(crate) fn decode_record(
    batch: &Bytes,
    pos: usize,
    index: u32,
    base_offset: u64,
    first_timestamp_ms: i64,
) -> Result<(RecordMeta, RecordSpan), StorageError> {
    let all = &batch[..];
    let mut p = pos;
    let len = get_uvarint(all, &mut p)?;
    if len > (all.len() - p) as u64 {
        return Err(StorageError::Malformed("record runs past the batch"));
    }
    let end = p + len as usize;
    // From here every read is bounded by the record's own end.
    let rec = &all[..end];
    let attr = *rec
        .get(p)
        .ok_or(StorageError::Malformed("record attributes"))?;
    p += 1;
    let priority = Priority::new(attr & ATTR_PRIORITY_MASK)
        .map_err(|_| StorageError::Malformed("record priority out of range"))?;
    let timestamp_ms = first_timestamp_ms
        .checked_add(get_ivarint(rec, &mut p)?)
        .ok_or(StorageError::Malformed("record timestamp overflows"))?;
    if get_uvarint(rec, &mut p)? != u64::from(index) {
        return Err(StorageError::Malformed(
            "record offset delta out of sequence",
        ));
    }
    let relative = |flag: u8, p: &mut usize| -> Result<Option<i64>, StorageError> {
        if attr & flag == 0 {
            return Ok(None);
        }
        let d = get_ivarint(rec, p)?;
        timestamp_ms
            .checked_add(d)
            .map(Some)
            .ok_or(StorageError::Malformed("record time overflows"))
    };
    let deliver_at_ms = relative(ATTR_DELIVER_AT, &mut p)?;
    let expires_at_ms = relative(ATTR_EXPIRES_AT, &mut p)?;
    let tag = *rec.get(p).ok_or(StorageError::Malformed("record id tag"))?;
    p += 1;
    let id = match tag {
        ID_NONE => None,
        ID_UUID => {
            let b = rec
                .get(p..p + 16)
                .ok_or(StorageError::Malformed("record uuid"))?;
            p += 16;
            let mut u = [0u8; 16];
            u.copy_from_slice(b);
            Some(MessageId::Uuid(u))
        }
        ID_TEXT => {
            let n = read_len(
                rec,
                &mut p,
                MessageId::MAX_TEXT_LEN,
                "record text id too long",
            )?;
            let b = rec
                .get(p..p + n)
                .ok_or(StorageError::Malformed("record text id"))?;
            let s = std::str::from_utf8(b)
                .map_err(|_| StorageError::Malformed("record text id is not UTF-8"))?;
            p += n;
            Some(
                MessageId::text(s)
                    .map_err(|_| StorageError::Malformed("record text id is empty"))?,
            )
        }
        _ => return Err(StorageError::Malformed("unknown record id tag")),
    };
    let key = if attr & ATTR_KEY != 0 {
        let n = read_len(rec, &mut p, MAX_KEY_BYTES, "record key too long")?;
        let k = batch.slice(p..p + n);
        p += n;
        Some(k)
    } else {
        None
    };
    let headers = if attr & ATTR_HEADERS != 0 {
        let count = read_len(rec, &mut p, MAX_HEADERS, "too many record headers")?;
        if count == 0 {
            return Err(StorageError::Malformed("header section with no headers"));
        }
        let start = p;
        let mut total = 0usize;
        for _ in 0..count {
            let h = read_header(rec, &mut p)?;
            total += h.name.len() + h.value.len();
            if total > MAX_HEADER_BYTES {
                return Err(StorageError::Malformed("record headers too large"));
            }
        }
        RecordHeaders {
            raw: batch.slice(start..p),
            count,
        }
    } else {
        RecordHeaders::default()
    };
    let payload_start = p;
    let payload_end = end
        .checked_sub(TAG_LEN)
        .filter(|&e| e >= payload_start)
        .ok_or(StorageError::Malformed("record shorter than its tag"))?;
    let payload_len = u32::try_from(payload_end - payload_start)
        .map_err(|_| StorageError::Malformed("payload too large"))?;
    let meta = RecordMeta {
        offset: base_offset + u64::from(index),
        timestamp_ms,
        priority,
        id,
        key,
        headers,
        deliver_at_ms,
        expires_at_ms,
        payload_len,
    };
    Ok((
        meta,
        RecordSpan {
            start: pos,
            payload_start,
            payload_end,
        },
    ))
}

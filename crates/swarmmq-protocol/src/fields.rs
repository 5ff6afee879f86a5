//! Composite fields that more than one body shares: message ids, headers, the message
//! tail (id, key, headers, payload), offset ranges, the destination config TLV list and
//! destination descriptions. Each has a writer and a reader that agree on every check.

use bytes::{BufMut, Bytes, BytesMut};
use swarmmq_types::{Limits, MessageId};

use crate::reader::Reader;
use crate::writer::{bytes_len, put_bytes, put_count, put_opt, put_str};
use crate::{
    DestinationConfig, DestinationInfo, Header, OffsetRange, PartitionInfo, ProtocolError,
};

const ID_NONE: u8 = 0;
const ID_UUID: u8 = 1;
const ID_TEXT: u8 = 2;

/// Smallest encodings, used to bound counts by the bytes left in the body.
pub(crate) const MIN_HEADER: usize = 2 + 4;
/// id tag + key presence + header count + payload length.
pub(crate) const MIN_MESSAGE_TAIL: usize = 1 + 1 + 4 + 4;
pub(crate) const MIN_OFFSET_RANGE: usize = 4 + 8 + 8;
const MIN_PARTITION_INFO: usize = 4 + 2 + 8 + 8 + 8;
/// name + partition count + config entry count.
pub(crate) const MIN_DESTINATION_INFO: usize = 2 + 4 + 2;
const MIN_TLV: usize = 2 + 2;

pub(crate) fn put_priority(out: &mut BytesMut, priority: u8) -> Result<(), ProtocolError> {
    check_priority(priority)?;
    out.put_u8(priority);
    Ok(())
}

pub(crate) fn read_priority(r: &mut Reader) -> Result<u8, ProtocolError> {
    let p = r.u8("priority")?;
    check_priority(p)?;
    Ok(p)
}

fn check_priority(p: u8) -> Result<(), ProtocolError> {
    if (1..=10).contains(&p) {
        Ok(())
    } else {
        Err(ProtocolError::OutOfRange {
            field: "priority",
            value: u64::from(p),
        })
    }
}

fn check_id_len(len: usize) -> Result<u8, ProtocolError> {
    u8::try_from(len)
        .ok()
        .filter(|&l| l >= 1 && usize::from(l) <= MessageId::MAX_TEXT_LEN)
        .ok_or(ProtocolError::OutOfRange {
            field: "message id length",
            value: len as u64,
        })
}

pub(crate) fn put_message_id(
    out: &mut BytesMut,
    id: Option<&MessageId>,
) -> Result<(), ProtocolError> {
    match id {
        None => out.put_u8(ID_NONE),
        Some(MessageId::Uuid(b)) => {
            out.put_u8(ID_UUID);
            out.put_slice(b);
        }
        Some(MessageId::Text(s)) => {
            let len = check_id_len(s.len())?;
            out.put_u8(ID_TEXT);
            out.put_u8(len);
            out.put_slice(s.as_bytes());
        }
    }
    Ok(())
}

pub(crate) fn read_message_id(r: &mut Reader) -> Result<Option<MessageId>, ProtocolError> {
    match r.u8("message id tag")? {
        ID_NONE => Ok(None),
        ID_UUID => Ok(Some(MessageId::Uuid(r.uuid("message id")?))),
        ID_TEXT => {
            let len = r.u8("message id length")?;
            check_id_len(usize::from(len))?;
            Ok(Some(MessageId::Text(
                r.utf8("message id", usize::from(len))?,
            )))
        }
        value => Err(ProtocolError::InvalidTag {
            field: "message id tag",
            value,
        }),
    }
}

/// Adds one header's bytes to the running total of a message, refusing past the limit.
fn add_header_bytes(
    total: &mut u64,
    name: usize,
    value: u64,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    *total += name as u64 + value;
    if *total > u64::from(limits.max_header_bytes) {
        return Err(ProtocolError::TooLong {
            field: "headers",
            len: *total,
            limit: u64::from(limits.max_header_bytes),
        });
    }
    Ok(())
}

/// `u32` count, then per header: name (string), value (bytes).
pub(crate) fn put_headers<'h>(
    out: &mut BytesMut,
    headers: impl ExactSizeIterator<Item = (&'h str, &'h [u8])>,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    put_count(out, "headers", headers.len(), limits.max_headers)?;
    let mut total = 0u64;
    for (name, value) in headers {
        put_str(out, "header name", name, limits.max_header_name_bytes)?;
        let len = bytes_len("header value", value, u32::MAX)?;
        add_header_bytes(&mut total, name.len(), u64::from(len), limits)?;
        out.put_u32(len);
        out.put_slice(value);
    }
    Ok(())
}

pub(crate) fn read_headers(r: &mut Reader, limits: &Limits) -> Result<Vec<Header>, ProtocolError> {
    let n = r.count("headers", limits.max_headers, MIN_HEADER)?;
    let mut headers = Vec::with_capacity(n);
    let mut total = 0u64;
    for _ in 0..n {
        let name = r.string("header name", limits.max_header_name_bytes)?;
        let len = r.u32("header value")?;
        add_header_bytes(&mut total, name.len(), u64::from(len), limits)?;
        let value = r.slice("header value", len)?;
        headers.push(Header { name, value });
    }
    Ok(headers)
}

/// Roughly the bytes a message takes on the wire (fixed fields rounded up), so that
/// encoders can reserve the output once instead of growing it message by message.
pub(crate) fn message_size_hint(key: Option<&Bytes>, headers: &[Header], payload: &Bytes) -> usize {
    const FIXED_FIELDS: usize = 64;
    let headers: usize = headers
        .iter()
        .map(|h| h.name.len() + h.value.len() + 6)
        .sum();
    FIXED_FIELDS + key.map_or(0, Bytes::len) + headers + payload.len()
}

/// The borrowed parts of a message that publish and pull share, in wire order.
pub(crate) struct MessageTail<'a, I> {
    pub id: Option<&'a MessageId>,
    pub key: Option<&'a [u8]>,
    pub headers: I,
    pub payload: &'a [u8],
}

/// The owned parts, as decoded.
pub(crate) struct DecodedTail {
    pub id: Option<MessageId>,
    pub key: Option<Bytes>,
    pub headers: Vec<Header>,
    pub payload: Bytes,
}

/// id, key (optional bytes), headers, payload (bytes). `payload_limit` is the
/// configurable message size limit, enforced where the node enforces it (publish).
pub(crate) fn put_message_tail<'h, I>(
    out: &mut BytesMut,
    tail: MessageTail<'_, I>,
    limits: &Limits,
    payload_limit: Option<u32>,
) -> Result<(), ProtocolError>
where
    I: ExactSizeIterator<Item = (&'h str, &'h [u8])>,
{
    put_message_id(out, tail.id)?;
    put_opt(out, tail.key, |o, k| {
        put_bytes(o, "key", k, limits.max_key_bytes)
    })?;
    put_headers(out, tail.headers, limits)?;
    let len = bytes_len("payload", tail.payload, u32::MAX)?;
    check_payload(len, payload_limit)?;
    out.put_u32(len);
    out.put_slice(tail.payload);
    Ok(())
}

pub(crate) fn read_message_tail(
    r: &mut Reader,
    limits: &Limits,
    payload_limit: Option<u32>,
) -> Result<DecodedTail, ProtocolError> {
    let id = read_message_id(r)?;
    let key = r.opt("key", |r| r.bytes("key", limits.max_key_bytes))?;
    let headers = read_headers(r, limits)?;
    let len = r.u32("payload")?;
    check_payload(len, payload_limit)?;
    let payload = r.slice("payload", len)?;
    Ok(DecodedTail {
        id,
        key,
        headers,
        payload,
    })
}

fn check_payload(len: u32, limit: Option<u32>) -> Result<(), ProtocolError> {
    match limit {
        Some(limit) if len > limit => Err(ProtocolError::MessageTooLarge {
            len: u64::from(len),
            limit: u64::from(limit),
        }),
        _ => Ok(()),
    }
}

/// `u32` count, then per range: partition u32, start u64, end u64 (start <= end).
pub(crate) fn put_ranges(
    out: &mut BytesMut,
    ranges: &[OffsetRange],
    limits: &Limits,
) -> Result<(), ProtocolError> {
    put_count(out, "ranges", ranges.len(), limits.max_ack_ranges)?;
    for range in ranges {
        check_range(range)?;
        out.put_u32(range.partition);
        out.put_u64(range.start);
        out.put_u64(range.end);
    }
    Ok(())
}

pub(crate) fn read_ranges(
    r: &mut Reader,
    limits: &Limits,
) -> Result<Vec<OffsetRange>, ProtocolError> {
    let n = r.count("ranges", limits.max_ack_ranges, MIN_OFFSET_RANGE)?;
    let mut ranges = Vec::with_capacity(n);
    for _ in 0..n {
        let range = OffsetRange {
            partition: r.u32("range partition")?,
            start: r.u64("range start")?,
            end: r.u64("range end")?,
        };
        check_range(&range)?;
        ranges.push(range);
    }
    Ok(ranges)
}

fn check_range(range: &OffsetRange) -> Result<(), ProtocolError> {
    if range.start <= range.end {
        Ok(())
    } else {
        Err(ProtocolError::OutOfRange {
            field: "range start (past its end)",
            value: range.start,
        })
    }
}

/// Tags of the destination config TLV list. Part of the wire contract: never reused.
mod tag {
    pub const RETENTION_MS: u16 = 1;
    pub const RETENTION_BYTES: u16 = 2;
    pub const MAX_MESSAGE_BYTES: u16 = 3;
    pub const ACK_TIMEOUT_MS: u16 = 4;
    pub const MAX_DELIVERY_ATTEMPTS: u16 = 5;
    pub const DEDUP_WINDOW_MS: u16 = 6;
    pub const DLQ_ENABLED: u16 = 7;
    pub const DEFAULT_TTL_MS: u16 = 8;
    pub const EXPIRED_TO_DLQ: u16 = 9;
    pub const PRIORITY_AGING_MS: u16 = 10;
}

/// `u16` entry count, then per entry: tag u16, value length u16, value. Unset fields are
/// left out; entries go in tag order.
pub(crate) fn put_config(out: &mut BytesMut, c: &DestinationConfig) {
    let set = [
        c.retention_ms.is_some(),
        c.retention_bytes.is_some(),
        c.max_message_bytes.is_some(),
        c.ack_timeout_ms.is_some(),
        c.max_delivery_attempts.is_some(),
        c.dedup_window_ms.is_some(),
        c.dlq_enabled.is_some(),
        c.default_ttl_ms.is_some(),
        c.expired_to_dlq.is_some(),
        c.priority_aging_ms.is_some(),
    ];
    // At most 10 entries, so the count always fits.
    out.put_u16(set.iter().filter(|&&s| s).count() as u16);
    // Tag order keeps the encoding canonical (one byte string per config).
    if let Some(v) = c.retention_ms {
        put_tlv(out, tag::RETENTION_MS, &v.to_be_bytes());
    }
    if let Some(v) = c.retention_bytes {
        put_tlv(out, tag::RETENTION_BYTES, &v.to_be_bytes());
    }
    if let Some(v) = c.max_message_bytes {
        put_tlv(out, tag::MAX_MESSAGE_BYTES, &v.to_be_bytes());
    }
    if let Some(v) = c.ack_timeout_ms {
        put_tlv(out, tag::ACK_TIMEOUT_MS, &v.to_be_bytes());
    }
    if let Some(v) = c.max_delivery_attempts {
        put_tlv(out, tag::MAX_DELIVERY_ATTEMPTS, &v.to_be_bytes());
    }
    if let Some(v) = c.dedup_window_ms {
        put_tlv(out, tag::DEDUP_WINDOW_MS, &v.to_be_bytes());
    }
    if let Some(v) = c.dlq_enabled {
        put_tlv(out, tag::DLQ_ENABLED, &[u8::from(v)]);
    }
    if let Some(v) = c.default_ttl_ms {
        put_tlv(out, tag::DEFAULT_TTL_MS, &v.to_be_bytes());
    }
    if let Some(v) = c.expired_to_dlq {
        put_tlv(out, tag::EXPIRED_TO_DLQ, &[u8::from(v)]);
    }
    if let Some(v) = c.priority_aging_ms {
        put_tlv(out, tag::PRIORITY_AGING_MS, &v.to_be_bytes());
    }
}

fn put_tlv(out: &mut BytesMut, t: u16, value: &[u8]) {
    out.put_u16(t);
    // Values are at most 8 bytes.
    out.put_u16(value.len() as u16);
    out.put_slice(value);
}

pub(crate) fn read_config(r: &mut Reader) -> Result<DestinationConfig, ProtocolError> {
    let n = r.u16("config entries")?;
    // No allocation depends on the count, but checking it up front fails a hostile
    // count in O(1) instead of after a long loop.
    r.check_count("config entries", u64::from(n), u64::from(u16::MAX), MIN_TLV)?;
    let mut c = DestinationConfig::default();
    let mut seen = 0u32;
    for _ in 0..n {
        let t = r.u16("config tag")?;
        let len = r.u16("config length")?;
        let expected = match t {
            tag::RETENTION_MS
            | tag::RETENTION_BYTES
            | tag::ACK_TIMEOUT_MS
            | tag::DEDUP_WINDOW_MS
            | tag::DEFAULT_TTL_MS
            | tag::PRIORITY_AGING_MS => 8,
            tag::MAX_MESSAGE_BYTES | tag::MAX_DELIVERY_ATTEMPTS => 4,
            tag::DLQ_ENABLED | tag::EXPIRED_TO_DLQ => 1,
            _ => {
                // A newer peer's setting: skip it so old nodes still read new configs.
                r.skip("config value", usize::from(len))?;
                continue;
            }
        };
        if len != expected {
            return Err(ProtocolError::BadTlvLength {
                tag: t,
                len,
                expected,
            });
        }
        if seen & (1 << t) != 0 {
            return Err(ProtocolError::DuplicateTag { tag: t });
        }
        seen |= 1 << t;
        match t {
            tag::RETENTION_MS => c.retention_ms = Some(r.u64("retention_ms")?),
            tag::RETENTION_BYTES => c.retention_bytes = Some(r.u64("retention_bytes")?),
            tag::MAX_MESSAGE_BYTES => c.max_message_bytes = Some(r.u32("max_message_bytes")?),
            tag::ACK_TIMEOUT_MS => c.ack_timeout_ms = Some(r.u64("ack_timeout_ms")?),
            tag::MAX_DELIVERY_ATTEMPTS => {
                c.max_delivery_attempts = Some(r.u32("max_delivery_attempts")?)
            }
            tag::DEDUP_WINDOW_MS => c.dedup_window_ms = Some(r.u64("dedup_window_ms")?),
            tag::DLQ_ENABLED => c.dlq_enabled = Some(r.bool("dlq_enabled")?),
            tag::DEFAULT_TTL_MS => c.default_ttl_ms = Some(r.u64("default_ttl_ms")?),
            tag::EXPIRED_TO_DLQ => c.expired_to_dlq = Some(r.bool("expired_to_dlq")?),
            _ => c.priority_aging_ms = Some(r.u64("priority_aging_ms")?),
        }
    }
    Ok(c)
}

/// name (string), `u32` partition count, partitions, config.
pub(crate) fn put_destination_info(
    out: &mut BytesMut,
    d: &DestinationInfo,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    put_str(out, "destination name", &d.name, limits.max_text_bytes)?;
    put_count(out, "partitions", d.partitions.len(), limits.max_partitions)?;
    for p in &d.partitions {
        out.put_u32(p.partition);
        put_str(out, "partition leader", &p.leader, limits.max_text_bytes)?;
        out.put_u64(p.start_offset);
        out.put_u64(p.end_offset);
        out.put_u64(p.size_bytes);
    }
    put_config(out, &d.config);
    Ok(())
}

pub(crate) fn read_destination_info(
    r: &mut Reader,
    limits: &Limits,
) -> Result<DestinationInfo, ProtocolError> {
    let name = r.string("destination name", limits.max_text_bytes)?;
    let n = r.count("partitions", limits.max_partitions, MIN_PARTITION_INFO)?;
    let mut partitions = Vec::with_capacity(n);
    for _ in 0..n {
        partitions.push(PartitionInfo {
            partition: r.u32("partition")?,
            leader: r.string("partition leader", limits.max_text_bytes)?,
            start_offset: r.u64("start offset")?,
            end_offset: r.u64("end offset")?,
            size_bytes: r.u64("size bytes")?,
        });
    }
    let config = read_config(r)?;
    Ok(DestinationInfo {
        name,
        partitions,
        config,
    })
}

pub(crate) fn put_destination_list(
    out: &mut BytesMut,
    list: &[DestinationInfo],
    limits: &Limits,
) -> Result<(), ProtocolError> {
    put_count(out, "destinations", list.len(), limits.max_destinations)?;
    list.iter()
        .try_for_each(|d| put_destination_info(out, d, limits))
}

pub(crate) fn read_destination_list(
    r: &mut Reader,
    limits: &Limits,
) -> Result<Vec<DestinationInfo>, ProtocolError> {
    let n = r.count(
        "destinations",
        limits.max_destinations,
        MIN_DESTINATION_INFO,
    )?;
    let mut list = Vec::with_capacity(n);
    for _ in 0..n {
        list.push(read_destination_info(r, limits)?);
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::reader::read_all as read;

    #[test]
    fn config_skips_unknown_tags() {
        // dlq_enabled=1, an unknown tag 99 with 3 bytes, max_delivery_attempts=5.
        let bytes = [
            0, 3, 0, 7, 0, 1, 1, 0, 99, 0, 3, 0xaa, 0xbb, 0xcc, 0, 5, 0, 4, 0, 0, 0, 5,
        ];
        let c = read(&bytes, read_config).unwrap();
        assert_eq!(
            c,
            DestinationConfig {
                dlq_enabled: Some(true),
                max_delivery_attempts: Some(5),
                ..DestinationConfig::default()
            }
        );
    }

    #[test]
    fn config_refuses_duplicates_and_bad_lengths() {
        let dup = [0, 2, 0, 7, 0, 1, 1, 0, 7, 0, 1, 0];
        assert_eq!(
            read(&dup, read_config),
            Err(ProtocolError::DuplicateTag { tag: 7 })
        );
        let bad_len = [0, 1, 0, 1, 0, 4, 0, 0, 0, 1];
        assert_eq!(
            read(&bad_len, read_config),
            Err(ProtocolError::BadTlvLength {
                tag: 1,
                len: 4,
                expected: 8
            })
        );
        let bad_bool = [0, 1, 0, 7, 0, 1, 2];
        assert_eq!(
            read(&bad_bool, read_config),
            Err(ProtocolError::InvalidTag {
                field: "dlq_enabled",
                value: 2
            })
        );
        let hostile_count = [0xff, 0xff, 0, 9, 0, 0];
        assert!(matches!(
            read(&hostile_count, read_config),
            Err(ProtocolError::Truncated { .. })
        ));
    }

    #[test]
    fn config_round_trips_every_field() {
        let c = DestinationConfig {
            retention_ms: Some(1),
            retention_bytes: Some(2),
            max_message_bytes: Some(3),
            ack_timeout_ms: Some(4),
            max_delivery_attempts: Some(5),
            dedup_window_ms: Some(6),
            dlq_enabled: Some(false),
            default_ttl_ms: Some(8),
            expired_to_dlq: Some(true),
            priority_aging_ms: Some(10),
        };
        let mut out = BytesMut::new();
        put_config(&mut out, &c);
        // Count, 10 tag+length pairs, six u64, two u32, two bools.
        assert_eq!(out.len(), 2 + 10 * 4 + 6 * 8 + 2 * 4 + 2);
        assert_eq!(read(&out, read_config), Ok(c));
    }

    #[test]
    fn message_id_checks_tag_and_length() {
        assert_eq!(
            read(&[3], read_message_id),
            Err(ProtocolError::InvalidTag {
                field: "message id tag",
                value: 3
            })
        );
        assert_eq!(
            read(&[2, 0], read_message_id),
            Err(ProtocolError::OutOfRange {
                field: "message id length",
                value: 0
            })
        );
        assert_eq!(
            read(&[2, 129], read_message_id),
            Err(ProtocolError::OutOfRange {
                field: "message id length",
                value: 129
            })
        );
        assert_eq!(
            read(&[2, 2, 0xc3, 0x28], read_message_id),
            Err(ProtocolError::InvalidUtf8 {
                field: "message id"
            })
        );
        let mut out = BytesMut::new();
        let long = MessageId::Text("x".repeat(129));
        assert!(put_message_id(&mut out, Some(&long)).is_err());
    }

    #[test]
    fn ranges_require_start_not_past_end() {
        let mut bytes = vec![0, 0, 0, 1, 0, 0, 0, 0];
        bytes.extend(5u64.to_be_bytes());
        bytes.extend(4u64.to_be_bytes());
        let err = read(&bytes, |r| read_ranges(r, &Limits::DEFAULT)).unwrap_err();
        assert!(matches!(err, ProtocolError::OutOfRange { value: 5, .. }));
        assert_eq!(err.code(), swarmmq_types::ErrorCode::InvalidRequest);
        let empty = [OffsetRange {
            partition: 0,
            start: 4,
            end: 4,
        }];
        let mut out = BytesMut::new();
        put_ranges(&mut out, &empty, &Limits::DEFAULT).unwrap();
        assert_eq!(
            read(&out, |r| read_ranges(r, &Limits::DEFAULT)).unwrap(),
            empty
        );
    }

    #[test]
    fn headers_enforce_count_name_and_total_limits() {
        let limits = Limits {
            max_headers: 2,
            max_header_name_bytes: 3,
            max_header_bytes: 8,
            ..Limits::DEFAULT
        };
        let mut out = BytesMut::new();
        let three = [("a", &b""[..]); 3];
        assert!(matches!(
            put_headers(&mut out, three.into_iter(), &limits),
            Err(ProtocolError::CountOverLimit {
                field: "headers",
                count: 3,
                limit: 2
            })
        ));
        out.clear();
        assert!(matches!(
            put_headers(&mut out, [("abcd", &b""[..])].into_iter(), &limits),
            Err(ProtocolError::TooLong {
                field: "header name",
                ..
            })
        ));
        out.clear();
        let over = [("abc", &b"de"[..]), ("f", &b"ghi"[..])];
        assert!(matches!(
            put_headers(&mut out, over.into_iter(), &limits),
            Err(ProtocolError::TooLong {
                field: "headers",
                len: 9,
                limit: 8
            })
        ));
        // The decoder refuses the same bytes.
        let raw = [
            0, 0, 0, 2, 0, 3, b'a', b'b', b'c', 0, 0, 0, 2, b'd', b'e', 0, 1, b'f', 0, 0, 0, 3,
            b'g', b'h', b'i',
        ];
        assert!(matches!(
            read(&raw, |r| read_headers(r, &limits)),
            Err(ProtocolError::TooLong {
                field: "headers",
                len: 9,
                limit: 8
            })
        ));
    }
}

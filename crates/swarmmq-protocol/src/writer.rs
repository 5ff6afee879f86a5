//! Checked writing of body primitives and whole frames. Each writer refuses what the
//! matching [`crate::reader::Reader`] read would refuse, so an encoded frame always
//! decodes under the same limits.

use bytes::{BufMut, BytesMut};

use crate::header::HEADER_LEN;
use crate::{Flags, FrameHeader, ProtocolError, VERSION};

pub(crate) fn put_bool(out: &mut BytesMut, v: bool) {
    out.put_u8(u8::from(v));
}

/// An optional value: presence byte, then the value when present.
pub(crate) fn put_opt<T>(
    out: &mut BytesMut,
    v: Option<T>,
    write: impl FnOnce(&mut BytesMut, T) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    match v {
        None => {
            out.put_u8(0);
            Ok(())
        }
        Some(v) => {
            out.put_u8(1);
            write(out, v)
        }
    }
}

/// A `u16`-length-prefixed UTF-8 string of at most `limit` (and `u16::MAX`) bytes.
pub(crate) fn put_str(
    out: &mut BytesMut,
    field: &'static str,
    s: &str,
    limit: u32,
) -> Result<(), ProtocolError> {
    let limit = limit.min(u32::from(u16::MAX));
    let len = u16::try_from(s.len())
        .ok()
        .filter(|&l| u32::from(l) <= limit)
        .ok_or(ProtocolError::TooLong {
            field,
            len: s.len() as u64,
            limit: u64::from(limit),
        })?;
    out.put_u16(len);
    out.put_slice(s.as_bytes());
    Ok(())
}

/// A byte field's `u32` length, checked against `limit`.
pub(crate) fn bytes_len(field: &'static str, b: &[u8], limit: u32) -> Result<u32, ProtocolError> {
    u32::try_from(b.len())
        .ok()
        .filter(|&l| l <= limit)
        .ok_or(ProtocolError::TooLong {
            field,
            len: b.len() as u64,
            limit: u64::from(limit),
        })
}

/// A `u32`-length-prefixed byte field of at most `limit` bytes.
pub(crate) fn put_bytes(
    out: &mut BytesMut,
    field: &'static str,
    b: &[u8],
    limit: u32,
) -> Result<(), ProtocolError> {
    out.put_u32(bytes_len(field, b, limit)?);
    out.put_slice(b);
    Ok(())
}

/// A `u32` element count of at most `limit`.
pub(crate) fn put_count(
    out: &mut BytesMut,
    field: &'static str,
    n: usize,
    limit: u32,
) -> Result<(), ProtocolError> {
    let count =
        u32::try_from(n)
            .ok()
            .filter(|&c| c <= limit)
            .ok_or(ProtocolError::CountOverLimit {
                field,
                count: n as u64,
                limit: u64::from(limit),
            })?;
    out.put_u32(count);
    Ok(())
}

/// Writes a header with a zero body length and returns where the frame starts; the
/// length is patched by [`finish_frame`] once the body is written.
pub(crate) fn begin_frame(
    out: &mut BytesMut,
    opcode: u8,
    flags: Flags,
    correlation_id: u32,
) -> usize {
    let start = out.len();
    let header = FrameHeader {
        version: VERSION,
        opcode,
        flags,
        correlation_id,
        body_len: 0,
    };
    out.put_slice(&header.to_bytes());
    start
}

/// Patches the body length of the frame that starts at `start`, refusing a frame past
/// `max_frame_bytes` exactly as the decoder would.
pub(crate) fn finish_frame(
    out: &mut BytesMut,
    start: usize,
    max_frame_bytes: u32,
) -> Result<(), ProtocolError> {
    let frame_len = out.len().saturating_sub(start);
    if frame_len as u64 > u64::from(max_frame_bytes) {
        return Err(ProtocolError::FrameTooLarge {
            len: frame_len as u64,
            limit: u64::from(max_frame_bytes),
        });
    }
    // frame_len <= max_frame_bytes, a u32, so the body length fits.
    let body_len = frame_len.saturating_sub(HEADER_LEN) as u32;
    let len_at = start + 12;
    if let Some(slot) = out.get_mut(len_at..len_at + 4) {
        slot.copy_from_slice(&body_len.to_be_bytes());
    }
    Ok(())
}

/// Writes a whole frame; on any error `out` is left exactly as it was.
pub(crate) fn encode_frame(
    out: &mut BytesMut,
    opcode: u8,
    flags: Flags,
    correlation_id: u32,
    max_frame_bytes: u32,
    body: impl FnOnce(&mut BytesMut) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let start = begin_frame(out, opcode, flags, correlation_id);
    let result = body(out).and_then(|()| finish_frame(out, start, max_frame_bytes));
    if result.is_err() {
        out.truncate(start);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_refuse_past_u16_and_limit() {
        let mut out = BytesMut::new();
        let long = "x".repeat(70_000);
        assert_eq!(
            put_str(&mut out, "s", &long, u32::MAX),
            Err(ProtocolError::TooLong {
                field: "s",
                len: 70_000,
                limit: 65_535
            })
        );
        assert_eq!(
            put_str(&mut out, "s", "abc", 2),
            Err(ProtocolError::TooLong {
                field: "s",
                len: 3,
                limit: 2
            })
        );
        put_str(&mut out, "s", "ab", 2).unwrap();
        assert_eq!(&out[..], b"\x00\x02ab");
    }

    #[test]
    fn failed_frame_leaves_buffer_untouched() {
        let mut out = BytesMut::from(&b"previous"[..]);
        let err = encode_frame(&mut out, 1, Flags::NONE, 1, 20, |o| {
            o.put_slice(&[0; 5]);
            Ok(())
        });
        assert_eq!(
            err,
            Err(ProtocolError::FrameTooLarge { len: 21, limit: 20 })
        );
        assert_eq!(&out[..], b"previous");
        encode_frame(&mut out, 1, Flags::NONE, 1, 20, |o| {
            o.put_slice(&[7; 4]);
            Ok(())
        })
        .unwrap();
        assert_eq!(out.len(), 8 + 20);
        assert_eq!(&out[8 + 12..8 + 16], &4u32.to_be_bytes());
    }
}

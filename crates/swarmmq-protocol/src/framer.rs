//! Splits a byte stream into whole frames.

use bytes::{Buf, Bytes, BytesMut};
use swarmmq_types::Limits;

use crate::header::{HEADER_LEN, decode_header_with};
use crate::{FrameHeader, ProtocolError};

/// One whole frame: its validated header and its body bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub header: FrameHeader,
    pub body: Bytes,
}

/// Pulls whole frames off the front of a read buffer, without copying their bodies.
///
/// It keeps no state between calls besides the frame limit, so it can be dropped and
/// rebuilt at any frame boundary.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    max_frame_bytes: u32,
}

impl FrameDecoder {
    pub fn new(limits: &Limits) -> Self {
        FrameDecoder {
            max_frame_bytes: limits.max_frame_bytes,
        }
    }

    /// Returns the next whole frame and removes it from `buf`, or `None` when `buf`
    /// holds only part of one (call again after reading more).
    ///
    /// An error here is always fatal ([`ProtocolError::is_fatal`]): the stream is out
    /// of sync and `buf` is left as it was.
    ///
    /// It deliberately does not reserve room for the announced body: a peer could
    /// otherwise make every connection reserve `max_frame_bytes` by sending 16 bytes.
    /// The reader grows `buf` as bytes actually arrive.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = decode_header_with(buf, self.max_frame_bytes)?;
        // The header check bounds body_len by max_frame_bytes, so this fits in usize.
        let body_len = header.body_len as usize;
        if buf.len() - HEADER_LEN < body_len {
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let body = buf.split_to(body_len).freeze();
        Ok(Some(Frame { header, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Flags, VERSION};

    fn frame_bytes(cid: u32, opcode: u8, body: &[u8]) -> Vec<u8> {
        let mut v = FrameHeader {
            version: VERSION,
            opcode,
            flags: Flags::NONE,
            correlation_id: cid,
            body_len: body.len() as u32,
        }
        .to_bytes()
        .to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn splits_pipelined_frames_fed_byte_by_byte() {
        let mut stream = frame_bytes(1, 9, b"");
        stream.extend(frame_bytes(2, 6, b"\x00\x01a"));
        stream.extend(frame_bytes(3, 250, b"xyz"));
        let mut dec = FrameDecoder::new(&Limits::DEFAULT);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in stream {
            buf.extend_from_slice(&[b]);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert!(buf.is_empty());
        let ids: Vec<_> = got.iter().map(|f| f.header.correlation_id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(&got[1].body[..], b"\x00\x01a");
        // An unknown opcode still frames fine; the header stays intact for the answer.
        assert_eq!(got[2].header.opcode, 250);
        assert_eq!(&got[2].body[..], b"xyz");
    }

    #[test]
    fn body_is_zero_copy() {
        let mut buf = BytesMut::from(&frame_bytes(7, 1, b"payload")[..]);
        let base = buf.as_ptr() as usize;
        let frame = FrameDecoder::new(&Limits::DEFAULT)
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        assert_eq!(frame.body.as_ptr() as usize, base + HEADER_LEN);
    }

    #[test]
    fn oversize_header_fails_before_body_arrives() {
        let limits = Limits {
            max_frame_bytes: 64,
            ..Limits::DEFAULT
        };
        let mut buf = BytesMut::from(&frame_bytes(1, 1, &[0; 49])[..HEADER_LEN]);
        let err = FrameDecoder::new(&limits).decode(&mut buf).unwrap_err();
        assert_eq!(err, ProtocolError::FrameTooLarge { len: 65, limit: 64 });
        assert!(err.is_fatal());
        assert_eq!(buf.len(), HEADER_LEN, "buffer left untouched");
    }

    #[test]
    fn garbage_is_fatal() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        let err = FrameDecoder::new(&Limits::DEFAULT)
            .decode(&mut buf)
            .unwrap_err();
        assert_eq!(err, ProtocolError::BadMagic(*b"GE"));
        assert!(err.is_fatal());
    }
}

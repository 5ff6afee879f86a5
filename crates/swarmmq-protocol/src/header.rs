//! The fixed 16-byte frame header.

use swarmmq_types::Limits;

use crate::{Opcode, ProtocolError};

/// The first two bytes of every frame: `SQ`.
pub const MAGIC: [u8; 2] = *b"SQ";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Bytes of the fixed header that precedes every body.
pub const HEADER_LEN: usize = 16;

/// The header's flag bits. Bits other than [`Flags::RESPONSE`], [`Flags::ERROR`] (on
/// responses) and [`Flags::DIRECT`] (on requests) are reserved and must be zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u16);

impl Flags {
    /// No flag: a request.
    pub const NONE: Flags = Flags(0);
    /// The frame answers a request.
    pub const RESPONSE: Flags = Flags(1);
    /// The body is an error (`u16` code + string); only together with `RESPONSE`.
    pub const ERROR: Flags = Flags(2);
    /// On a request: the client routed it itself (a smart client that believes this
    /// node owns the partition). A node that does not own it answers `NOT_OWNER`
    /// instead of forwarding, so the client refreshes its metadata.
    pub const DIRECT: Flags = Flags(4);
    /// Every bit a response may carry.
    pub const KNOWN: Flags = Flags(Self::RESPONSE.0 | Self::ERROR.0);

    pub fn bits(self) -> u16 {
        self.0
    }

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_response(self) -> bool {
        self.contains(Flags::RESPONSE)
    }

    pub fn is_error(self) -> bool {
        self.contains(Flags::ERROR)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// A decoded frame header. The opcode stays a raw byte so that a node can answer an
/// opcode it does not know with `UNKNOWN_OPCODE` under the right correlation id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub version: u8,
    pub opcode: u8,
    pub flags: Flags,
    pub correlation_id: u32,
    /// Bytes of body after the header.
    pub body_len: u32,
}

impl FrameHeader {
    /// The opcode, when this build knows it.
    pub fn known_opcode(&self) -> Option<Opcode> {
        Opcode::from_u8(self.opcode)
    }

    /// Header plus body, in bytes.
    pub fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.body_len)
    }

    /// The header's 16 bytes (the reserved bytes are written as zero).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..2].copy_from_slice(&MAGIC);
        b[2] = self.version;
        b[3] = self.opcode;
        b[4..6].copy_from_slice(&self.flags.0.to_be_bytes());
        b[8..12].copy_from_slice(&self.correlation_id.to_be_bytes());
        b[12..16].copy_from_slice(&self.body_len.to_be_bytes());
        b
    }
}

/// Decodes and validates the first [`HEADER_LEN`] bytes of `bytes` (more may follow).
///
/// Checks, in order: magic, version, reserved flag bits, reserved bytes, and
/// `HEADER_LEN + body_len <= limits.max_frame_bytes`, so that a caller can size a
/// buffer from `body_len` safely. Every error but a short input is fatal.
pub fn decode_header(bytes: &[u8], limits: &Limits) -> Result<FrameHeader, ProtocolError> {
    decode_header_with(bytes, limits.max_frame_bytes)
}

pub(crate) fn decode_header_with(
    bytes: &[u8],
    max_frame_bytes: u32,
) -> Result<FrameHeader, ProtocolError> {
    let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(ProtocolError::Truncated {
            field: "header",
            needed: HEADER_LEN as u64,
            remaining: bytes.len() as u64,
        });
    };
    let magic = [h[0], h[1]];
    if magic != MAGIC {
        return Err(ProtocolError::BadMagic(magic));
    }
    if h[2] != VERSION {
        return Err(ProtocolError::UnsupportedVersion(h[2]));
    }
    let flags = u16::from_be_bytes([h[4], h[5]]);
    if flags & !(Flags::KNOWN.0 | Flags::DIRECT.0) != 0 {
        return Err(ProtocolError::ReservedFlags(flags));
    }
    let reserved = u16::from_be_bytes([h[6], h[7]]);
    if reserved != 0 {
        return Err(ProtocolError::ReservedHeaderBytes(reserved));
    }
    let header = FrameHeader {
        version: h[2],
        opcode: h[3],
        flags: Flags(flags),
        correlation_id: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        body_len: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
    };
    if header.frame_len() > u64::from(max_frame_bytes) {
        return Err(ProtocolError::FrameTooLarge {
            len: header.frame_len(),
            limit: u64::from(max_frame_bytes),
        });
    }
    Ok(header)
}

/// The body handed in must be the one the header announced.
pub(crate) fn check_body_len(header: &FrameHeader, body: &[u8]) -> Result<(), ProtocolError> {
    let announced = u64::from(header.body_len);
    let got = body.len() as u64;
    if got < announced {
        return Err(ProtocolError::Truncated {
            field: "body",
            needed: announced,
            remaining: got,
        });
    }
    if got > announced {
        return Err(ProtocolError::TrailingBytes(got - announced));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> [u8; HEADER_LEN] {
        FrameHeader {
            version: VERSION,
            opcode: 9,
            flags: Flags::RESPONSE | Flags::ERROR,
            correlation_id: 0xdead_beef,
            body_len: 10,
        }
        .to_bytes()
    }

    #[test]
    fn round_trips_and_keeps_raw_opcode() {
        let mut b = valid();
        b[3] = 200;
        let h = decode_header(&b, &Limits::DEFAULT).unwrap();
        assert_eq!(h.opcode, 200);
        assert_eq!(h.known_opcode(), None);
        assert_eq!(h.correlation_id, 0xdead_beef);
        assert_eq!(h.body_len, 10);
        assert!(h.flags.is_response() && h.flags.is_error());
        assert_eq!(h.to_bytes(), b);
    }

    #[test]
    fn short_input_is_truncated_not_fatal() {
        let err = decode_header(&valid()[..15], &Limits::DEFAULT).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::Truncated {
                needed: 16,
                remaining: 15,
                ..
            }
        ));
        assert!(!err.is_fatal());
    }

    #[test]
    fn bad_magic_is_fatal() {
        let mut b = valid();
        b[0] = b'X';
        let err = decode_header(&b, &Limits::DEFAULT).unwrap_err();
        assert_eq!(err, ProtocolError::BadMagic([b'X', b'Q']));
        assert!(err.is_fatal());
        assert_eq!(err.code(), swarmmq_types::ErrorCode::MalformedFrame);
    }

    #[test]
    fn other_version_is_fatal() {
        let mut b = valid();
        b[2] = 2;
        let err = decode_header(&b, &Limits::DEFAULT).unwrap_err();
        assert_eq!(err, ProtocolError::UnsupportedVersion(2));
        assert!(err.is_fatal());
        assert_eq!(err.code(), swarmmq_types::ErrorCode::UnsupportedVersion);
    }

    #[test]
    fn reserved_flag_bits_are_fatal() {
        // Bits 0-2 are RESPONSE, ERROR and DIRECT.
        for bit in 3..16 {
            let mut b = valid();
            b[4..6].copy_from_slice(&(1u16 << bit | 1).to_be_bytes());
            let err = decode_header(&b, &Limits::DEFAULT).unwrap_err();
            assert_eq!(err, ProtocolError::ReservedFlags(1 << bit | 1));
            assert!(err.is_fatal());
        }
    }

    #[test]
    fn reserved_bytes_are_fatal() {
        let mut b = valid();
        b[7] = 1;
        let err = decode_header(&b, &Limits::DEFAULT).unwrap_err();
        assert_eq!(err, ProtocolError::ReservedHeaderBytes(1));
        assert!(err.is_fatal());
    }

    #[test]
    fn oversize_is_fatal_and_counts_the_header() {
        let limits = Limits {
            max_frame_bytes: 100,
            ..Limits::DEFAULT
        };
        let mut b = valid();
        b[12..16].copy_from_slice(&84u32.to_be_bytes());
        assert_eq!(decode_header(&b, &limits).unwrap().frame_len(), 100);
        b[12..16].copy_from_slice(&85u32.to_be_bytes());
        let err = decode_header(&b, &limits).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::FrameTooLarge {
                len: 101,
                limit: 100
            }
        );
        assert!(err.is_fatal());
        assert_eq!(err.code(), swarmmq_types::ErrorCode::FrameTooLarge);
        // u32::MAX body length must not overflow the sum.
        b[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_header(&b, &Limits::DEFAULT),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }
}

//! The one error type of the codec, with its mapping onto the wire error codes.

use swarmmq_types::ErrorCode;

/// Why bytes could not be decoded, or a value could not be encoded.
///
/// The encoder refuses exactly what the decoder would refuse, so an encode error is a
/// caller bug or a value past a limit, never a reason to send a malformed frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("bad magic {0:02x?}; expected \"SQ\"")]
    BadMagic([u8; 2]),
    #[error("unsupported protocol version {0}; this node speaks version {v}", v = crate::VERSION)]
    UnsupportedVersion(u8),
    #[error("reserved flag bits are set: {0:#06x}")]
    ReservedFlags(u16),
    #[error("reserved header bytes are {0:#06x}; they must be zero")]
    ReservedHeaderBytes(u16),
    #[error("frame of {len} bytes is past the limit of {limit} bytes")]
    FrameTooLarge { len: u64, limit: u64 },
    #[error("unknown opcode {0}")]
    UnknownOpcode(u8),
    #[error("frame flags {flags:#06x} do not fit a {expected} frame")]
    UnexpectedFlags { flags: u16, expected: &'static str },
    #[error("opcode {opcode} does not match a response body of opcode {body}")]
    OpcodeMismatch { opcode: u8, body: u8 },
    #[error("body ends inside {field}: {needed} bytes needed, {remaining} left")]
    Truncated {
        field: &'static str,
        needed: u64,
        remaining: u64,
    },
    #[error("{0} bytes left over after the body")]
    TrailingBytes(u64),
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("{field} has the invalid tag or flag byte {value}")]
    InvalidTag { field: &'static str, value: u8 },
    #[error("destination config entry {tag} is {len} bytes long; it must be {expected}")]
    BadTlvLength { tag: u16, len: u16, expected: u16 },
    #[error("destination config entry {tag} appears twice")]
    DuplicateTag { tag: u16 },
    #[error("{field} is out of range: {value}")]
    OutOfRange { field: &'static str, value: u64 },
    #[error("{field}: {count} is past the limit of {limit}")]
    CountOverLimit {
        field: &'static str,
        count: u64,
        limit: u64,
    },
    #[error("{field} is {len} bytes long; the limit is {limit}")]
    TooLong {
        field: &'static str,
        len: u64,
        limit: u64,
    },
    #[error("message payload is {len} bytes; the limit is {limit}")]
    MessageTooLarge { len: u64, limit: u64 },
}

impl ProtocolError {
    /// The wire error code a node answers with when decoding a request fails this way.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            ProtocolError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            ProtocolError::UnknownOpcode(_) => ErrorCode::UnknownOpcode,
            ProtocolError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            ProtocolError::OutOfRange { .. }
            | ProtocolError::CountOverLimit { .. }
            | ProtocolError::TooLong { .. } => ErrorCode::InvalidRequest,
            // Only the encoder reports this, and only for a caller bug.
            ProtocolError::OpcodeMismatch { .. } => ErrorCode::Internal,
            ProtocolError::BadMagic(_)
            | ProtocolError::ReservedFlags(_)
            | ProtocolError::ReservedHeaderBytes(_)
            | ProtocolError::UnexpectedFlags { .. }
            | ProtocolError::Truncated { .. }
            | ProtocolError::TrailingBytes(_)
            | ProtocolError::InvalidUtf8 { .. }
            | ProtocolError::InvalidTag { .. }
            | ProtocolError::BadTlvLength { .. }
            | ProtocolError::DuplicateTag { .. } => ErrorCode::MalformedFrame,
        }
    }

    /// True when the byte stream can no longer be trusted to be at a frame boundary:
    /// the node answers once (correlation id 0) and closes the connection. Body-level
    /// errors are not fatal: the length prefix was sound, so the next frame is intact.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ProtocolError::BadMagic(_)
                | ProtocolError::UnsupportedVersion(_)
                | ProtocolError::ReservedFlags(_)
                | ProtocolError::ReservedHeaderBytes(_)
                | ProtocolError::FrameTooLarge { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_fatality_per_variant() {
        use ProtocolError as E;
        let f = "field";
        let table: Vec<(E, ErrorCode, bool)> = vec![
            (E::BadMagic(*b"GE"), ErrorCode::MalformedFrame, true),
            (
                E::UnsupportedVersion(2),
                ErrorCode::UnsupportedVersion,
                true,
            ),
            (E::ReservedFlags(4), ErrorCode::MalformedFrame, true),
            (E::ReservedHeaderBytes(1), ErrorCode::MalformedFrame, true),
            (
                E::FrameTooLarge { len: 2, limit: 1 },
                ErrorCode::FrameTooLarge,
                true,
            ),
            (E::UnknownOpcode(99), ErrorCode::UnknownOpcode, false),
            (
                E::UnexpectedFlags {
                    flags: 1,
                    expected: "request",
                },
                ErrorCode::MalformedFrame,
                false,
            ),
            (
                E::OpcodeMismatch { opcode: 1, body: 2 },
                ErrorCode::Internal,
                false,
            ),
            (
                E::Truncated {
                    field: f,
                    needed: 4,
                    remaining: 1,
                },
                ErrorCode::MalformedFrame,
                false,
            ),
            (E::TrailingBytes(1), ErrorCode::MalformedFrame, false),
            (
                E::InvalidUtf8 { field: f },
                ErrorCode::MalformedFrame,
                false,
            ),
            (
                E::InvalidTag { field: f, value: 2 },
                ErrorCode::MalformedFrame,
                false,
            ),
            (
                E::BadTlvLength {
                    tag: 1,
                    len: 4,
                    expected: 8,
                },
                ErrorCode::MalformedFrame,
                false,
            ),
            (E::DuplicateTag { tag: 1 }, ErrorCode::MalformedFrame, false),
            (
                E::OutOfRange {
                    field: f,
                    value: 11,
                },
                ErrorCode::InvalidRequest,
                false,
            ),
            (
                E::CountOverLimit {
                    field: f,
                    count: 2,
                    limit: 1,
                },
                ErrorCode::InvalidRequest,
                false,
            ),
            (
                E::TooLong {
                    field: f,
                    len: 2,
                    limit: 1,
                },
                ErrorCode::InvalidRequest,
                false,
            ),
            (
                E::MessageTooLarge { len: 2, limit: 1 },
                ErrorCode::MessageTooLarge,
                false,
            ),
        ];
        for (err, code, fatal) in table {
            assert_eq!(err.code(), code, "{err}");
            assert_eq!(err.is_fatal(), fatal, "{err}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn messages_name_the_field() {
        let err = ProtocolError::CountOverLimit {
            field: "messages",
            count: 100_001,
            limit: 100_000,
        };
        assert_eq!(
            err.to_string(),
            "messages: 100001 is past the limit of 100000"
        );
        assert_eq!(
            ProtocolError::BadMagic(*b"GE").to_string(),
            "bad magic [47, 45]; expected \"SQ\""
        );
    }
}

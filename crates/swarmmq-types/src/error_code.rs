use std::fmt;

/// The error codes a node answers with. They are part of the wire contract: a code is
/// never renumbered or reused, new codes are only appended, and a client that meets a
/// number it does not know treats it as [`ErrorCode::Internal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The frame or its body could not be decoded.
    MalformedFrame = 1,
    /// The frame's protocol version is not one this node speaks.
    UnsupportedVersion = 2,
    /// The opcode is not one this node knows.
    UnknownOpcode = 3,
    /// The frame's length prefix is past the node's frame limit.
    FrameTooLarge = 4,
    /// One message is past the destination's or node's message size limit.
    MessageTooLarge = 5,
    /// A destination or group name breaks the naming rules.
    InvalidName = 6,
    /// The destination does not exist (and auto-create is off or not applicable).
    UnknownDestination = 7,
    /// A create named a destination that already exists with another configuration.
    DestinationExists = 8,
    /// The request is well-formed but asks for something invalid (a bad value).
    InvalidRequest = 9,
    /// The partition is poisoned or its data is corrupt; writes or reads failed.
    StorageFailure = 10,
    /// The disk, or the configured `max_disk_usage`, is full.
    DiskFull = 11,
    /// A limit was reached (connections, in-flight bytes, queues); retry later.
    Busy = 12,
    /// This node does not own the partition; refresh metadata and retry elsewhere.
    NotOwner = 13,
    /// No credentials, or credentials that match no key.
    Unauthenticated = 14,
    /// Valid credentials without the permission the request needs.
    Forbidden = 15,
    /// The request did not finish within its deadline.
    Timeout = 16,
    /// The node is shutting down and takes no new work.
    ShuttingDown = 17,
    /// A bug or an unexpected condition on the node; the message says more.
    Internal = 18,
    /// The partition number is past the destination's partition count.
    UnknownPartition = 19,
    /// The node already serves its maximum number of connections.
    TooManyConnections = 20,
    /// The consumer group does not exist, or is of the other mode.
    UnknownGroup = 21,
    /// The member's generation is old or it no longer owns the partition (ordered
    /// groups): heartbeat or rejoin, then retry with the current generation.
    StaleGeneration = 22,
    /// The node that holds the partition is unreachable (dead, or its circuit is open):
    /// retry later, or publish without a key so another partition takes the message.
    Unavailable = 23,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::MalformedFrame,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownOpcode,
        ErrorCode::FrameTooLarge,
        ErrorCode::MessageTooLarge,
        ErrorCode::InvalidName,
        ErrorCode::UnknownDestination,
        ErrorCode::DestinationExists,
        ErrorCode::InvalidRequest,
        ErrorCode::StorageFailure,
        ErrorCode::DiskFull,
        ErrorCode::Busy,
        ErrorCode::NotOwner,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::Timeout,
        ErrorCode::ShuttingDown,
        ErrorCode::Internal,
        ErrorCode::UnknownPartition,
        ErrorCode::TooManyConnections,
        ErrorCode::UnknownGroup,
        ErrorCode::StaleGeneration,
        ErrorCode::Unavailable,
    ];

    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code for a number, or `None` for a number this build does not know.
    pub fn from_u16(n: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_u16() == n)
    }

    /// The SCREAMING_SNAKE name used in logs, metrics labels and CLI errors.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::MalformedFrame => "MALFORMED_FRAME",
            ErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorCode::UnknownOpcode => "UNKNOWN_OPCODE",
            ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::InvalidName => "INVALID_NAME",
            ErrorCode::UnknownDestination => "UNKNOWN_DESTINATION",
            ErrorCode::DestinationExists => "DESTINATION_EXISTS",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::StorageFailure => "STORAGE_FAILURE",
            ErrorCode::DiskFull => "DISK_FULL",
            ErrorCode::Busy => "BUSY",
            ErrorCode::NotOwner => "NOT_OWNER",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::ShuttingDown => "SHUTTING_DOWN",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::UnknownPartition => "UNKNOWN_PARTITION",
            ErrorCode::TooManyConnections => "TOO_MANY_CONNECTIONS",
            ErrorCode::UnknownGroup => "UNKNOWN_GROUP",
            ErrorCode::StaleGeneration => "STALE_GENERATION",
            ErrorCode::Unavailable => "UNAVAILABLE",
        }
    }

    /// Whether a client may retry the same request unchanged and hope for success.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::Busy
                | ErrorCode::NotOwner
                | ErrorCode::Timeout
                | ErrorCode::ShuttingDown
                | ErrorCode::TooManyConnections
                | ErrorCode::StaleGeneration
                | ErrorCode::Unavailable
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable_and_dense() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(usize::from(code.as_u16()), i + 1, "{code}");
            assert_eq!(ErrorCode::from_u16(code.as_u16()), Some(*code));
        }
        assert_eq!(ErrorCode::from_u16(0), None);
        assert_eq!(ErrorCode::from_u16(999), None);
        // Spot-check numbers that clients in other languages hard-code.
        assert_eq!(ErrorCode::UnknownDestination.as_u16(), 7);
        assert_eq!(ErrorCode::Unauthenticated.as_u16(), 14);
        assert_eq!(ErrorCode::Forbidden.as_u16(), 15);
        assert_eq!(ErrorCode::StaleGeneration.as_u16(), 22);
    }

    #[test]
    fn names_are_unique_screaming_snake() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        for name in &names {
            assert!(
                name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{name}"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert_eq!(ErrorCode::StaleGeneration.to_string(), "STALE_GENERATION");
    }

    #[test]
    fn retriable_codes_are_the_transient_ones() {
        let retriable: Vec<ErrorCode> = ErrorCode::ALL
            .iter()
            .copied()
            .filter(|c| c.is_retriable())
            .collect();
        assert_eq!(
            retriable,
            [
                ErrorCode::Busy,
                ErrorCode::NotOwner,
                ErrorCode::Timeout,
                ErrorCode::ShuttingDown,
                ErrorCode::TooManyConnections,
                ErrorCode::StaleGeneration,
                ErrorCode::Unavailable,
            ]
        );
    }
}

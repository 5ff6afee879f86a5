use std::fmt;

/// A message's id: a UUID (the SDK's default, UUIDv7, 16 bytes on the wire and on disk)
/// or a client-chosen text of up to [`MessageId::MAX_TEXT_LEN`] bytes.
///
/// Ids are what publish dedup matches on, so two ids are equal only when both kind and
/// bytes are equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageId {
    Uuid([u8; 16]),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageIdError {
    #[error("message id is empty")]
    Empty,
    #[error("message id is {0} bytes long; the limit is 128")]
    TooLong(usize),
}

impl MessageId {
    pub const MAX_TEXT_LEN: usize = 128;

    /// A fresh time-ordered UUIDv7.
    pub fn new_v7() -> Self {
        MessageId::Uuid(*uuid::Uuid::now_v7().as_bytes())
    }

    /// Parses a user-typed id: a hyphenated UUID becomes a UUID id, anything else text.
    pub fn parse(s: &str) -> Result<Self, MessageIdError> {
        if s.len() == 36
            && let Ok(u) = uuid::Uuid::parse_str(s)
        {
            return Ok(MessageId::Uuid(*u.as_bytes()));
        }
        MessageId::text(s)
    }

    pub fn text(s: impl Into<String>) -> Result<Self, MessageIdError> {
        let s = s.into();
        if s.is_empty() {
            return Err(MessageIdError::Empty);
        }
        if s.len() > Self::MAX_TEXT_LEN {
            return Err(MessageIdError::TooLong(s.len()));
        }
        Ok(MessageId::Text(s))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageId::Uuid(b) => uuid::Uuid::from_bytes(*b).hyphenated().fmt(f),
            MessageId::Text(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_through_display() {
        let id = MessageId::new_v7();
        assert_eq!(MessageId::parse(&id.to_string()), Ok(id));
        assert_eq!(
            MessageId::parse("order-1"),
            Ok(MessageId::Text("order-1".into()))
        );
        assert_eq!(MessageId::parse(""), Err(MessageIdError::Empty));
        assert_eq!(
            MessageId::parse(&"x".repeat(129)),
            Err(MessageIdError::TooLong(129))
        );
    }
}

//! The hot-path encoder of pull responses: messages go from storage straight into the
//! output buffer, without building a `Vec<DeliveredMessage>` first.

use bytes::{BufMut, BytesMut};
use swarmmq_types::{Limits, MessageId, Offset, PartitionId};

use crate::fields::{MessageTail, put_message_tail, put_priority};
use crate::header::HEADER_LEN;
use crate::writer::{begin_frame, finish_frame};
use crate::{DeliveredMessage, Flags, Header, Opcode, ProtocolError};

/// A borrowed message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
}

impl<'a> From<&'a Header> for HeaderRef<'a> {
    fn from(h: &'a Header) -> Self {
        HeaderRef {
            name: &h.name,
            value: &h.value,
        }
    }
}

/// A delivered message whose variable parts are borrowed (from a storage read buffer,
/// say); the fields mean what they mean in [`DeliveredMessage`].
#[derive(Clone, Copy, Debug)]
pub struct DeliveredMessageRef<'a> {
    pub partition: PartitionId,
    pub offset: Offset,
    pub timestamp_ms: i64,
    pub priority: u8,
    pub delivery_attempt: u32,
    pub id: Option<&'a MessageId>,
    pub key: Option<&'a [u8]>,
    pub headers: &'a [HeaderRef<'a>],
    pub payload: &'a [u8],
}

/// partition, offset, timestamp, priority, delivery attempt.
const DELIVERED_FIXED: u64 = 4 + 8 + 8 + 1 + 4;
/// The pull response body's message count.
const COUNT_LEN: usize = 4;

impl DeliveredMessageRef<'_> {
    /// Exact bytes this message takes in a pull response body, so a node can budget a
    /// response before copying anything.
    pub fn encoded_len(&self) -> u64 {
        let id = match self.id {
            None => 1,
            Some(MessageId::Uuid(_)) => 1 + 16,
            Some(MessageId::Text(s)) => 2 + s.len() as u64,
        };
        let key = self.key.map_or(1, |k| 1 + 4 + k.len() as u64);
        let headers: u64 = self
            .headers
            .iter()
            .map(|h| 2 + h.name.len() as u64 + 4 + h.value.len() as u64)
            .sum();
        DELIVERED_FIXED + id + key + 4 + headers + 4 + self.payload.len() as u64
    }
}

/// The fields of a delivered message that come before the shared message tail.
pub(crate) struct DeliveredHead {
    pub partition: PartitionId,
    pub offset: Offset,
    pub timestamp_ms: i64,
    pub priority: u8,
    pub delivery_attempt: u32,
}

/// One delivered message, in wire order. Shared by [`PullResponseEncoder`] and
/// `encode_response(Response::Pull)` so the two cannot drift apart.
pub(crate) fn put_delivered<'h, I>(
    out: &mut BytesMut,
    head: DeliveredHead,
    tail: MessageTail<'_, I>,
    limits: &Limits,
) -> Result<(), ProtocolError>
where
    I: ExactSizeIterator<Item = (&'h str, &'h [u8])>,
{
    out.put_u32(head.partition);
    out.put_u64(head.offset);
    out.put_i64(head.timestamp_ms);
    put_priority(out, head.priority)?;
    out.put_u32(head.delivery_attempt);
    // Payload size is not checked against max_message_bytes here: that limit is the
    // node's configurable admission limit; the frame limit bounds a response.
    put_message_tail(out, tail, limits, None)
}

pub(crate) fn put_delivered_owned(
    out: &mut BytesMut,
    m: &DeliveredMessage,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    let head = DeliveredHead {
        partition: m.partition,
        offset: m.offset,
        timestamp_ms: m.timestamp_ms,
        priority: m.priority,
        delivery_attempt: m.delivery_attempt,
    };
    let tail = MessageTail {
        id: m.id.as_ref(),
        key: m.key.as_deref(),
        headers: m.headers.iter().map(|h| (h.name.as_str(), &h.value[..])),
        payload: &m.payload,
    };
    put_delivered(out, head, tail, limits)
}

/// Writes one pull response frame message by message.
///
/// ```
/// # use bytes::BytesMut;
/// # use swarmmq_protocol::*;
/// # use swarmmq_types::Limits;
/// let mut out = BytesMut::new();
/// let mut enc = PullResponseEncoder::begin(&mut out, 7, &Limits::DEFAULT);
/// let msg = DeliveredMessageRef {
///     partition: 0, offset: 41, timestamp_ms: 1, priority: 5, delivery_attempt: 1,
///     id: None, key: None, headers: &[], payload: b"hello",
/// };
/// enc.push(&msg).unwrap();
/// enc.finish().unwrap();
/// ```
///
/// Dropping it without [`finish`](Self::finish) removes the partial frame from `out`.
pub struct PullResponseEncoder<'a> {
    out: &'a mut BytesMut,
    start: usize,
    count: u32,
    limits: Limits,
    finished: bool,
}

impl<'a> PullResponseEncoder<'a> {
    /// Starts a `Pull` response frame answering `correlation_id` at the end of `out`.
    pub fn begin(out: &'a mut BytesMut, correlation_id: u32, limits: &Limits) -> Self {
        let start = begin_frame(out, Opcode::Pull.as_u8(), Flags::RESPONSE, correlation_id);
        // The count is patched in `finish`.
        out.put_u32(0);
        PullResponseEncoder {
            out,
            start,
            count: 0,
            limits: limits.clone(),
            finished: false,
        }
    }

    /// Appends one message. On error `out` is as it was before the call, and the
    /// response can still be finished with the messages pushed so far:
    /// [`ProtocolError::FrameTooLarge`] or [`ProtocolError::CountOverLimit`] mean the
    /// response is full; any other error means this message cannot be encoded.
    pub fn push(&mut self, msg: &DeliveredMessageRef<'_>) -> Result<(), ProtocolError> {
        if self.count >= self.limits.max_pull_messages {
            return Err(ProtocolError::CountOverLimit {
                field: "messages",
                count: u64::from(self.count) + 1,
                limit: u64::from(self.limits.max_pull_messages),
            });
        }
        let frame_len = (self.out.len() - self.start) as u64 + msg.encoded_len();
        if frame_len > u64::from(self.limits.max_frame_bytes) {
            return Err(ProtocolError::FrameTooLarge {
                len: frame_len,
                limit: u64::from(self.limits.max_frame_bytes),
            });
        }
        let mark = self.out.len();
        let head = DeliveredHead {
            partition: msg.partition,
            offset: msg.offset,
            timestamp_ms: msg.timestamp_ms,
            priority: msg.priority,
            delivery_attempt: msg.delivery_attempt,
        };
        let tail = MessageTail {
            id: msg.id,
            key: msg.key,
            headers: msg.headers.iter().map(|h| (h.name, h.value)),
            payload: msg.payload,
        };
        if let Err(e) = put_delivered(self.out, head, tail, &self.limits) {
            self.out.truncate(mark);
            return Err(e);
        }
        self.count += 1;
        Ok(())
    }

    /// Messages pushed so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Patches the message count and body length; the frame is then complete in `out`.
    /// Fails only when even an empty response is past `max_frame_bytes`; the partial
    /// frame is then removed.
    pub fn finish(mut self) -> Result<(), ProtocolError> {
        let count_at = self.start + HEADER_LEN;
        if let Some(slot) = self.out.get_mut(count_at..count_at + COUNT_LEN) {
            slot.copy_from_slice(&self.count.to_be_bytes());
        }
        finish_frame(self.out, self.start, self.limits.max_frame_bytes)?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for PullResponseEncoder<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(payload: &[u8]) -> DeliveredMessageRef<'_> {
        DeliveredMessageRef {
            partition: 1,
            offset: 2,
            timestamp_ms: 3,
            priority: 5,
            delivery_attempt: 1,
            id: None,
            key: None,
            headers: &[],
            payload,
        }
    }

    #[test]
    fn full_frame_refuses_the_next_message_and_stays_finishable() {
        let base = (HEADER_LEN + COUNT_LEN) as u64;
        let one = msg(&[0; 10]).encoded_len();
        let limits = Limits {
            max_frame_bytes: (base + 2 * one) as u32,
            ..Limits::DEFAULT
        };
        let mut out = BytesMut::new();
        let mut enc = PullResponseEncoder::begin(&mut out, 1, &limits);
        enc.push(&msg(&[0; 10])).unwrap();
        enc.push(&msg(&[0; 10])).unwrap();
        let err = enc.push(&msg(&[0; 10])).unwrap_err();
        assert!(matches!(err, ProtocolError::FrameTooLarge { .. }));
        assert_eq!(enc.len(), 2);
        enc.finish().unwrap();
        assert_eq!(out.len() as u64, base + 2 * one);
        assert_eq!(&out[16..20], &2u32.to_be_bytes());
    }

    #[test]
    fn count_limit_and_bad_message_roll_back() {
        let limits = Limits {
            max_pull_messages: 1,
            ..Limits::DEFAULT
        };
        let mut out = BytesMut::new();
        let mut enc = PullResponseEncoder::begin(&mut out, 1, &limits);
        let mut bad = msg(b"x");
        bad.priority = 0;
        assert!(matches!(
            enc.push(&bad),
            Err(ProtocolError::OutOfRange {
                field: "priority",
                ..
            })
        ));
        enc.push(&msg(b"x")).unwrap();
        assert!(matches!(
            enc.push(&msg(b"x")),
            Err(ProtocolError::CountOverLimit {
                count: 2,
                limit: 1,
                ..
            })
        ));
        enc.finish().unwrap();
        assert_eq!(out.len() as u64, 20 + msg(b"x").encoded_len());
    }

    #[test]
    fn dropping_unfinished_removes_the_partial_frame() {
        let mut out = BytesMut::from(&b"earlier frame"[..]);
        {
            let mut enc = PullResponseEncoder::begin(&mut out, 1, &Limits::DEFAULT);
            enc.push(&msg(b"abc")).unwrap();
        }
        assert_eq!(&out[..], b"earlier frame");
    }
}

//! Request bodies: encoding (client side) and decoding (node side).

use bytes::{BufMut, Bytes, BytesMut};
use swarmmq_types::Limits;

use crate::fields::{
    MIN_MESSAGE_TAIL, MessageTail, message_size_hint, put_config, put_message_tail, put_priority,
    put_ranges, read_config, read_message_tail, read_priority, read_ranges,
};
use crate::groups::{
    put_mode, put_offsets, put_seek_position, read_mode, read_offsets, read_seek_position,
};
use crate::header::check_body_len;
use crate::reader::Reader;
use crate::writer::{encode_frame, put_bool, put_count, put_opt, put_str};
use crate::{
    AckRequest, Acks, AuthenticateRequest, CommitOffsetsRequest, CreateDestinationRequest,
    DescribeGroupRequest, ExtendLeaseRequest, Flags, FrameHeader, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, MAX_API_KEY_BYTES, NackRequest, Opcode, ProtocolError,
    PublishMessage, PublishRequest, PullRequest, Request, SeekRequest,
};

/// priority + deliver_at presence + ttl presence + the shared message tail.
const MIN_PUBLISH_MESSAGE: usize = 1 + 1 + 1 + MIN_MESSAGE_TAIL;

/// Appends one request frame to `out`.
///
/// Refuses (and leaves `out` unchanged) any value that [`decode_request`] under the same
/// `limits` would refuse: a string past its limit, a count past its limit, a payload
/// past `max_message_bytes`, a priority outside 1..=10, a frame past `max_frame_bytes`.
pub fn encode_request(
    correlation_id: u32,
    req: &Request,
    limits: &Limits,
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    encode_request_flags(correlation_id, req, Flags::NONE, limits, out)
}

/// [`encode_request`] with request flags (only [`Flags::DIRECT`] is defined).
pub fn encode_request_flags(
    correlation_id: u32,
    req: &Request,
    flags: Flags,
    limits: &Limits,
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    if let Request::Publish(p) = req {
        out.reserve(publish_size_hint(p).min(limits.max_frame_bytes as usize));
    }
    let opcode = req.opcode().as_u8();
    encode_frame(
        out,
        opcode,
        flags,
        correlation_id,
        limits.max_frame_bytes,
        |out| put_request_body(out, req, limits),
    )
}

fn publish_size_hint(p: &PublishRequest) -> usize {
    p.messages.iter().fold(64, |acc, m| {
        acc.saturating_add(message_size_hint(m.key.as_ref(), &m.headers, &m.payload))
    })
}

fn put_request_body(
    out: &mut BytesMut,
    req: &Request,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    let text = limits.max_text_bytes;
    match req {
        Request::Publish(p) => {
            put_str(out, "destination", &p.destination, text)?;
            out.put_u8(p.acks as u8);
            put_opt(out, p.partition, |o, v| {
                o.put_u32(v);
                Ok(())
            })?;
            put_count(out, "messages", p.messages.len(), limits.max_batch_messages)?;
            for m in &p.messages {
                put_publish_message(out, m, limits)?;
            }
        }
        Request::Pull(p) => {
            put_str(out, "destination", &p.destination, text)?;
            put_str(out, "group", &p.group, text)?;
            put_str(out, "consumer id", &p.consumer_id, text)?;
            out.put_u32(p.max_messages);
            out.put_u32(p.max_bytes);
            out.put_u32(p.max_wait_ms);
            put_opt(out, p.partition, |o, v| {
                o.put_u32(v);
                Ok(())
            })?;
            put_bool(out, p.auto_ack);
            out.put_u32(p.generation);
        }
        Request::Ack(a) => {
            put_str(out, "destination", &a.destination, text)?;
            put_str(out, "group", &a.group, text)?;
            put_str(out, "consumer id", &a.consumer_id, text)?;
            put_ranges(out, &a.ranges, limits)?;
            out.put_u32(a.generation);
        }
        Request::Nack(n) => {
            put_str(out, "destination", &n.destination, text)?;
            put_str(out, "group", &n.group, text)?;
            put_str(out, "consumer id", &n.consumer_id, text)?;
            put_ranges(out, &n.ranges, limits)?;
            out.put_u32(n.delay_ms);
            out.put_u32(n.generation);
            put_str(out, "nack reason", &n.reason, text)?;
        }
        Request::CreateDestination(c) => {
            put_str(out, "destination name", &c.name, text)?;
            put_count(
                out,
                "partitions",
                c.partitions as usize,
                limits.max_partitions,
            )?;
            put_config(out, &c.config);
        }
        Request::DeleteDestination { name } | Request::DescribeDestination { name } => {
            put_str(out, "destination name", name, text)?;
        }
        Request::JoinGroup(j) => {
            put_str(out, "destination", &j.destination, text)?;
            put_str(out, "group", &j.group, text)?;
            put_str(out, "consumer id", &j.consumer_id, text)?;
            put_opt(out, j.mode, |o, m| {
                put_mode(o, m);
                Ok(())
            })?;
            out.put_u32(j.session_timeout_ms);
        }
        Request::Heartbeat(h) => {
            put_str(out, "destination", &h.destination, text)?;
            put_str(out, "group", &h.group, text)?;
            put_str(out, "consumer id", &h.consumer_id, text)?;
            out.put_u32(h.generation);
        }
        Request::LeaveGroup(l) => {
            put_str(out, "destination", &l.destination, text)?;
            put_str(out, "group", &l.group, text)?;
            put_str(out, "consumer id", &l.consumer_id, text)?;
        }
        Request::CommitOffsets(c) => {
            put_str(out, "destination", &c.destination, text)?;
            put_str(out, "group", &c.group, text)?;
            put_str(out, "consumer id", &c.consumer_id, text)?;
            out.put_u32(c.generation);
            put_offsets(out, &c.offsets, limits)?;
        }
        Request::Seek(s) => {
            put_str(out, "destination", &s.destination, text)?;
            put_str(out, "group", &s.group, text)?;
            put_opt(out, s.partition, |o, v| {
                o.put_u32(v);
                Ok(())
            })?;
            put_seek_position(out, s.position);
        }
        Request::ExtendLease(e) => {
            put_str(out, "destination", &e.destination, text)?;
            put_str(out, "group", &e.group, text)?;
            put_str(out, "consumer id", &e.consumer_id, text)?;
            put_ranges(out, &e.ranges, limits)?;
            out.put_u32(e.extend_ms);
        }
        Request::DescribeGroup(d) => {
            put_str(out, "destination", &d.destination, text)?;
            put_str(out, "group", &d.group, text)?;
        }
        Request::Authenticate(a) => put_str(out, "api key", &a.api_key, MAX_API_KEY_BYTES)?,
        Request::KeysRetire { id } => out.put_u32(*id),
        Request::ListDestinations
        | Request::Health
        | Request::Metadata
        | Request::ListGroups
        | Request::KeysStatus
        | Request::KeysRotate
        | Request::ClusterStatus => {}
    }
    Ok(())
}

fn put_publish_message(
    out: &mut BytesMut,
    m: &PublishMessage,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    put_priority(out, m.priority)?;
    put_opt(out, m.deliver_at_ms, |o, v| {
        o.put_i64(v);
        Ok(())
    })?;
    put_opt(out, m.ttl_ms, |o, v| {
        o.put_u64(v);
        Ok(())
    })?;
    let tail = MessageTail {
        id: m.id.as_ref(),
        key: m.key.as_deref(),
        headers: m.headers.iter().map(|h| (h.name.as_str(), &h.value[..])),
        payload: &m.payload,
    };
    put_message_tail(out, tail, limits, Some(limits.max_message_bytes))
}

/// Decodes a request body. `header` is the frame's, as [`crate::decode_header`] or
/// [`crate::FrameDecoder`] returned it; `body` is exactly its body.
///
/// An unknown opcode is [`ProtocolError::UnknownOpcode`]: the header still holds the
/// correlation id to answer it under. No error here is fatal to the connection.
/// Payloads, keys and header values come out as slices of `body` (no copy).
pub fn decode_request(
    header: &FrameHeader,
    body: Bytes,
    limits: &Limits,
) -> Result<Request, ProtocolError> {
    if header.flags != Flags::NONE && header.flags != Flags::DIRECT {
        return Err(ProtocolError::UnexpectedFlags {
            flags: header.flags.bits(),
            expected: "request",
        });
    }
    let opcode = header
        .known_opcode()
        .ok_or(ProtocolError::UnknownOpcode(header.opcode))?;
    check_body_len(header, &body)?;
    let mut r = Reader::new(body);
    let req = read_request_body(&mut r, opcode, limits)?;
    r.finish()?;
    Ok(req)
}

fn read_request_body(
    r: &mut Reader,
    opcode: Opcode,
    limits: &Limits,
) -> Result<Request, ProtocolError> {
    let text = limits.max_text_bytes;
    Ok(match opcode {
        Opcode::Publish => {
            let destination = r.string("destination", text)?;
            let acks = match r.u8("acks")? {
                0 => Acks::All,
                1 => Acks::Leader,
                value => {
                    return Err(ProtocolError::InvalidTag {
                        field: "acks",
                        value,
                    });
                }
            };
            let partition = r.opt("partition", |r| r.u32("partition"))?;
            let n = r.count("messages", limits.max_batch_messages, MIN_PUBLISH_MESSAGE)?;
            let mut messages = Vec::with_capacity(n);
            for _ in 0..n {
                messages.push(read_publish_message(r, limits)?);
            }
            Request::Publish(PublishRequest {
                destination,
                acks,
                partition,
                messages,
            })
        }
        Opcode::Pull => Request::Pull(PullRequest {
            destination: r.string("destination", text)?,
            group: r.string("group", text)?,
            consumer_id: r.string("consumer id", text)?,
            max_messages: r.u32("max messages")?,
            max_bytes: r.u32("max bytes")?,
            max_wait_ms: r.u32("max wait ms")?,
            partition: r.opt("partition", |r| r.u32("partition"))?,
            auto_ack: r.bool("auto ack")?,
            generation: r.u32("generation")?,
        }),
        Opcode::Ack => Request::Ack(AckRequest {
            destination: r.string("destination", text)?,
            group: r.string("group", text)?,
            consumer_id: r.string("consumer id", text)?,
            ranges: read_ranges(r, limits)?,
            generation: r.u32("generation")?,
        }),
        Opcode::Nack => Request::Nack(NackRequest {
            destination: r.string("destination", text)?,
            group: r.string("group", text)?,
            consumer_id: r.string("consumer id", text)?,
            ranges: read_ranges(r, limits)?,
            delay_ms: r.u32("delay ms")?,
            generation: r.u32("generation")?,
            reason: r.string("nack reason", text)?,
        }),
        Opcode::CreateDestination => {
            let name = r.string("destination name", text)?;
            let partitions = r.u32("partitions")?;
            if partitions > limits.max_partitions {
                return Err(ProtocolError::CountOverLimit {
                    field: "partitions",
                    count: u64::from(partitions),
                    limit: u64::from(limits.max_partitions),
                });
            }
            Request::CreateDestination(CreateDestinationRequest {
                name,
                partitions,
                config: read_config(r)?,
            })
        }
        Opcode::DeleteDestination => Request::DeleteDestination {
            name: r.string("destination name", text)?,
        },
        Opcode::DescribeDestination => Request::DescribeDestination {
            name: r.string("destination name", text)?,
        },
        Opcode::ListDestinations => Request::ListDestinations,
        Opcode::Health => Request::Health,
        Opcode::Metadata => Request::Metadata,
        Opcode::JoinGroup => Request::JoinGroup(JoinGroupRequest {
            destination: r.string("destination", text)?,
            group: r.string("group", text)?,
            consumer_id: r.string("consumer id", text)?,
            mode: r.opt("group mode", read_mode)?,
            session_timeout_ms: r.u32("session timeout ms")?,
        }),
        Opcode::Heartbeat => Request::Heartbeat(HeartbeatRequest {
            destination: r.string("destination", text)?,
            group: r.string("group", text)?,
            consumer_id: r.string("consumer id", text)?,
            generation: r.u32("generation")?,
        }),
        Opcode::LeaveGroup => Request::LeaveGroup(LeaveGroupRequest {
            destination: r.string("destination", text)?,
            group: r.string("group", text)?,
            consumer_id: r.string("consumer id", text)?,
        }),
        Opcode::CommitOffsets => Request::CommitOffsets(CommitOffsetsRequest {
            destination: r.string("destination", text)?,
            group: r.string("group", text)?,
            consumer_id: r.string("consumer id", text)?,
            generation: r.u32("generation")?,
            offsets: read_offsets(r, limits)?,
        }),
        Opcode::Seek => Request::Seek(SeekRequest {
            destination: r.string("destination", text)?,
            group: r.string("group", text)?,
            partition: r.opt("partition", |r| r.u32("partition"))?,
            position: read_seek_position(r)?,
        }),
        Opcode::ExtendLease => Request::ExtendLease(ExtendLeaseRequest {
            destination: r.string("destination", text)?,
            group: r.string("group", text)?,
            consumer_id: r.string("consumer id", text)?,
            ranges: read_ranges(r, limits)?,
            extend_ms: r.u32("extend ms")?,
        }),
        Opcode::ListGroups => Request::ListGroups,
        Opcode::DescribeGroup => Request::DescribeGroup(DescribeGroupRequest {
            destination: r.string("destination", text)?,
            group: r.string("group", text)?,
        }),
        Opcode::Authenticate => Request::Authenticate(AuthenticateRequest {
            api_key: r.string("api key", MAX_API_KEY_BYTES)?,
        }),
        Opcode::KeysStatus => Request::KeysStatus,
        Opcode::KeysRotate => Request::KeysRotate,
        Opcode::KeysRetire => Request::KeysRetire {
            id: r.u32("key id")?,
        },
        Opcode::ClusterStatus => Request::ClusterStatus,
    })
}

fn read_publish_message(r: &mut Reader, limits: &Limits) -> Result<PublishMessage, ProtocolError> {
    let priority = read_priority(r)?;
    let deliver_at_ms = r.opt("deliver at ms", |r| r.i64("deliver at ms"))?;
    let ttl_ms = r.opt("ttl ms", |r| r.u64("ttl ms"))?;
    let tail = read_message_tail(r, limits, Some(limits.max_message_bytes))?;
    Ok(PublishMessage {
        id: tail.id,
        key: tail.key,
        headers: tail.headers,
        priority,
        deliver_at_ms,
        ttl_ms,
        payload: tail.payload,
    })
}

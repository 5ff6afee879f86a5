//! Response bodies: encoding (node side) and decoding (client side).

use bytes::{BufMut, Bytes, BytesMut};
use swarmmq_types::{ErrorCode, Limits};

use crate::fields::{
    MIN_MESSAGE_TAIL, message_size_hint, put_destination_info, put_destination_list,
    read_destination_info, read_destination_list, read_message_tail, read_priority,
};
use crate::groups::{
    put_group_description, put_group_summaries, put_mode, put_offsets, put_partitions,
    read_group_description, read_group_summaries, read_mode, read_offsets, read_partitions,
};
use crate::header::check_body_len;
use crate::keys::{put_keys_status, read_keys_status};
use crate::pull_encoder::put_delivered_owned;
use crate::reader::Reader;
use crate::writer::{encode_frame, put_bool, put_bytes, put_count, put_str};
use crate::{
    AckResponse, AuthenticateResponse, DeliveredMessage, ErrorResponse, Flags, FrameHeader,
    HealthResponse, HeartbeatResponse, JoinGroupResponse, KeysRotateResponse, MetadataResponse,
    NodeInfo, Opcode, ProtocolError, PublishResponse, PublishRun, PullResponse, Response,
    SeekResponse,
};

/// partition + base offset + count + duplicate flag.
const MIN_PUBLISH_RUN: usize = 4 + 8 + 4 + 1;
/// partition, offset, timestamp, priority, delivery attempt + the shared tail.
const MIN_DELIVERED: usize = 4 + 8 + 8 + 1 + 4 + MIN_MESSAGE_TAIL;
/// id + host + port.
const MIN_NODE_INFO: usize = 2 + 2 + 2;

/// Appends one response frame answering `correlation_id` to `out`.
///
/// `opcode` is the request's; it must match `resp` unless `resp` is
/// [`Response::Error`], which answers any operation and sets the ERROR flag. Refuses
/// (and leaves `out` unchanged) any value [`decode_response`] under the same `limits`
/// would refuse.
pub fn encode_response(
    correlation_id: u32,
    opcode: Opcode,
    resp: &Response,
    limits: &Limits,
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    if let Response::Error(e) = resp {
        return encode_error(correlation_id, opcode.as_u8(), e, limits, out);
    }
    if resp.opcode() != Some(opcode) {
        return Err(ProtocolError::OpcodeMismatch {
            opcode: opcode.as_u8(),
            body: resp.opcode().map_or(0, Opcode::as_u8),
        });
    }
    if let Response::Pull(p) = resp {
        let hint = p.messages.iter().fold(64usize, |acc, m| {
            acc.saturating_add(message_size_hint(m.key.as_ref(), &m.headers, &m.payload))
        });
        out.reserve(hint.min(limits.max_frame_bytes as usize));
    }
    encode_frame(
        out,
        opcode.as_u8(),
        Flags::RESPONSE,
        correlation_id,
        limits.max_frame_bytes,
        |out| put_response_body(out, resp, limits),
    )
}

/// Appends an error response frame under a raw opcode byte, so that a node can answer a
/// request whose opcode it does not know (`UNKNOWN_OPCODE`) under that opcode. A
/// connection-level error (a fatal header error) is answered with correlation id 0.
pub fn encode_error(
    correlation_id: u32,
    opcode: u8,
    err: &ErrorResponse,
    limits: &Limits,
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    encode_frame(
        out,
        opcode,
        Flags::RESPONSE | Flags::ERROR,
        correlation_id,
        limits.max_frame_bytes,
        |out| put_error_body(out, err, limits),
    )
}

/// code u16, message string.
fn put_error_body(
    out: &mut BytesMut,
    err: &ErrorResponse,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    out.put_u16(err.code.as_u16());
    put_str(out, "error message", &err.message, limits.max_text_bytes)
}

fn put_response_body(
    out: &mut BytesMut,
    resp: &Response,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    let text = limits.max_text_bytes;
    match resp {
        Response::Publish(p) => {
            put_count(out, "runs", p.runs.len(), limits.max_batch_messages)?;
            for run in &p.runs {
                out.put_u32(run.partition);
                out.put_u64(run.base_offset);
                out.put_u32(run.count);
                put_bool(out, run.duplicate);
            }
        }
        Response::Pull(p) => {
            put_count(out, "messages", p.messages.len(), limits.max_pull_messages)?;
            for m in &p.messages {
                put_delivered_owned(out, m, limits)?;
            }
        }
        Response::Ack(a) | Response::Nack(a) | Response::ExtendLease(a) => out.put_u64(a.count),
        Response::CreateDestination(d) | Response::DescribeDestination(d) => {
            put_destination_info(out, d, limits)?;
        }
        Response::DeleteDestination
        | Response::LeaveGroup
        | Response::CommitOffsets
        | Response::KeysRetire => {}
        Response::ListDestinations(list) => put_destination_list(out, list, limits)?,
        Response::Health(h) => {
            put_str(out, "status", &h.status, text)?;
            put_str(out, "node id", &h.node_id, text)?;
            put_str(out, "version", &h.version, text)?;
            out.put_u64(h.uptime_ms);
        }
        Response::Metadata(m) => {
            put_str(out, "cluster name", &m.cluster_name, text)?;
            put_count(out, "nodes", m.nodes.len(), u32::MAX)?;
            for n in &m.nodes {
                put_str(out, "node id", &n.id, text)?;
                put_str(out, "node host", &n.host, text)?;
                out.put_u16(n.port);
            }
            put_destination_list(out, &m.destinations, limits)?;
        }
        Response::JoinGroup(j) => {
            put_mode(out, j.mode);
            out.put_u32(j.generation);
            put_partitions(out, "assignment", &j.assignment, limits)?;
            out.put_u32(j.heartbeat_interval_ms);
        }
        Response::Heartbeat(h) => {
            out.put_u32(h.generation);
            put_partitions(out, "assignment", &h.assignment, limits)?;
            put_partitions(out, "revoked", &h.revoked, limits)?;
            put_bool(out, h.rebalancing);
        }
        Response::Seek(s) => put_offsets(out, &s.offsets, limits)?,
        Response::ListGroups(list) => put_group_summaries(out, list, limits)?,
        Response::DescribeGroup(d) => put_group_description(out, d, limits)?,
        Response::Authenticate(a) => put_str(out, "principal", &a.principal, text)?,
        Response::KeysStatus(s) => put_keys_status(out, s, limits)?,
        Response::KeysRotate(k) => out.put_u32(k.new_id),
        Response::ClusterStatus { json } => {
            put_bytes(
                out,
                "cluster status",
                json.as_bytes(),
                limits.max_frame_bytes,
            )?;
        }
        Response::Error(e) => put_error_body(out, e, limits)?,
    }
    Ok(())
}

/// Decodes a response body. With the ERROR flag the body is an error whatever the
/// opcode; an error code this build does not know reads as [`ErrorCode::Internal`].
/// Payloads, keys and header values come out as slices of `body` (no copy).
pub fn decode_response(
    header: &FrameHeader,
    body: Bytes,
    limits: &Limits,
) -> Result<Response, ProtocolError> {
    let flags = header.flags;
    if !flags.is_response() || flags.bits() & !Flags::KNOWN.bits() != 0 {
        return Err(ProtocolError::UnexpectedFlags {
            flags: flags.bits(),
            expected: "response",
        });
    }
    check_body_len(header, &body)?;
    let mut r = Reader::new(body);
    let resp = if flags.is_error() {
        let code = r.u16("error code")?;
        Response::Error(ErrorResponse {
            code: ErrorCode::from_u16(code).unwrap_or(ErrorCode::Internal),
            message: r.string("error message", limits.max_text_bytes)?,
        })
    } else {
        let opcode = header
            .known_opcode()
            .ok_or(ProtocolError::UnknownOpcode(header.opcode))?;
        read_response_body(&mut r, opcode, limits)?
    };
    r.finish()?;
    Ok(resp)
}

fn read_response_body(
    r: &mut Reader,
    opcode: Opcode,
    limits: &Limits,
) -> Result<Response, ProtocolError> {
    let text = limits.max_text_bytes;
    Ok(match opcode {
        Opcode::Publish => {
            let n = r.count("runs", limits.max_batch_messages, MIN_PUBLISH_RUN)?;
            let mut runs = Vec::with_capacity(n);
            for _ in 0..n {
                runs.push(PublishRun {
                    partition: r.u32("run partition")?,
                    base_offset: r.u64("run base offset")?,
                    count: r.u32("run count")?,
                    duplicate: r.bool("run duplicate")?,
                });
            }
            Response::Publish(PublishResponse { runs })
        }
        Opcode::Pull => {
            let n = r.count("messages", limits.max_pull_messages, MIN_DELIVERED)?;
            let mut messages = Vec::with_capacity(n);
            for _ in 0..n {
                messages.push(read_delivered(r, limits)?);
            }
            Response::Pull(PullResponse { messages })
        }
        Opcode::Ack => Response::Ack(AckResponse {
            count: r.u64("ack count")?,
        }),
        Opcode::Nack => Response::Nack(AckResponse {
            count: r.u64("nack count")?,
        }),
        Opcode::CreateDestination => Response::CreateDestination(read_destination_info(r, limits)?),
        Opcode::DeleteDestination => Response::DeleteDestination,
        Opcode::ListDestinations => Response::ListDestinations(read_destination_list(r, limits)?),
        Opcode::DescribeDestination => {
            Response::DescribeDestination(read_destination_info(r, limits)?)
        }
        Opcode::Health => Response::Health(HealthResponse {
            status: r.string("status", text)?,
            node_id: r.string("node id", text)?,
            version: r.string("version", text)?,
            uptime_ms: r.u64("uptime ms")?,
        }),
        Opcode::JoinGroup => Response::JoinGroup(JoinGroupResponse {
            mode: read_mode(r)?,
            generation: r.u32("generation")?,
            assignment: read_partitions(r, "assignment", limits)?,
            heartbeat_interval_ms: r.u32("heartbeat interval ms")?,
        }),
        Opcode::Heartbeat => Response::Heartbeat(HeartbeatResponse {
            generation: r.u32("generation")?,
            assignment: read_partitions(r, "assignment", limits)?,
            revoked: read_partitions(r, "revoked", limits)?,
            rebalancing: r.bool("rebalancing")?,
        }),
        Opcode::LeaveGroup => Response::LeaveGroup,
        Opcode::CommitOffsets => Response::CommitOffsets,
        Opcode::Seek => Response::Seek(SeekResponse {
            offsets: read_offsets(r, limits)?,
        }),
        Opcode::ExtendLease => Response::ExtendLease(AckResponse {
            count: r.u64("extend count")?,
        }),
        Opcode::ListGroups => Response::ListGroups(read_group_summaries(r, limits)?),
        Opcode::DescribeGroup => Response::DescribeGroup(read_group_description(r, limits)?),
        Opcode::Authenticate => Response::Authenticate(AuthenticateResponse {
            principal: r.string("principal", text)?,
        }),
        Opcode::KeysStatus => Response::KeysStatus(read_keys_status(r, limits)?),
        Opcode::KeysRotate => Response::KeysRotate(KeysRotateResponse {
            new_id: r.u32("new key id")?,
        }),
        Opcode::KeysRetire => Response::KeysRetire,
        Opcode::ClusterStatus => {
            // `bytes` checks the length against the limit and the frame before any copy.
            let raw = r.bytes("cluster status", limits.max_frame_bytes)?;
            let json = std::str::from_utf8(&raw)
                .map_err(|_| ProtocolError::InvalidUtf8 {
                    field: "cluster status",
                })?
                .to_owned();
            Response::ClusterStatus { json }
        }
        Opcode::Metadata => {
            let cluster_name = r.string("cluster name", text)?;
            // No limit names a node count; the bytes left in the frame bound it.
            let n = r.count("nodes", u32::MAX, MIN_NODE_INFO)?;
            let mut nodes = Vec::with_capacity(n);
            for _ in 0..n {
                nodes.push(NodeInfo {
                    id: r.string("node id", text)?,
                    host: r.string("node host", text)?,
                    port: r.u16("node port")?,
                });
            }
            Response::Metadata(MetadataResponse {
                cluster_name,
                nodes,
                destinations: read_destination_list(r, limits)?,
            })
        }
    })
}

fn read_delivered(r: &mut Reader, limits: &Limits) -> Result<DeliveredMessage, ProtocolError> {
    let partition = r.u32("partition")?;
    let offset = r.u64("offset")?;
    let timestamp_ms = r.i64("timestamp ms")?;
    let priority = read_priority(r)?;
    let delivery_attempt = r.u32("delivery attempt")?;
    let tail = read_message_tail(r, limits, None)?;
    Ok(DeliveredMessage {
        partition,
        offset,
        timestamp_ms,
        priority,
        delivery_attempt,
        id: tail.id,
        key: tail.key,
        headers: tail.headers,
        payload: tail.payload,
    })
}

//! proptest strategies for every request and response, within the default limits.
#![allow(dead_code)]

use bytes::Bytes;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use swarmmq_protocol::*;
use swarmmq_types::{ErrorCode, MessageId};

/// Any printable Unicode, so multi-byte UTF-8 is covered.
pub fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

pub fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

pub fn message_id() -> impl Strategy<Value = MessageId> {
    prop_oneof![
        any::<[u8; 16]>().prop_map(MessageId::Uuid),
        "\\PC{1,32}".prop_map(MessageId::Text),
        // The 128-byte edge.
        "[a-z]{120,128}".prop_map(MessageId::Text),
    ]
}

pub fn header() -> impl Strategy<Value = Header> {
    ("\\PC{0,8}", bytes(16)).prop_map(|(name, value)| Header { name, value })
}

pub fn priority() -> impl Strategy<Value = u8> {
    1u8..=10
}

pub fn publish_message() -> impl Strategy<Value = PublishMessage> {
    (
        of(message_id()),
        of(bytes(16)),
        vec(header(), 0..4),
        priority(),
        of(any::<i64>()),
        of(any::<u64>()),
        bytes(64),
    )
        .prop_map(
            |(id, key, headers, priority, deliver_at_ms, ttl_ms, payload)| PublishMessage {
                id,
                key,
                headers,
                priority,
                deliver_at_ms,
                ttl_ms,
                payload,
            },
        )
}

pub fn delivered_message() -> impl Strategy<Value = DeliveredMessage> {
    (
        (
            any::<u32>(),
            any::<u64>(),
            any::<i64>(),
            priority(),
            any::<u32>(),
        ),
        of(message_id()),
        of(bytes(16)),
        vec(header(), 0..4),
        bytes(64),
    )
        .prop_map(
            |(
                (partition, offset, timestamp_ms, priority, delivery_attempt),
                id,
                key,
                headers,
                payload,
            )| {
                DeliveredMessage {
                    partition,
                    offset,
                    timestamp_ms,
                    priority,
                    delivery_attempt,
                    id,
                    key,
                    headers,
                    payload,
                }
            },
        )
}

pub fn ranges() -> impl Strategy<Value = Vec<OffsetRange>> {
    vec(
        (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(partition, a, b)| OffsetRange {
            partition,
            start: a.min(b),
            end: a.max(b),
        }),
        0..4,
    )
}

pub fn config() -> impl Strategy<Value = DestinationConfig> {
    (
        (
            of(any::<u64>()),
            of(any::<u64>()),
            of(any::<u32>()),
            of(any::<u64>()),
        ),
        (
            of(any::<u32>()),
            of(any::<u64>()),
            of(any::<bool>()),
            of(any::<u64>()),
        ),
        (of(any::<bool>()), of(any::<u64>())),
    )
        .prop_map(|((a, b, c, d), (e, f, g, h), (i, j))| DestinationConfig {
            retention_ms: a,
            retention_bytes: b,
            max_message_bytes: c,
            ack_timeout_ms: d,
            max_delivery_attempts: e,
            dedup_window_ms: f,
            dlq_enabled: g,
            default_ttl_ms: h,
            expired_to_dlq: i,
            priority_aging_ms: j,
        })
}

pub fn destination_info() -> impl Strategy<Value = DestinationInfo> {
    let partition = (
        any::<u32>(),
        text(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(partition, leader, start_offset, end_offset, size_bytes)| PartitionInfo {
                partition,
                leader,
                start_offset,
                end_offset,
                size_bytes,
            },
        );
    (text(), vec(partition, 0..3), config()).prop_map(|(name, partitions, config)| {
        DestinationInfo {
            name,
            partitions,
            config,
        }
    })
}

pub fn acks() -> impl Strategy<Value = Acks> {
    prop_oneof![Just(Acks::All), Just(Acks::Leader)]
}

/// Every request, each variant about equally likely.
pub fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        10 => destination_request(),
        8 => group_request(),
        1 => auth_request(),
        3 => keys_request()
    ]
}

/// An API key: any printable text up to the 256-byte limit, and the real shape.
pub fn auth_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        "\\PC{0,12}",
        "[a-z]{250,256}",
        "smq_[0-9a-f]{12}_[A-Za-z0-9_-]{43}",
    ]
    .prop_map(|api_key| Request::Authenticate(AuthenticateRequest { api_key }))
}

/// The requests that existed before consumer groups.
pub fn destination_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (
            text(),
            acks(),
            of(any::<u32>()),
            vec(publish_message(), 0..4)
        )
            .prop_map(|(destination, acks, partition, messages)| Request::Publish(
                PublishRequest {
                    destination,
                    acks,
                    partition,
                    messages,
                }
            )),
        (
            (text(), text(), text()),
            (any::<u32>(), any::<u32>(), any::<u32>()),
            of(any::<u32>()),
            any::<bool>(),
            any::<u32>(),
        )
            .prop_map(
                |(
                    (destination, group, consumer_id),
                    (max_messages, max_bytes, max_wait_ms),
                    partition,
                    auto_ack,
                    generation,
                )| {
                    Request::Pull(PullRequest {
                        destination,
                        group,
                        consumer_id,
                        max_messages,
                        max_bytes,
                        max_wait_ms,
                        partition,
                        auto_ack,
                        generation,
                    })
                }
            ),
        (text(), text(), text(), ranges(), any::<u32>()).prop_map(
            |(destination, group, consumer_id, ranges, generation)| Request::Ack(AckRequest {
                destination,
                group,
                consumer_id,
                ranges,
                generation,
            })
        ),
        (
            (text(), text(), text()),
            ranges(),
            any::<u32>(),
            any::<u32>(),
            text()
        )
            .prop_map(
                |((destination, group, consumer_id), ranges, delay_ms, generation, reason)| {
                    Request::Nack(NackRequest {
                        destination,
                        group,
                        consumer_id,
                        ranges,
                        delay_ms,
                        generation,
                        reason,
                    })
                }
            ),
        (text(), 0u32..=1024, config()).prop_map(|(name, partitions, config)| {
            Request::CreateDestination(CreateDestinationRequest {
                name,
                partitions,
                config,
            })
        }),
        text().prop_map(|name| Request::DeleteDestination { name }),
        Just(Request::ListDestinations),
        text().prop_map(|name| Request::DescribeDestination { name }),
        Just(Request::Health),
        Just(Request::Metadata),
        Just(Request::ClusterStatus),
    ]
}

pub fn group_mode() -> impl Strategy<Value = GroupMode> {
    prop_oneof![Just(GroupMode::Shared), Just(GroupMode::Ordered)]
}

pub fn seek_position() -> impl Strategy<Value = SeekPosition> {
    prop_oneof![
        Just(SeekPosition::Earliest),
        Just(SeekPosition::Latest),
        any::<u64>().prop_map(SeekPosition::Offset),
        any::<i64>().prop_map(SeekPosition::Timestamp),
    ]
}

pub fn partitions() -> impl Strategy<Value = Vec<u32>> {
    vec(any::<u32>(), 0..5)
}

pub fn offsets() -> impl Strategy<Value = Vec<PartitionOffset>> {
    vec(
        (any::<u32>(), any::<u64>())
            .prop_map(|(partition, offset)| PartitionOffset { partition, offset }),
        0..4,
    )
}

/// Destination, group and consumer id.
fn member() -> impl Strategy<Value = (String, String, String)> {
    (text(), text(), text())
}

/// Every consumer-group request.
pub fn group_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (member(), of(group_mode()), any::<u32>()).prop_map(
            |((destination, group, consumer_id), mode, session_timeout_ms)| {
                Request::JoinGroup(JoinGroupRequest {
                    destination,
                    group,
                    consumer_id,
                    mode,
                    session_timeout_ms,
                })
            }
        ),
        (member(), any::<u32>()).prop_map(|((destination, group, consumer_id), generation)| {
            Request::Heartbeat(HeartbeatRequest {
                destination,
                group,
                consumer_id,
                generation,
            })
        }),
        member().prop_map(|(destination, group, consumer_id)| {
            Request::LeaveGroup(LeaveGroupRequest {
                destination,
                group,
                consumer_id,
            })
        }),
        (member(), any::<u32>(), offsets()).prop_map(
            |((destination, group, consumer_id), generation, offsets)| {
                Request::CommitOffsets(CommitOffsetsRequest {
                    destination,
                    group,
                    consumer_id,
                    generation,
                    offsets,
                })
            }
        ),
        (text(), text(), of(any::<u32>()), seek_position()).prop_map(
            |(destination, group, partition, position)| Request::Seek(SeekRequest {
                destination,
                group,
                partition,
                position,
            })
        ),
        (member(), ranges(), any::<u32>()).prop_map(
            |((destination, group, consumer_id), ranges, extend_ms)| {
                Request::ExtendLease(ExtendLeaseRequest {
                    destination,
                    group,
                    consumer_id,
                    ranges,
                    extend_ms,
                })
            }
        ),
        Just(Request::ListGroups),
        (text(), text()).prop_map(|(destination, group)| Request::DescribeGroup(
            DescribeGroupRequest { destination, group }
        )),
    ]
}

pub fn group_description() -> impl Strategy<Value = GroupDescription> {
    let member =
        (text(), partitions(), any::<i64>()).prop_map(|(consumer_id, partitions, last_seen_ms)| {
            MemberInfo {
                consumer_id,
                partitions,
                last_seen_ms,
            }
        });
    let partition = (
        any::<u32>(),
        of(text()),
        (any::<u64>(), any::<u64>(), any::<u64>()),
        (any::<u64>(), any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |(partition, owner, (committed, end_offset, lag), (in_flight, pending, delayed))| {
                GroupPartitionInfo {
                    partition,
                    owner,
                    committed,
                    end_offset,
                    lag,
                    in_flight,
                    pending,
                    delayed,
                }
            },
        );
    (
        (text(), text(), group_mode(), any::<u32>()),
        vec(member, 0..3),
        vec(partition, 0..3),
        (any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |(
                (group, destination, mode, generation),
                members,
                partitions,
                (dlq_moved, expired),
            )| {
                GroupDescription {
                    group,
                    destination,
                    mode,
                    generation,
                    members,
                    partitions,
                    dlq_moved,
                    expired,
                }
            },
        )
}

/// Every consumer-group response.
pub fn group_response() -> impl Strategy<Value = Response> {
    let summary = (text(), text(), group_mode(), any::<u32>()).prop_map(
        |(group, destination, mode, members)| GroupSummary {
            group,
            destination,
            mode,
            members,
        },
    );
    prop_oneof![
        (group_mode(), any::<u32>(), partitions(), any::<u32>()).prop_map(
            |(mode, generation, assignment, heartbeat_interval_ms)| {
                Response::JoinGroup(JoinGroupResponse {
                    mode,
                    generation,
                    assignment,
                    heartbeat_interval_ms,
                })
            }
        ),
        (any::<u32>(), partitions(), partitions(), any::<bool>()).prop_map(
            |(generation, assignment, revoked, rebalancing)| {
                Response::Heartbeat(HeartbeatResponse {
                    generation,
                    assignment,
                    revoked,
                    rebalancing,
                })
            }
        ),
        Just(Response::LeaveGroup),
        Just(Response::CommitOffsets),
        offsets().prop_map(|offsets| Response::Seek(SeekResponse { offsets })),
        any::<u64>().prop_map(|count| Response::ExtendLease(AckResponse { count })),
        vec(summary, 0..4).prop_map(Response::ListGroups),
        group_description().prop_map(Response::DescribeGroup),
    ]
}

pub fn error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(ErrorCode::ALL.to_vec())
}

/// Every response, each variant about equally likely.
pub fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        11 => destination_response(),
        8 => group_response(),
        1 => text().prop_map(|principal| Response::Authenticate(AuthenticateResponse { principal })),
        3 => keys_response(),
    ]
}

/// The responses that existed before consumer groups, and errors.
pub fn destination_response() -> impl Strategy<Value = Response> {
    let run = (any::<u32>(), any::<u64>(), any::<u32>(), any::<bool>()).prop_map(
        |(partition, base_offset, count, duplicate)| PublishRun {
            partition,
            base_offset,
            count,
            duplicate,
        },
    );
    let node =
        (text(), text(), any::<u16>()).prop_map(|(id, host, port)| NodeInfo { id, host, port });
    prop_oneof![
        vec(run, 0..4).prop_map(|runs| Response::Publish(PublishResponse { runs })),
        vec(delivered_message(), 0..4)
            .prop_map(|messages| Response::Pull(PullResponse { messages })),
        any::<u64>().prop_map(|count| Response::Ack(AckResponse { count })),
        any::<u64>().prop_map(|count| Response::Nack(AckResponse { count })),
        destination_info().prop_map(Response::CreateDestination),
        Just(Response::DeleteDestination),
        "\\PC{0,200}".prop_map(|json| Response::ClusterStatus { json }),
        vec(destination_info(), 0..3).prop_map(Response::ListDestinations),
        destination_info().prop_map(Response::DescribeDestination),
        (text(), text(), text(), any::<u64>()).prop_map(|(status, node_id, version, uptime_ms)| {
            Response::Health(HealthResponse {
                status,
                node_id,
                version,
                uptime_ms,
            })
        }),
        (text(), vec(node, 0..3), vec(destination_info(), 0..2)).prop_map(
            |(cluster_name, nodes, destinations)| Response::Metadata(MetadataResponse {
                cluster_name,
                nodes,
                destinations,
            })
        ),
        (error_code(), text())
            .prop_map(|(code, message)| Response::Error(ErrorResponse { code, message })),
    ]
}

/// The opcode a response is sent under; an error may answer any operation.
pub fn response_with_opcode() -> impl Strategy<Value = (Opcode, Response)> {
    (response(), proptest::sample::select(Opcode::ALL.to_vec()))
        .prop_map(|(resp, any_op)| (resp.opcode().unwrap_or(any_op), resp))
}

/// The master-key administration requests.
pub fn keys_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::KeysStatus),
        Just(Request::KeysRotate),
        any::<u32>().prop_map(|id| Request::KeysRetire { id }),
    ]
}

/// The master-key administration responses.
pub fn keys_response() -> impl Strategy<Value = Response> {
    let key = (
        any::<u32>(),
        text(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(id, fingerprint, bytes, batches, retired)| KeyInfo {
            id,
            fingerprint,
            bytes,
            batches,
            retired,
        });
    prop_oneof![
        (any::<u32>(), vec(key, 0..5)).prop_map(|(active_id, keys)| Response::KeysStatus(
            KeysStatusResponse { active_id, keys }
        )),
        any::<u32>().prop_map(|new_id| Response::KeysRotate(KeysRotateResponse { new_id })),
        Just(Response::KeysRetire),
    ]
}

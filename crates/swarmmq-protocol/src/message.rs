//! The typed requests and responses; the codec turns these into bytes and back.

use bytes::Bytes;
use swarmmq_types::{ErrorCode, MessageId, Offset, PartitionId};

/// Operation codes. Numbers are part of the wire contract and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    Publish = 1,
    Pull = 2,
    Ack = 3,
    Nack = 4,
    CreateDestination = 5,
    DeleteDestination = 6,
    ListDestinations = 7,
    DescribeDestination = 8,
    Health = 9,
    Metadata = 10,
}

impl Opcode {
    pub const ALL: [Opcode; 10] = [
        Opcode::Publish,
        Opcode::Pull,
        Opcode::Ack,
        Opcode::Nack,
        Opcode::CreateDestination,
        Opcode::DeleteDestination,
        Opcode::ListDestinations,
        Opcode::DescribeDestination,
        Opcode::Health,
        Opcode::Metadata,
    ];

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The opcode for a byte, or `None` for one this build does not know.
    pub fn from_u8(n: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|op| op.as_u8() == n)
    }
}

/// A message header: a UTF-8 name and an opaque value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Bytes,
}

/// How durable a publish must be before the node answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Acks {
    /// Durable on every in-sync replica (with one node: written and fsynced per policy).
    #[default]
    All = 0,
    /// Durable on the partition leader only.
    Leader = 1,
}

/// One message of a publish batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishMessage {
    /// Producer-chosen id; the SDK fills a UUIDv7 when the user gives none.
    pub id: Option<MessageId>,
    /// Picks the partition (`fnv1a64(key) mod partitions`) when present.
    pub key: Option<Bytes>,
    pub headers: Vec<Header>,
    /// 1..=10; the codec refuses other values.
    pub priority: u8,
    /// Not deliverable before this Unix time in ms (delayed delivery).
    pub deliver_at_ms: Option<i64>,
    /// Time to live from publish, in ms; never delivered after it.
    pub ttl_ms: Option<u64>,
    pub payload: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishRequest {
    pub destination: String,
    pub acks: Acks,
    /// Send every message to this partition instead of choosing by key (smart clients).
    pub partition: Option<PartitionId>,
    pub messages: Vec<PublishMessage>,
}

/// `count` consecutive messages of the request, in request order, stored at
/// `base_offset..base_offset+count` of `partition`. A publish answer is a list of runs
/// covering every message of the request in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishRun {
    pub partition: PartitionId,
    pub base_offset: Offset,
    pub count: u32,
    /// The messages were already stored (dedup hit); offsets are the originals.
    pub duplicate: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishResponse {
    pub runs: Vec<PublishRun>,
}

/// Long-poll pull for a consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    pub destination: String,
    pub group: String,
    /// Stable per consumer instance; the node uses it to track leases and members.
    pub consumer_id: String,
    pub max_messages: u32,
    pub max_bytes: u32,
    /// Wait up to this long for the first message; 0 answers at once.
    pub max_wait_ms: u32,
    /// Pull only from this partition.
    pub partition: Option<PartitionId>,
    /// Acknowledge on delivery (at-most-once, `--no-ack`).
    pub auto_ack: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveredMessage {
    pub partition: PartitionId,
    pub offset: Offset,
    pub timestamp_ms: i64,
    pub priority: u8,
    /// 1 on first delivery to this group, then 2, 3, ...
    pub delivery_attempt: u32,
    pub id: Option<MessageId>,
    pub key: Option<Bytes>,
    pub headers: Vec<Header>,
    pub payload: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullResponse {
    pub messages: Vec<DeliveredMessage>,
}

/// Offsets `start..end` (end exclusive) of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetRange {
    pub partition: PartitionId,
    pub start: Offset,
    pub end: Offset,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckRequest {
    pub destination: String,
    pub group: String,
    pub consumer_id: String,
    pub ranges: Vec<OffsetRange>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NackRequest {
    pub destination: String,
    pub group: String,
    pub consumer_id: String,
    pub ranges: Vec<OffsetRange>,
    /// Deliverable again after this many ms (0: at once).
    pub delay_ms: u32,
}

/// Answer to ack and nack: how many offsets changed state (already-acked ones do not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckResponse {
    pub count: u64,
}

/// Per-destination settings. On create, `None` means "the node's default"; in a
/// describe answer the node fills every field it knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationConfig {
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub max_message_bytes: Option<u32>,
    /// Lease length (visibility timeout) for pulled messages.
    pub ack_timeout_ms: Option<u64>,
    pub max_delivery_attempts: Option<u32>,
    pub dedup_window_ms: Option<u64>,
    pub dlq_enabled: Option<bool>,
    pub default_ttl_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateDestinationRequest {
    pub name: String,
    pub partitions: u32,
    pub config: DestinationConfig,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: PartitionId,
    /// Node id of the partition's leader.
    pub leader: String,
    /// First offset still stored (retention moves it up).
    pub start_offset: Offset,
    /// The offset the next message will get.
    pub end_offset: Offset,
    pub size_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationInfo {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
    pub config: DestinationConfig,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthResponse {
    /// `ok`, `starting`, `degraded` or `failing`.
    pub status: String,
    pub node_id: String,
    pub version: String,
    pub uptime_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataResponse {
    pub cluster_name: String,
    pub nodes: Vec<NodeInfo>,
    pub destinations: Vec<DestinationInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Publish(PublishRequest),
    Pull(PullRequest),
    Ack(AckRequest),
    Nack(NackRequest),
    CreateDestination(CreateDestinationRequest),
    DeleteDestination { name: String },
    ListDestinations,
    DescribeDestination { name: String },
    Health,
    Metadata,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Publish(PublishResponse),
    Pull(PullResponse),
    Ack(AckResponse),
    Nack(AckResponse),
    CreateDestination(DestinationInfo),
    DeleteDestination,
    ListDestinations(Vec<DestinationInfo>),
    DescribeDestination(DestinationInfo),
    Health(HealthResponse),
    Metadata(MetadataResponse),
    /// Any operation may be answered with an error instead.
    Error(ErrorResponse),
}

impl Request {
    pub fn opcode(&self) -> Opcode {
        match self {
            Request::Publish(_) => Opcode::Publish,
            Request::Pull(_) => Opcode::Pull,
            Request::Ack(_) => Opcode::Ack,
            Request::Nack(_) => Opcode::Nack,
            Request::CreateDestination(_) => Opcode::CreateDestination,
            Request::DeleteDestination { .. } => Opcode::DeleteDestination,
            Request::ListDestinations => Opcode::ListDestinations,
            Request::DescribeDestination { .. } => Opcode::DescribeDestination,
            Request::Health => Opcode::Health,
            Request::Metadata => Opcode::Metadata,
        }
    }
}

impl Response {
    /// The operation this answers; `None` for [`Response::Error`], which answers any.
    pub fn opcode(&self) -> Option<Opcode> {
        Some(match self {
            Response::Publish(_) => Opcode::Publish,
            Response::Pull(_) => Opcode::Pull,
            Response::Ack(_) => Opcode::Ack,
            Response::Nack(_) => Opcode::Nack,
            Response::CreateDestination(_) => Opcode::CreateDestination,
            Response::DeleteDestination => Opcode::DeleteDestination,
            Response::ListDestinations(_) => Opcode::ListDestinations,
            Response::DescribeDestination(_) => Opcode::DescribeDestination,
            Response::Health(_) => Opcode::Health,
            Response::Metadata(_) => Opcode::Metadata,
            Response::Error(_) => return None,
        })
    }
}

//! The typed requests and responses; the codec turns these into bytes and back.

use std::fmt;

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
    JoinGroup = 11,
    Heartbeat = 12,
    LeaveGroup = 13,
    CommitOffsets = 14,
    Seek = 15,
    ExtendLease = 16,
    ListGroups = 17,
    DescribeGroup = 18,
    Authenticate = 19,
    KeysStatus = 20,
    KeysRotate = 21,
    KeysRetire = 22,
    ClusterStatus = 23,
}

impl Opcode {
    pub const ALL: [Opcode; 23] = [
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
        Opcode::JoinGroup,
        Opcode::Heartbeat,
        Opcode::LeaveGroup,
        Opcode::CommitOffsets,
        Opcode::Seek,
        Opcode::ExtendLease,
        Opcode::ListGroups,
        Opcode::DescribeGroup,
        Opcode::Authenticate,
        Opcode::KeysStatus,
        Opcode::KeysRotate,
        Opcode::KeysRetire,
        Opcode::ClusterStatus,
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
    /// Ordered mode: the member's generation from join or heartbeat (fencing: a stale
    /// one gets `STALE_GENERATION`). 0 in shared mode.
    pub generation: u32,
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
    /// Shared mode: these offsets are done. Ordered mode: commits each range's
    /// partition up to the range's end.
    pub ranges: Vec<OffsetRange>,
    /// As in [`PullRequest::generation`]: the member's generation; 0 in shared mode.
    pub generation: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NackRequest {
    pub destination: String,
    pub group: String,
    pub consumer_id: String,
    pub ranges: Vec<OffsetRange>,
    /// Deliverable again after this many ms (0: at once).
    pub delay_ms: u32,
    /// As in [`PullRequest::generation`]: the member's generation; 0 in shared mode.
    pub generation: u32,
    /// The consumer's last error text, kept in the DLQ headers if the message ends
    /// there; at most `max_text_bytes`, may be empty.
    pub reason: String,
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
    /// Move messages whose TTL ran out to the DLQ instead of dropping them.
    pub expired_to_dlq: Option<bool>,
    /// Priority aging: a waiting message's effective priority rises one level per
    /// this many ms, so low priorities are not starved (0: no aging).
    pub priority_aging_ms: Option<u64>,
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

/// How a consumer group hands out messages; fixed when the group is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum GroupMode {
    /// A queue: any member may get any message, each delivery is a lease that ack
    /// ends and nack or expiry redelivers.
    #[default]
    Shared = 0,
    /// A stream: each partition belongs to one member at a time, which consumes it in
    /// order and commits an offset.
    Ordered = 1,
}

/// Where a seek moves a group's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekPosition {
    /// The first offset still stored.
    Earliest,
    /// The end of the partition: only messages published from now on.
    Latest,
    /// This offset.
    Offset(u64),
    /// The first message with a timestamp at or after this Unix time in ms.
    Timestamp(i64),
}

/// An offset of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionOffset {
    pub partition: PartitionId,
    pub offset: Offset,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroupRequest {
    pub destination: String,
    pub group: String,
    pub consumer_id: String,
    /// `None`: the group's existing mode (or [`GroupMode::Shared`] when the group is new).
    pub mode: Option<GroupMode>,
    /// The member is dropped (and its partitions reassigned) after this long without
    /// a heartbeat; the node may clamp it to its own bounds.
    pub session_timeout_ms: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroupResponse {
    pub mode: GroupMode,
    /// Sent back with every pull, ack and commit of an ordered group.
    pub generation: u32,
    /// Partitions this member owns now (ordered); every partition (shared).
    pub assignment: Vec<PartitionId>,
    pub heartbeat_interval_ms: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub destination: String,
    pub group: String,
    pub consumer_id: String,
    pub generation: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// The member's current generation; use it from now on.
    pub generation: u32,
    pub assignment: Vec<PartitionId>,
    /// Partitions taken from this member since its last heartbeat: stop, commit, forget.
    pub revoked: Vec<PartitionId>,
    /// A rebalance is under way: partitions may still move.
    pub rebalancing: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveGroupRequest {
    pub destination: String,
    pub group: String,
    pub consumer_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitOffsetsRequest {
    pub destination: String,
    pub group: String,
    pub consumer_id: String,
    pub generation: u32,
    /// The next offset to consume, per partition.
    pub offsets: Vec<PartitionOffset>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeekRequest {
    pub destination: String,
    pub group: String,
    /// `None`: every partition.
    pub partition: Option<PartitionId>,
    pub position: SeekPosition,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeekResponse {
    /// The group's new position, per partition moved.
    pub offsets: Vec<PartitionOffset>,
}

/// Lengthens the leases of messages still being worked on (shared mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendLeaseRequest {
    pub destination: String,
    pub group: String,
    pub consumer_id: String,
    pub ranges: Vec<OffsetRange>,
    /// The leases now end this many ms from when the node handles the request.
    pub extend_ms: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    pub group: String,
    pub destination: String,
    pub mode: GroupMode,
    pub members: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    pub consumer_id: String,
    /// Owned partitions (ordered); empty in shared mode.
    pub partitions: Vec<PartitionId>,
    /// Unix time in ms of the member's last heartbeat or request.
    pub last_seen_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPartitionInfo {
    pub partition: PartitionId,
    /// The member that owns the partition (ordered), if any.
    pub owner: Option<String>,
    /// Everything below is acknowledged (shared) or committed (ordered).
    pub committed: Offset,
    pub end_offset: Offset,
    /// Messages from `committed` to `end_offset` not yet acknowledged or committed.
    pub lag: u64,
    /// Delivered and leased, not yet acknowledged.
    pub in_flight: u64,
    /// Deliverable now.
    pub pending: u64,
    /// Waiting for their deliver-at time or a nack delay.
    pub delayed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    pub destination: String,
    pub mode: GroupMode,
    pub generation: u32,
    pub members: Vec<MemberInfo>,
    pub partitions: Vec<GroupPartitionInfo>,
    /// Messages moved to the DLQ so far.
    pub dlq_moved: u64,
    /// Messages whose TTL ran out before delivery.
    pub expired: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribeGroupRequest {
    pub destination: String,
    pub group: String,
}

/// Longest API key an [`AuthenticateRequest`] may carry, in bytes.
pub const MAX_API_KEY_BYTES: u32 = 256;

/// Proves who the connection acts as; sent first on a connection, before anything
/// else. `Debug` does not print the key.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthenticateRequest {
    /// `smq_<id>_<secret>`; at most [`MAX_API_KEY_BYTES`].
    pub api_key: String,
}

impl fmt::Debug for AuthenticateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticateRequest")
            .field("api_key", &"<redacted>")
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticateResponse {
    /// The name of the key the node accepted (`anonymous` when the node has
    /// authentication off).
    pub principal: String,
}

/// One master key id as `KeysStatus` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: u32,
    /// Non-secret fingerprint of the key (hex); empty when the node has no record of it.
    pub fingerprint: String,
    /// Bytes of stored batches encrypted under this id, over every partition of every
    /// destination (dead-letter queues included).
    pub bytes: u64,
    pub batches: u64,
    /// The key was retired: its file is gone and the id is never used again.
    pub retired: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysStatusResponse {
    /// The key id new batches are encrypted under.
    pub active_id: u32,
    /// Every key id the node holds, has retired, or finds in batch headers, ascending.
    pub keys: Vec<KeyInfo>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeysRotateResponse {
    /// The new active key id.
    pub new_id: u32,
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
    DeleteDestination {
        name: String,
    },
    ListDestinations,
    DescribeDestination {
        name: String,
    },
    Health,
    Metadata,
    JoinGroup(JoinGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    CommitOffsets(CommitOffsetsRequest),
    Seek(SeekRequest),
    ExtendLease(ExtendLeaseRequest),
    ListGroups,
    DescribeGroup(DescribeGroupRequest),
    Authenticate(AuthenticateRequest),
    /// Master keys and the bytes each one encrypts.
    KeysStatus,
    /// A new master key becomes active for new writes.
    KeysRotate,
    /// Removes the key of an id no data uses any more.
    KeysRetire {
        id: u32,
    },
    /// The cluster as this node sees it: members, their state and load, the metadata
    /// leader and term.
    ClusterStatus,
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
    JoinGroup(JoinGroupResponse),
    Heartbeat(HeartbeatResponse),
    LeaveGroup,
    CommitOffsets,
    Seek(SeekResponse),
    /// How many leases were extended (offsets no longer leased to the member do not
    /// count).
    ExtendLease(AckResponse),
    ListGroups(Vec<GroupSummary>),
    DescribeGroup(GroupDescription),
    Authenticate(AuthenticateResponse),
    KeysStatus(KeysStatusResponse),
    KeysRotate(KeysRotateResponse),
    KeysRetire,
    /// One JSON object (shape in docs/cluster.md); JSON rather than fields so that the
    /// status can grow without a wire change.
    ClusterStatus {
        json: String,
    },
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
            Request::JoinGroup(_) => Opcode::JoinGroup,
            Request::Heartbeat(_) => Opcode::Heartbeat,
            Request::LeaveGroup(_) => Opcode::LeaveGroup,
            Request::CommitOffsets(_) => Opcode::CommitOffsets,
            Request::Seek(_) => Opcode::Seek,
            Request::ExtendLease(_) => Opcode::ExtendLease,
            Request::ListGroups => Opcode::ListGroups,
            Request::DescribeGroup(_) => Opcode::DescribeGroup,
            Request::Authenticate(_) => Opcode::Authenticate,
            Request::KeysStatus => Opcode::KeysStatus,
            Request::KeysRotate => Opcode::KeysRotate,
            Request::KeysRetire { .. } => Opcode::KeysRetire,
            Request::ClusterStatus => Opcode::ClusterStatus,
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
            Response::JoinGroup(_) => Opcode::JoinGroup,
            Response::Heartbeat(_) => Opcode::Heartbeat,
            Response::LeaveGroup => Opcode::LeaveGroup,
            Response::CommitOffsets => Opcode::CommitOffsets,
            Response::Seek(_) => Opcode::Seek,
            Response::ExtendLease(_) => Opcode::ExtendLease,
            Response::ListGroups(_) => Opcode::ListGroups,
            Response::DescribeGroup(_) => Opcode::DescribeGroup,
            Response::Authenticate(_) => Opcode::Authenticate,
            Response::KeysStatus(_) => Opcode::KeysStatus,
            Response::KeysRotate(_) => Opcode::KeysRotate,
            Response::KeysRetire => Opcode::KeysRetire,
            Response::ClusterStatus { .. } => Opcode::ClusterStatus,
            Response::Error(_) => return None,
        })
    }
}

//! Consumer-group delivery state, as pure state machines plus one durable log:
//!
//! - shared (queue) groups: per partition, which offsets are acknowledged, leased (until
//!   when, at which attempt), ready by priority (with aging), delayed, or due for the
//!   dead-letter queue (`SharedPartition`);
//! - ordered (stream) groups: members, sessions, generations and a sticky, balanced
//!   assignment that moves as few partitions as possible (`Coordinator`);
//! - the group log that makes acknowledgements, attempts, settlements and commits
//!   survive a crash (`GroupStore`).
//!
//! State is kept as offset *ranges*, not per message, so pulling and acknowledging a
//! thousand messages costs a handful of map operations. This crate knows nothing of
//! sockets, the wire protocol or the partition log's bytes: the node feeds it record
//! metadata, asks it which offsets to hand out, and tells it what was acknowledged.

mod coordinator;
mod error;
mod group_store;
mod range_map;
mod shared_partition;
mod shared_types;
mod timed_ranges;

pub use coordinator::{
    Assignment, Coordinator, CoordinatorError, CoordinatorSettings, HeartbeatResult, MemberView,
};
pub use error::DeliveryError;
pub use group_store::{GroupStore, PartitionDurable, StoreSyncer};
pub use range_map::{RangeMap, RangeSet};
pub use shared_partition::SharedPartition;
pub use shared_types::{
    Completed, Counts, DEFAULT_PRIORITY, Grant, MAX_PRIORITY, NackOutcome, PollOutcome, RecordInfo,
    SettleRange, SharedSettings,
};

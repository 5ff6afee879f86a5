//! Consumer-group delivery state: which offsets of a partition a group has acknowledged,
//! which are leased to a consumer and until when, which are due for redelivery, and the
//! durable log that makes acknowledgements survive a crash.
//!
//! State is kept as offset *ranges*, not per message, so pulling and acknowledging a
//! thousand messages costs a handful of map operations. This crate knows nothing of
//! sockets, the wire protocol or the partition log's bytes; the node asks it which
//! offsets to hand out and tells it what was acknowledged.

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

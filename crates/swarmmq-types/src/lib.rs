//! Shared vocabulary of SwarmMQ: validated names, message ids, priorities, the stable
//! wire error codes, every size and count limit, and the key partitioner.
//!
//! This crate is leaf-level: no I/O, no async, no dependency on any other SwarmMQ crate.
//! It is not where behaviour lives; it only names things so that every layer agrees.

mod error_code;
mod limits;
mod message_id;
mod names;
mod partitioner;
mod priority;
mod time;

pub use error_code::ErrorCode;
pub use limits::Limits;
pub use message_id::{MessageId, MessageIdError};
pub use names::{DestinationName, GroupName, NameError, NodeId};
pub use partitioner::{key_hash, partition_for_key};
pub use priority::{Priority, PriorityError};
pub use time::now_ms;

/// A partition number within one destination, dense from 0.
pub type PartitionId = u32;
/// A record's position in its partition log, dense from 0.
pub type Offset = u64;

//! A shared (queue) group: any member may receive any message; each delivery is a
//! lease; priorities, delays, TTLs and attempts are decided by
//! `swarmmq_delivery::SharedPartition`, one per partition.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use swarmmq_delivery::{SharedPartition, SharedSettings};
use swarmmq_protocol::GroupPartitionInfo;
use swarmmq_types::{ErrorCode, PartitionId};

use crate::error::RequestError;

pub(crate) struct SharedGroup {
    pub settings: SharedSettings,
    partitions: Vec<Mutex<SharedPartition>>,
    /// Where the next pull starts scanning partitions, so none starves.
    next: AtomicUsize,
}

impl SharedGroup {
    pub fn new(partitions: Vec<SharedPartition>, settings: SharedSettings) -> Self {
        SharedGroup {
            settings,
            partitions: partitions.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn partition(&self, p: PartitionId) -> Result<&Mutex<SharedPartition>, RequestError> {
        self.partitions.get(p as usize).ok_or_else(|| {
            RequestError::new(
                ErrorCode::UnknownPartition,
                format!("partition {p} does not exist"),
            )
        })
    }

    pub fn len(&self) -> usize {
        self.partitions.len()
    }

    pub fn first_partition(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.partitions.len().max(1)
    }

    pub fn next_due_ms(&self) -> Option<i64> {
        self.partitions
            .iter()
            .filter_map(|m| m.lock().ok().and_then(|st| st.next_due_ms()))
            .min()
    }

    pub fn describe_partition(&self, p: PartitionId, end: u64) -> GroupPartitionInfo {
        let st = self.partitions.get(p as usize).and_then(|m| m.lock().ok());
        let (floor, lag, counts) = match st {
            Some(st) => (st.floor(), st.lag(end), Some(st.counts())),
            None => (0, 0, None),
        };
        GroupPartitionInfo {
            partition: p,
            owner: None,
            committed: floor,
            end_offset: end,
            lag,
            in_flight: counts.as_ref().map_or(0, |c| c.leased),
            // Waiting to be delivered: ready ones and those not read from the log yet.
            pending: counts
                .as_ref()
                .map_or(0, |c| lag.saturating_sub(c.leased + c.delayed + c.settling)),
            delayed: counts.as_ref().map_or(0, |c| c.delayed),
        }
    }
}

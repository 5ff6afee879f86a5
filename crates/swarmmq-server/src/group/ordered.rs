//! An ordered (stream) group: each partition is owned by one member at a time, handed
//! out by the coordinator; the position is a committed offset per partition.
//!
//! Ownership moves atomically here, so a member that lost a partition is refused at once
//! (STALE_GENERATION) and the new owner starts from the committed offset: messages the
//! old owner had but did not commit are delivered again (at least once).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use swarmmq_delivery::{
    Assignment, Coordinator, CoordinatorError, CoordinatorSettings, HeartbeatResult,
};
use swarmmq_protocol::{GroupPartitionInfo, MemberInfo};
use swarmmq_types::{ErrorCode, PartitionId};

use crate::error::RequestError;

/// Where one partition stands for the group.
#[derive(Clone, Debug)]
pub(crate) struct Position {
    /// Everything below is processed (durable).
    pub committed: u64,
    /// Next offset to hand to the current owner (not durable: restarts at `committed`).
    pub fetch: u64,
    /// The member `fetch` belongs to; another owner restarts from `committed`.
    pub owner: Option<String>,
    /// Offsets below were handed out before (since start): a redelivery is attempt 2.
    pub delivered_to: u64,
}

pub(crate) struct OrderedGroup {
    coordinator: Mutex<Coordinator>,
    positions: Vec<Mutex<Position>>,
    /// Generation each member last learned (join or heartbeat), to time rebalances.
    seen: Mutex<HashMap<String, u32>>,
    /// A rebalance whose members have not all learned the new generation yet.
    rebalance_started: Mutex<Option<Instant>>,
}

fn lock_err() -> RequestError {
    RequestError::new(ErrorCode::Internal, "group lock poisoned")
}

pub(crate) fn coordinator_error(e: CoordinatorError) -> RequestError {
    match e {
        CoordinatorError::UnknownMember => RequestError::new(
            ErrorCode::StaleGeneration,
            "this consumer is not a member of the group (its session may have expired): join again",
        ),
        CoordinatorError::StaleGeneration { current } => RequestError::new(
            ErrorCode::StaleGeneration,
            format!("the group is at generation {current}: heartbeat or join again"),
        ),
        CoordinatorError::NotOwner { partition } => RequestError::new(
            ErrorCode::StaleGeneration,
            format!("partition {partition} is not assigned to this consumer"),
        ),
        CoordinatorError::TooManyMembers => RequestError::new(
            ErrorCode::Busy,
            "the group has its maximum number of members",
        ),
    }
}

impl OrderedGroup {
    /// `committed[p]`: the durable position of each partition (its log start when none).
    pub fn new(committed: Vec<u64>, max_members: usize, max_session_ms: u64) -> Self {
        let settings = CoordinatorSettings {
            session_timeout_ms: max_session_ms,
            max_members,
        };
        OrderedGroup {
            coordinator: Mutex::new(Coordinator::with_settings(committed.len() as u32, settings)),
            positions: committed
                .into_iter()
                .map(|c| {
                    Mutex::new(Position {
                        committed: c,
                        fetch: c,
                        owner: None,
                        delivered_to: c,
                    })
                })
                .collect(),
            seen: Mutex::new(HashMap::new()),
            rebalance_started: Mutex::new(None),
        }
    }

    pub fn position(&self, p: PartitionId) -> Result<&Mutex<Position>, RequestError> {
        self.positions.get(p as usize).ok_or_else(|| {
            RequestError::new(
                ErrorCode::UnknownPartition,
                format!("partition {p} does not exist"),
            )
        })
    }

    pub fn partitions(&self) -> usize {
        self.positions.len()
    }

    /// Runs `f` on the coordinator and notes whether it started a rebalance.
    fn with_coordinator<T>(
        &self,
        f: impl FnOnce(&mut Coordinator) -> T,
    ) -> Result<(T, bool), RequestError> {
        let mut c = self.coordinator.lock().map_err(|_| lock_err())?;
        let before = c.rebalances();
        let out = f(&mut c);
        let rebalanced = c.rebalances() != before;
        if rebalanced && let Ok(mut started) = self.rebalance_started.lock() {
            started.get_or_insert_with(Instant::now);
        }
        Ok((out, rebalanced))
    }

    /// A member learned `generation`; returns the rebalance duration when that completes one.
    fn learned(&self, member: &str, generation: u32) -> Option<f64> {
        let current = self.coordinator.lock().ok()?;
        let mut seen = self.seen.lock().ok()?;
        seen.insert(member.to_string(), generation);
        seen.retain(|m, _| current.members().any(|v| v.id == m));
        let all = current
            .members()
            .all(|v| seen.get(v.id).is_some_and(|g| *g >= current.generation()));
        if !all {
            return None;
        }
        let mut started = self.rebalance_started.lock().ok()?;
        started.take().map(|t| t.elapsed().as_secs_f64())
    }

    /// Returns the assignment and, when this join completed a rebalance, its duration.
    pub fn join(
        &self,
        member: &str,
        now_ms: i64,
        session_ms: u64,
    ) -> Result<(Assignment, Option<f64>), RequestError> {
        let (a, _) = self.with_coordinator(|c| c.join(member, now_ms, session_ms))?;
        let a = a.map_err(coordinator_error)?;
        let done = self.learned(member, a.generation);
        Ok((a, done))
    }

    pub fn heartbeat(
        &self,
        member: &str,
        generation: u32,
        now_ms: i64,
    ) -> Result<(HeartbeatResult, Option<f64>), RequestError> {
        let (h, _) = self.with_coordinator(|c| c.heartbeat(member, generation, now_ms))?;
        let h = h.map_err(coordinator_error)?;
        let done = self.learned(member, h.generation);
        Ok((h, done))
    }

    pub fn leave(&self, member: &str, now_ms: i64) -> Result<bool, RequestError> {
        Ok(self.with_coordinator(|c| c.leave(member, now_ms))?.0)
    }

    /// Removes members whose session ran out.
    pub fn expire(&self, now_ms: i64) -> Result<Vec<String>, RequestError> {
        Ok(self.with_coordinator(|c| c.expire(now_ms))?.0)
    }

    pub fn generation(&self) -> u32 {
        self.coordinator.lock().map(|c| c.generation()).unwrap_or(0)
    }

    /// The partitions `member` may read with `generation`, refusing a stale member.
    pub fn owned(&self, member: &str, generation: u32) -> Result<Vec<PartitionId>, RequestError> {
        let c = self.coordinator.lock().map_err(|_| lock_err())?;
        let view = c
            .members()
            .find(|m| m.id == member)
            .ok_or_else(|| coordinator_error(CoordinatorError::UnknownMember))?;
        let mine: Vec<PartitionId> = view
            .partitions
            .iter()
            .copied()
            .filter(|p| c.check(member, generation, *p).is_ok())
            .collect();
        if mine.is_empty() && !view.partitions.is_empty() {
            // It owns partitions but knows none of their assignments: it is behind.
            return Err(coordinator_error(CoordinatorError::StaleGeneration {
                current: c.generation(),
            }));
        }
        Ok(mine)
    }

    pub fn check(&self, member: &str, generation: u32, p: PartitionId) -> Result<(), RequestError> {
        self.coordinator
            .lock()
            .map_err(|_| lock_err())?
            .check(member, generation, p)
            .map_err(coordinator_error)
    }

    pub fn members(&self) -> Vec<MemberInfo> {
        let Ok(c) = self.coordinator.lock() else {
            return Vec::new();
        };
        c.members()
            .map(|m| MemberInfo {
                consumer_id: m.id.to_string(),
                partitions: m.partitions.to_vec(),
                last_seen_ms: m.last_seen_ms,
            })
            .collect()
    }

    pub fn member_count(&self) -> u32 {
        self.coordinator
            .lock()
            .map(|c| c.members().count() as u32)
            .unwrap_or(0)
    }

    pub fn describe_partition(&self, p: PartitionId, end: u64) -> GroupPartitionInfo {
        let owner = self
            .coordinator
            .lock()
            .ok()
            .and_then(|c| c.owner(p).map(str::to_string));
        let (committed, fetch) = self
            .positions
            .get(p as usize)
            .and_then(|m| m.lock().ok())
            .map(|pos| (pos.committed, pos.fetch))
            .unwrap_or((0, 0));
        GroupPartitionInfo {
            partition: p,
            owner,
            committed,
            end_offset: end,
            lag: end.saturating_sub(committed),
            in_flight: fetch.saturating_sub(committed),
            pending: 0,
            delayed: 0,
        }
    }
}

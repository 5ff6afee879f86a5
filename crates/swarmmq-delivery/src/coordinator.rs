//! The coordinator of one ordered (stream) consumer group on one destination: who owns
//! which partition, at which generation, and who may fetch or commit what.
//!
//! It is a pure state machine: no I/O, no clock (the caller passes `now_ms`), no
//! randomness, so the same calls always give the same assignment. Committed offsets are
//! NOT kept here; the node keeps them per partition, which is what lets ownership move
//! at once: the old owner is fenced by [`Coordinator::check`] the moment a rebalance takes
//! a partition away, and the new owner resumes from the committed offset.
//!
//! Rebalancing is cooperative and incremental: only the partitions that must move to keep
//! the group balanced change owner (see [`assign::plan`]); every other partition keeps its
//! owner and its assignment generation, so its owner keeps fetching it without rejoining.

mod assign;
mod error;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use error::CoordinatorError;

/// Limits of one ordered group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoordinatorSettings {
    /// Longest session timeout a member may ask for; a join asking for more, or for 0,
    /// gets this one. Bounding it bounds how long a dead member can hold partitions.
    pub session_timeout_ms: u64,
    /// Most members at once; the next new member is refused.
    pub max_members: usize,
}

impl Default for CoordinatorSettings {
    fn default() -> Self {
        CoordinatorSettings {
            session_timeout_ms: 45_000,
            max_members: 1024,
        }
    }
}

/// What a member owns, as of a generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The group's generation when this answer was given; pass it to fetches and commits.
    pub generation: u32,
    /// Owned partitions, ascending.
    pub partitions: Vec<u32>,
}

/// The answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResult {
    /// The group's current generation; use it from now on.
    pub generation: u32,
    /// Owned partitions, ascending.
    pub partitions: Vec<u32>,
    /// Partitions taken from this member since its last join or heartbeat, ascending, each
    /// reported once. A partition taken away and given back in between appears here and
    /// in `partitions`: someone else may have consumed it meanwhile, so the member must
    /// drop what it had in flight and resume from the committed offset.
    pub revoked: Vec<u32>,
    /// Whether ownership changed since the generation the member sent.
    pub rebalanced: bool,
}

/// One member, as shown by [`Coordinator::members`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberView<'a> {
    pub id: &'a str,
    /// Owned partitions, ascending.
    pub partitions: &'a [u32],
    pub last_seen_ms: i64,
    pub session_timeout_ms: u64,
}

#[derive(Clone, Debug)]
struct Member {
    session_timeout_ms: u64,
    last_seen_ms: i64,
    /// Derived from the slots after every rebalance, kept to answer without a scan.
    owned: Vec<u32>,
    revoked: BTreeSet<u32>,
}

#[derive(Clone, Debug)]
struct Slot {
    owner: Option<Arc<str>>,
    /// Generation at which `owner` got this partition; a member must have seen it.
    assigned_at: u32,
}

/// The ordered-group coordinator for one (group, destination).
///
/// The partition count comes from the destination's metadata, which the node has
/// already bounded by `Limits::max_partitions`; members are bounded by
/// [`CoordinatorSettings::max_members`]. Member ids are opaque; their length is the
/// node's to bound.
#[derive(Clone, Debug)]
pub struct Coordinator {
    settings: CoordinatorSettings,
    members: BTreeMap<Arc<str>, Member>,
    slots: Vec<Slot>,
    generation: u32,
    rebalances: u64,
}

impl Coordinator {
    /// A group with no members over `partitions` partitions, with default settings.
    pub fn new(partitions: u32) -> Self {
        Coordinator::with_settings(partitions, CoordinatorSettings::default())
    }

    pub fn with_settings(partitions: u32, settings: CoordinatorSettings) -> Self {
        Coordinator {
            settings,
            members: BTreeMap::new(),
            slots: (0..partitions).map(|_| Slot::unowned()).collect(),
            generation: 0,
            rebalances: 0,
        }
    }

    /// Adds `member` (rebalancing) and returns its assignment. Joining again is
    /// idempotent: it refreshes the session, adopts the new timeout and clears pending
    /// revocations (the returned assignment supersedes them) without moving anything.
    pub fn join(
        &mut self,
        member: &str,
        now_ms: i64,
        session_timeout_ms: u64,
    ) -> Result<Assignment, CoordinatorError> {
        let timeout = match session_timeout_ms {
            0 => self.settings.session_timeout_ms,
            t => t.min(self.settings.session_timeout_ms),
        };
        if let Some(m) = self.members.get_mut(member) {
            m.session_timeout_ms = timeout;
            m.last_seen_ms = m.last_seen_ms.max(now_ms);
            m.revoked.clear();
        } else {
            if self.members.len() >= self.settings.max_members {
                return Err(CoordinatorError::TooManyMembers);
            }
            self.members.insert(
                Arc::from(member),
                Member {
                    session_timeout_ms: timeout,
                    last_seen_ms: now_ms,
                    owned: Vec::new(),
                    revoked: BTreeSet::new(),
                },
            );
            self.rebalance();
        }
        let m = self
            .members
            .get(member)
            .ok_or(CoordinatorError::UnknownMember)?;
        Ok(Assignment {
            generation: self.generation,
            partitions: m.owned.clone(),
        })
    }

    /// Keeps `member`'s session alive and tells it its current assignment and what it
    /// lost since its last heartbeat. `generation` is the latest one the member knows.
    pub fn heartbeat(
        &mut self,
        member: &str,
        generation: u32,
        now_ms: i64,
    ) -> Result<HeartbeatResult, CoordinatorError> {
        let current = self.generation;
        let m = self
            .members
            .get_mut(member)
            .ok_or(CoordinatorError::UnknownMember)?;
        if generation > current {
            return Err(CoordinatorError::StaleGeneration { current });
        }
        m.last_seen_ms = m.last_seen_ms.max(now_ms);
        Ok(HeartbeatResult {
            generation: current,
            partitions: m.owned.clone(),
            revoked: std::mem::take(&mut m.revoked).into_iter().collect(),
            rebalanced: generation < current,
        })
    }

    /// Removes `member` and rebalances its partitions to the others. False if it was not
    /// a member. `_now_ms` is accepted for symmetry with the other calls; a leave needs no
    /// time.
    pub fn leave(&mut self, member: &str, _now_ms: i64) -> bool {
        if self.members.remove(member).is_none() {
            return false;
        }
        self.rebalance();
        true
    }

    /// Removes every member silent for longer than its session timeout, in one rebalance,
    /// and returns their ids in id order. A heartbeat that arrives before this sweep keeps
    /// its member, so the node should sweep on a regular tick.
    pub fn expire(&mut self, now_ms: i64) -> Vec<String> {
        let expired: Vec<Arc<str>> = self
            .members
            .iter()
            .filter(|(_, m)| {
                let idle = now_ms.saturating_sub(m.last_seen_ms);
                u64::try_from(idle).is_ok_and(|idle| idle > m.session_timeout_ms)
            })
            .map(|(id, _)| Arc::clone(id))
            .collect();
        if expired.is_empty() {
            return Vec::new();
        }
        for id in &expired {
            self.members.remove(id);
        }
        self.rebalance();
        expired.iter().map(|id| id.to_string()).collect()
    }

    /// Whether `member` may fetch or commit `partition` using `generation`: it must own
    /// the partition and have seen the generation at which it got it. Otherwise a member
    /// behind the current generation gets `StaleGeneration` (heartbeat and retry) and one
    /// at the current generation gets `NotOwner`.
    pub fn check(
        &self,
        member: &str,
        generation: u32,
        partition: u32,
    ) -> Result<(), CoordinatorError> {
        if !self.members.contains_key(member) {
            return Err(CoordinatorError::UnknownMember);
        }
        let current = self.generation;
        if generation > current {
            return Err(CoordinatorError::StaleGeneration { current });
        }
        let slot = self.slot(partition);
        match slot {
            Some(s) if s.owner.as_deref() == Some(member) => {
                if s.assigned_at <= generation {
                    Ok(())
                } else {
                    Err(CoordinatorError::StaleGeneration { current })
                }
            }
            _ if generation < current => Err(CoordinatorError::StaleGeneration { current }),
            _ => Err(CoordinatorError::NotOwner { partition }),
        }
    }

    /// The member that owns `partition`, if any.
    pub fn owner(&self, partition: u32) -> Option<&str> {
        self.slot(partition)?.owner.as_deref()
    }

    /// Starts at 0 and goes up by one on every rebalance that changes any ownership.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Number of partitions of the destination.
    pub fn partitions(&self) -> u32 {
        // The slots were built from a u32 count and only grow to another u32 count.
        u32::try_from(self.slots.len()).unwrap_or(u32::MAX)
    }

    /// Members in id order.
    pub fn members(&self) -> impl Iterator<Item = MemberView<'_>> {
        self.members.iter().map(|(id, m)| MemberView {
            id,
            partitions: &m.owned,
            last_seen_ms: m.last_seen_ms,
            session_timeout_ms: m.session_timeout_ms,
        })
    }

    /// The destination now has `partitions` partitions; the new ones are spread over the
    /// members (moving old ones only as far as balance needs). Partition counts never
    /// shrink, so a smaller count is ignored.
    pub fn set_partitions(&mut self, partitions: u32) {
        if partitions <= self.partitions() {
            return;
        }
        self.slots.resize_with(partitions as usize, Slot::unowned);
        if !self.members.is_empty() {
            self.rebalance();
        }
    }

    /// How many times the assignment was recomputed (membership or partition-count
    /// changes), whether or not anything moved; for metrics.
    pub fn rebalances(&self) -> u64 {
        self.rebalances
    }

    fn slot(&self, partition: u32) -> Option<&Slot> {
        self.slots.get(usize::try_from(partition).ok()?)
    }

    /// Recomputes the assignment for the current members and applies the difference:
    /// moved partitions get the next generation and are recorded as revoked from their
    /// old owner if it is still a member.
    fn rebalance(&mut self) {
        self.rebalances += 1;
        let ids: Vec<Arc<str>> = self.members.keys().cloned().collect();
        let owners: Vec<Option<usize>> = self
            .slots
            .iter()
            .map(|s| s.owner.as_ref().and_then(|o| ids.binary_search(o).ok()))
            .collect();
        let target = assign::plan(&owners, ids.len());

        // Saturating: four billion rebalances are out of reach, and a stuck generation
        // still fences by ownership.
        let next = self.generation.saturating_add(1);
        let mut changed = false;
        for ((partition, slot), new) in (0u32..).zip(self.slots.iter_mut()).zip(target) {
            let new_owner = new.and_then(|m| ids.get(m)).cloned();
            if slot.owner == new_owner {
                continue;
            }
            changed = true;
            if let Some(old) = slot.owner.take()
                && let Some(m) = self.members.get_mut(&old)
            {
                m.revoked.insert(partition);
            }
            slot.owner = new_owner;
            slot.assigned_at = next;
        }
        if !changed {
            return;
        }
        self.generation = next;
        for m in self.members.values_mut() {
            m.owned.clear();
        }
        for (partition, slot) in (0u32..).zip(&self.slots) {
            if let Some(owner) = &slot.owner
                && let Some(m) = self.members.get_mut(owner)
            {
                m.owned.push(partition);
            }
        }
    }
}

impl Slot {
    fn unowned() -> Self {
        Slot {
            owner: None,
            assigned_at: 0,
        }
    }
}

#[cfg(test)]
mod tests;

//! A consumer group on one destination: its mode, its in-memory state (shared or
//! ordered), and the durable group log behind it.
//!
//! The mode is fixed when the group is created (explicitly by a join, or shared on
//! first use); an ordered group records it beside its log as `<destination>.mode`.

mod ordered;
mod shared;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use swarmmq_delivery::{GroupStore, PartitionDurable, SharedPartition, SharedSettings};
use swarmmq_protocol::GroupMode;
use swarmmq_types::{ErrorCode, PartitionId};

use crate::error::{RequestError, ServerError};
use crate::sync_gate::SyncGate;

pub(crate) use ordered::OrderedGroup;
pub(crate) use shared::SharedGroup;

/// Past this many bytes of group log the group writes a snapshot and starts over.
const SNAPSHOT_AFTER_BYTES: u64 = 4 * 1024 * 1024;

pub(crate) enum GroupState {
    Shared(SharedGroup),
    Ordered(OrderedGroup),
}

/// What a group needs from its destination and node at open.
pub(crate) struct GroupParams<'a> {
    pub groups_dir: &'a Path,
    pub name: &'a str,
    pub destination: &'a str,
    /// First stored offset of each partition.
    pub log_starts: Vec<u64>,
    pub mode: Option<GroupMode>,
    pub shared: SharedSettings,
    pub max_members: usize,
    pub max_session_ms: u64,
    pub fsync_acks: bool,
}

pub(crate) struct Group {
    pub name: String,
    pub destination: String,
    pub mode: GroupMode,
    pub state: GroupState,
    store: Mutex<GroupStore>,
    gate: SyncGate,
    fsync_acks: bool,
    snapshotting: AtomicBool,
    pub dlq_moved: AtomicU64,
    pub expired: AtomicU64,
}

fn lock_err() -> RequestError {
    RequestError::new(ErrorCode::Internal, "group lock poisoned")
}

fn mode_name(m: GroupMode) -> &'static str {
    match m {
        GroupMode::Shared => "shared",
        GroupMode::Ordered => "ordered",
    }
}

fn mode_path(groups_dir: &Path, name: &str, destination: &str) -> PathBuf {
    groups_dir.join(name).join(format!("{destination}.mode"))
}

/// The mode recorded for a group on disk, if the group exists.
pub(crate) fn stored_mode(groups_dir: &Path, name: &str, destination: &str) -> Option<GroupMode> {
    if let Ok(text) = std::fs::read_to_string(mode_path(groups_dir, name, destination)) {
        return match text.trim() {
            "ordered" => Some(GroupMode::Ordered),
            _ => Some(GroupMode::Shared),
        };
    }
    // A group log without a mode file belongs to a shared group.
    let dir = groups_dir.join(name);
    ["acks", "snap"]
        .iter()
        .any(|ext| dir.join(format!("{destination}.{ext}")).exists())
        .then_some(GroupMode::Shared)
}

impl Group {
    pub fn open(p: GroupParams<'_>) -> Result<Group, ServerError> {
        let dir = p.groups_dir.join(p.name);
        std::fs::create_dir_all(&dir).map_err(ServerError::io(&dir))?;
        let existing = stored_mode(p.groups_dir, p.name, p.destination);
        let mode = match (existing, p.mode) {
            (Some(m), Some(wanted)) if m != wanted => {
                return Err(ServerError::DataDir {
                    path: dir,
                    reason: format!(
                        "group {:?} on {:?} is {}; it cannot be used as {}",
                        p.name,
                        p.destination,
                        mode_name(m),
                        mode_name(wanted)
                    ),
                });
            }
            (Some(m), _) => m,
            (None, wanted) => {
                let m = wanted.unwrap_or_default();
                // Shared is what a group without a mode file is, so only ordered groups
                // write one (and a shared group can start even on a full disk).
                if m == GroupMode::Ordered {
                    let path = mode_path(p.groups_dir, p.name, p.destination);
                    std::fs::write(&path, mode_name(m)).map_err(ServerError::io(&path))?;
                }
                m
            }
        };
        let (store, durable) = GroupStore::open(&dir, p.destination)?;
        let find = |part: usize| durable.iter().find(|d| d.partition as usize == part);
        let state = match mode {
            GroupMode::Shared => {
                let parts = p
                    .log_starts
                    .iter()
                    .enumerate()
                    .map(|(i, start)| {
                        let mut st = match find(i) {
                            Some(d) => SharedPartition::restore(d, &p.shared),
                            None => SharedPartition::new(*start),
                        };
                        st.skip_below(*start);
                        st
                    })
                    .collect();
                GroupState::Shared(SharedGroup::new(parts, p.shared))
            }
            GroupMode::Ordered => {
                let committed = p
                    .log_starts
                    .iter()
                    .enumerate()
                    .map(|(i, start)| {
                        find(i)
                            .and_then(|d| d.committed)
                            .unwrap_or(*start)
                            .max(*start)
                    })
                    .collect();
                GroupState::Ordered(OrderedGroup::new(
                    committed,
                    p.max_members,
                    p.max_session_ms,
                ))
            }
        };
        let gate = SyncGate::start(store.syncer()?);
        Ok(Group {
            name: p.name.to_string(),
            destination: p.destination.to_string(),
            mode,
            state,
            store: Mutex::new(store),
            gate,
            fsync_acks: p.fsync_acks,
            snapshotting: AtomicBool::new(false),
            dlq_moved: AtomicU64::new(0),
            expired: AtomicU64::new(0),
        })
    }

    pub fn shared(&self) -> Result<&SharedGroup, RequestError> {
        match &self.state {
            GroupState::Shared(s) => Ok(s),
            GroupState::Ordered(_) => Err(RequestError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "group {:?} on {:?} is ordered: it commits offsets instead (this operation is for shared groups)",
                    self.name, self.destination
                ),
            )),
        }
    }

    pub fn ordered(&self) -> Result<&OrderedGroup, RequestError> {
        match &self.state {
            GroupState::Ordered(o) => Ok(o),
            GroupState::Shared(_) => Err(RequestError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "group {:?} on {:?} is shared: it acknowledges messages (this operation is for ordered groups)",
                    self.name, self.destination
                ),
            )),
        }
    }

    /// Writes durable records with `f` (memory was updated first, so a snapshot taken in
    /// between already holds them) and snapshots in the background past the bound.
    fn log(
        self: &Arc<Self>,
        f: impl FnOnce(&mut GroupStore) -> Result<(), swarmmq_delivery::DeliveryError>,
    ) -> Result<(), RequestError> {
        let log_bytes = {
            let mut store = self.store.lock().map_err(|_| lock_err())?;
            f(&mut store)?;
            store.log_bytes()
        };
        if log_bytes > SNAPSHOT_AFTER_BYTES {
            self.snapshot_in_background();
        }
        Ok(())
    }

    pub fn log_acks(
        self: &Arc<Self>,
        ranges: &[(PartitionId, u64, u64)],
    ) -> Result<(), RequestError> {
        if ranges.is_empty() {
            return Ok(());
        }
        self.log(|s| s.append_acks(ranges))
    }

    pub fn log_settled(
        self: &Arc<Self>,
        ranges: &[(PartitionId, u64, u64)],
    ) -> Result<(), RequestError> {
        if ranges.is_empty() {
            return Ok(());
        }
        self.log(|s| s.append_settled(ranges))
    }

    pub fn log_attempts(
        self: &Arc<Self>,
        grants: &[(PartitionId, u64, u64, u32)],
    ) -> Result<(), RequestError> {
        if grants.is_empty() {
            return Ok(());
        }
        self.log(|s| s.append_attempts(grants))
    }

    pub fn log_committed(
        self: &Arc<Self>,
        commits: &[(PartitionId, u64)],
    ) -> Result<(), RequestError> {
        if commits.is_empty() {
            return Ok(());
        }
        self.log(|s| s.append_committed(commits))
    }

    /// Waits until what was logged is durable, when the fsync policy asks for it.
    pub async fn durable(&self) -> Result<(), RequestError> {
        if self.fsync_acks {
            self.gate.sync().await?;
        }
        Ok(())
    }

    /// Makes the group log durable regardless of policy (shutdown).
    pub async fn flush(&self) -> Result<(), RequestError> {
        self.gate.sync().await
    }

    /// Replaces the whole durable state at once (a seek in a shared group).
    pub fn rewrite(&self, parts: &[PartitionDurable]) -> Result<(), RequestError> {
        let mut store = self.store.lock().map_err(|_| lock_err())?;
        store.write_snapshot(parts)?;
        Ok(())
    }

    fn snapshot_in_background(self: &Arc<Self>) {
        if self.snapshotting.swap(true, Ordering::AcqRel) {
            return;
        }
        let group = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = group.snapshot() {
                tracing::warn!(group = %group.name, destination = %group.destination, error = %e.message, "group log snapshot failed");
            }
            group.snapshotting.store(false, Ordering::Release);
        });
    }

    /// The store lock is held throughout, so no record can land in the log between
    /// reading the state and emptying the log.
    fn snapshot(&self) -> Result<(), RequestError> {
        let mut store = self.store.lock().map_err(|_| lock_err())?;
        let parts = self.durable_state()?;
        store.write_snapshot(&parts)?;
        Ok(())
    }

    pub fn durable_state(&self) -> Result<Vec<PartitionDurable>, RequestError> {
        match &self.state {
            GroupState::Shared(s) => (0..s.len())
                .map(|p| {
                    let st = s
                        .partition(p as PartitionId)?
                        .lock()
                        .map_err(|_| lock_err())?;
                    Ok(st.durable(p as PartitionId))
                })
                .collect(),
            GroupState::Ordered(o) => (0..o.partitions())
                .map(|p| {
                    let pos = o
                        .position(p as PartitionId)?
                        .lock()
                        .map_err(|_| lock_err())?;
                    Ok(PartitionDurable {
                        partition: p as PartitionId,
                        floor: 0,
                        acked: Default::default(),
                        attempts: Default::default(),
                        committed: Some(pos.committed),
                    })
                })
                .collect(),
        }
    }
}

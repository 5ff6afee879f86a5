//! A consumer group on one destination: per-partition lease state in memory and the
//! durable ack log behind it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use swarmmq_delivery::{Grant, GroupStore, LeaseSettings, PartitionAcks, PartitionState, RangeSet};
use swarmmq_protocol::OffsetRange;
use swarmmq_types::{ErrorCode, PartitionId};

use crate::error::{RequestError, ServerError};
use crate::sync_gate::SyncGate;

/// Past this many bytes of ack log the group writes a snapshot and starts the log over.
const SNAPSHOT_AFTER_BYTES: u64 = 4 * 1024 * 1024;

pub(crate) struct Group {
    pub name: String,
    pub destination: String,
    partitions: Vec<Mutex<PartitionState>>,
    store: Mutex<GroupStore>,
    gate: SyncGate,
    settings: LeaseSettings,
    /// Where the next pull starts scanning partitions, for fairness.
    next_partition: AtomicUsize,
    fsync_acks: bool,
    snapshotting: AtomicBool,
}

fn lock_err() -> RequestError {
    RequestError::new(ErrorCode::Internal, "group state lock poisoned")
}

impl Group {
    /// Opens the group's ack log and rebuilds its state. `log_starts[p]` is partition
    /// p's first stored offset (retention may have moved it past old acks).
    pub fn open(
        groups_dir: &Path,
        name: &str,
        destination: &str,
        log_starts: &[u64],
        settings: LeaseSettings,
        fsync_acks: bool,
    ) -> Result<Group, ServerError> {
        let dir: PathBuf = groups_dir.join(name);
        let (store, restored) = GroupStore::open(&dir, destination)?;
        let mut partitions: Vec<PartitionState> =
            log_starts.iter().map(|s| PartitionState::new(*s)).collect();
        for r in restored {
            if let Some(slot) = partitions.get_mut(r.partition as usize) {
                *slot = PartitionState::restore(r.floor, &r.acked);
            }
        }
        for (state, start) in partitions.iter_mut().zip(log_starts) {
            state.skip_below(*start);
        }
        let gate = SyncGate::start(store.syncer()?);
        Ok(Group {
            name: name.to_string(),
            destination: destination.to_string(),
            partitions: partitions.into_iter().map(Mutex::new).collect(),
            store: Mutex::new(store),
            gate,
            settings,
            next_partition: AtomicUsize::new(0),
            fsync_acks,
            snapshotting: AtomicBool::new(false),
        })
    }

    /// The partition a pull should look at first; rotates so no partition starves.
    pub fn first_partition(&self) -> usize {
        let n = self.partitions.len().max(1);
        self.next_partition.fetch_add(1, Ordering::Relaxed) % n
    }

    fn state(&self, partition: PartitionId) -> Result<&Mutex<PartitionState>, RequestError> {
        self.partitions.get(partition as usize).ok_or_else(|| {
            RequestError::new(
                ErrorCode::UnknownPartition,
                format!(
                    "partition {partition} does not exist in {:?}",
                    self.destination
                ),
            )
        })
    }

    pub fn poll(
        &self,
        partition: PartitionId,
        now_ms: i64,
        max_messages: u64,
        visible_end: u64,
        log_start: u64,
    ) -> Result<Vec<Grant>, RequestError> {
        let mut st = self.state(partition)?.lock().map_err(|_| lock_err())?;
        st.skip_below(log_start);
        Ok(st.poll(now_ms, max_messages, visible_end, &self.settings))
    }

    pub fn release(&self, partition: PartitionId, start: u64, end: u64) {
        if let Ok(m) = self.state(partition)
            && let Ok(mut st) = m.lock()
        {
            st.release(start, end);
        }
    }

    pub fn next_due_ms(&self) -> Option<i64> {
        self.partitions
            .iter()
            .filter_map(|m| m.lock().ok().and_then(|st| st.next_due_ms()))
            .min()
    }

    /// Records acknowledgements: memory first, then the ack log (so a snapshot taken in
    /// between already holds them), then waits for the fsync when the policy asks.
    pub async fn ack(
        self: &Arc<Self>,
        ranges: &[OffsetRange],
        wait_durable: bool,
    ) -> Result<u64, RequestError> {
        // Check every range first so a bad one cannot leave earlier ones acked in memory
        // but not in the log.
        for r in ranges {
            self.state(r.partition)?;
        }
        let mut count = 0;
        let mut durable = Vec::with_capacity(ranges.len());
        for r in ranges {
            let newly = self
                .state(r.partition)?
                .lock()
                .map_err(|_| lock_err())?
                .ack(r.start, r.end);
            if newly > 0 {
                count += newly;
                durable.push((r.partition, r.start, r.end));
            }
        }
        if durable.is_empty() {
            return Ok(0);
        }
        let log_bytes = {
            let mut store = self.store.lock().map_err(|_| lock_err())?;
            store.append_acks(&durable)?;
            store.log_bytes()
        };
        if log_bytes > SNAPSHOT_AFTER_BYTES {
            self.snapshot_in_background();
        }
        if wait_durable && self.fsync_acks {
            self.gate.sync().await?;
        }
        Ok(count)
    }

    pub fn nack(
        &self,
        ranges: &[OffsetRange],
        now_ms: i64,
        delay_ms: u64,
    ) -> Result<u64, RequestError> {
        let mut count = 0;
        for r in ranges {
            count += self
                .state(r.partition)?
                .lock()
                .map_err(|_| lock_err())?
                .nack(r.start, r.end, now_ms, delay_ms);
        }
        Ok(count)
    }

    fn snapshot_in_background(self: &Arc<Self>) {
        if self.snapshotting.swap(true, Ordering::AcqRel) {
            return;
        }
        let group = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = group.snapshot() {
                tracing::warn!(group = %group.name, destination = %group.destination, error = %e.message, "ack log snapshot failed");
            }
            group.snapshotting.store(false, Ordering::Release);
        });
    }

    /// Writes the whole state as a snapshot; the store lock is held throughout so no ack
    /// can land in the log between reading the state and emptying the log.
    fn snapshot(&self) -> Result<(), RequestError> {
        let mut store = self.store.lock().map_err(|_| lock_err())?;
        let mut parts = Vec::with_capacity(self.partitions.len());
        for (p, m) in self.partitions.iter().enumerate() {
            let st = m.lock().map_err(|_| lock_err())?;
            let mut acked = RangeSet::new();
            for (s, e) in st.acked_ranges() {
                acked.insert(s, e, ());
            }
            parts.push(PartitionAcks {
                partition: p as PartitionId,
                floor: st.floor(),
                acked,
            });
        }
        store.write_snapshot(&parts)?;
        Ok(())
    }

    /// Makes the ack log durable (shutdown).
    pub async fn flush(&self) -> Result<(), RequestError> {
        self.gate.sync().await
    }
}

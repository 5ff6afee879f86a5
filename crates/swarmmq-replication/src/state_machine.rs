//! [`PartitionStateMachine`]: the partition's state is its log, so the state machine
//! only tracks the commit point: the last applied (= committed) entry and the partition
//! offset after it, published through a [`CommitWatch`]. That end offset is the
//! consumer-visibility contract: readers pass it as `upto`, so nothing a new leader could
//! still truncate is ever served.
//!
//! The state is in memory. After a restart openraft re-applies the committed entries
//! above the last snapshot (the log store keeps the committed id), which rebuilds it.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::{Stream, StreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{OptionalSend, RaftSnapshotBuilder, StoredMembership};
use serde::{Deserialize, Serialize};
use swarmmq_storage::LogReader;
use tokio::sync::watch;

use crate::types::{AppendReply, PartitionEntry, PartitionTypes};

/// The commit point of a partition as this replica knows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitPoint {
    /// Last applied (committed) Raft log index; `None` before anything is applied.
    pub index: Option<u64>,
    /// Partition offset after the last committed batch: consumers may read below it.
    pub end_offset: u64,
}

/// A receiver of the commit point; cheap to clone, one per consumer-facing task.
#[derive(Clone, Debug)]
pub struct CommitWatch {
    rx: watch::Receiver<CommitPoint>,
}

impl CommitWatch {
    /// The commit point now.
    pub fn current(&self) -> CommitPoint {
        *self.rx.borrow()
    }

    /// Waits until the committed end offset reaches `offset`; returns the commit point
    /// that did, or `None` if the state machine is gone.
    pub async fn wait_for_offset(&mut self, offset: u64) -> Option<CommitPoint> {
        self.rx
            .wait_for(|c| c.end_offset >= offset)
            .await
            .ok()
            .map(|c| *c)
    }

    /// Waits for the next change; `None` if the state machine is gone.
    pub async fn changed(&mut self) -> Option<CommitPoint> {
        self.rx.changed().await.ok()?;
        Some(*self.rx.borrow_and_update())
    }
}

/// The snapshot of a partition's state machine: only the commit point. The data is the
/// partition log itself, which a snapshot does not carry (see ADR 0009).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSnapshot {
    pub end_offset: u64,
}

/// openraft's [`RaftStateMachine`] for a partition group.
pub struct PartitionStateMachine<C: PartitionTypes> {
    shared: Arc<Shared<C>>,
}

/// Builds a snapshot of the commit point as it was when openraft asked.
pub struct PartitionSnapshotBuilder<C: PartitionTypes> {
    shared: Arc<Shared<C>>,
    meta: SnapshotMetaOf<C>,
    state: PartitionSnapshot,
}

struct Shared<C: PartitionTypes> {
    data: Mutex<Data<C>>,
    tx: watch::Sender<CommitPoint>,
    /// To refuse a snapshot whose data this replica's log does not hold.
    reader: LogReader,
}

struct Data<C: PartitionTypes> {
    last_applied: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
    end_offset: u64,
    snapshot: Option<(SnapshotMetaOf<C>, PartitionSnapshot)>,
}

impl<C: PartitionTypes> PartitionStateMachine<C> {
    /// A state machine over the partition log `reader` reads, starting from nothing
    /// applied (offset `reader.start_offset()`).
    pub fn new(reader: LogReader) -> Self {
        let start = CommitPoint {
            index: None,
            end_offset: reader.start_offset(),
        };
        let (tx, _) = watch::channel(start);
        PartitionStateMachine {
            shared: Arc::new(Shared {
                data: Mutex::new(Data {
                    last_applied: None,
                    membership: StoredMembership::default(),
                    end_offset: start.end_offset,
                    snapshot: None,
                }),
                tx,
                reader,
            }),
        }
    }

    /// A watch of the commit point; it outlives this value (openraft owns the machine).
    pub fn commit_watch(&self) -> CommitWatch {
        CommitWatch {
            rx: self.shared.tx.subscribe(),
        }
    }
}

impl<C: PartitionTypes> Shared<C> {
    fn lock(&self) -> io::Result<MutexGuard<'_, Data<C>>> {
        self.data
            .lock()
            .map_err(|_| io::Error::other("partition state lock poisoned"))
    }
}

impl<C: PartitionTypes> RaftSnapshotBuilder<C> for PartitionSnapshotBuilder<C> {
    type SnapshotData = PartitionSnapshot;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, PartitionSnapshot>, io::Error> {
        let mut data = self.shared.lock()?;
        let newer = data
            .snapshot
            .as_ref()
            .is_some_and(|(m, _)| m.last_log_id > self.meta.last_log_id);
        if !newer {
            data.snapshot = Some((self.meta.clone(), self.state.clone()));
        }
        Ok(openraft::Snapshot {
            meta: self.meta.clone(),
            snapshot: self.state.clone(),
        })
    }
}

impl<C: PartitionTypes> RaftStateMachine<C> for PartitionStateMachine<C> {
    type SnapshotData = PartitionSnapshot;
    type SnapshotBuilder = PartitionSnapshotBuilder<C>;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        let data = self.shared.lock()?;
        Ok((data.last_applied, data.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        let mut point = None;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let log_id = entry.log_id();
            let mut data = self.shared.lock()?;
            let base = data.end_offset;
            if let Some(batch) = entry.batch() {
                // Entries reach the state machine from the log, so they are stamped.
                let h = batch.header().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "applied entry is no batch")
                })?;
                if h.base_offset != base && data.last_applied.is_some() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "entry {} holds offsets {}.., the commit point is at {base}",
                            log_id.index, h.base_offset
                        ),
                    ));
                }
                data.end_offset = h.next_offset();
            } else if let Some(m) = entry.get_membership() {
                data.membership = StoredMembership::new(Some(log_id), m);
            }
            let reply = AppendReply {
                index: log_id.index,
                base_offset: if entry.batch().is_some() {
                    base
                } else {
                    data.end_offset
                },
                next_offset: data.end_offset,
            };
            point = Some(CommitPoint {
                index: Some(log_id.index),
                end_offset: data.end_offset,
            });
            data.last_applied = Some(log_id);
            drop(data);
            if let Some(r) = responder {
                r.send(reply);
            }
        }
        if let Some(p) = point {
            self.shared.tx.send_replace(p);
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<Self::SnapshotBuilder> {
        // Policy snapshots would only let openraft purge entries a lagging replica then
        // could not get (a snapshot carries no partition data yet); build one only when
        // openraft must have it.
        if !force {
            return None;
        }
        Some(self.get_snapshot_builder().await)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Infallible by signature; a poisoned lock only follows a panic elsewhere.
        let data = match self.shared.data.lock() {
            Ok(d) => d,
            Err(p) => p.into_inner(),
        };
        PartitionSnapshotBuilder {
            shared: self.shared.clone(),
            meta: openraft::SnapshotMeta {
                last_log_id: data.last_applied,
                last_membership: data.membership.clone(),
            },
            state: PartitionSnapshot {
                end_offset: data.end_offset,
            },
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: PartitionSnapshot,
    ) -> Result<(), io::Error> {
        let held = self.shared.reader.next_offset();
        if held < snapshot.end_offset {
            // Installing would claim data this replica does not have.
            return Err(io::Error::other(format!(
                "snapshot up to offset {} needs partition data transfer (log ends at {held})",
                snapshot.end_offset
            )));
        }
        let point = {
            let mut data = self.shared.lock()?;
            data.last_applied = meta.last_log_id;
            data.membership = meta.last_membership.clone();
            data.end_offset = snapshot.end_offset;
            data.snapshot = Some((meta.clone(), snapshot));
            CommitPoint {
                index: data.last_applied.as_ref().map(|id| id.index),
                end_offset: data.end_offset,
            }
        };
        self.shared.tx.send_replace(point);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<C, PartitionSnapshot>>, io::Error> {
        let data = self.shared.lock()?;
        Ok(data.snapshot.as_ref().map(|(meta, s)| openraft::Snapshot {
            meta: meta.clone(),
            snapshot: s.clone(),
        }))
    }
}

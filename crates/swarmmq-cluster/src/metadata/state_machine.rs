//! openraft's state machine for the metadata: applies entries to a [`ClusterState`],
//! publishes every applied change and keeps the snapshot on disk.
//!
//! The state itself lives in memory; durability comes from the snapshot file plus the log
//! (openraft re-applies committed entries above the snapshot after a restart, which is why
//! the log store persists the committed id).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::{Stream, StreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, RaftTypeConfig, StoredMembership};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::durable::{read_bounded, write_atomic};
use super::records::{MetaCommand, MetaReply};
use super::state::ClusterState;

/// Largest snapshot file read on open.
pub const MAX_SNAPSHOT_BYTES: u64 = 256 * 1024 * 1024;
const SNAPSHOT_FILE: &str = "snapshot.json";

/// Gives the state machine the command inside a log entry, whatever the entry type.
pub trait MetaEntry {
    /// The application command, `None` for blank and membership entries.
    fn command(&self) -> Option<&MetaCommand>;
}

impl<CLID, NID, N> MetaEntry for openraft::Entry<CLID, EntryPayload<MetaCommand, NID, N>>
where
    CLID: openraft::vote::RaftCommittedLeaderId,
    NID: openraft::NodeId,
    N: openraft::Node,
{
    fn command(&self) -> Option<&MetaCommand> {
        match &self.payload {
            EntryPayload::Normal(cmd) => Some(cmd),
            _ => None,
        }
    }
}

/// The metadata group's [`RaftStateMachine`].
pub struct StateMachineStore<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

/// Builds a snapshot from a copy taken when openraft asked for the builder.
pub struct SnapshotBuilder<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
    meta: SnapshotMetaOf<C>,
    state: Arc<ClusterState>,
}

struct Shared<C: RaftTypeConfig> {
    dir: PathBuf,
    data: Mutex<Data<C>>,
    tx: watch::Sender<Arc<ClusterState>>,
}

struct Data<C: RaftTypeConfig> {
    state: Arc<ClusterState>,
    last_applied: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
    snapshot: Option<(SnapshotMetaOf<C>, Arc<ClusterState>)>,
}

/// `snapshot.json`; the meta stays a JSON value here because its type is generic.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: serde_json::Value,
    state: ClusterState,
}

impl<C: RaftTypeConfig> StateMachineStore<C> {
    /// Opens the state machine in `dir`, starting from the last snapshot if there is one.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(SNAPSHOT_FILE);
        let (state, last_applied, membership, snapshot) =
            match read_bounded(&path, MAX_SNAPSHOT_BYTES)? {
                None => (
                    Arc::new(ClusterState::default()),
                    None,
                    StoredMembership::default(),
                    None,
                ),
                Some(bytes) => {
                    // A snapshot is only ever replaced by rename, so a bad one is damage,
                    // not a torn write: refuse rather than silently forget metadata.
                    let bad = |e: serde_json::Error| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{}: {e}", path.display()),
                        )
                    };
                    let file: SnapshotFile = serde_json::from_slice(&bytes).map_err(bad)?;
                    let meta: SnapshotMetaOf<C> = serde_json::from_value(file.meta).map_err(bad)?;
                    let state = Arc::new(file.state);
                    (
                        state.clone(),
                        meta.last_log_id.clone(),
                        meta.last_membership.clone(),
                        Some((meta, state)),
                    )
                }
            };
        let (tx, _) = watch::channel(state.clone());
        Ok(StateMachineStore {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                data: Mutex::new(Data {
                    state,
                    last_applied,
                    membership,
                    snapshot,
                }),
                tx,
            }),
        })
    }

    /// The sender side, for a handle that outlives this store (openraft owns the store).
    pub(crate) fn watch(&self) -> watch::Sender<Arc<ClusterState>> {
        self.shared.tx.clone()
    }
}

impl<C: RaftTypeConfig> Shared<C> {
    fn lock(&self) -> io::Result<MutexGuard<'_, Data<C>>> {
        self.data
            .lock()
            .map_err(|_| io::Error::other("metadata state lock poisoned"))
    }

    fn save_snapshot(&self, meta: &SnapshotMetaOf<C>, state: &ClusterState) -> io::Result<()> {
        let invalid = |e| io::Error::new(io::ErrorKind::InvalidData, e);
        let file = SnapshotFile {
            meta: serde_json::to_value(meta).map_err(invalid)?,
            state: state.clone(),
        };
        let bytes = serde_json::to_vec(&file).map_err(invalid)?;
        write_atomic(&self.dir.join(SNAPSHOT_FILE), &bytes)
    }
}

impl<C: RaftTypeConfig> RaftSnapshotBuilder<C> for SnapshotBuilder<C> {
    type SnapshotData = ClusterState;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, ClusterState>, io::Error> {
        self.shared.save_snapshot(&self.meta, &self.state)?;
        let mut data = self.shared.lock()?;
        // An installed snapshot may have overtaken this build; keep the newer one current.
        let newer = data
            .snapshot
            .as_ref()
            .is_some_and(|(m, _)| m.last_log_id > self.meta.last_log_id);
        if newer {
            if let Some((m, s)) = &data.snapshot {
                self.shared.save_snapshot(m, s)?;
            }
        } else {
            data.snapshot = Some((self.meta.clone(), self.state.clone()));
        }
        Ok(openraft::Snapshot {
            meta: self.meta.clone(),
            snapshot: (*self.state).clone(),
        })
    }
}

impl<C> RaftStateMachine<C> for StateMachineStore<C>
where
    C: RaftTypeConfig<D = MetaCommand, R = MetaReply>,
    C::Entry: MetaEntry,
{
    type SnapshotData = ClusterState;
    type SnapshotBuilder = SnapshotBuilder<C>;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        let data = self.shared.lock()?;
        Ok((data.last_applied.clone(), data.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        let mut changed = false;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let log_id = entry.log_id();
            let mut data = self.shared.lock()?;
            let reply = match entry.command() {
                Some(cmd) => Arc::make_mut(&mut data.state).apply(cmd),
                None => {
                    if let Some(m) = entry.get_membership() {
                        data.membership = StoredMembership::new(Some(log_id.clone()), m);
                    }
                    MetaReply::Done
                }
            };
            Arc::make_mut(&mut data.state).last_applied = log_id.index();
            data.last_applied = Some(log_id);
            drop(data);
            changed = true;
            if let Some(r) = responder {
                r.send(reply);
            }
        }
        if changed {
            let state = self.shared.lock()?.state.clone();
            self.shared.tx.send_replace(state);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Infallible by signature; a poisoned lock only happens after a panic elsewhere, and
        // then the snapshot simply reflects the data as it was left.
        let data = match self.shared.data.lock() {
            Ok(d) => d,
            Err(p) => p.into_inner(),
        };
        let meta = openraft::SnapshotMeta {
            last_log_id: data.last_applied.clone(),
            last_membership: data.membership.clone(),
        };
        SnapshotBuilder {
            shared: self.shared.clone(),
            meta,
            state: data.state.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: ClusterState,
    ) -> Result<(), io::Error> {
        self.shared.save_snapshot(meta, &snapshot)?;
        let state = Arc::new(snapshot);
        {
            let mut data = self.shared.lock()?;
            data.state = state.clone();
            data.last_applied = meta.last_log_id.clone();
            data.membership = meta.last_membership.clone();
            data.snapshot = Some((meta.clone(), state.clone()));
        }
        self.shared.tx.send_replace(state);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<C, ClusterState>>, io::Error> {
        let data = self.shared.lock()?;
        Ok(data
            .snapshot
            .as_ref()
            .map(|(meta, state)| openraft::Snapshot {
                meta: meta.clone(),
                snapshot: (**state).clone(),
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::log_store::LogStore;
    use openraft::StorageError;
    use openraft::testing::log::{StoreBuilder, Suite};

    // The conformance suite wants numeric node ids; the stores are generic for this.
    openraft::declare_raft_types!(
        SuiteCfg: D = MetaCommand, R = MetaReply
    );

    struct DirBuilder;

    impl StoreBuilder<SuiteCfg, LogStore<SuiteCfg>, StateMachineStore<SuiteCfg>, tempfile::TempDir>
        for DirBuilder
    {
        async fn build(
            &self,
        ) -> Result<
            (
                tempfile::TempDir,
                LogStore<SuiteCfg>,
                StateMachineStore<SuiteCfg>,
            ),
            StorageError<SuiteCfg>,
        > {
            let dir = tempfile::tempdir().unwrap();
            let log = LogStore::open(dir.path()).unwrap();
            let sm = StateMachineStore::open(dir.path()).unwrap();
            Ok((dir, log, sm))
        }
    }

    #[tokio::test]
    async fn openraft_storage_conformance_suite_passes() {
        Suite::test_all(DirBuilder).await.unwrap();
    }

    type E = <SuiteCfg as RaftTypeConfig>::Entry;

    fn log_id(term: u64, index: u64) -> LogIdOf<SuiteCfg> {
        use openraft::vote::RaftLeaderId;
        openraft::LogId::new(
            openraft::impls::leader_id_adv::LeaderId::new(term, 1),
            index,
        )
    }

    fn dest(name: &str) -> crate::metadata::DestinationMeta {
        crate::metadata::DestinationMeta {
            name: name.to_string(),
            spec: serde_json::json!({"kind": "stream"}),
            partitions: vec![],
        }
    }

    async fn apply_all(sm: &mut StateMachineStore<SuiteCfg>, entries: Vec<E>) {
        let items: Vec<Result<EntryResponder<SuiteCfg>, io::Error>> =
            entries.into_iter().map(|e| Ok((e, None))).collect();
        sm.apply(futures_util::stream::iter(items)).await.unwrap();
    }

    #[tokio::test]
    async fn applies_publishes_and_snapshots_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachineStore::<SuiteCfg>::open(dir.path()).unwrap();
        let mut rx = sm.watch().subscribe();
        apply_all(
            &mut sm,
            vec![
                E::new_normal(log_id(1, 1), MetaCommand::CreateDestination(dest("a"))),
                E::new_blank(log_id(1, 2)),
            ],
        )
        .await;
        assert!(rx.has_changed().unwrap());
        let seen = rx.borrow_and_update().clone();
        assert!(seen.destinations.contains_key("a"));
        assert_eq!(seen.last_applied, 2);

        // Without a snapshot a reopened state machine starts empty (the log replays it).
        drop(sm);
        let mut sm = StateMachineStore::<SuiteCfg>::open(dir.path()).unwrap();
        assert_eq!(sm.applied_state().await.unwrap().0, None);
        apply_all(
            &mut sm,
            vec![
                E::new_normal(log_id(1, 1), MetaCommand::CreateDestination(dest("a"))),
                E::new_blank(log_id(1, 2)),
            ],
        )
        .await;
        let built = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(built.meta.last_log_id, Some(log_id(1, 2)));
        assert_eq!(built.snapshot.destinations.len(), 1);

        drop(sm);
        let mut sm = StateMachineStore::<SuiteCfg>::open(dir.path()).unwrap();
        assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 2)));
        assert_eq!(*sm.watch().borrow().as_ref(), built.snapshot);
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built.meta);

        // An installed snapshot replaces state and snapshot, durably.
        let mut other = ClusterState::default();
        other.apply(&MetaCommand::CreateDestination(dest("b")));
        other.last_applied = 10;
        let meta = openraft::SnapshotMeta {
            last_log_id: Some(log_id(2, 10)),
            last_membership: StoredMembership::default(),
        };
        sm.install_snapshot(&meta, other.clone()).await.unwrap();
        assert_eq!(*sm.watch().borrow().as_ref(), other);
        drop(sm);
        let mut sm = StateMachineStore::<SuiteCfg>::open(dir.path()).unwrap();
        assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(2, 10)));
        assert_eq!(*sm.watch().borrow().as_ref(), other);
    }

    #[test]
    fn damaged_snapshot_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SNAPSHOT_FILE), b"{\"meta\": 1").unwrap();
        assert!(StateMachineStore::<SuiteCfg>::open(dir.path()).is_err());
    }
}

//! openraft's storage conformance suite against the partition log store, on real files.

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use swarmmq_replication::{AppendReply, BatchData, PartitionLogStore, PartitionStateMachine};
use swarmmq_storage::{LogConfig, PartitionLog};

// The suite builds node ids from numbers; the store is generic for exactly this.
openraft::declare_raft_types!(
    SuiteCfg:
        D = BatchData,
        R = AppendReply,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

struct DirBuilder;

impl
    StoreBuilder<
        SuiteCfg,
        PartitionLogStore<SuiteCfg>,
        PartitionStateMachine<SuiteCfg>,
        tempfile::TempDir,
    > for DirBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (
            tempfile::TempDir,
            PartitionLogStore<SuiteCfg>,
            PartitionStateMachine<SuiteCfg>,
        ),
        StorageError<SuiteCfg>,
    > {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = PartitionLog::open(&dir.path().join("log"), LogConfig::default()).unwrap();
        let sm = PartitionStateMachine::new(log.reader());
        let (store, _) = PartitionLogStore::open(log, &dir.path().join("raft")).unwrap();
        Ok((dir, store, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_conformance_suite_passes() {
    Suite::test_all(DirBuilder).await.unwrap();
}

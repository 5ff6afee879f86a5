//! A destination (topic): its settings, its partitions and writer tasks, and the
//! consumer groups reading it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarmmq_protocol::{DestinationConfig, DestinationInfo, PartitionInfo};
use swarmmq_storage::{FsyncPolicy, LogConfig, PartitionLog};
use swarmmq_types::{ErrorCode, PartitionId};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::dedup::DedupIndex;
use crate::error::{RequestError, ServerError};
use crate::group::Group;
use crate::metrics::Metrics;
use crate::partition::{DiskBudget, Partition, WriterCommand};
use crate::writer::{self, WriterContext};

/// A destination's settings with every default filled in; stored as
/// `destination.json` in its directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DestinationSpec {
    pub partitions: u32,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub max_message_bytes: u32,
    pub ack_timeout_ms: u64,
    pub max_delivery_attempts: u32,
    pub dedup_window_ms: u64,
    pub dlq_enabled: bool,
    pub default_ttl_ms: Option<u64>,
    /// Expired messages go to the DLQ instead of being dropped.
    #[serde(default)]
    pub expired_to_dlq: bool,
    /// A waiting message gains one priority level per this many ms (0: no aging).
    #[serde(default = "default_aging_ms")]
    pub priority_aging_ms: u64,
}

fn default_aging_ms() -> u64 {
    10_000
}

impl DestinationSpec {
    pub fn to_config(&self) -> DestinationConfig {
        DestinationConfig {
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            max_message_bytes: Some(self.max_message_bytes),
            ack_timeout_ms: Some(self.ack_timeout_ms),
            max_delivery_attempts: Some(self.max_delivery_attempts),
            dedup_window_ms: Some(self.dedup_window_ms),
            dlq_enabled: Some(self.dlq_enabled),
            default_ttl_ms: self.default_ttl_ms,
            expired_to_dlq: Some(self.expired_to_dlq),
            priority_aging_ms: Some(self.priority_aging_ms),
        }
    }
}

/// Node-wide values every destination's partitions share.
pub(crate) struct PartitionEnv {
    pub fsync: FsyncPolicy,
    pub segment_bytes: u64,
    pub segment_age: Duration,
    pub max_batch_bytes: u32,
    pub budget: Arc<DiskBudget>,
    pub metrics: Arc<Metrics>,
    pub queue_depth: usize,
    /// Most message ids one destination remembers for publish dedup.
    pub dedup_max_entries: usize,
    /// Node-wide memory for the partitions' tail caches (recent batches served to
    /// consumers without touching the disk).
    pub read_cache_bytes: u64,
    /// Partitions open on the node, to share `read_cache_bytes` between them.
    pub open_partitions: std::sync::atomic::AtomicU64,
}

/// Smallest and largest tail cache one partition gets.
const MIN_PARTITION_CACHE: u64 = 1024 * 1024;
const MAX_PARTITION_CACHE: u64 = 32 * 1024 * 1024;

impl PartitionEnv {
    /// One partition's share of the node's read cache, given the partitions already open
    /// plus the `adding` ones. Earlier partitions keep their share (documented bound).
    fn cache_share(&self, adding: u64) -> u64 {
        let open = self
            .open_partitions
            .load(std::sync::atomic::Ordering::Relaxed)
            + adding;
        (self.read_cache_bytes / open.max(1)).clamp(MIN_PARTITION_CACHE, MAX_PARTITION_CACHE)
    }
}

pub(crate) struct Destination {
    pub name: String,
    pub spec: DestinationSpec,
    pub dir: PathBuf,
    pub partitions: Vec<Arc<Partition>>,
    writers: Mutex<Vec<JoinHandle<()>>>,
    pub groups: Mutex<HashMap<String, Arc<Group>>>,
    /// Woken whenever any partition makes new messages visible (long-poll pulls wait here).
    pub notify: Arc<Notify>,
    /// Partition for the next keyless batch (round robin per request).
    sticky: AtomicU32,
    /// Message ids stored within the dedup window.
    pub dedup: Mutex<DedupIndex>,
}

pub(crate) const SPEC_FILE: &str = "destination.json";

impl Destination {
    /// Opens (recovering) every partition log and starts its writer task. A partition
    /// whose log is corrupt is opened as failed: the node and the other partitions keep
    /// serving, and the failure is logged and reported.
    pub async fn open(
        name: &str,
        spec: DestinationSpec,
        dir: &Path,
        env: &PartitionEnv,
    ) -> Result<Destination, ServerError> {
        let notify = Arc::new(Notify::new());
        let cache_share = env.cache_share(u64::from(spec.partitions));
        env.open_partitions.fetch_add(
            u64::from(spec.partitions),
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut partitions = Vec::with_capacity(spec.partitions as usize);
        let mut writers = Vec::with_capacity(spec.partitions as usize);
        for p in 0..spec.partitions {
            let pdir = dir.join("partitions").join(p.to_string());
            let config = LogConfig {
                segment_max_bytes: env.segment_bytes,
                segment_max_age: env.segment_age,
                retention_max_age: spec.retention_ms.map(Duration::from_millis),
                retention_max_bytes: spec.retention_bytes,
                fsync: env.fsync,
                max_batch_bytes: env.max_batch_bytes,
                tail_cache_bytes: cache_share,
                ..LogConfig::default()
            };
            let opened = tokio::task::spawn_blocking(move || PartitionLog::open(&pdir, config))
                .await
                .map_err(|e| ServerError::DataDir {
                    path: dir.to_path_buf(),
                    reason: format!("recovery task failed: {e}"),
                })?;
            match opened {
                Ok((log, report)) => {
                    tracing::info!(destination = name, partition = p, next_offset = log.next_offset(), report = ?report, "partition opened");
                    let (tx, rx) = mpsc::channel(env.queue_depth);
                    let partition = Arc::new(Partition::open(p, name, log.reader(), tx));
                    env.budget.adjust(0, log.size_bytes());
                    env.metrics
                        .stored_bytes
                        .get_or_create(&Metrics::dest(name))
                        .inc_by(log.size_bytes() as i64);
                    let ctx = WriterContext {
                        partition: Arc::clone(&partition),
                        notify: Arc::clone(&notify),
                        budget: Arc::clone(&env.budget),
                        metrics: Arc::clone(&env.metrics),
                        fsync: env.fsync,
                    };
                    writers.push(tokio::spawn(writer::run(log, rx, ctx)));
                    partitions.push(partition);
                }
                Err(e) => {
                    tracing::error!(destination = name, partition = p, error = %e, "partition log failed recovery; serving the rest of the node without it");
                    partitions.push(Arc::new(Partition::failed(p, name, e.to_string())));
                }
            }
        }
        let mut dedup = DedupIndex::new(spec.dedup_window_ms, env.dedup_max_entries);
        rebuild_dedup(
            &mut dedup,
            &partitions,
            spec.dedup_window_ms,
            env.dedup_max_entries,
        )
        .await;
        Ok(Destination {
            name: name.to_string(),
            spec,
            dir: dir.to_path_buf(),
            partitions,
            writers: Mutex::new(writers),
            groups: Mutex::new(HashMap::new()),
            notify,
            sticky: AtomicU32::new(0),
            dedup: Mutex::new(dedup),
        })
    }

    pub fn partition(&self, id: PartitionId) -> Result<&Arc<Partition>, RequestError> {
        self.partitions.get(id as usize).ok_or_else(|| {
            RequestError::new(
                ErrorCode::UnknownPartition,
                format!(
                    "partition {id} does not exist; {:?} has {} partitions",
                    self.name,
                    self.partitions.len()
                ),
            )
        })
    }

    /// The partition for this request's keyless messages.
    pub fn next_sticky(&self) -> PartitionId {
        let n = self.spec.partitions.max(1);
        self.sticky.fetch_add(1, Ordering::Relaxed) % n
    }

    pub fn info(&self, node_id: &str) -> DestinationInfo {
        DestinationInfo {
            name: self.name.clone(),
            partitions: self
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.id,
                    leader: node_id.to_string(),
                    start_offset: p.start_offset(),
                    end_offset: p.visible_end(),
                    size_bytes: p.size_bytes(),
                })
                .collect(),
            config: self.spec.to_config(),
        }
    }

    /// Asks every writer to finish its queue, fsync and stop; waits for them.
    pub async fn shutdown(&self) {
        for p in &self.partitions {
            let (done, rx) = oneshot::channel();
            if p.command(WriterCommand::Shutdown { done }).await {
                let _ = rx.await;
            }
        }
        let handles: Vec<JoinHandle<()>> = match self.writers.lock() {
            Ok(mut w) => w.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for h in handles {
            let _ = h.await;
        }
        let groups: Vec<Arc<Group>> = match self.groups.lock() {
            Ok(g) => g.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        for g in groups {
            if let Err(e) = g.flush().await {
                tracing::warn!(group = %g.name, destination = %self.name, error = %e.message, "could not fsync the group's ack log at shutdown");
            }
        }
    }
}

/// Refills the dedup index from the tail of each partition log: every id stored within
/// the window (at most `max_entries` records back), so the window survives a restart.
async fn rebuild_dedup(
    dedup: &mut DedupIndex,
    partitions: &[Arc<Partition>],
    window_ms: u64,
    max_entries: usize,
) {
    if !dedup.enabled() {
        return;
    }
    let now = swarmmq_types::now_ms();
    let since = now.saturating_sub(i64::try_from(window_ms).unwrap_or(i64::MAX));
    for p in partitions {
        let Ok(reader) = p.reader() else { continue };
        let reader = reader.clone();
        let id = p.id;
        let found =
            tokio::task::spawn_blocking(move || scan_ids(&reader, since, max_entries as u64))
                .await
                .unwrap_or_default();
        for (message_id, offset, ts) in found {
            dedup.insert_stored(message_id, (id, offset), ts, now);
        }
    }
}

/// Ids with their offset and timestamp from `since` on, oldest first.
fn scan_ids(
    reader: &swarmmq_storage::LogReader,
    since_ms: i64,
    max_records: u64,
) -> Vec<(swarmmq_types::MessageId, u64, i64)> {
    let end = reader.next_offset();
    let by_time = reader
        .offset_for_timestamp(since_ms)
        .ok()
        .flatten()
        .unwrap_or(end);
    let mut offset = by_time
        .max(end.saturating_sub(max_records))
        .max(reader.start_offset());
    let mut out = Vec::new();
    while offset < end {
        let Ok(read) = reader.read(offset, 1 << 20, end) else {
            break;
        };
        if read.batches.is_empty() {
            break;
        }
        for batch in &read.batches {
            for meta in batch.records_meta().flatten() {
                if meta.offset >= offset
                    && meta.timestamp_ms >= since_ms
                    && let Some(id) = meta.id
                {
                    out.push((id, meta.offset, meta.timestamp_ms));
                }
            }
            offset = offset.max(batch.next_offset());
        }
    }
    out
}

//! One partition as the rest of the node sees it: a queue into its single writer task, a
//! shared reader, and the offsets a consumer may see.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use swarmmq_replication::PartitionGroup;
use swarmmq_storage::{EncodedBatch, LogReader, PartitionLog};
use swarmmq_types::{ErrorCode, PartitionId};
use tokio::sync::{mpsc, oneshot};

use crate::error::RequestError;

/// What a partition's writer task is asked to do.
pub(crate) enum WriterCommand {
    Append {
        batch: EncodedBatch,
        done: oneshot::Sender<Result<u64, RequestError>>,
    },
    /// Delete whole segments past the retention limits.
    Retention,
    /// Answered once every append queued before it is in the log (key retirement
    /// waits on it before counting what each key id still covers).
    Barrier { done: oneshot::Sender<()> },
    /// Finish queued appends, fsync, and stop.
    Shutdown { done: oneshot::Sender<()> },
    /// Finish queued appends, fsync, stop, and hand the log over (to the partition's
    /// Raft group, which owns it from then on: ADR 0009).
    Handover {
        done: oneshot::Sender<Option<PartitionLog>>,
    },
}

/// One batch on its way into a replicated partition's Raft group.
pub(crate) struct Proposal {
    pub batch: EncodedBatch,
    pub done: oneshot::Sender<Result<u64, RequestError>>,
}

/// A partition whose log belongs to its Raft group: appends are proposals, and only
/// the group's leader serves consumers.
pub(crate) struct Replicated {
    pub node_id: String,
    pub group: Arc<PartitionGroup>,
    /// Into the task that proposes batches in the order they were queued.
    pub proposals: mpsc::Sender<Proposal>,
}

impl Replicated {
    pub fn is_leader(&self) -> bool {
        self.group.status().leader.as_deref() == Some(self.node_id.as_str())
    }
}

pub(crate) struct Partition {
    pub id: PartitionId,
    pub destination: String,
    /// `None` when the log could not be opened (corruption found on recovery).
    reader: Option<LogReader>,
    tx: Option<mpsc::Sender<WriterCommand>>,
    /// Exclusive end of what consumers may read: durable per the fsync policy.
    visible_end: AtomicU64,
    start_offset: AtomicU64,
    size_bytes: AtomicU64,
    /// Set once the log fails (poisoned fsync, corruption); the partition then refuses work.
    failure: Mutex<Option<String>>,
    /// Set once the partition's Raft group owns the log (cluster.replication: raft).
    replicated: std::sync::RwLock<Option<Arc<Replicated>>>,
}

impl Partition {
    pub fn open(
        id: PartitionId,
        destination: &str,
        reader: LogReader,
        tx: mpsc::Sender<WriterCommand>,
    ) -> Self {
        Partition {
            id,
            destination: destination.to_string(),
            visible_end: AtomicU64::new(reader.next_offset()),
            start_offset: AtomicU64::new(reader.start_offset()),
            size_bytes: AtomicU64::new(reader.size_bytes()),
            reader: Some(reader),
            tx: Some(tx),
            failure: Mutex::new(None),
            replicated: std::sync::RwLock::new(None),
        }
    }

    /// A partition whose log could not be opened; every request to it fails with `reason`.
    pub fn failed(id: PartitionId, destination: &str, reason: String) -> Self {
        Partition {
            id,
            destination: destination.to_string(),
            reader: None,
            tx: None,
            visible_end: AtomicU64::new(0),
            start_offset: AtomicU64::new(0),
            size_bytes: AtomicU64::new(0),
            failure: Mutex::new(Some(reason)),
            replicated: std::sync::RwLock::new(None),
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    pub fn fail(&self, reason: String) {
        if let Ok(mut f) = self.failure.lock()
            && f.is_none()
        {
            tracing::error!(destination = %self.destination, partition = self.id, %reason, "partition failed; it refuses reads and writes until repaired");
            *f = Some(reason);
        }
    }

    fn check(&self) -> Result<(), RequestError> {
        match self.failure() {
            Some(reason) => Err(RequestError::new(
                ErrorCode::StorageFailure,
                format!(
                    "partition {} of {:?} has failed: {reason}",
                    self.id, self.destination
                ),
            )),
            None => Ok(()),
        }
    }

    pub fn reader(&self) -> Result<&LogReader, RequestError> {
        self.check()?;
        self.reader.as_ref().ok_or_else(|| {
            RequestError::new(ErrorCode::StorageFailure, "partition log is not open")
        })
    }

    /// The Raft group that owns this partition's log, once it runs.
    pub fn replicated(&self) -> Option<Arc<Replicated>> {
        match self.replicated.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn set_replicated(&self, r: Option<Arc<Replicated>>) {
        match self.replicated.write() {
            Ok(mut g) => *g = r,
            Err(p) => *p.into_inner() = r,
        }
    }

    /// Whether this node serves consumers of the partition: always, unless the
    /// partition is replicated and another replica leads it (delivery state lives with
    /// the leader).
    pub fn serving(&self) -> bool {
        self.replicated().is_none_or(|r| r.is_leader())
    }

    /// Queues a batch behind earlier ones (waiting while the queue is full: this is the
    /// publish backpressure) and returns where its base offset will arrive. On a
    /// replicated partition the batch is proposed to its Raft group instead, and the
    /// offset arrives once a majority holds it.
    pub async fn enqueue(
        &self,
        batch: EncodedBatch,
    ) -> Result<oneshot::Receiver<Result<u64, RequestError>>, RequestError> {
        self.check()?;
        if let Some(r) = self.replicated() {
            let (done, rx) = oneshot::channel();
            r.proposals
                .send(Proposal { batch, done })
                .await
                .map_err(|_| RequestError::shutting_down())?;
            return Ok(rx);
        }
        let tx = self.tx.as_ref().ok_or_else(RequestError::shutting_down)?;
        let (done, rx) = oneshot::channel();
        tx.send(WriterCommand::Append { batch, done })
            .await
            .map_err(|_| RequestError::shutting_down())?;
        Ok(rx)
    }

    /// Commands waiting in the writer's queue.
    pub fn queue_len(&self) -> usize {
        self.tx
            .as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    pub async fn command(&self, cmd: WriterCommand) -> bool {
        match &self.tx {
            Some(tx) => tx.send(cmd).await.is_ok(),
            None => false,
        }
    }

    pub fn visible_end(&self) -> u64 {
        self.visible_end.load(Ordering::Acquire)
    }

    pub fn set_visible_end(&self, end: u64) {
        self.visible_end.store(end, Ordering::Release);
    }

    pub fn start_offset(&self) -> u64 {
        self.start_offset.load(Ordering::Acquire)
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Relaxed)
    }

    pub fn set_extent(&self, start: u64, size: u64) {
        self.start_offset.store(start, Ordering::Release);
        self.size_bytes.store(size, Ordering::Relaxed);
    }
}

/// Shared view of the disk budget (`storage.max_disk_usage`) across all partitions.
pub(crate) struct DiskBudget {
    used: AtomicU64,
    max: Option<u64>,
}

impl DiskBudget {
    pub fn new(max: Option<u64>) -> Arc<Self> {
        Arc::new(DiskBudget {
            used: AtomicU64::new(0),
            max,
        })
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether `extra` more bytes fit.
    pub fn check(&self, extra: u64) -> Result<(), RequestError> {
        match self.max {
            Some(max) if self.used().saturating_add(extra) > max => Err(RequestError::new(
                ErrorCode::DiskFull,
                format!(
                    "storage.max_disk_usage reached: {} of {max} bytes used",
                    self.used()
                ),
            )),
            _ => Ok(()),
        }
    }

    pub fn adjust(&self, before: u64, after: u64) {
        if after >= before {
            self.used.fetch_add(after - before, Ordering::Relaxed);
        } else {
            let delta = before - after;
            let _ = self
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                    Some(u.saturating_sub(delta))
                });
        }
    }
}

//! The single writer of one partition log, and its group commit.
//!
//! Publishers queue batches; the writer takes every batch that is waiting, appends them
//! with one write, fsyncs once (policy `always`), and only then answers each publisher
//! and makes the batches visible to consumers. Batches that arrive while an fsync runs
//! wait in the queue and share the next one. File I/O runs on tokio's blocking pool so
//! no async worker thread ever waits on the disk.
//!
//! With policy `interval` the periodic fsync runs beside the appends (a
//! [`PendingSync`]), so no publish waits for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use swarmmq_storage::{EncodedBatch, FsyncPolicy, PartitionLog, PendingSync, StorageError};
use swarmmq_types::ErrorCode;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::partition::{DiskBudget, Partition, WriterCommand};

/// Most bytes one group commit takes off the queue, so one commit's latency stays bounded.
const MAX_COMMIT_BYTES: usize = 32 * 1024 * 1024;

pub(crate) struct WriterContext {
    pub partition: Arc<Partition>,
    pub notify: Arc<Notify>,
    pub budget: Arc<DiskBudget>,
    pub metrics: Arc<Metrics>,
    pub fsync: FsyncPolicy,
}

type Waiter = oneshot::Sender<Result<u64, RequestError>>;
type Syncing = JoinHandle<(PendingSync, std::io::Result<()>)>;

async fn sync_done(
    syncing: &mut Option<Syncing>,
) -> Result<(PendingSync, std::io::Result<()>), tokio::task::JoinError> {
    match syncing {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

/// Starts the interval fsync on the blocking pool; appends continue meanwhile.
fn start_sync(log: &mut Option<PartitionLog>, ctx: &WriterContext) -> Option<Syncing> {
    match log.as_mut()?.begin_sync() {
        Ok(Some(p)) => Some(tokio::task::spawn_blocking(move || {
            let r = p.run();
            (p, r)
        })),
        Ok(None) => None,
        Err(e) => {
            ctx.partition.fail(e.to_string());
            None
        }
    }
}

/// Records the outcome of an interval fsync; a failure fails the partition.
fn finish_sync(
    log: &mut Option<PartitionLog>,
    ctx: &WriterContext,
    done: Result<(PendingSync, std::io::Result<()>), tokio::task::JoinError>,
) {
    let result = match (done, log.as_mut()) {
        (Ok((p, r)), Some(l)) => l.finish_sync(p, r).map_err(|e| e.to_string()),
        (Ok(_), None) => Ok(()),
        (Err(join), _) => Err(format!("fsync task failed: {join}")),
    };
    if let Err(reason) = result {
        tracing::error!(destination = %ctx.partition.destination, partition = ctx.partition.id, error = %reason, "interval fsync failed");
        ctx.partition.fail(reason);
    }
}

/// Waits for an interval fsync still running (before a final sync or a shutdown).
async fn settle_sync(
    log: &mut Option<PartitionLog>,
    ctx: &WriterContext,
    syncing: &mut Option<Syncing>,
) {
    if syncing.is_some() {
        let done = sync_done(syncing).await;
        *syncing = None;
        finish_sync(log, ctx, done);
    }
}

pub(crate) async fn run(
    log: PartitionLog,
    mut rx: mpsc::Receiver<WriterCommand>,
    ctx: WriterContext,
) {
    let mut log = Some(log);
    let mut dirty = false;
    let mut stash: Option<WriterCommand> = None;
    let mut syncing: Option<Syncing> = None;
    let sync_every = match ctx.fsync {
        FsyncPolicy::Interval(d) => d.max(Duration::from_millis(1)),
        _ => Duration::from_secs(3600),
    };
    let mut tick = tokio::time::interval(sync_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let cmd = match stash.take() {
            Some(c) => c,
            None => tokio::select! {
                c = rx.recv() => match c {
                    Some(c) => c,
                    None => break,
                },
                _ = tick.tick(), if dirty && syncing.is_none() => {
                    syncing = start_sync(&mut log, &ctx);
                    dirty = false;
                    continue;
                }
                done = sync_done(&mut syncing) => {
                    syncing = None;
                    finish_sync(&mut log, &ctx, done);
                    continue;
                }
            },
        };
        match cmd {
            WriterCommand::Append { batch, done } => {
                let mut appends = vec![(batch, done)];
                let mut bytes = appends[0].0.len();
                while bytes < MAX_COMMIT_BYTES {
                    match rx.try_recv() {
                        Ok(WriterCommand::Append { batch, done }) => {
                            bytes += batch.len();
                            appends.push((batch, done));
                        }
                        Ok(other) => {
                            stash = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let wrote;
                (log, wrote) = commit(log, appends, &ctx).await;
                dirty |= wrote && !matches!(ctx.fsync, FsyncPolicy::Always);
            }
            WriterCommand::Retention => {
                let now = swarmmq_types::now_ms();
                let (l, result) = blocking(log, &ctx, move |l| l.enforce_retention(now)).await;
                log = l;
                if let Some(Err(e)) = result {
                    tracing::warn!(destination = %ctx.partition.destination, partition = ctx.partition.id, error = %e, "retention failed");
                }
            }
            WriterCommand::Barrier { done } => {
                // Every append queued before it has been committed by now.
                let _ = done.send(());
            }
            WriterCommand::Shutdown { done } => {
                settle_sync(&mut log, &ctx, &mut syncing).await;
                let _ = blocking(log, &ctx, |l| l.sync()).await;
                let _ = done.send(());
                return;
            }
            WriterCommand::Handover { done } => {
                settle_sync(&mut log, &ctx, &mut syncing).await;
                let (log, synced) = blocking(log, &ctx, |l| l.sync()).await;
                // A log whose last sync failed is not handed on: the partition has
                // failed (see `blocking`) and stays failed.
                let log = log.filter(|_| matches!(synced, Some(Ok(()))));
                let _ = done.send(log);
                return;
            }
        }
    }
    // Every sender is gone: the node is stopping. Make what was written durable.
    settle_sync(&mut log, &ctx, &mut syncing).await;
    let _ = blocking(log, &ctx, |l| l.sync()).await;
}

/// Runs `f` on the log on the blocking pool and publishes the log's new extent.
/// Returns `None` for the result when the log is gone (an earlier panic).
async fn blocking<T: Send + 'static>(
    log: Option<PartitionLog>,
    ctx: &WriterContext,
    f: impl FnOnce(&mut PartitionLog) -> Result<T, StorageError> + Send + 'static,
) -> (Option<PartitionLog>, Option<Result<T, StorageError>>) {
    let Some(mut l) = log else {
        return (None, None);
    };
    let before = l.size_bytes();
    match tokio::task::spawn_blocking(move || {
        let r = f(&mut l);
        (l, r)
    })
    .await
    {
        Ok((l, r)) => {
            ctx.budget.adjust(before, l.size_bytes());
            ctx.partition.set_extent(l.start_offset(), l.size_bytes());
            ctx.metrics
                .stored_bytes
                .get_or_create(&Metrics::dest(&ctx.partition.destination))
                .inc_by(l.size_bytes() as i64 - before as i64);
            // A full disk leaves the log unchanged and usable; so does a refused
            // argument (checked before anything is written). Anything else may have
            // left the log in doubt: fail the partition.
            if let Err(e) = &r
                && !matches!(
                    e,
                    StorageError::DiskFull { .. } | StorageError::InvalidArgument(_)
                )
            {
                ctx.partition.fail(e.to_string());
            }
            (Some(l), Some(r))
        }
        Err(join) => {
            ctx.partition
                .fail(format!("partition writer stopped unexpectedly: {join}"));
            (None, None)
        }
    }
}

/// Appends every waiting batch with one write and (policy `always`) one fsync, then
/// answers each waiter. Returns whether anything was written.
async fn commit(
    log: Option<PartitionLog>,
    appends: Vec<(EncodedBatch, Waiter)>,
    ctx: &WriterContext,
) -> (Option<PartitionLog>, bool) {
    let (mut batches, waiters): (Vec<EncodedBatch>, Vec<Waiter>) = appends.into_iter().unzip();
    let fail_all = |waiters: Vec<Waiter>, err: RequestError| {
        for w in waiters {
            let _ = w.send(Err(err.clone()));
        }
    };
    if let Some(reason) = ctx.partition.failure() {
        fail_all(
            waiters,
            RequestError::new(ErrorCode::StorageFailure, reason),
        );
        return (log, false);
    }
    let incoming: u64 = batches.iter().map(|b| b.len() as u64).sum();
    if let Err(e) = ctx.budget.check(incoming) {
        tracing::warn!(destination = %ctx.partition.destination, partition = ctx.partition.id, error = %e.message, "publish refused");
        fail_all(waiters, e);
        return (log, false);
    }
    let sync_now = matches!(ctx.fsync, FsyncPolicy::Always);
    let count = batches.len();
    let started = Instant::now();
    let (log, result) = blocking(log, ctx, move |l| {
        let outcome = l.append(&mut batches, 0)?;
        if sync_now {
            l.sync()?;
        }
        Ok(outcome)
    })
    .await;
    ctx.metrics
        .fsync_latency
        .observe(started.elapsed().as_secs_f64());
    ctx.metrics.batches_per_commit.observe(count as f64);
    match result {
        Some(Ok(outcome)) => {
            if let Some(l) = &log {
                ctx.partition.set_visible_end(l.next_offset());
            }
            ctx.notify.notify_waiters();
            for (w, base) in waiters.into_iter().zip(outcome.base_offsets) {
                let _ = w.send(Ok(base));
            }
            (log, true)
        }
        Some(Err(e)) => {
            let err = RequestError::from(e);
            tracing::warn!(destination = %ctx.partition.destination, partition = ctx.partition.id, code = %err.code, error = %err.message, "append failed");
            fail_all(waiters, err);
            (log, false)
        }
        None => {
            fail_all(
                waiters,
                RequestError::new(ErrorCode::StorageFailure, "partition log is unavailable"),
            );
            (log, false)
        }
    }
}

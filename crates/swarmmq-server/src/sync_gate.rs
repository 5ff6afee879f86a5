//! Group commit for fsyncs that are not a partition log's (the ack logs): callers take a
//! ticket after their write and wait until an fsync that started after the ticket has
//! finished. One fsync serves every ticket taken while the previous one ran.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use swarmmq_delivery::StoreSyncer;
use tokio::sync::{Notify, watch};

use crate::error::RequestError;
use swarmmq_types::ErrorCode;

pub(crate) struct SyncGate {
    state: Arc<GateState>,
    wake: Arc<Notify>,
}

struct GateState {
    requested: AtomicU64,
    /// Highest ticket made durable, or `Err` once an fsync failed (permanent).
    done: watch::Sender<Result<u64, String>>,
}

impl SyncGate {
    /// Starts the gate's fsync task for `syncer`; the task ends when the gate is dropped.
    pub fn start(syncer: StoreSyncer) -> SyncGate {
        let (done, _) = watch::channel(Ok(0));
        let state = Arc::new(GateState {
            requested: AtomicU64::new(0),
            done,
        });
        let wake = Arc::new(Notify::new());
        let weak = Arc::downgrade(&state);
        let task_wake = Arc::clone(&wake);
        let syncer = Arc::new(syncer);
        tokio::spawn(async move {
            loop {
                let Some(state) = weak.upgrade() else { return };
                let target = state.requested.load(Ordering::Acquire);
                let synced = match &*state.done.borrow() {
                    Ok(n) => *n,
                    Err(_) => return,
                };
                if target <= synced {
                    drop(state);
                    task_wake.notified().await;
                    continue;
                }
                let s = Arc::clone(&syncer);
                let result = tokio::task::spawn_blocking(move || s.sync()).await;
                let next = match result {
                    Ok(Ok(())) => Ok(target),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("fsync task failed: {e}")),
                };
                if let Err(reason) = &next {
                    tracing::error!(%reason, "ack log fsync failed; the group takes no more acks");
                }
                let _ = state.done.send_replace(next);
            }
        });
        SyncGate { state, wake }
    }

    /// Waits until everything written before this call is durable.
    pub async fn sync(&self) -> Result<(), RequestError> {
        let ticket = self.state.requested.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake.notify_one();
        let mut rx = self.state.done.subscribe();
        let result = rx
            .wait_for(|d| match d {
                Ok(n) => *n >= ticket,
                Err(_) => true,
            })
            .await;
        match result {
            Ok(d) => match &*d {
                Ok(_) => Ok(()),
                Err(reason) => Err(RequestError::new(ErrorCode::StorageFailure, reason.clone())),
            },
            Err(_) => Err(RequestError::shutting_down()),
        }
    }
}

impl Drop for SyncGate {
    fn drop(&mut self) {
        // Lets the fsync task notice the gate is gone and end.
        self.wake.notify_one();
    }
}

//! Keeps the node's keys in step with the key file: a `stat` every 250 ms (so a
//! revocation reaches open connections well within 2 s) and a reload on SIGHUP.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::AuthState;

const POLL: Duration = Duration::from_millis(250);

/// Runs until `stop`; does nothing when auth is off.
pub(crate) async fn watch(state: Arc<AuthState>, stop: CancellationToken) {
    if !state.enabled {
        return;
    }
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; the key file is still polled");
            None
        }
    };
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
            _ = stop.cancelled() => return,
        };
        // File I/O and JSON parsing stay off the async threads.
        let s = Arc::clone(&state);
        let _ = tokio::task::spawn_blocking(move || {
            if forced {
                s.reload_and_log("SIGHUP");
            } else {
                s.reload_if_changed();
            }
        })
        .await;
    }
}

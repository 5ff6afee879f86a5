//! Defenses of the client listener against hostile or broken peers, kept out of the
//! session's read and write loops so those stay small: deadlines for slow senders and
//! idle connections ([`ConnWatch`]), a stall limit for peers that stop reading
//! ([`TimedWrite`]), and rate limits on the log lines that bad input causes
//! ([`LogLimiter`]). Every event is still counted in the metrics; only the log lines
//! are limited, so a flood of garbage cannot turn into a flood of log.

mod conn_log;
mod log_limit;
mod report;
mod timed_write;
mod watch;

use std::time::Duration;

pub(crate) use conn_log::ConnLog;
pub(crate) use log_limit::LogLimiter;
pub(crate) use report::{on_close, on_expiry};
pub(crate) use timed_write::TimedWrite;
pub(crate) use watch::{ConnWatch, Expiry};

/// Protocol-error lines one connection may log; later ones are counted and summed up
/// in one line when it closes.
pub(crate) const LINES_PER_CONNECTION: u32 = 3;

/// Node-wide guard settings and log budgets, shared by every connection.
#[derive(Debug)]
pub(crate) struct Guard {
    /// A started frame must be complete within this; a write may stall this long.
    pub frame_timeout: Duration,
    /// A connection with nothing in flight and no request for this long is closed.
    pub idle_timeout: Duration,
    /// Lines about bad frames, timeouts and refused connections.
    pub protocol_log: LogLimiter,
    /// Lines about requests that decoded but failed (unknown destination, ...).
    pub request_log: LogLimiter,
}

impl Guard {
    pub fn new(frame_timeout: Duration, idle_timeout: Duration) -> Self {
        Guard {
            frame_timeout,
            idle_timeout,
            // A burst shows what is going on; past it about ten lines a second.
            protocol_log: LogLimiter::new(20, 10),
            request_log: LogLimiter::new(50, 20),
        }
    }
}

/// `from + d`, saturating far in the future instead of overflowing (config bounds the
/// timeouts, so this never matters in practice).
pub(crate) fn later(from: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    from.checked_add(d)
        .unwrap_or_else(|| from + Duration::from_secs(365 * 24 * 3600))
}

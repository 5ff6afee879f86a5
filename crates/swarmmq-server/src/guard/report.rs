//! What a session says when a guard ends a connection: metrics, rate-limited log
//! lines, and the error frame to send, if any.

use std::net::SocketAddr;

use swarmmq_types::ErrorCode;

use super::{ConnLog, Expiry};
use crate::broker::Broker;
use crate::error::RequestError;

/// A read deadline passed. Returns the error to send (under correlation id 0, like
/// every connection-level error) before the close: a slow frame gets TIMEOUT, an idle
/// connection is closed without a word.
pub(crate) fn on_expiry(
    broker: &Broker,
    peer: SocketAddr,
    log: &ConnLog,
    expiry: Expiry,
) -> Option<RequestError> {
    match expiry {
        Expiry::Frame(limit) => {
            broker.metrics.error(ErrorCode::Timeout);
            if let Some(suppressed) = log.allow(&broker.guard.protocol_log) {
                tracing::warn!(%peer, ?limit, suppressed, "frame not completed in time; closing the connection");
            }
            Some(RequestError::new(
                ErrorCode::Timeout,
                format!("frame not completed within {limit:?} (performance.frame_timeout)"),
            ))
        }
        Expiry::Idle(limit) => {
            tracing::debug!(%peer, ?limit, "closing an idle connection");
            None
        }
    }
}

/// The connection is closing: report a writer that stalled on a peer that does not
/// read, and the protocol-error lines this connection was not allowed to log.
pub(crate) fn on_close(broker: &Broker, peer: SocketAddr, log: &ConnLog, write_stalled: bool) {
    let guard = &broker.guard;
    if write_stalled {
        broker.metrics.error(ErrorCode::Timeout);
        if let Some(suppressed) = log.allow(&guard.protocol_log) {
            tracing::warn!(%peer, limit = ?guard.frame_timeout, suppressed, "the peer stopped reading answers; closing the connection");
        }
    }
    let held = log.held();
    if held > 0
        && let Some(suppressed) = guard.protocol_log.allow()
    {
        tracing::warn!(%peer, lines = held, suppressed, "connection closed; its later protocol errors were counted, not logged");
    }
}

//! The log budget of one connection.

use std::sync::atomic::{AtomicU32, Ordering};

use super::{LINES_PER_CONNECTION, LogLimiter};

/// Lets one connection log its first few protocol errors (within the node's budget)
/// and counts the rest, so a peer that sends garbage frame after frame costs one line
/// per connection, not one per frame.
#[derive(Debug, Default)]
pub(crate) struct ConnLog {
    lines: AtomicU32,
    held: AtomicU32,
}

impl ConnLog {
    /// `Some(n)` when a line may be logged now, `n` being the lines the node held back
    /// before it; `None` when this one is held back (and counted).
    pub fn allow(&self, node: &LogLimiter) -> Option<u64> {
        if self.lines.fetch_add(1, Ordering::Relaxed) >= LINES_PER_CONNECTION {
            self.held.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        node.allow()
    }

    /// Lines this connection was not allowed to log.
    pub fn held(&self) -> u32 {
        self.held.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_logs_its_first_lines_then_counts() {
        let node = LogLimiter::new(100, 100);
        let conn = ConnLog::default();
        let logged = (0..50).filter(|_| conn.allow(&node).is_some()).count();
        assert_eq!(logged, LINES_PER_CONNECTION as usize);
        assert_eq!(conn.held(), 50 - LINES_PER_CONNECTION);
        // Another connection has its own budget.
        assert!(ConnLog::default().allow(&node).is_some());
    }
}

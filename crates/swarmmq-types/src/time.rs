use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; the unit of every timestamp SwarmMQ stores.
///
/// A clock before 1970 reads as 0 rather than failing: timestamps are metadata, and a
/// broken clock must not stop a publish.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

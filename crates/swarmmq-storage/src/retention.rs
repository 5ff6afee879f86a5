use std::sync::Arc;

use crate::config::LogConfig;
use crate::segment::Segment;

/// What a retention pass deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    /// The log's first offset after the pass.
    pub start_offset: u64,
}

/// How many of the oldest segments to delete. Only a prefix can go (offsets stay
/// dense from the start), and never the active (last) segment.
pub(crate) fn plan(segments: &[Arc<Segment>], config: &LogConfig, now_ms: i64) -> usize {
    let mut total: u64 = segments.iter().map(|s| s.size()).sum();
    let cutoff = config
        .retention_max_age
        .map(|a| now_ms.saturating_sub(i64::try_from(a.as_millis()).unwrap_or(i64::MAX)));
    let mut n = 0;
    for seg in segments.iter().take(segments.len().saturating_sub(1)) {
        let by_age = cutoff.is_some_and(|c| seg.max_timestamp() < c);
        let by_bytes = config.retention_max_bytes.is_some_and(|max| total > max);
        if !(by_age || by_bytes) {
            break;
        }
        total -= seg.size();
        n += 1;
    }
    n
}

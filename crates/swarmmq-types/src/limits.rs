/// Every size and count bound of a node, in one place (TigerBeetle-style): past any of
/// them a request gets a clear error or waits (backpressure), memory never grows without
/// bound. Config may lower or raise the ones marked *configurable*; the rest are
/// protocol constants that a client can rely on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame (header + body) a node reads or writes. *configurable*
    pub max_frame_bytes: u32,
    /// Largest single message payload. *configurable* (`performance.max_message_size`)
    pub max_message_bytes: u32,
    /// Most messages in one publish request.
    pub max_batch_messages: u32,
    /// Most open client connections; the next one is refused. *configurable*
    pub max_connections: u32,
    /// Most request bytes one connection may have in flight (decoded, not yet answered);
    /// past it the node stops reading that socket. *configurable*
    pub max_inflight_bytes_per_connection: u64,
    /// Most requests one connection may have in flight.
    pub max_inflight_requests_per_connection: u32,
    /// Most messages one pull may return.
    pub max_pull_messages: u32,
    /// Most payload bytes one pull may return.
    pub max_pull_bytes: u32,
    /// Longest long-poll wait, in milliseconds.
    pub max_pull_wait_ms: u32,
    /// Most destinations on one node.
    pub max_destinations: u32,
    /// Most partitions in one destination.
    pub max_partitions: u32,
    /// Most consumer groups on one node.
    pub max_groups: u32,
    /// Most headers on one message.
    pub max_headers: u32,
    /// Most bytes of one header name.
    pub max_header_name_bytes: u32,
    /// Most bytes of all header names and values of one message.
    pub max_header_bytes: u32,
    /// Most bytes of a message key.
    pub max_key_bytes: u32,
    /// Most bytes of an error or status text on the wire.
    pub max_text_bytes: u32,
    /// Most offset ranges in one ack or nack.
    pub max_ack_ranges: u32,
    /// Most appends queued for one partition writer; past it publishers wait.
    pub max_partition_queue: u32,
    /// Most unacknowledged deliveries (leases) one group may hold on one partition.
    pub max_leases_per_partition: u32,
    /// Most parked long-poll pulls per partition.
    pub max_waiting_pulls: u32,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_frame_bytes: 16 * 1024 * 1024,
        max_message_bytes: 1024 * 1024,
        max_batch_messages: 100_000,
        max_connections: 1024,
        max_inflight_bytes_per_connection: 64 * 1024 * 1024,
        max_inflight_requests_per_connection: 1024,
        max_pull_messages: 100_000,
        max_pull_bytes: 16 * 1024 * 1024 - 64 * 1024,
        max_pull_wait_ms: 60_000,
        max_destinations: 10_000,
        max_partitions: 1024,
        max_groups: 10_000,
        max_headers: 64,
        max_header_name_bytes: 255,
        max_header_bytes: 64 * 1024,
        max_key_bytes: 4096,
        max_text_bytes: 4096,
        max_ack_ranges: 100_000,
        max_partition_queue: 4096,
        max_leases_per_partition: 1_000_000,
        max_waiting_pulls: 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_consistent() {
        let l = Limits::default();
        assert!(l.max_message_bytes < l.max_frame_bytes);
        assert!(l.max_pull_bytes < l.max_frame_bytes);
        assert!(l.max_header_bytes < l.max_frame_bytes);
        assert!(u64::from(l.max_frame_bytes) <= l.max_inflight_bytes_per_connection);
    }
}

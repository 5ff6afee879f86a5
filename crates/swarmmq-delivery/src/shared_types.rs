//! The values that go in and out of [`crate::SharedPartition`].

/// Priority of a message that names none (or names 0).
pub const DEFAULT_PRIORITY: u8 = 5;
/// Highest priority; also the cap of an aged message's effective priority.
pub const MAX_PRIORITY: u8 = 10;

/// How a shared-mode group hands out one partition's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedSettings {
    /// How long a delivered message stays invisible to other consumers before it is
    /// delivered again (the visibility timeout).
    pub ack_timeout_ms: u64,
    /// Most offsets leased at once; past it `poll` grants nothing until acks, nacks or
    /// expiries free room.
    pub max_leased: u64,
    /// Most messages known but not done and not delayed (ready, leased, awaiting settle):
    /// past it the partition asks for no more record metadata. This is the window in
    /// which priority order is exact.
    pub max_tracked: u64,
    /// Most delayed messages held; past it the partition asks for no more record
    /// metadata (backpressure). Nothing is ever dropped: a nack with a delay may still
    /// push the count past the bound.
    pub max_delayed: u64,
    /// Deliveries a message gets before it is dead-lettered instead of delivered again;
    /// 0 means no limit.
    pub max_delivery_attempts: u32,
    /// A ready message's effective priority grows by one per this many ms it waits;
    /// 0 turns aging off.
    pub priority_aging_ms: u64,
}

impl Default for SharedSettings {
    fn default() -> Self {
        SharedSettings {
            ack_timeout_ms: 30_000,
            max_leased: 100_000,
            max_tracked: 100_000,
            max_delayed: 1_000_000,
            max_delivery_attempts: 5,
            priority_aging_ms: 10_000,
        }
    }
}

impl SharedSettings {
    /// Whether a message delivered `attempts` times may not be delivered again.
    pub fn exhausted(&self, attempts: u32) -> bool {
        self.max_delivery_attempts > 0 && attempts >= self.max_delivery_attempts
    }
}

/// What delivery needs to know of one record (its metadata, never its payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    pub offset: u64,
    /// 1..=10, 10 highest; 0 means the default (5), above 10 counts as 10.
    pub priority: u8,
    pub timestamp_ms: i64,
    /// Invisible before this time.
    pub deliver_at_ms: Option<i64>,
    /// Never delivered at or after this time.
    pub expires_at_ms: Option<i64>,
}

impl RecordInfo {
    /// The priority delivery uses: 0 -> default, capped at [`MAX_PRIORITY`].
    pub fn effective_base_priority(&self) -> u8 {
        match self.priority {
            0 => DEFAULT_PRIORITY,
            p => p.min(MAX_PRIORITY),
        }
    }
}

/// Offsets `start..end` handed to a consumer, all at the same delivery attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub start: u64,
    pub end: u64,
    /// 1 on first delivery, then 2, 3, ...
    pub attempt: u32,
}

/// Offsets `start..end` the node must settle (move to the DLQ or drop, then call
/// `settle`), with how often they were delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettleRange {
    pub start: u64,
    pub end: u64,
    pub attempts: u32,
}

/// What one `poll` decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// Leased to the caller, in delivery order.
    pub grants: Vec<Grant>,
    /// Messages whose TTL passed: never to be delivered; count them, then drop them or
    /// move them to the DLQ per destination config, then `settle`. Offset order.
    pub expired: Vec<SettleRange>,
    /// Messages that used up `max_delivery_attempts`: publish them to
    /// `<destination>.dlq`, then `settle`. Offset order.
    pub dead: Vec<SettleRange>,
}

/// What one `nack` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NackOutcome {
    /// Offsets made ready or delayed again.
    pub requeued: u64,
    /// Offsets that used up their attempts instead: the node dead-letters and settles them.
    pub dead: Vec<SettleRange>,
}

/// Offsets newly done by an `ack` or `settle`. The node logs exactly `ranges` (never
/// the range it was asked for: offsets the state ignored must not become durable acks).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Completed {
    pub count: u64,
    /// Disjoint, in offset order, touching pieces merged.
    pub ranges: Vec<(u64, u64)>,
}

/// Sizes of a partition's delivery state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every offset below is done.
    pub floor: u64,
    /// Next offset whose metadata the state wants.
    pub scan_position: u64,
    /// Deliverable now (subject to priority).
    pub ready: u64,
    pub leased: u64,
    /// Waiting for their deliver-at time or a nack delay.
    pub delayed: u64,
    /// Reported dead or expired, not yet settled by the node.
    pub settling: u64,
    /// `ready + leased + settling`, bounded by `max_tracked`.
    pub tracked: u64,
}

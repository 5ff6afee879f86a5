//! Publish deduplication by message id: a message whose id was stored within the
//! destination's dedup window is answered with the original partition and offset and
//! not stored again.
//!
//! The index lives in memory and is rebuilt at start from the tail of every partition
//! log (ids are in the records' metadata), so the window survives a restart. It is
//! bounded: past `max_entries` the oldest ids are forgotten early (counted, logged once)
//! rather than memory growing without limit.

use std::collections::{HashMap, VecDeque};

use swarmmq_types::{MessageId, Offset, PartitionId};
use tokio::sync::watch;

/// Where a message with this id was stored.
pub(crate) type Stored = (PartitionId, Offset);

enum Entry {
    Stored {
        at: Stored,
        ts_ms: i64,
    },
    /// A publish with this id is on its way to disk; a duplicate waits for its offset.
    Pending {
        ts_ms: i64,
        done: watch::Receiver<Option<Stored>>,
    },
}

/// What a publish should do with one message.
pub(crate) enum Lookup {
    /// First time seen: store it, then [`DedupIndex::complete`] or [`DedupIndex::abort`].
    New(Ticket),
    /// Seen within the window: answer with this.
    Duplicate(Stored),
    /// The first copy is being stored right now: its offset arrives on this channel.
    InFlight(watch::Receiver<Option<Stored>>),
}

/// The reservation of an id by the publish that stores it first.
pub(crate) struct Ticket {
    id: MessageId,
    done: watch::Sender<Option<Stored>>,
}

pub(crate) struct DedupIndex {
    window_ms: i64,
    max_entries: usize,
    map: HashMap<MessageId, Entry>,
    /// Insertion order with timestamps, for expiry; may hold ids already removed.
    order: VecDeque<(i64, MessageId)>,
    evicted_early: u64,
}

impl DedupIndex {
    pub fn new(window_ms: u64, max_entries: usize) -> Self {
        DedupIndex {
            window_ms: i64::try_from(window_ms).unwrap_or(i64::MAX),
            max_entries,
            map: HashMap::new(),
            order: VecDeque::new(),
            evicted_early: 0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.window_ms > 0 && self.max_entries > 0
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Ids forgotten before their window ended because the index was full.
    #[cfg(test)]
    pub fn evicted_early(&self) -> u64 {
        self.evicted_early
    }

    pub fn lookup(&mut self, id: &MessageId, now_ms: i64) -> Lookup {
        self.prune(now_ms);
        match self.map.get(id) {
            Some(Entry::Stored { at, .. }) => return Lookup::Duplicate(*at),
            Some(Entry::Pending { done, .. }) => return Lookup::InFlight(done.clone()),
            None => {}
        }
        let (tx, rx) = watch::channel(None);
        self.insert(
            id.clone(),
            Entry::Pending {
                ts_ms: now_ms,
                done: rx,
            },
            now_ms,
        );
        Lookup::New(Ticket {
            id: id.clone(),
            done: tx,
        })
    }

    /// The reserved message is stored at `at`.
    pub fn complete(&mut self, ticket: Ticket, at: Stored) {
        if let Some(entry) = self.map.get_mut(&ticket.id) {
            let ts_ms = match entry {
                Entry::Pending { ts_ms, .. } | Entry::Stored { ts_ms, .. } => *ts_ms,
            };
            *entry = Entry::Stored { at, ts_ms };
        }
        let _ = ticket.done.send(Some(at));
    }

    /// The reserved message was not stored (the publish failed): forget the id.
    pub fn abort(&mut self, ticket: Ticket) {
        if matches!(self.map.get(&ticket.id), Some(Entry::Pending { .. })) {
            self.map.remove(&ticket.id);
        }
        // Dropping the sender tells waiting duplicates the first copy failed.
    }

    /// Records an id found in the log (rebuilding after a restart, or committed by a
    /// partition's Raft group). An id the index holds already is left as it is: its
    /// own publish (pending or stored) answers for it.
    pub fn insert_stored(&mut self, id: MessageId, at: Stored, ts_ms: i64, now_ms: i64) {
        if ts_ms.saturating_add(self.window_ms) <= now_ms || self.map.contains_key(&id) {
            return;
        }
        self.insert(id, Entry::Stored { at, ts_ms }, ts_ms);
    }

    fn insert(&mut self, id: MessageId, entry: Entry, ts_ms: i64) {
        while self.map.len() >= self.max_entries {
            let Some((_, old)) = self.order.pop_front() else {
                break;
            };
            if self.map.remove(&old).is_some() {
                if self.evicted_early == 0 {
                    tracing::warn!(
                        max_entries = self.max_entries,
                        "dedup index full: forgetting ids before their window ends"
                    );
                }
                self.evicted_early += 1;
            }
        }
        self.order.push_back((ts_ms, id.clone()));
        self.map.insert(id, entry);
    }

    fn prune(&mut self, now_ms: i64) {
        while let Some((ts, _)) = self.order.front() {
            if ts.saturating_add(self.window_ms) > now_ms {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                let expired = match self.map.get(&id) {
                    Some(Entry::Stored { ts_ms, .. }) => {
                        ts_ms.saturating_add(self.window_ms) <= now_ms
                    }
                    // Never forget an id whose first copy is still being written.
                    Some(Entry::Pending { .. }) => false,
                    None => false,
                };
                if expired {
                    self.map.remove(&id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> MessageId {
        MessageId::Text(s.to_string())
    }

    #[test]
    fn duplicate_within_window_gets_the_original_offset() {
        let mut d = DedupIndex::new(1000, 10);
        let Lookup::New(t) = d.lookup(&id("a"), 0) else {
            panic!("new")
        };
        assert!(matches!(d.lookup(&id("a"), 1), Lookup::InFlight(_)));
        d.complete(t, (2, 7));
        assert!(matches!(d.lookup(&id("a"), 999), Lookup::Duplicate((2, 7))));
        assert!(
            matches!(d.lookup(&id("a"), 1000), Lookup::New(_)),
            "after the window it is new"
        );
    }

    #[test]
    fn a_failed_first_copy_frees_the_id() {
        let mut d = DedupIndex::new(1000, 10);
        let Lookup::New(t) = d.lookup(&id("a"), 0) else {
            panic!("new")
        };
        let Lookup::InFlight(rx) = d.lookup(&id("a"), 0) else {
            panic!("in flight")
        };
        d.abort(t);
        assert!(
            rx.has_changed().is_err(),
            "the waiter learns the first copy failed"
        );
        assert!(matches!(d.lookup(&id("a"), 1), Lookup::New(_)));
    }

    #[test]
    fn bounded_by_max_entries() {
        let mut d = DedupIndex::new(1_000_000, 3);
        for i in 0..10 {
            if let Lookup::New(t) = d.lookup(&id(&i.to_string()), i) {
                d.complete(t, (0, i as u64));
            }
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.evicted_early(), 7);
        assert!(matches!(d.lookup(&id("9"), 10), Lookup::Duplicate((0, 9))));
    }

    #[test]
    fn rebuilt_entries_respect_the_window() {
        let mut d = DedupIndex::new(100, 10);
        d.insert_stored(id("old"), (0, 1), 0, 500);
        d.insert_stored(id("new"), (0, 2), 450, 500);
        assert!(matches!(d.lookup(&id("old"), 500), Lookup::New(_)));
        assert!(matches!(
            d.lookup(&id("new"), 500),
            Lookup::Duplicate((0, 2))
        ));
    }

    /// Regression (found by tests/extreme_values.rs): a window near `i64::MAX` ms
    /// (a destination created with `dedup_window_ms: u64::MAX`, or a huge
    /// `delivery.dedup_window`) overflowed `ts + window` on the second lookup, which
    /// panicked while the destination's dedup lock was held and so poisoned it: every
    /// later publish to that destination failed with INTERNAL.
    #[test]
    fn a_window_near_the_end_of_time_does_not_overflow() {
        let now = 1_800_000_000_000;
        let mut d = DedupIndex::new(u64::MAX, 10);
        d.insert_stored(id("old"), (0, 1), 0, now);
        let Lookup::New(t) = d.lookup(&id("a"), now) else {
            panic!("new")
        };
        d.complete(t, (0, 2));
        assert!(matches!(
            d.lookup(&id("a"), now + 1),
            Lookup::Duplicate((0, 2))
        ));
        assert!(matches!(
            d.lookup(&id("old"), now + 2),
            Lookup::Duplicate((0, 1))
        ));
        let mut d = DedupIndex::new(i64::MAX as u64, 10);
        let late = i64::MAX - 5;
        d.insert_stored(id("b"), (0, 3), late, late);
        assert!(matches!(
            d.lookup(&id("b"), late + 1),
            Lookup::Duplicate((0, 3))
        ));
        // The window saturates at the end of time rather than wrapping around.
        assert!(matches!(d.lookup(&id("b"), i64::MAX), Lookup::New(_)));
    }
}

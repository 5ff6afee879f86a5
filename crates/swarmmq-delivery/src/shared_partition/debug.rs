//! Test-only views of a [`SharedPartition`]: the state of every offset, and a check of
//! the invariants that tie its maps together.

use std::collections::BTreeMap;

use super::SharedPartition;

/// The state of one offset, as the per-offset model in the tests keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Done,
    Ready {
        priority: u8,
        attempts: u32,
        since: i64,
    },
    Leased {
        priority: u8,
        attempt: u32,
        deadline: i64,
        ready_since: i64,
    },
    Delayed {
        priority: u8,
        attempts: u32,
        at: i64,
    },
    Settling {
        dead: bool,
        attempts: u32,
    },
    Restored {
        attempts: u32,
    },
}

impl SharedPartition {
    /// Every offset at or above the floor that has a state; panics if one has two.
    pub(crate) fn dump(&self) -> BTreeMap<u64, Slot> {
        let mut out = BTreeMap::new();
        let mut put = |a: u64, b: u64, slot: Slot| {
            for o in a..b {
                assert!(o >= self.floor, "offset {o} below the floor {}", self.floor);
                if let Some(prev) = out.insert(o, slot) {
                    panic!("offset {o} is both {prev:?} and {slot:?}");
                }
            }
        };
        for (a, b, _) in self.done.iter() {
            put(a, b, Slot::Done);
        }
        for (i, lvl) in self.ready.iter().enumerate() {
            for (a, b, r) in lvl.iter() {
                let slot = Slot::Ready {
                    priority: i as u8 + 1,
                    attempts: r.attempts,
                    since: r.since_ms,
                };
                put(a, b, slot);
            }
        }
        for (a, b, l) in self.leased.iter() {
            let slot = Slot::Leased {
                priority: l.priority,
                attempt: l.attempt,
                deadline: l.deadline_ms,
                ready_since: l.ready_since_ms,
            };
            put(a, b, slot);
        }
        for (a, b, d) in self.delayed.iter() {
            let slot = Slot::Delayed {
                priority: d.priority,
                attempts: d.attempts,
                at: d.at_ms,
            };
            put(a, b, slot);
        }
        for (a, b, d) in self.settling.iter() {
            let slot = Slot::Settling {
                dead: d.dead,
                attempts: d.attempts,
            };
            put(a, b, slot);
        }
        for (a, b, n) in self.restored.iter() {
            put(a, b, Slot::Restored { attempts: *n });
        }
        out
    }

    /// Offsets reported by the next poll: `(offset, dead, attempts)`.
    pub(crate) fn pending_reports(&self) -> Vec<(u64, bool, u32)> {
        self.reports
            .iter()
            .flat_map(|(a, b, d)| (a..b).map(move |o| (o, d.dead, d.attempts)))
            .collect()
    }

    pub(crate) fn ttl_offsets(&self) -> Vec<(u64, i64)> {
        self.ttl.iter().map(|(o, x)| (*o, *x)).collect()
    }

    /// Invariants beyond "one state per offset".
    pub(crate) fn check(&self) {
        let dump = self.dump();
        assert!(self.scan >= self.floor);
        assert!(
            self.done.first().is_none_or(|(s, _, _)| s > self.floor),
            "floor not advanced"
        );
        for (o, slot) in &dump {
            if matches!(
                slot,
                Slot::Ready { .. } | Slot::Leased { .. } | Slot::Delayed { .. }
            ) {
                assert!(
                    *o < self.scan,
                    "{slot:?} at {o} beyond the scan {}",
                    self.scan
                );
            }
            if let Slot::Restored { .. } = slot {
                assert!(*o >= self.scan, "restored offset {o} already observed");
            }
        }
        for (a, b, d) in self.reports.iter() {
            for o in a..b {
                assert_eq!(self.settling.get(o), Some(d), "report {o} not settling");
            }
        }
        for o in self.ttl.keys() {
            assert!(
                matches!(
                    dump.get(o),
                    Some(Slot::Ready { .. } | Slot::Leased { .. } | Slot::Delayed { .. })
                ),
                "ttl entry for {o} in state {:?}",
                dump.get(o)
            );
        }
        for lvl in &self.ready {
            lvl.check();
        }
        self.leased.check();
        self.delayed.check();
        let c = self.counts();
        assert_eq!(c.tracked, c.ready + c.leased + c.settling);
    }
}

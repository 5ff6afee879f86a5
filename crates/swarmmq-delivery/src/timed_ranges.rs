use std::collections::BTreeMap;

use crate::range_map::RangeMap;

/// A value that carries a point in time (ms since the epoch): a lease deadline, a
/// deliver-at time, a ready-since time.
pub(crate) trait Timed {
    fn time_ms(&self) -> i64;
}

/// A [`RangeMap`] whose values carry a time, with the earliest time known in O(log n)
/// and, optionally, the ranges whose time has passed found without a scan.
///
/// Two indexes sit beside the map:
/// - `per_time`: offsets covered per time value. Exact (kept in step with every insert and
///   removal), so the earliest time is its first key.
/// - `due` (optional): `(time, start) -> end` for every range ever inserted. Lazy: an entry
///   may be stale (its offsets acknowledged, moved or given another time since) and is
///   simply dropped when met. Merged and split ranges need no bookkeeping that way; the
///   index is rebuilt from the map when stale entries outnumber live ranges, which bounds
///   it to about twice the map.
#[derive(Clone, Debug)]
pub(crate) struct TimedRanges<V> {
    map: RangeMap<V>,
    per_time: BTreeMap<i64, u64>,
    due: Option<BTreeMap<(i64, u64), u64>>,
}

impl<V: Timed + Clone + PartialEq> TimedRanges<V> {
    /// `indexed`: keep the `due` index (needed by [`TimedRanges::take_due`]).
    pub(crate) fn new(indexed: bool) -> Self {
        TimedRanges {
            map: RangeMap::new(),
            per_time: BTreeMap::new(),
            due: indexed.then(BTreeMap::new),
        }
    }

    pub(crate) fn covered(&self) -> u64 {
        self.map.covered()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64, &V)> {
        self.map.iter()
    }

    pub(crate) fn first(&self) -> Option<(u64, u64, &V)> {
        self.map.first()
    }

    /// The earliest time of any covered offset.
    pub(crate) fn earliest_ms(&self) -> Option<i64> {
        self.per_time.keys().next().copied()
    }

    /// Covers `[start, end)` with `value`, replacing whatever covered it.
    pub(crate) fn insert(&mut self, start: u64, end: u64, value: V) {
        if start >= end {
            return;
        }
        self.remove(start, end);
        let t = value.time_ms();
        *self.per_time.entry(t).or_insert(0) += end - start;
        self.map.insert(start, end, value);
        if let Some(due) = &mut self.due {
            let slot = due.entry((t, start)).or_insert(end);
            *slot = (*slot).max(end);
            if due.len() > 2 * self.map.range_count() + 64 {
                self.rebuild_index();
            }
        }
    }

    /// Uncovers `[start, end)`; returns the pieces that were covered, in order.
    pub(crate) fn remove(&mut self, start: u64, end: u64) -> Vec<(u64, u64, V)> {
        let removed = self.map.remove(start, end);
        for (s, e, v) in &removed {
            let t = v.time_ms();
            if let Some(n) = self.per_time.get_mut(&t) {
                *n = n.saturating_sub(e - s);
                if *n == 0 {
                    self.per_time.remove(&t);
                }
            }
        }
        removed
    }

    /// Removes and returns every range whose time is `<= now_ms`, in offset order.
    /// Costs O(log n) per due or stale index entry, never a scan of the whole map.
    pub(crate) fn take_due(&mut self, now_ms: i64) -> Vec<(u64, u64, V)> {
        let mut out = Vec::new();
        if self.earliest_ms().is_none_or(|t| t > now_ms) {
            return out;
        }
        let Some(due) = &mut self.due else {
            return out;
        };
        let mut entries = Vec::new();
        while let Some(entry) = due.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            let ((_, s), e) = entry.remove_entry();
            entries.push((s, e));
        }
        for (s, e) in entries {
            let pieces: Vec<(u64, u64)> = self
                .map
                .overlapping(s, e)
                .into_iter()
                .filter(|(_, _, v)| v.time_ms() <= now_ms)
                .map(|(a, b, _)| (a, b))
                .collect();
            for (a, b) in pieces {
                out.extend(self.remove(a, b));
            }
        }
        out.sort_by_key(|(s, _, _)| *s);
        // Pieces of one original range may come from several index entries.
        let mut merged: Vec<(u64, u64, V)> = Vec::with_capacity(out.len());
        for (s, e, v) in out {
            match merged.last_mut() {
                Some(last) if last.1 == s && last.2 == v => last.1 = e,
                _ => merged.push((s, e, v)),
            }
        }
        merged
    }

    fn rebuild_index(&mut self) {
        if let Some(due) = &mut self.due {
            due.clear();
            for (s, e, v) in self.map.iter() {
                due.insert((v.time_ms(), s), e);
            }
        }
    }

    /// Test check: the exact index agrees with the map.
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let mut per_time = BTreeMap::new();
        for (s, e, v) in self.map.iter() {
            *per_time.entry(v.time_ms()).or_insert(0u64) += e - s;
        }
        assert_eq!(per_time, self.per_time, "per-time counts out of step");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    impl Timed for i64 {
        fn time_ms(&self) -> i64 {
            *self
        }
    }

    #[test]
    fn take_due_finds_split_and_merged_ranges() {
        let mut t = TimedRanges::new(true);
        t.insert(0, 10, 5i64);
        t.insert(10, 20, 5); // merges with 0..10
        t.insert(20, 30, 9);
        t.remove(4, 6); // splits
        assert_eq!(t.earliest_ms(), Some(5));
        assert_eq!(t.take_due(4), vec![]);
        assert_eq!(t.take_due(5), vec![(0, 4, 5), (6, 20, 5)]);
        assert_eq!(t.earliest_ms(), Some(9));
        assert_eq!(t.covered(), 10);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64, i64),
        Remove(u64, u64),
        TakeDue(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..100, 1u64..20, 0i64..50).prop_map(|(s, l, t)| Op::Insert(s, s + l, t)),
            (0u64..100, 1u64..20).prop_map(|(s, l)| Op::Remove(s, s + l)),
            (0i64..50).prop_map(Op::TakeDue),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// take_due returns exactly the offsets whose time passed, however ranges were
        /// merged and split; the index stays bounded.
        #[test]
        fn take_due_matches_per_offset_model(ops in proptest::collection::vec(op(), 1..120)) {
            let mut t = TimedRanges::new(true);
            let mut model: BTreeMap<u64, i64> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(s, e, v) => {
                        t.insert(s, e, v);
                        for o in s..e { model.insert(o, v); }
                    }
                    Op::Remove(s, e) => {
                        t.remove(s, e);
                        for o in s..e { model.remove(&o); }
                    }
                    Op::TakeDue(now) => {
                        let got: Vec<(u64, i64)> = t
                            .take_due(now)
                            .into_iter()
                            .flat_map(|(s, e, v)| (s..e).map(move |o| (o, v)))
                            .collect();
                        let want: Vec<(u64, i64)> =
                            model.iter().filter(|(_, v)| **v <= now).map(|(o, v)| (*o, *v)).collect();
                        model.retain(|_, v| *v > now);
                        prop_assert_eq!(got, want);
                    }
                }
                t.check();
                prop_assert_eq!(t.earliest_ms(), model.values().min().copied());
                prop_assert_eq!(t.covered(), model.len() as u64);
                let index = t.due.as_ref().map_or(0, |d| d.len());
                prop_assert!(index <= 2 * t.map.range_count() + 65);
            }
        }
    }
}

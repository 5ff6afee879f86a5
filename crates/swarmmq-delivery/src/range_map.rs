use std::collections::BTreeMap;

/// Disjoint half-open offset ranges `[start, end)`, each carrying a value. Touching
/// ranges with equal values are merged, so a run of a thousand offsets leased together
/// stays one entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeMap<V> {
    ranges: BTreeMap<u64, (u64, V)>,
    /// Sum of range lengths, kept so bounds checks are O(1).
    covered: u64,
}

/// A set of offsets stored as ranges.
pub type RangeSet = RangeMap<()>;

impl<V: Clone + PartialEq> RangeMap<V> {
    pub fn new() -> Self {
        RangeMap {
            ranges: BTreeMap::new(),
            covered: 0,
        }
    }

    /// Number of offsets covered.
    pub fn covered(&self) -> u64 {
        self.covered
    }

    /// Number of separate ranges (the memory cost).
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, &V)> {
        self.ranges.iter().map(|(s, (e, v))| (*s, *e, v))
    }

    pub fn first(&self) -> Option<(u64, u64, &V)> {
        self.ranges.iter().next().map(|(s, (e, v))| (*s, *e, v))
    }

    pub fn last(&self) -> Option<(u64, u64, &V)> {
        self.ranges
            .iter()
            .next_back()
            .map(|(s, (e, v))| (*s, *e, v))
    }

    /// The value at `offset`, if covered.
    pub fn get(&self, offset: u64) -> Option<&V> {
        let (_, (end, v)) = self.ranges.range(..=offset).next_back()?;
        (offset < *end).then_some(v)
    }

    /// Pieces of `[start, end)` that are covered, clipped to it, in order.
    pub fn overlapping(&self, start: u64, end: u64) -> Vec<(u64, u64, V)> {
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        // A range starting before `start` may still reach into it.
        if let Some((s, (e, v))) = self.ranges.range(..start).next_back()
            && *e > start
        {
            out.push((start.max(*s), (*e).min(end), v.clone()));
        }
        for (s, (e, v)) in self.ranges.range(start..end) {
            out.push((*s, (*e).min(end), v.clone()));
        }
        out
    }

    /// Sub-ranges of `[start, end)` not covered, in order.
    pub fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut pos = start;
        for (s, e, _) in self.overlapping(start, end) {
            if s > pos {
                out.push((pos, s));
            }
            pos = e;
        }
        if pos < end {
            out.push((pos, end));
        }
        out
    }

    /// Covers `[start, end)` with `value`, replacing whatever covered it before.
    pub fn insert(&mut self, start: u64, end: u64, value: V) {
        if start >= end {
            return;
        }
        self.remove(start, end);
        let mut new_start = start;
        let mut new_end = end;
        // Merge with a touching left neighbour of equal value.
        if let Some((&ls, &(le, ref lv))) = self.ranges.range(..start).next_back()
            && le == start
            && *lv == value
        {
            self.ranges.remove(&ls);
            new_start = ls;
        }
        // Merge with a touching right neighbour of equal value.
        if let Some((re, rv)) = self.ranges.get(&end)
            && *rv == value
        {
            new_end = *re;
            self.ranges.remove(&end);
        }
        self.ranges.insert(new_start, (new_end, value));
        self.covered += end - start;
    }

    /// Whether any offset of `[start, end)` is covered.
    pub fn intersects(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return false;
        }
        if let Some((_, (e, _))) = self.ranges.range(..start).next_back()
            && *e > start
        {
            return true;
        }
        self.ranges.range(start..end).next().is_some()
    }

    /// Uncovers `[start, end)` and returns the pieces that were covered, in order.
    pub fn remove(&mut self, start: u64, end: u64) -> Vec<(u64, u64, V)> {
        let mut removed = Vec::new();
        if start >= end {
            return removed;
        }
        // Trim a range that starts before `start` and reaches into it.
        if let Some((&s, &(e, ref v))) = self.ranges.range(..start).next_back()
            && e > start
        {
            let v = v.clone();
            removed.push((start, e.min(end), v.clone()));
            self.ranges.insert(s, (start, v.clone()));
            if e > end {
                self.ranges.insert(end, (e, v));
            }
        }
        // One lookup per range inside: no scratch list, and usually 0 or 1 of them.
        while let Some((&s, _)) = self.ranges.range(start..end).next() {
            if let Some((e, v)) = self.ranges.remove(&s) {
                removed.push((s, e.min(end), v.clone()));
                if e > end {
                    self.ranges.insert(end, (e, v));
                }
            }
        }
        for (s, e, _) in &removed {
            self.covered -= e - s;
        }
        removed
    }

    /// Removes and returns the first range.
    pub fn pop_first(&mut self) -> Option<(u64, u64, V)> {
        let (s, (e, v)) = self.ranges.pop_first()?;
        self.covered -= e - s;
        Some((s, e, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap as Model;

    #[test]
    fn merges_touching_equal_ranges() {
        let mut m = RangeMap::new();
        m.insert(0, 10, 1u8);
        m.insert(10, 20, 1);
        m.insert(20, 30, 2);
        assert_eq!(m.range_count(), 2);
        assert_eq!(m.covered(), 30);
        assert_eq!(m.get(15), Some(&1));
        assert_eq!(m.get(25), Some(&2));
        assert_eq!(m.get(30), None);
    }

    #[test]
    fn remove_splits_and_reports_pieces() {
        let mut m = RangeMap::new();
        m.insert(0, 100, 'a');
        let removed = m.remove(40, 60);
        assert_eq!(removed, vec![(40, 60, 'a')]);
        assert_eq!(
            m.iter().map(|(s, e, v)| (s, e, *v)).collect::<Vec<_>>(),
            vec![(0, 40, 'a'), (60, 100, 'a')]
        );
        assert_eq!(m.covered(), 80);
        assert_eq!(m.gaps(30, 70), vec![(40, 60)]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64, u8),
        Remove(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..200, 0u64..40, 0u8..3).prop_map(|(s, l, v)| Op::Insert(s, s + l, v)),
            (0u64..200, 0u64..40).prop_map(|(s, l)| Op::Remove(s, s + l)),
        ]
    }

    proptest! {
        /// Against a per-offset model: same coverage, same values, ranges stay disjoint and
        /// touching equal neighbours are always merged.
        #[test]
        fn matches_per_offset_model(ops in proptest::collection::vec(op(), 1..60)) {
            let mut m = RangeMap::new();
            let mut model: Model<u64, u8> = Model::new();
            for op in ops {
                match op {
                    Op::Insert(s, e, v) => {
                        m.insert(s, e, v);
                        for o in s..e { model.insert(o, v); }
                    }
                    Op::Remove(s, e) => {
                        let removed: u64 = m.remove(s, e).iter().map(|(a, b, _)| b - a).sum();
                        let mut n = 0;
                        for o in s..e { if model.remove(&o).is_some() { n += 1; } }
                        prop_assert_eq!(removed, n);
                    }
                }
                prop_assert_eq!(m.covered(), model.len() as u64);
                for o in 0..260 {
                    prop_assert_eq!(m.get(o), model.get(&o));
                }
                let ranges: Vec<_> = m.iter().map(|(s, e, v)| (s, e, *v)).collect();
                for w in ranges.windows(2) {
                    prop_assert!(w[0].1 <= w[1].0);
                    prop_assert!(!(w[0].1 == w[1].0 && w[0].2 == w[1].2), "unmerged {:?}", w);
                }
            }
        }
    }
}

//! `SharedPartition` against a per-offset model that applies the documented rules one
//! message at a time, with restarts through a real `GroupStore` on disk.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::debug::Slot;
use super::*;
use crate::group_store::GroupStore;

struct Model {
    floor: u64,
    scan: u64,
    /// Every offset at or above the floor that has a state, as `SharedPartition::dump`.
    states: BTreeMap<u64, Slot>,
    /// Reported by the next poll: offset -> (dead, attempts).
    reports: BTreeMap<u64, (bool, u32)>,
}

fn norm(p: u8) -> u8 {
    match p {
        0 => 5,
        p => p.min(10),
    }
}

fn expired(log: &[RecordInfo], o: u64, now: i64) -> bool {
    log.get(o as usize)
        .and_then(|r| r.expires_at_ms)
        .is_some_and(|x| x <= now)
}

impl Model {
    fn count(&self, f: impl Fn(&Slot) -> bool) -> u64 {
        self.states.values().filter(|s| f(s)).count() as u64
    }

    fn counts(&self) -> Counts {
        let ready = self.count(|s| matches!(s, Slot::Ready { .. }));
        let leased = self.count(|s| matches!(s, Slot::Leased { .. }));
        let settling = self.count(|s| matches!(s, Slot::Settling { .. }));
        Counts {
            floor: self.floor,
            scan_position: self.scan,
            ready,
            leased,
            delayed: self.count(|s| matches!(s, Slot::Delayed { .. })),
            settling,
            tracked: ready + leased + settling,
        }
    }

    fn advance(&mut self) {
        while self.states.get(&self.floor) == Some(&Slot::Done) {
            self.states.remove(&self.floor);
            self.floor += 1;
        }
        self.scan = self.scan.max(self.floor);
    }

    fn doom(&mut self, o: u64, dead: bool, attempts: u32, report: bool) {
        self.states.insert(o, Slot::Settling { dead, attempts });
        if report {
            self.reports.insert(o, (dead, attempts));
        }
    }

    fn scan_request(&self, visible_end: u64, s: &SharedSettings) -> Option<(u64, u64)> {
        if visible_end <= self.scan {
            return None;
        }
        let c = self.counts();
        let n = (visible_end - self.scan)
            .min(s.max_tracked.saturating_sub(c.tracked))
            .min(s.max_delayed.saturating_sub(c.delayed));
        (n > 0).then_some((self.scan, n))
    }

    fn observe(&mut self, records: &[RecordInfo], now: i64) {
        for r in records {
            let o = r.offset;
            assert_eq!(
                o, self.scan,
                "the harness feeds exactly at the scan position"
            );
            self.scan += 1;
            let attempts = match self.states.get(&o) {
                Some(Slot::Done | Slot::Settling { .. }) => continue,
                Some(Slot::Restored { attempts }) => *attempts,
                _ => 0,
            };
            let priority = norm(r.priority);
            if r.expires_at_ms.is_some_and(|x| x <= now) {
                self.doom(o, false, attempts, true);
            } else if let Some(at) = r.deliver_at_ms.filter(|d| *d > now) {
                let slot = Slot::Delayed {
                    priority,
                    attempts,
                    at,
                };
                self.states.insert(o, slot);
            } else {
                let slot = Slot::Ready {
                    priority,
                    attempts,
                    since: now,
                };
                self.states.insert(o, slot);
            }
        }
    }

    /// Returns (grants as (offset, attempt) in order, expired, dead) as (offset, attempts).
    #[allow(clippy::type_complexity)]
    fn poll(
        &mut self,
        now: i64,
        max: u64,
        s: &SharedSettings,
        log: &[RecordInfo],
    ) -> (Vec<(u64, u32)>, Vec<(u64, u32)>, Vec<(u64, u32)>) {
        let keys: Vec<u64> = self.states.keys().copied().collect();
        for o in keys {
            match self.states[&o] {
                Slot::Leased {
                    priority,
                    attempt,
                    deadline,
                    ..
                } if deadline <= now => {
                    if s.exhausted(attempt) {
                        self.doom(o, true, attempt, true);
                    } else {
                        let slot = Slot::Ready {
                            priority,
                            attempts: attempt,
                            since: deadline,
                        };
                        self.states.insert(o, slot);
                    }
                }
                Slot::Delayed {
                    priority,
                    attempts,
                    at,
                } if at <= now => {
                    if expired(log, o, now) {
                        self.doom(o, false, attempts, true);
                    } else {
                        let slot = Slot::Ready {
                            priority,
                            attempts,
                            since: at,
                        };
                        self.states.insert(o, slot);
                    }
                }
                _ => {}
            }
        }
        let mut room = max.min(s.max_leased.saturating_sub(self.counts().leased));
        let deadline = now + s.ack_timeout_ms as i64;
        let mut grants = Vec::new();
        while room > 0 {
            // Per level: (oldest since, lowest offset).
            let mut levels: BTreeMap<u8, (i64, u64)> = BTreeMap::new();
            for (o, slot) in &self.states {
                if let Slot::Ready {
                    priority, since, ..
                } = slot
                {
                    let e = levels.entry(*priority).or_insert((*since, *o));
                    e.0 = e.0.min(*since);
                    e.1 = e.1.min(*o);
                }
            }
            let best = levels
                .iter()
                .map(|(p, (since, first))| {
                    let waited = (now - since).max(0) as u64;
                    let bonus = waited.checked_div(s.priority_aging_ms).unwrap_or(0);
                    let eff = (u64::from(*p) + bonus).min(10) as u8;
                    (eff, *since, *first)
                })
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
            let Some((_, _, o)) = best else { break };
            let Slot::Ready {
                priority,
                attempts,
                since,
            } = self.states[&o]
            else {
                unreachable!()
            };
            if expired(log, o, now) {
                self.doom(o, false, attempts, true);
                continue;
            }
            if s.exhausted(attempts) {
                self.doom(o, true, attempts, true);
                continue;
            }
            let slot = Slot::Leased {
                priority,
                attempt: attempts + 1,
                deadline,
                ready_since: since,
            };
            self.states.insert(o, slot);
            grants.push((o, attempts + 1));
            room -= 1;
        }
        let mut exp = Vec::new();
        let mut dead = Vec::new();
        for (o, (d, a)) in std::mem::take(&mut self.reports) {
            if d {
                dead.push((o, a));
            } else {
                exp.push((o, a));
            }
        }
        (grants, exp, dead)
    }

    fn ack(&mut self, start: u64, end: u64) -> Vec<u64> {
        let mut done = Vec::new();
        for o in start.max(self.floor)..end {
            match self.states.get(&o) {
                None | Some(Slot::Done) => {}
                Some(_) => {
                    self.states.insert(o, Slot::Done);
                    self.reports.remove(&o);
                    done.push(o);
                }
            }
        }
        self.advance();
        done
    }

    fn settle(&mut self, start: u64, end: u64) -> Vec<u64> {
        let mut done = Vec::new();
        for o in start.max(self.floor)..end {
            if let Some(Slot::Settling { .. }) = self.states.get(&o) {
                self.states.insert(o, Slot::Done);
                self.reports.remove(&o);
                done.push(o);
            }
        }
        self.advance();
        done
    }

    fn nack(
        &mut self,
        start: u64,
        end: u64,
        now: i64,
        delay: u64,
        s: &SharedSettings,
    ) -> (u64, Vec<(u64, u32)>) {
        let mut requeued = 0;
        let mut dead = Vec::new();
        for o in start..end {
            if let Some(Slot::Leased {
                priority, attempt, ..
            }) = self.states.get(&o).copied()
            {
                if s.exhausted(attempt) {
                    self.doom(o, true, attempt, false);
                    dead.push((o, attempt));
                    continue;
                }
                requeued += 1;
                let slot = if delay == 0 {
                    Slot::Ready {
                        priority,
                        attempts: attempt,
                        since: now,
                    }
                } else {
                    Slot::Delayed {
                        priority,
                        attempts: attempt,
                        at: now + delay as i64,
                    }
                };
                self.states.insert(o, slot);
            }
        }
        (requeued, dead)
    }

    fn extend(&mut self, start: u64, end: u64, now: i64, ms: u64) -> u64 {
        let mut n = 0;
        for o in start..end {
            if let Some(Slot::Leased { deadline, .. }) = self.states.get_mut(&o) {
                *deadline = now + ms as i64;
                n += 1;
            }
        }
        n
    }

    fn release(&mut self, start: u64, end: u64) {
        for o in start..end {
            if let Some(Slot::Leased {
                priority,
                attempt,
                ready_since,
                ..
            }) = self.states.get(&o).copied()
            {
                let slot = Slot::Ready {
                    priority,
                    attempts: attempt - 1,
                    since: ready_since,
                };
                self.states.insert(o, slot);
            }
        }
    }

    fn report_again(&mut self, start: u64, end: u64) {
        for o in start..end {
            if let Some(Slot::Settling { dead, attempts }) = self.states.get(&o) {
                self.reports.insert(o, (*dead, *attempts));
            }
        }
    }

    fn skip_below(&mut self, log_start: u64) {
        if log_start <= self.floor {
            return;
        }
        self.states.retain(|o, _| *o >= log_start);
        self.reports.retain(|o, _| *o >= log_start);
        self.floor = log_start;
        self.advance();
    }

    fn restart(&mut self, s: &SharedSettings) {
        let old = std::mem::take(&mut self.states);
        self.reports.clear();
        for (o, slot) in old {
            let attempts = match slot {
                Slot::Done => {
                    self.states.insert(o, Slot::Done);
                    continue;
                }
                Slot::Ready { attempts, .. }
                | Slot::Delayed { attempts, .. }
                | Slot::Settling { attempts, .. }
                | Slot::Restored { attempts } => attempts,
                Slot::Leased { attempt, .. } => attempt,
            };
            if attempts == 0 {
                continue;
            }
            if s.exhausted(attempts) {
                self.doom(o, true, attempts, true);
            } else {
                self.states.insert(o, Slot::Restored { attempts });
            }
        }
        self.scan = self.floor;
    }

    fn next_due(&self) -> Option<i64> {
        self.states
            .values()
            .filter_map(|s| match s {
                Slot::Leased { deadline, .. } => Some(*deadline),
                Slot::Delayed { at, .. } => Some(*at),
                _ => None,
            })
            .min()
    }
}

#[derive(Clone, Debug)]
struct Gen {
    priority: u8,
    delay: Option<i64>,
    ttl: Option<i64>,
}

#[derive(Clone, Debug)]
enum Op {
    Grow(Vec<Gen>),
    Observe {
        dt: i64,
        quarter: u64,
    },
    Poll {
        dt: i64,
        max: u64,
        release: usize,
    },
    AckGrant(usize),
    /// (start, len); start is folded into the log's offsets.
    Ack(u64, u64),
    /// (start, len, delay_ms)
    Nack(u64, u64, u64),
    /// (start, len, extend_ms)
    Extend(u64, u64, u64),
    Settle(usize),
    /// (start, len)
    ReportAgain(u64, u64),
    Advance(i64),
    SkipBelow(u64),
    Restart {
        snapshot: bool,
    },
    /// Destination config change: a new `max_delivery_attempts`.
    SetMaxAttempts(u32),
}

fn gen_record() -> impl Strategy<Value = Gen> {
    (
        prop_oneof![4 => 1u8..=10, 1 => Just(0u8), 1 => Just(12u8), 3 => Just(5u8)],
        prop_oneof![3 => Just(None), 1 => (-20i64..200).prop_map(Some)],
        prop_oneof![3 => Just(None), 1 => (0i64..300).prop_map(Some)],
    )
        .prop_map(|(priority, delay, ttl)| Gen {
            priority,
            delay,
            ttl,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(gen_record(), 1..12).prop_map(Op::Grow),
        3 => (0i64..30, 1u64..=4).prop_map(|(dt, quarter)| Op::Observe { dt, quarter }),
        5 => (0i64..60, 1u64..25, prop_oneof![3 => Just(0usize), 1 => 1usize..6])
            .prop_map(|(dt, max, release)| Op::Poll { dt, max, release }),
        3 => (0usize..4).prop_map(Op::AckGrant),
        1 => (0u64..300, 1u64..30).prop_map(|(s, l)| Op::Ack(s, l)),
        2 => (0u64..300, 1u64..10, prop_oneof![Just(0u64), 1u64..150])
            .prop_map(|(s, l, d)| Op::Nack(s, l, d)),
        1 => (0u64..300, 1u64..10, 0u64..200).prop_map(|(s, l, m)| Op::Extend(s, l, m)),
        2 => (1usize..4).prop_map(Op::Settle),
        1 => (0u64..300, 1u64..20).prop_map(|(s, l)| Op::ReportAgain(s, l)),
        1 => (0i64..150).prop_map(Op::Advance),
        1 => (0u64..8).prop_map(Op::SkipBelow),
        1 => any::<bool>().prop_map(|snapshot| Op::Restart { snapshot }),
        1 => (0u32..4).prop_map(Op::SetMaxAttempts),
    ]
}

fn settings() -> impl Strategy<Value = SharedSettings> {
    (
        prop_oneof![Just(50u64), Just(100)],
        prop_oneof![Just(8u64), Just(40)],
        prop_oneof![Just(10u64), Just(60)],
        prop_oneof![Just(3u64), Just(20)],
        0u32..4,
        prop_oneof![Just(0u64), Just(20), Just(60)],
    )
        .prop_map(
            |(ack, leased, tracked, delayed, attempts, aging)| SharedSettings {
                ack_timeout_ms: ack,
                max_leased: leased,
                max_tracked: tracked,
                max_delayed: delayed,
                max_delivery_attempts: attempts,
                priority_aging_ms: aging,
            },
        )
}

fn expand(ranges: &[(u64, u64)]) -> Vec<u64> {
    ranges.iter().flat_map(|(a, b)| *a..*b).collect()
}

fn expand_settle(ranges: &[SettleRange]) -> Vec<(u64, u32)> {
    ranges
        .iter()
        .flat_map(|r| (r.start..r.end).map(move |o| (o, r.attempts)))
        .collect()
}

/// Groups sorted single offsets into ranges (what the node would log).
fn to_ranges(offsets: &[(u64, u32)]) -> Vec<(u64, u64, u32)> {
    let mut out: Vec<(u64, u64, u32)> = Vec::new();
    for (o, a) in offsets {
        match out.last_mut() {
            Some(last) if last.1 == *o && last.2 == *a => last.1 += 1,
            _ => out.push((*o, o + 1, *a)),
        }
    }
    out
}

struct Harness {
    s: SharedSettings,
    real: SharedPartition,
    model: Model,
    log: Vec<RecordInfo>,
    log_start: u64,
    now: i64,
    dir: tempfile::TempDir,
    store: GroupStore,
    last_grants: Vec<(u64, u64)>,
    /// Reported dead or expired offsets the node has not settled yet.
    to_settle: Vec<(u64, u64)>,
}

impl Harness {
    fn new(s: SharedSettings) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let (store, restored) = GroupStore::open(dir.path(), "d").unwrap();
        assert!(restored.is_empty());
        Harness {
            s,
            real: SharedPartition::new(0),
            model: Model {
                floor: 0,
                scan: 0,
                states: BTreeMap::new(),
                reports: BTreeMap::new(),
            },
            log: Vec::new(),
            log_start: 0,
            now: 0,
            dir,
            store,
            last_grants: Vec::new(),
            to_settle: Vec::new(),
        }
    }

    fn offset(&self, raw: u64) -> u64 {
        raw % (self.log.len() as u64 + 5)
    }

    fn log_done(&mut self, done: &Completed, settled: bool) {
        let ranges: Vec<(u32, u64, u64)> = done.ranges.iter().map(|(a, b)| (0, *a, *b)).collect();
        if settled {
            self.store.append_settled(&ranges).unwrap();
        } else {
            self.store.append_acks(&ranges).unwrap();
        }
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        let s = self.s;
        match op {
            Op::Grow(gens) => {
                for g in gens {
                    let offset = self.log.len() as u64;
                    self.log.push(RecordInfo {
                        offset,
                        priority: g.priority,
                        timestamp_ms: self.now,
                        deliver_at_ms: g.delay.map(|d| self.now + d),
                        expires_at_ms: g.ttl.map(|t| self.now + t),
                    });
                }
            }
            Op::Observe { dt, quarter } => {
                self.now += dt;
                let end = self.log.len() as u64;
                let req = self.real.scan_request(end, &s);
                prop_assert_eq!(req, self.model.scan_request(end, &s));
                if let Some((from, n)) = req {
                    let take = (n * quarter).div_ceil(4);
                    let recs = &self.log[from as usize..(from + take) as usize];
                    prop_assert_eq!(self.real.observe(recs, self.now), take);
                    self.model.observe(recs, self.now);
                }
            }
            Op::Poll { dt, max, release } => {
                self.now += dt;
                let out = self.real.poll(self.now, max, &s);
                let (grants, expired, dead) = self.model.poll(self.now, max, &s, &self.log);
                let got: Vec<(u64, u32)> = out
                    .grants
                    .iter()
                    .flat_map(|g| (g.start..g.end).map(move |o| (o, g.attempt)))
                    .collect();
                prop_assert_eq!(&got, &grants, "grants (priority order, attempts)");
                prop_assert_eq!(expand_settle(&out.expired), expired, "expired");
                prop_assert_eq!(expand_settle(&out.dead), dead, "dead");
                for (o, _) in &got {
                    let r = &self.log[*o as usize];
                    prop_assert!(r.deliver_at_ms.is_none_or(|d| d <= self.now), "early {}", o);
                    prop_assert!(
                        r.expires_at_ms.is_none_or(|x| x > self.now),
                        "expired {}",
                        o
                    );
                }
                for r in out.expired.iter().chain(&out.dead) {
                    self.to_settle.push((r.start, r.end));
                }
                // The answer ran out of room for the last `release` offsets.
                let keep = got.len().saturating_sub(release);
                for (o, _) in &got[keep..] {
                    self.real.release(*o, o + 1);
                    self.model.release(*o, o + 1);
                }
                let mut kept = got[..keep].to_vec();
                kept.sort_unstable();
                let attempts: Vec<(u32, u64, u64, u32)> = to_ranges(&kept)
                    .into_iter()
                    .map(|(a, b, n)| (0, a, b, n))
                    .collect();
                self.store.append_attempts(&attempts).unwrap();
                self.last_grants = to_ranges(&kept)
                    .into_iter()
                    .map(|(a, b, _)| (a, b))
                    .collect();
            }
            Op::AckGrant(i) => {
                if let Some((a, b)) = self.last_grants.get(i).copied() {
                    let done = self.real.ack(a, b);
                    prop_assert_eq!(expand(&done.ranges), self.model.ack(a, b));
                    self.log_done(&done, false);
                }
            }
            Op::Ack(a, len) => {
                let a = self.offset(a);
                let b = a + len;
                let done = self.real.ack(a, b);
                prop_assert_eq!(
                    done.count,
                    done.ranges.iter().map(|(x, y)| y - x).sum::<u64>()
                );
                prop_assert_eq!(expand(&done.ranges), self.model.ack(a, b));
                self.log_done(&done, false);
            }
            Op::Nack(a, len, delay) => {
                let a = self.offset(a);
                let b = a + len;
                let out = self.real.nack(a, b, self.now, delay, &s);
                let (requeued, dead) = self.model.nack(a, b, self.now, delay, &s);
                prop_assert_eq!(out.requeued, requeued);
                prop_assert_eq!(expand_settle(&out.dead), dead);
                for r in &out.dead {
                    self.to_settle.push((r.start, r.end));
                }
            }
            Op::Extend(a, len, ms) => {
                let a = self.offset(a);
                let b = a + len;
                prop_assert_eq!(
                    self.real.extend(a, b, self.now, ms),
                    self.model.extend(a, b, self.now, ms)
                );
            }
            Op::Settle(k) => {
                let k = k.min(self.to_settle.len());
                for (a, b) in self.to_settle.drain(..k).collect::<Vec<_>>() {
                    let done = self.real.settle(a, b);
                    prop_assert_eq!(expand(&done.ranges), self.model.settle(a, b));
                    self.log_done(&done, true);
                }
            }
            Op::ReportAgain(a, len) => {
                let a = self.offset(a);
                let b = a + len;
                self.real.report_again(a, b);
                self.model.report_again(a, b);
            }
            Op::Advance(dt) => self.now += dt,
            Op::SetMaxAttempts(n) => self.s.max_delivery_attempts = n,
            Op::SkipBelow(n) => {
                self.log_start = (self.log_start + n).min(self.log.len() as u64);
                self.real.skip_below(self.log_start);
                self.model.skip_below(self.log_start);
            }
            Op::Restart { snapshot } => {
                if snapshot {
                    self.store.write_snapshot(&[self.real.durable(0)]).unwrap();
                }
                let (store, restored) = GroupStore::open(self.dir.path(), "d").unwrap();
                self.store = store;
                self.real = restored.iter().find(|d| d.partition == 0).map_or_else(
                    || SharedPartition::new(0),
                    |d| SharedPartition::restore(d, &s),
                );
                self.real.skip_below(self.log_start);
                self.model.restart(&s);
                self.model.skip_below(self.log_start);
                self.last_grants.clear();
                self.to_settle.clear();
            }
        }
        self.real.check();
        prop_assert_eq!(
            self.real.dump(),
            self.model.states.clone(),
            "per-offset state"
        );
        prop_assert_eq!(self.real.counts(), self.model.counts());
        let reports: Vec<(u64, bool, u32)> = self
            .model
            .reports
            .iter()
            .map(|(o, (d, a))| (*o, *d, *a))
            .collect();
        prop_assert_eq!(self.real.pending_reports(), reports);
        let ttl: Vec<(u64, i64)> = self
            .model
            .states
            .iter()
            .filter(|(_, slot)| {
                matches!(
                    slot,
                    Slot::Ready { .. } | Slot::Leased { .. } | Slot::Delayed { .. }
                )
            })
            .filter_map(|(o, _)| self.log[*o as usize].expires_at_ms.map(|x| (*o, x)))
            .collect();
        prop_assert_eq!(self.real.ttl_offsets(), ttl);
        prop_assert_eq!(self.real.next_due_ms(), self.model.next_due());
        let c = self.real.counts();
        prop_assert!(c.leased <= s.max_leased);
        prop_assert!(c.tracked + c.delayed <= s.max_tracked + s.max_delayed);
        prop_assert_eq!(self.real.lag(self.log.len() as u64) >= c.tracked, true);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn shared_partition_matches_per_offset_model(
        s in settings(),
        ops in proptest::collection::vec(op(), 1..100),
    ) {
        let mut h = Harness::new(s);
        for op in ops {
            h.apply(op)?;
        }
    }
}

//! Shared-mode (queue) delivery of one partition to one consumer group: priorities with
//! aging, delays, TTLs, leases, attempt counting and dead-letter decisions, all as
//! offset ranges. It decides; the node reads records, answers pulls, writes the durable
//! log and publishes to the DLQ.
//!
//! # States
//! Every offset from `floor` on is in at most one state: *done* (acked or settled),
//! *ready* (per priority level), *leased*, *delayed*, *settling* (reported dead or
//! expired, waiting for the node's `settle`) or, right after a restart, *restored*
//! (delivered before the restart, attempts known, metadata not yet read again). Offsets
//! below `floor` are all done. The state only knows metadata it has been fed: the node
//! asks [`SharedPartition::scan_request`] which offsets to read and feeds them, in offset
//! order, to [`SharedPartition::observe`].
//!
//! # Which message goes first
//! - A ready message of base priority `p` (1..=10, 10 highest) belongs to level `p`.
//!   It became ready at its *ready-since* time: when it was observed; for a delayed or
//!   nack-delayed message, its due time; after a lease expired, the lease deadline; after
//!   a `nack` without delay, the nack time; after `release`, whatever it was before.
//! - **Aging:** a level's effective priority is
//!   `min(10, p + floor((now - oldest ready-since in the level) / priority_aging_ms))`
//!   (no aging when `priority_aging_ms` is 0). So a message waiting for
//!   `(10 - p) × priority_aging_ms` has reached 10 and can no longer be overtaken by
//!   messages that became ready after it: a priority-1 message is delivered within about
//!   `9 × priority_aging_ms` however many priority-10 messages keep arriving (plus the
//!   time to drain priority-10 messages that were ready before it).
//! - `poll` repeatedly takes the level with the highest effective priority; ties go to
//!   the level whose oldest ready message is older, then to the level with the lower
//!   offset. From the chosen level it takes the lowest ready offset. This is decided per
//!   message but carried out per range: every offset of a ready range shares its level
//!   and ready-since, and other levels' offsets lie outside it, so the choice can only
//!   change where a range ends.
//! - Priority order is exact within the tracked window: offsets from `floor` up to the
//!   scan position, at most `max_tracked` not-done messages (plus up to `max_delayed`
//!   delayed ones). A high-priority message beyond the window waits until the window
//!   moves; aging counts from when a message joined the window.
//!
//! # Delays, TTLs, attempts
//! - A message with `deliver_at_ms > now` is delayed and becomes ready at exactly that
//!   time, never earlier. A `nack` with a delay works the same way. Nack delays are not
//!   durable: after a restart the message is ready again at once.
//! - A message with `expires_at_ms <= now` is never delivered: it is reported as expired
//!   when observed, when it becomes due, or when it would be granted. A ready message
//!   whose TTL passes is found when it would be granted, not before.
//! - Delivery `n` of a message is attempt `n`. When a lease of attempt
//!   `>= max_delivery_attempts` expires or is nacked, the message is reported dead
//!   instead of made ready: "DLQ after exactly N attempts" is N deliveries then the DLQ.
//!   Attempt counts survive restarts through the group's log; a message restored with
//!   its attempts used up is reported dead by the first `poll`.
//!
//! # Leases
//! `poll` leases offsets until `now + ack_timeout_ms`; `extend` moves the deadline,
//! `ack` ends the lease, `nack` and expiry hand the message back, `release` undoes a
//! grant the consumer never saw. A lease counts until a `poll` finds it expired, so an
//! `ack`, `nack` or `extend` arriving after the deadline but before that poll still
//! applies to it.
//!
//! # Cost
//! A run of same-priority, undelayed, non-expiring records is one range from `observe`
//! to `ack`; delays, TTLs and leases are found through time indexes, never by scanning
//! every entry.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use crate::group_store::PartitionDurable;
use crate::range_map::{RangeMap, RangeSet};
use crate::shared_types::{
    Completed, Counts, Grant, MAX_PRIORITY, NackOutcome, PollOutcome, RecordInfo, SettleRange,
    SharedSettings,
};
use crate::timed_ranges::{Timed, TimedRanges};

const LEVELS: usize = MAX_PRIORITY as usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ready {
    /// Deliveries so far; the next one is `attempts + 1`.
    attempts: u32,
    since_ms: i64,
}

impl Timed for Ready {
    fn time_ms(&self) -> i64 {
        self.since_ms
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lease {
    deadline_ms: i64,
    attempt: u32,
    priority: u8,
    /// Ready-since before the grant, so `release` restores the message exactly.
    ready_since_ms: i64,
}

impl Timed for Lease {
    fn time_ms(&self) -> i64 {
        self.deadline_ms
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Delayed {
    at_ms: i64,
    attempts: u32,
    priority: u8,
}

impl Timed for Delayed {
    fn time_ms(&self) -> i64 {
        self.at_ms
    }
}

/// Why a message waits for the node's `settle`, and how often it was delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Doomed {
    dead: bool,
    attempts: u32,
}

/// Where an observed run of records goes.
#[derive(Clone, Copy)]
enum Place {
    Ready { priority: u8 },
    Delayed { priority: u8, at_ms: i64 },
    Expired,
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A level's effective priority at `now` given its oldest ready-since time.
fn effective_priority(priority: u8, oldest_since_ms: i64, now_ms: i64, aging_ms: u64) -> u8 {
    if aging_ms == 0 {
        return priority;
    }
    let waited = u64::try_from(now_ms.saturating_sub(oldest_since_ms)).unwrap_or(0);
    let boosted = u64::from(priority).saturating_add(waited / aging_ms);
    boosted.min(u64::from(MAX_PRIORITY)) as u8
}

/// One consumer group's shared-mode view of one partition. See the module docs.
#[derive(Clone, Debug)]
pub struct SharedPartition {
    floor: u64,
    /// Next offset whose metadata is wanted; everything in `floor..scan` was observed.
    scan: u64,
    /// Done offsets above `floor` (may reach past `scan` after a restart).
    done: RangeSet,
    /// Ready offsets per level; index = priority - 1.
    ready: [TimedRanges<Ready>; LEVELS],
    leased: TimedRanges<Lease>,
    delayed: TimedRanges<Delayed>,
    settling: RangeMap<Doomed>,
    /// The part of `settling` not yet handed out by `poll`.
    reports: RangeMap<Doomed>,
    /// Attempts of offsets delivered before a restart and not observed since.
    restored: RangeMap<u32>,
    /// `expires_at_ms` of ready, leased and delayed offsets that have one.
    ttl: BTreeMap<u64, i64>,
}

impl SharedPartition {
    /// A group that has consumed nothing of a partition whose log starts at `log_start`.
    pub fn new(log_start: u64) -> Self {
        SharedPartition {
            floor: log_start,
            scan: log_start,
            done: RangeSet::new(),
            ready: std::array::from_fn(|_| TimedRanges::new(false)),
            leased: TimedRanges::new(true),
            delayed: TimedRanges::new(true),
            settling: RangeMap::new(),
            reports: RangeMap::new(),
            restored: RangeMap::new(),
            ttl: BTreeMap::new(),
        }
    }

    /// Rebuilds the state after a restart from the durable log: done offsets stay done,
    /// every other offset is delivered again with its attempt count kept. Offsets whose
    /// attempts are used up are reported dead by the first `poll`. Leases and nack delays
    /// are not durable. The node then calls `skip_below(log_start)`.
    pub fn restore(d: &PartitionDurable, s: &SharedSettings) -> Self {
        let mut p = SharedPartition::new(d.floor);
        for (a, b, _) in d.acked.iter() {
            let a = a.max(p.floor);
            if a < b {
                p.done.insert(a, b, ());
            }
        }
        p.advance_floor();
        for (a, b, n) in d.attempts.iter() {
            if *n == 0 {
                continue;
            }
            for (ga, gb) in p.done.gaps(a.max(p.floor), b) {
                if s.exhausted(*n) {
                    let doomed = Doomed {
                        dead: true,
                        attempts: *n,
                    };
                    p.doom(ga, gb, doomed, true);
                } else {
                    p.restored.insert(ga, gb, *n);
                }
            }
        }
        p
    }

    /// Every offset below is done.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// The next offset whose metadata `observe` accepts.
    pub fn scan_position(&self) -> u64 {
        self.scan
    }

    fn tracked(&self) -> u64 {
        self.ready.iter().map(TimedRanges::covered).sum::<u64>()
            + self.leased.covered()
            + self.settling.covered()
    }

    /// How many offsets are in each state.
    pub fn counts(&self) -> Counts {
        let ready = self.ready.iter().map(TimedRanges::covered).sum();
        Counts {
            floor: self.floor,
            scan_position: self.scan,
            ready,
            leased: self.leased.covered(),
            delayed: self.delayed.covered(),
            settling: self.settling.covered(),
            tracked: self.tracked(),
        }
    }

    /// Messages of `floor..log_end` not yet done: the group's lag.
    pub fn lag(&self, log_end: u64) -> u64 {
        log_end.saturating_sub(self.floor).saturating_sub(
            self.done
                .overlapping(self.floor, log_end)
                .iter()
                .map(|(a, b, _)| b - a)
                .sum(),
        )
    }

    /// Which record metadata the state wants next: `(from_offset, max_records)`, or
    /// `None` when nothing new is visible or a bound (`max_tracked`, `max_delayed`) is
    /// reached. The node reads up to that many records from `from_offset` (fewer is
    /// fine) and passes them to `observe`.
    pub fn scan_request(&self, visible_end: u64, s: &SharedSettings) -> Option<(u64, u64)> {
        if visible_end <= self.scan {
            return None;
        }
        let n = (visible_end - self.scan)
            .min(s.max_tracked.saturating_sub(self.tracked()))
            .min(s.max_delayed.saturating_sub(self.delayed.covered()));
        (n > 0).then_some((self.scan, n))
    }

    /// Takes record metadata in offset order, starting at the scan position. Records
    /// before it are ignored (already seen); a record after a gap ends the batch.
    /// Returns how many records were taken. Expired records are reported by the next
    /// `poll`.
    pub fn observe(&mut self, records: &[RecordInfo], now_ms: i64) -> u64 {
        let mut pos = self.scan;
        let mut taken = 0;
        // A run of plain records (same priority, no delay, no TTL) placed as one range.
        let mut run: Option<(u64, u8)> = None;
        for r in records {
            if r.offset < pos {
                continue;
            }
            if r.offset > pos {
                tracing::debug!(
                    expected = pos,
                    got = r.offset,
                    "record metadata skips offsets; stopping the batch"
                );
                break;
            }
            let priority = r.effective_base_priority();
            let expired = r.expires_at_ms.is_some_and(|x| x <= now_ms);
            let delayed_to = r.deliver_at_ms.filter(|d| *d > now_ms);
            if !expired && delayed_to.is_none() && r.expires_at_ms.is_none() {
                match run {
                    Some((_, p)) if p == priority => {}
                    _ => {
                        if let Some((start, p)) = run {
                            self.place(start, pos, Place::Ready { priority: p }, None, now_ms);
                        }
                        run = Some((pos, priority));
                    }
                }
            } else {
                if let Some((start, p)) = run.take() {
                    self.place(start, pos, Place::Ready { priority: p }, None, now_ms);
                }
                let place = match (expired, delayed_to) {
                    (true, _) => Place::Expired,
                    (false, Some(at_ms)) => Place::Delayed { priority, at_ms },
                    (false, None) => Place::Ready { priority },
                };
                self.place(pos, pos + 1, place, r.expires_at_ms, now_ms);
            }
            pos += 1;
            taken += 1;
        }
        if let Some((start, p)) = run {
            self.place(start, pos, Place::Ready { priority: p }, None, now_ms);
        }
        self.scan = pos;
        taken
    }

    /// Puts newly observed `[start, end)` into its state, skipping offsets already done
    /// or settling (known from before a restart) and keeping restored attempts.
    fn place(&mut self, start: u64, end: u64, place: Place, ttl: Option<i64>, now_ms: i64) {
        // Done, settling and restored offsets above the scan exist only after a restart.
        let plain = !self.done.intersects(start, end)
            && !self.settling.intersects(start, end)
            && !self.restored.intersects(start, end);
        let pieces = if plain {
            vec![(start, end, 0)]
        } else {
            let mut free = Vec::new();
            for (a, b) in self.done.gaps(start, end) {
                free.extend(self.settling.gaps(a, b));
            }
            let mut pieces = Vec::new();
            for (a, b) in free {
                pieces.extend(self.take_restored(a, b));
            }
            pieces
        };
        for (x, y, attempts) in pieces {
            match place {
                Place::Expired => {
                    let doomed = Doomed {
                        dead: false,
                        attempts,
                    };
                    self.doom(x, y, doomed, true);
                    continue;
                }
                Place::Ready { priority } => {
                    let ready = Ready {
                        attempts,
                        since_ms: now_ms,
                    };
                    self.level(priority).insert(x, y, ready);
                }
                Place::Delayed { priority, at_ms } => {
                    let delayed = Delayed {
                        at_ms,
                        attempts,
                        priority,
                    };
                    self.delayed.insert(x, y, delayed);
                }
            }
            if let Some(expires) = ttl {
                for o in x..y {
                    self.ttl.insert(o, expires);
                }
            }
        }
    }

    /// Splits `[start, end)` by restored attempts (removing them): `(from, to, attempts)`.
    fn take_restored(&mut self, start: u64, end: u64) -> Vec<(u64, u64, u32)> {
        let mut out = Vec::new();
        let mut pos = start;
        for (a, b, n) in self.restored.remove(start, end) {
            if pos < a {
                out.push((pos, a, 0));
            }
            out.push((a, b, n));
            pos = b;
        }
        if pos < end {
            out.push((pos, end, 0));
        }
        out
    }

    fn level(&mut self, priority: u8) -> &mut TimedRanges<Ready> {
        let i = usize::from(priority.clamp(1, MAX_PRIORITY)) - 1;
        &mut self.ready[i]
    }

    /// Moves `[start, end)` to settling (it must already have left every other state).
    fn doom(&mut self, start: u64, end: u64, doomed: Doomed, report: bool) {
        self.remove_ttl(start, end);
        self.settling.insert(start, end, doomed);
        if report {
            self.reports.insert(start, end, doomed);
        }
    }

    fn remove_ttl(&mut self, start: u64, end: u64) {
        if start >= end || self.ttl.range(start..end).next().is_none() {
            return;
        }
        let keys: Vec<u64> = self.ttl.range(start..end).map(|(o, _)| *o).collect();
        for k in keys {
            self.ttl.remove(&k);
        }
    }

    /// Leases up to `max_messages` ready offsets until `now + ack_timeout`, in priority
    /// order (module docs), and hands out what became dead or expired.
    pub fn poll(&mut self, now_ms: i64, max_messages: u64, s: &SharedSettings) -> PollOutcome {
        for (a, b, lease) in self.leased.take_due(now_ms) {
            if s.exhausted(lease.attempt) {
                let doomed = Doomed {
                    dead: true,
                    attempts: lease.attempt,
                };
                self.doom(a, b, doomed, true);
            } else {
                let ready = Ready {
                    attempts: lease.attempt,
                    since_ms: lease.deadline_ms,
                };
                self.level(lease.priority).insert(a, b, ready);
            }
        }
        for (a, b, d) in self.delayed.take_due(now_ms) {
            self.make_due(a, b, d, now_ms);
        }
        let mut out = PollOutcome::default();
        let mut room = max_messages.min(s.max_leased.saturating_sub(self.leased.covered()));
        let deadline_ms = now_ms.saturating_add(ms(s.ack_timeout_ms));
        while room > 0 {
            let Some(idx) = self.best_level(now_ms, s) else {
                break;
            };
            let Some((a, b, r)) = self.ready[idx].first().map(|(a, b, r)| (a, b, *r)) else {
                break;
            };
            let mut end = b.min(a.saturating_add(room));
            let expired = self
                .ttl
                .range(a..end)
                .find(|(_, x)| **x <= now_ms)
                .map(|(o, _)| *o);
            if let Some(x) = expired {
                if x == a {
                    self.ready[idx].remove(a, a + 1);
                    let doomed = Doomed {
                        dead: false,
                        attempts: r.attempts,
                    };
                    self.doom(a, a + 1, doomed, true);
                    continue;
                }
                end = x;
            }
            self.ready[idx].remove(a, end);
            if s.exhausted(r.attempts) {
                let doomed = Doomed {
                    dead: true,
                    attempts: r.attempts,
                };
                self.doom(a, end, doomed, true);
                continue;
            }
            let attempt = r.attempts.saturating_add(1);
            let lease = Lease {
                deadline_ms,
                attempt,
                priority: idx as u8 + 1,
                ready_since_ms: r.since_ms,
            };
            self.leased.insert(a, end, lease);
            match out.grants.last_mut() {
                Some(g) if g.end == a && g.attempt == attempt => g.end = end,
                _ => out.grants.push(Grant {
                    start: a,
                    end,
                    attempt,
                }),
            }
            room -= end - a;
        }
        while let Some((a, b, d)) = self.reports.pop_first() {
            let range = SettleRange {
                start: a,
                end: b,
                attempts: d.attempts,
            };
            if d.dead {
                out.dead.push(range);
            } else {
                out.expired.push(range);
            }
        }
        out
    }

    /// A delayed range reached its time: ready since then, except offsets whose TTL passed.
    fn make_due(&mut self, start: u64, end: u64, d: Delayed, now_ms: i64) {
        let expired: Vec<u64> = self
            .ttl
            .range(start..end)
            .filter(|(_, x)| **x <= now_ms)
            .map(|(o, _)| *o)
            .collect();
        let ready = Ready {
            attempts: d.attempts,
            since_ms: d.at_ms,
        };
        let mut pos = start;
        for x in expired {
            if pos < x {
                self.level(d.priority).insert(pos, x, ready);
            }
            let doomed = Doomed {
                dead: false,
                attempts: d.attempts,
            };
            self.doom(x, x + 1, doomed, true);
            pos = x + 1;
        }
        if pos < end {
            self.level(d.priority).insert(pos, end, ready);
        }
    }

    /// The level to grant from next: highest effective priority, then oldest, then
    /// lowest offset. Its whole first range may be taken before asking again: the range
    /// shares one ready-since, and other levels' offsets lie outside it.
    fn best_level(&self, now_ms: i64, s: &SharedSettings) -> Option<usize> {
        // Effective priority, then older ready-since, then lower offset.
        type Key = (u8, Reverse<i64>, Reverse<u64>);
        let mut best: Option<(usize, Key)> = None;
        for (i, lvl) in self.ready.iter().enumerate() {
            let (Some((first, _, _)), Some(since)) = (lvl.first(), lvl.earliest_ms()) else {
                continue;
            };
            let eff = effective_priority(i as u8 + 1, since, now_ms, s.priority_aging_ms);
            let key = (eff, Reverse(since), Reverse(first));
            if best.is_none_or(|(_, b)| key > b) {
                best = Some((i, key));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Acknowledges `start..end`: every offset in it that is ready, leased, delayed,
    /// settling or restored becomes done. Others (done already, or never observed nor
    /// delivered) are ignored.
    pub fn ack(&mut self, start: u64, end: u64) -> Completed {
        let start = start.max(self.floor);
        if start >= end {
            return Completed::default();
        }
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        pieces.extend(
            self.leased
                .remove(start, end)
                .iter()
                .map(|(a, b, _)| (*a, *b)),
        );
        // The usual ack covers only leased offsets: nothing else to look for.
        if pieces.iter().map(|(a, b)| b - a).sum::<u64>() == end - start {
            self.remove_ttl(start, end);
            return self.complete(pieces);
        }
        for lvl in &mut self.ready {
            if !lvl.is_empty() {
                pieces.extend(lvl.remove(start, end).iter().map(|(a, b, _)| (*a, *b)));
            }
        }
        pieces.extend(
            self.delayed
                .remove(start, end)
                .iter()
                .map(|(a, b, _)| (*a, *b)),
        );
        pieces.extend(
            self.settling
                .remove(start, end)
                .iter()
                .map(|(a, b, _)| (*a, *b)),
        );
        pieces.extend(
            self.restored
                .remove(start, end)
                .iter()
                .map(|(a, b, _)| (*a, *b)),
        );
        self.reports.remove(start, end);
        self.remove_ttl(start, end);
        self.complete(pieces)
    }

    /// Marks reported dead or expired offsets in `start..end` as done, once the node has
    /// dead-lettered or dropped them. Other offsets are ignored.
    pub fn settle(&mut self, start: u64, end: u64) -> Completed {
        let start = start.max(self.floor);
        if start >= end {
            return Completed::default();
        }
        let pieces = self
            .settling
            .remove(start, end)
            .iter()
            .map(|(a, b, _)| (*a, *b))
            .collect();
        self.reports.remove(start, end);
        self.complete(pieces)
    }

    fn complete(&mut self, mut pieces: Vec<(u64, u64)>) -> Completed {
        pieces.sort_unstable();
        let mut out = Completed::default();
        for (a, b) in pieces {
            out.count += b - a;
            self.done.insert(a, b, ());
            match out.ranges.last_mut() {
                Some(last) if last.1 == a => last.1 = b,
                _ => out.ranges.push((a, b)),
            }
        }
        self.advance_floor();
        out
    }

    /// Hands leased offsets in `start..end` back: ready again now (`delay_ms` 0) or after
    /// the delay, unless their attempts are used up, in which case they are dead and
    /// returned for the node to dead-letter.
    pub fn nack(
        &mut self,
        start: u64,
        end: u64,
        now_ms: i64,
        delay_ms: u64,
        s: &SharedSettings,
    ) -> NackOutcome {
        let mut out = NackOutcome::default();
        for (a, b, lease) in self.leased.remove(start, end) {
            if s.exhausted(lease.attempt) {
                let doomed = Doomed {
                    dead: true,
                    attempts: lease.attempt,
                };
                self.doom(a, b, doomed, false);
                out.dead.push(SettleRange {
                    start: a,
                    end: b,
                    attempts: lease.attempt,
                });
                continue;
            }
            out.requeued += b - a;
            if delay_ms == 0 {
                let ready = Ready {
                    attempts: lease.attempt,
                    since_ms: now_ms,
                };
                self.level(lease.priority).insert(a, b, ready);
            } else {
                let delayed = Delayed {
                    at_ms: now_ms.saturating_add(ms(delay_ms)),
                    attempts: lease.attempt,
                    priority: lease.priority,
                };
                self.delayed.insert(a, b, delayed);
            }
        }
        out
    }

    /// Gives leased offsets in `start..end` a new deadline `now + extend_ms`; returns how
    /// many. Offsets not leased are ignored.
    pub fn extend(&mut self, start: u64, end: u64, now_ms: i64, extend_ms: u64) -> u64 {
        let deadline_ms = now_ms.saturating_add(ms(extend_ms));
        let mut n = 0;
        for (a, b, lease) in self.leased.remove(start, end) {
            n += b - a;
            self.leased.insert(
                a,
                b,
                Lease {
                    deadline_ms,
                    ..lease
                },
            );
        }
        n
    }

    /// Takes back leased offsets that were granted but never handed to a consumer (the
    /// answer ran out of room): they return to exactly the ready state they had.
    pub fn release(&mut self, start: u64, end: u64) {
        for (a, b, lease) in self.leased.remove(start, end) {
            let ready = Ready {
                attempts: lease.attempt.saturating_sub(1),
                since_ms: lease.ready_since_ms,
            };
            self.level(lease.priority).insert(a, b, ready);
        }
    }

    /// Reports settling offsets in `start..end` again on the next `poll` (the node could
    /// not dead-letter them and wants to retry).
    pub fn report_again(&mut self, start: u64, end: u64) {
        for (a, b, d) in self.settling.overlapping(start, end) {
            self.reports.insert(a, b, d);
        }
    }

    /// Retention removed everything below `log_start`: those offsets can never be
    /// delivered, so they count as done (nothing is reported for them).
    pub fn skip_below(&mut self, log_start: u64) {
        if log_start <= self.floor {
            return;
        }
        let (a, b) = (self.floor, log_start);
        self.done.remove(a, b);
        for lvl in &mut self.ready {
            lvl.remove(a, b);
        }
        self.leased.remove(a, b);
        self.delayed.remove(a, b);
        self.settling.remove(a, b);
        self.reports.remove(a, b);
        self.restored.remove(a, b);
        self.remove_ttl(a, b);
        self.floor = log_start;
        self.advance_floor();
    }

    /// Whether the next `poll` hands out dead or expired offsets (even with no room to
    /// grant), so the node can settle them without waiting for a consumer.
    pub fn has_reports(&self) -> bool {
        !self.reports.is_empty()
    }

    /// The earliest time something becomes deliverable without new records arriving: a
    /// lease deadline or a delay (deliver-at or nack) ending.
    pub fn next_due_ms(&self) -> Option<i64> {
        match (self.leased.earliest_ms(), self.delayed.earliest_ms()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What the group's log must keep of this partition (for a snapshot): the floor, the
    /// done ranges above it and the attempts of every delivered, unfinished offset.
    pub fn durable(&self, partition: u32) -> PartitionDurable {
        let mut attempts = RangeMap::new();
        let mut put = |a: u64, b: u64, n: u32| {
            if n > 0 {
                attempts.insert(a, b, n);
            }
        };
        for (a, b, l) in self.leased.iter() {
            put(a, b, l.attempt);
        }
        for lvl in &self.ready {
            for (a, b, r) in lvl.iter() {
                put(a, b, r.attempts);
            }
        }
        for (a, b, d) in self.delayed.iter() {
            put(a, b, d.attempts);
        }
        for (a, b, d) in self.settling.iter() {
            put(a, b, d.attempts);
        }
        for (a, b, n) in self.restored.iter() {
            put(a, b, *n);
        }
        PartitionDurable {
            partition,
            floor: self.floor,
            acked: self.done.clone(),
            attempts,
            committed: None,
        }
    }

    fn advance_floor(&mut self) {
        while let Some((s, e, _)) = self.done.first() {
            if s > self.floor {
                break;
            }
            self.floor = self.floor.max(e);
            self.done.pop_first();
        }
        self.scan = self.scan.max(self.floor);
    }
}

#[cfg(test)]
mod debug;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

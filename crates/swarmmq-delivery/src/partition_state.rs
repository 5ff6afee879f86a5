use crate::range_map::{RangeMap, RangeSet};

/// How a group hands out one partition's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    /// How long a delivered message stays invisible to other consumers before it is
    /// delivered again (the visibility timeout).
    pub ack_timeout_ms: u64,
    /// Most offsets that may be leased at once; past it `poll` grants nothing until
    /// acks or expiries free room.
    pub max_leased: u64,
}

/// Offsets `start..end` handed to a consumer, all at the same delivery attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub start: u64,
    pub end: u64,
    /// 1 on first delivery, then 2, 3, ...
    pub attempt: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lease {
    deadline_ms: i64,
    attempt: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    /// Deliveries so far; the next one is `attempts + 1`.
    attempts: u32,
    not_before_ms: i64,
}

/// One consumer group's view of one partition, as ranges.
///
/// Every offset below `floor` is acknowledged. Every offset in `floor..cursor` is in
/// exactly one of `acked`, `leased` or `pending`; every offset from `cursor` on has never
/// been delivered. Delivery order is lowest offset first: due redeliveries, then new
/// messages.
#[derive(Clone, Debug)]
pub struct PartitionState {
    floor: u64,
    cursor: u64,
    acked: RangeSet,
    leased: RangeMap<Lease>,
    pending: RangeMap<Pending>,
    /// No lease expires before this; lets `poll` skip the expiry scan.
    next_expiry_ms: i64,
}

impl PartitionState {
    /// A group that has consumed nothing of a partition whose log starts at `start`.
    pub fn new(start: u64) -> Self {
        PartitionState {
            floor: start,
            cursor: start,
            acked: RangeSet::new(),
            leased: RangeMap::new(),
            pending: RangeMap::new(),
            next_expiry_ms: i64::MAX,
        }
    }

    /// Rebuilds the state after a restart from what was durable: the ack floor and the
    /// acknowledged ranges above it. Everything else below the highest ack becomes due for
    /// delivery again; leases do not survive a restart, so their messages come back.
    pub fn restore(floor: u64, acked: &RangeSet) -> Self {
        let mut state = PartitionState::new(floor);
        for (s, e, _) in acked.iter() {
            state.acked.insert(s.max(floor), e.max(floor), ());
        }
        state.cursor = state.acked.last().map_or(floor, |(_, e, _)| e.max(floor));
        for (s, e) in state.acked.gaps(floor, state.cursor) {
            state.pending.insert(
                s,
                e,
                Pending {
                    attempts: 0,
                    not_before_ms: i64::MIN,
                },
            );
        }
        state.advance_floor();
        state
    }

    pub fn floor(&self) -> u64 {
        self.floor
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Acknowledged ranges above the floor (what a snapshot must keep).
    pub fn acked_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.acked.iter().map(|(s, e, _)| (s, e))
    }

    /// Offsets delivered and not yet acknowledged or expired.
    pub fn leased_count(&self) -> u64 {
        self.leased.covered()
    }

    /// Offsets waiting to be delivered again (expired, nacked or not delivered since a restart).
    pub fn pending_count(&self) -> u64 {
        self.pending.covered()
    }

    /// Messages of `floor..log_end` not yet acknowledged: the group's lag.
    pub fn lag(&self, log_end: u64) -> u64 {
        log_end
            .saturating_sub(self.floor)
            .saturating_sub(self.acked.covered())
    }

    /// Whether a `poll` at `now` with room for messages would grant anything.
    pub fn has_deliverable(&self, now_ms: i64, visible_end: u64, settings: &LeaseSettings) -> bool {
        if self.leased.covered() >= settings.max_leased {
            return false;
        }
        self.cursor < visible_end
            || now_ms >= self.next_expiry_ms
            || self
                .pending
                .iter()
                .any(|(_, _, p)| p.not_before_ms <= now_ms)
    }

    /// The earliest future time at which something becomes deliverable without new
    /// messages arriving (a lease expiring or a nack delay ending), if any.
    pub fn next_due_ms(&self) -> Option<i64> {
        let pending = self.pending.iter().map(|(_, _, p)| p.not_before_ms).min();
        let lease = (self.next_expiry_ms != i64::MAX).then_some(self.next_expiry_ms);
        match (pending, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Leases up to `max_messages` offsets below `visible_end` to a consumer until
    /// `now + ack_timeout`, lowest offsets first.
    pub fn poll(
        &mut self,
        now_ms: i64,
        max_messages: u64,
        visible_end: u64,
        settings: &LeaseSettings,
    ) -> Vec<Grant> {
        self.expire(now_ms);
        let mut room = max_messages.min(settings.max_leased.saturating_sub(self.leased.covered()));
        let deadline_ms =
            now_ms.saturating_add(i64::try_from(settings.ack_timeout_ms).unwrap_or(i64::MAX));
        let mut grants = Vec::new();
        if room == 0 {
            return grants;
        }
        let mut due = Vec::new();
        for (s, e, p) in self.pending.iter() {
            if room == 0 {
                break;
            }
            if p.not_before_ms > now_ms {
                continue;
            }
            let take = (e - s).min(room);
            room -= take;
            due.push((s, s + take, p.attempts.saturating_add(1)));
        }
        for (s, e, attempt) in due {
            self.pending.remove(s, e);
            self.lease(s, e, attempt, deadline_ms);
            grants.push(Grant {
                start: s,
                end: e,
                attempt,
            });
        }
        if room > 0 && self.cursor < visible_end {
            let start = self.cursor;
            let end = start + room.min(visible_end - start);
            self.cursor = end;
            self.lease(start, end, 1, deadline_ms);
            grants.push(Grant {
                start,
                end,
                attempt: 1,
            });
        }
        grants
    }

    /// Takes back offsets granted by the last `poll` that were not handed to the consumer
    /// after all (the answer ran out of room): they return to exactly the state they had.
    pub fn release(&mut self, start: u64, end: u64) {
        let mut pieces = self.leased.remove(start, end);
        // From the highest piece down, so new offsets rewind the cursor contiguously.
        pieces.reverse();
        for (s, e, lease) in pieces {
            if lease.attempt == 1 && e == self.cursor {
                self.cursor = s;
            } else {
                self.pending.insert(
                    s,
                    e,
                    Pending {
                        attempts: lease.attempt - 1,
                        not_before_ms: i64::MIN,
                    },
                );
            }
        }
    }

    /// Acknowledges `start..end`; returns how many offsets were newly acknowledged.
    /// Offsets never delivered, or already acknowledged, are ignored.
    pub fn ack(&mut self, start: u64, end: u64) -> u64 {
        let start = start.max(self.floor);
        let end = end.min(self.cursor);
        if start >= end {
            return 0;
        }
        let before = self.acked.covered();
        self.leased.remove(start, end);
        self.pending.remove(start, end);
        self.acked.insert(start, end, ());
        let newly = self.acked.covered() - before;
        self.advance_floor();
        newly
    }

    /// Makes leased offsets in `start..end` deliverable again after `delay_ms`; returns how
    /// many changed. Offsets not currently leased are ignored.
    pub fn nack(&mut self, start: u64, end: u64, now_ms: i64, delay_ms: u64) -> u64 {
        let not_before_ms = now_ms.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX));
        let mut changed = 0;
        for (s, e, lease) in self.leased.remove(start, end) {
            changed += e - s;
            self.pending.insert(
                s,
                e,
                Pending {
                    attempts: lease.attempt,
                    not_before_ms,
                },
            );
        }
        changed
    }

    /// Retention removed everything below `log_start`: those offsets can never be
    /// delivered, so they count as done.
    pub fn skip_below(&mut self, log_start: u64) {
        if log_start <= self.floor {
            return;
        }
        self.acked.remove(self.floor, log_start);
        self.leased.remove(self.floor, log_start);
        self.pending.remove(self.floor, log_start);
        self.floor = log_start;
        self.cursor = self.cursor.max(log_start);
        self.advance_floor();
    }

    fn lease(&mut self, start: u64, end: u64, attempt: u32, deadline_ms: i64) {
        self.leased.insert(
            start,
            end,
            Lease {
                deadline_ms,
                attempt,
            },
        );
        self.next_expiry_ms = self.next_expiry_ms.min(deadline_ms);
    }

    fn expire(&mut self, now_ms: i64) {
        if now_ms < self.next_expiry_ms {
            return;
        }
        let expired: Vec<(u64, u64, Lease)> = self
            .leased
            .iter()
            .filter(|(_, _, l)| l.deadline_ms <= now_ms)
            .map(|(s, e, l)| (s, e, *l))
            .collect();
        for (s, e, lease) in expired {
            self.leased.remove(s, e);
            self.pending.insert(
                s,
                e,
                Pending {
                    attempts: lease.attempt,
                    not_before_ms: i64::MIN,
                },
            );
        }
        self.next_expiry_ms = self
            .leased
            .iter()
            .map(|(_, _, l)| l.deadline_ms)
            .min()
            .unwrap_or(i64::MAX);
    }

    fn advance_floor(&mut self) {
        while let Some((s, e, _)) = self.acked.first() {
            if s != self.floor {
                break;
            }
            self.floor = e;
            self.acked.pop_first();
        }
    }
}

#[cfg(test)]
mod tests;

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const SETTINGS: LeaseSettings = LeaseSettings {
    ack_timeout_ms: 100,
    max_leased: 50,
};

fn offsets(grants: &[Grant]) -> Vec<(u64, u32)> {
    grants
        .iter()
        .flat_map(|g| (g.start..g.end).map(move |o| (o, g.attempt)))
        .collect()
}

#[test]
fn delivers_new_messages_once_then_redelivers_after_timeout() {
    let mut s = PartitionState::new(0);
    let g = s.poll(0, 10, 5, &SETTINGS);
    assert_eq!(
        g,
        vec![Grant {
            start: 0,
            end: 5,
            attempt: 1
        }]
    );
    assert!(
        s.poll(50, 10, 5, &SETTINGS).is_empty(),
        "leased, not due yet"
    );
    assert_eq!(s.ack(0, 2), 2);
    assert_eq!(s.floor(), 2);
    let g = s.poll(100, 10, 5, &SETTINGS);
    assert_eq!(
        g,
        vec![Grant {
            start: 2,
            end: 5,
            attempt: 2
        }]
    );
    assert_eq!(
        s.ack(0, 5),
        3,
        "already-acked offsets are not counted twice"
    );
    assert_eq!(s.floor(), 5);
    assert_eq!(s.lag(5), 0);
}

#[test]
fn nack_makes_messages_due_after_the_delay() {
    let mut s = PartitionState::new(0);
    s.poll(0, 10, 3, &SETTINGS);
    assert_eq!(s.nack(1, 2, 0, 30), 1);
    assert!(s.poll(10, 10, 3, &SETTINGS).is_empty());
    assert_eq!(s.next_due_ms(), Some(30));
    assert_eq!(
        s.poll(30, 10, 3, &SETTINGS),
        vec![Grant {
            start: 1,
            end: 2,
            attempt: 2
        }]
    );
}

#[test]
fn lease_limit_stops_granting() {
    let mut s = PartitionState::new(0);
    let g = s.poll(0, 1000, 1000, &SETTINGS);
    assert_eq!(offsets(&g).len(), 50);
    assert!(!s.has_deliverable(1, 1000, &SETTINGS));
    assert!(s.poll(1, 10, 1000, &SETTINGS).is_empty());
    s.ack(0, 10);
    assert_eq!(offsets(&s.poll(1, 1000, 1000, &SETTINGS)).len(), 10);
}

#[test]
fn release_returns_offsets_to_their_previous_state() {
    let mut s = PartitionState::new(0);
    s.poll(0, 4, 10, &SETTINGS);
    s.poll(100, 10, 10, &SETTINGS); // 0..4 again at attempt 2, 4..10 new
    s.release(2, 10);
    assert_eq!(s.cursor(), 4);
    assert_eq!(s.leased_count(), 2);
    let g = s.poll(100, 10, 10, &SETTINGS);
    assert_eq!(
        offsets(&g),
        vec![
            (2, 2),
            (3, 2),
            (4, 1),
            (5, 1),
            (6, 1),
            (7, 1),
            (8, 1),
            (9, 1)
        ]
    );
}

#[test]
fn restore_redelivers_everything_unacked_and_nothing_acked() {
    let mut s = PartitionState::new(0);
    s.poll(0, 10, 10, &SETTINGS);
    s.ack(0, 3);
    s.ack(5, 7);
    let mut acked = RangeSet::new();
    for (a, b) in s.acked_ranges() {
        acked.insert(a, b, ());
    }
    let mut r = PartitionState::restore(s.floor(), &acked);
    assert_eq!(r.floor(), 3);
    let g = r.poll(0, 100, 12, &SETTINGS);
    assert_eq!(
        offsets(&g).iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        vec![3, 4, 7, 8, 9, 10, 11]
    );
    assert!(offsets(&g).iter().all(|(_, a)| *a == 1));
}

#[test]
fn skip_below_counts_retained_away_offsets_as_done() {
    let mut s = PartitionState::new(0);
    s.poll(0, 5, 10, &SETTINGS);
    s.skip_below(8);
    assert_eq!(s.floor(), 8);
    assert_eq!(s.leased_count(), 0);
    assert_eq!(offsets(&s.poll(0, 10, 10, &SETTINGS)), vec![(8, 1), (9, 1)]);
}

// ---- model-based property test ----

#[derive(Clone, Copy, Debug, PartialEq)]
enum M {
    Acked,
    Leased { deadline: i64, attempt: u32 },
    Pending { attempts: u32, not_before: i64 },
}

struct Model {
    cursor: u64,
    floor_base: u64,
    states: BTreeMap<u64, M>,
}

impl Model {
    fn floor(&self) -> u64 {
        let mut f = self.floor_base;
        while f < self.cursor && self.states.get(&f) == Some(&M::Acked) {
            f += 1;
        }
        f
    }

    fn leased(&self) -> u64 {
        self.states
            .values()
            .filter(|m| matches!(m, M::Leased { .. }))
            .count() as u64
    }

    fn pending(&self) -> u64 {
        self.states
            .values()
            .filter(|m| matches!(m, M::Pending { .. }))
            .count() as u64
    }

    fn poll(&mut self, now: i64, max: u64, visible_end: u64) -> Vec<(u64, u32)> {
        for m in self.states.values_mut() {
            if let M::Leased { deadline, attempt } = *m
                && deadline <= now
            {
                *m = M::Pending {
                    attempts: attempt,
                    not_before: i64::MIN,
                };
            }
        }
        let mut room = max.min(SETTINGS.max_leased.saturating_sub(self.leased()));
        let deadline = now + SETTINGS.ack_timeout_ms as i64;
        let mut out = Vec::new();
        for (o, m) in self.states.iter_mut() {
            if room == 0 {
                break;
            }
            if let M::Pending {
                attempts,
                not_before,
            } = *m
                && not_before <= now
            {
                *m = M::Leased {
                    deadline,
                    attempt: attempts + 1,
                };
                out.push((*o, attempts + 1));
                room -= 1;
            }
        }
        while room > 0 && self.cursor < visible_end {
            self.states.insert(
                self.cursor,
                M::Leased {
                    deadline,
                    attempt: 1,
                },
            );
            out.push((self.cursor, 1));
            self.cursor += 1;
            room -= 1;
        }
        out
    }

    fn ack(&mut self, s: u64, e: u64) -> u64 {
        let floor = self.floor();
        let mut n = 0;
        for o in s.max(floor)..e.min(self.cursor) {
            if self.states.insert(o, M::Acked) != Some(M::Acked) {
                n += 1;
            }
        }
        n
    }

    fn nack(&mut self, s: u64, e: u64, now: i64, delay: u64) -> u64 {
        let mut n = 0;
        for o in s..e {
            if let Some(M::Leased { attempt, .. }) = self.states.get(&o).copied() {
                self.states.insert(
                    o,
                    M::Pending {
                        attempts: attempt,
                        not_before: now + delay as i64,
                    },
                );
                n += 1;
            }
        }
        n
    }

    fn release(&mut self, s: u64, e: u64) {
        for o in (s..e).rev() {
            if let Some(M::Leased { attempt, .. }) = self.states.get(&o).copied() {
                if attempt == 1 && o + 1 == self.cursor {
                    self.states.remove(&o);
                    self.cursor = o;
                } else {
                    self.states.insert(
                        o,
                        M::Pending {
                            attempts: attempt - 1,
                            not_before: i64::MIN,
                        },
                    );
                }
            }
        }
    }

    fn restart(&mut self) {
        let floor = self.floor();
        let max_acked = self
            .states
            .iter()
            .filter(|(o, m)| **o >= floor && **m == M::Acked)
            .map(|(o, _)| o + 1)
            .max()
            .unwrap_or(floor);
        self.states.retain(|o, _| *o < max_acked);
        for (o, m) in self.states.iter_mut() {
            if *o >= floor && *m != M::Acked {
                *m = M::Pending {
                    attempts: 0,
                    not_before: i64::MIN,
                };
            }
        }
        self.cursor = max_acked;
    }
}

#[derive(Clone, Debug)]
enum Op {
    Poll { dt: i64, max: u64, grow: u64 },
    Ack(u64, u64),
    Nack(u64, u64, u64),
    ReleaseTail(u64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i64..80, 1u64..30, 0u64..20).prop_map(|(dt, max, grow)| Op::Poll { dt, max, grow }),
        3 => (0u64..120, 1u64..20).prop_map(|(s, l)| Op::Ack(s, s + l)),
        1 => (0u64..120, 1u64..10, 0u64..150).prop_map(|(s, l, d)| Op::Nack(s, s + l, d)),
        1 => (0u64..10).prop_map(Op::ReleaseTail),
        1 => Just(Op::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn lease_state_machine_matches_per_offset_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut real = PartitionState::new(0);
        let mut model = Model { cursor: 0, floor_base: 0, states: BTreeMap::new() };
        let mut now = 0i64;
        let mut end = 0u64;
        let mut last_grants: Vec<(u64, u32)> = Vec::new();
        for op in ops {
            match op {
                Op::Poll { dt, max, grow } => {
                    now += dt;
                    end += grow;
                    let g = offsets(&real.poll(now, max, end, &SETTINGS));
                    let m = model.poll(now, max, end);
                    prop_assert_eq!(&g, &m);
                    let mut sorted = g.clone();
                    sorted.sort();
                    prop_assert_eq!(&sorted, &g, "grants in offset order");
                    last_grants = g;
                }
                Op::Ack(s, e) => prop_assert_eq!(real.ack(s, e), model.ack(s, e)),
                Op::Nack(s, e, d) => prop_assert_eq!(real.nack(s, e, now, d), model.nack(s, e, now, d)),
                Op::ReleaseTail(n) => {
                    // Give back the last n offsets of the previous poll, as the node does
                    // when an answer runs out of bytes.
                    let keep = last_grants.len().saturating_sub(n as usize);
                    if let Some((first, _)) = last_grants.get(keep) {
                        let stop = last_grants.last().map_or(*first, |(o, _)| o + 1);
                        real.release(*first, stop);
                        model.release(*first, stop);
                    }
                    last_grants.clear();
                }
                Op::Restart => {
                    let mut acked = RangeSet::new();
                    for (a, b) in real.acked_ranges() {
                        acked.insert(a, b, ());
                    }
                    real = PartitionState::restore(real.floor(), &acked);
                    model.restart();
                    last_grants.clear();
                }
            }
            prop_assert_eq!(real.floor(), model.floor());
            prop_assert_eq!(real.cursor(), model.cursor);
            prop_assert_eq!(real.leased_count(), model.leased());
            prop_assert_eq!(real.pending_count(), model.pending());
            prop_assert!(real.leased_count() <= SETTINGS.max_leased);
        }
    }
}

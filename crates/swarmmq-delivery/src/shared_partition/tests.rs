use super::debug::Slot;
use super::*;

const S: SharedSettings = SharedSettings {
    ack_timeout_ms: 100,
    max_leased: 1_000,
    max_tracked: 1_000,
    max_delayed: 1_000,
    max_delivery_attempts: 3,
    priority_aging_ms: 0,
};

fn rec(offset: u64, priority: u8) -> RecordInfo {
    RecordInfo {
        offset,
        priority,
        timestamp_ms: 0,
        deliver_at_ms: None,
        expires_at_ms: None,
    }
}

fn offsets(grants: &[Grant]) -> Vec<(u64, u32)> {
    grants
        .iter()
        .flat_map(|g| (g.start..g.end).map(move |o| (o, g.attempt)))
        .collect()
}

fn granted(out: &PollOutcome) -> Vec<u64> {
    offsets(&out.grants).into_iter().map(|(o, _)| o).collect()
}

fn range(start: u64, end: u64, attempts: u32) -> SettleRange {
    SettleRange {
        start,
        end,
        attempts,
    }
}

#[test]
fn priority_order_1_10_5_delivers_10_5_1() {
    let mut p = SharedPartition::new(0);
    p.observe(&[rec(0, 1), rec(1, 10), rec(2, 5)], 0);
    let out = p.poll(0, 10, &S);
    assert_eq!(granted(&out), vec![1, 2, 0]);
    assert!(out.grants.iter().all(|g| g.attempt == 1));
    p.check();
}

#[test]
fn default_and_out_of_range_priorities_are_normalised() {
    let mut p = SharedPartition::new(0);
    p.observe(&[rec(0, 0), rec(1, 4), rec(2, 200), rec(3, 6)], 0);
    // 0 -> 5, 200 -> 10.
    assert_eq!(granted(&p.poll(0, 10, &S)), vec![2, 3, 0, 1]);
}

#[test]
fn same_priority_stream_stays_one_range() {
    let mut p = SharedPartition::new(0);
    let recs: Vec<RecordInfo> = (0..1000).map(|o| rec(o, 5)).collect();
    assert_eq!(p.observe(&recs, 0), 1000);
    assert_eq!(p.ready[4].iter().count(), 1, "observed as one range");
    let out = p.poll(0, 1000, &S);
    assert_eq!(
        out.grants,
        vec![Grant {
            start: 0,
            end: 1000,
            attempt: 1
        }]
    );
    assert_eq!(p.leased.iter().count(), 1, "leased as one range");
    let done = p.ack(0, 1000);
    assert_eq!(done.count, 1000);
    assert_eq!(done.ranges, vec![(0, 1000)]);
    assert_eq!(p.floor(), 1000);
    assert_eq!(p.counts().tracked, 0);
}

/// A priority-1 message reaches effective priority 10 after 9 aging periods and, being
/// older than every priority-10 message ready then, goes first, although a steady
/// stream of priority-10 messages keeps the consumer busy the whole time.
#[test]
fn aging_prevents_starvation() {
    let s = SharedSettings {
        priority_aging_ms: 100,
        ..S
    };
    let mut p = SharedPartition::new(0);
    p.observe(&[rec(0, 1)], 0);
    let mut next = 1u64;
    let mut delivered_at = None;
    let mut now = 0i64;
    while now <= 2_000 && delivered_at.is_none() {
        let batch: Vec<RecordInfo> = (next..next + 5).map(|o| rec(o, 10)).collect();
        next += 5;
        p.observe(&batch, now);
        let out = p.poll(now, 5, &s);
        assert_eq!(out.grants.iter().map(|g| g.end - g.start).sum::<u64>(), 5);
        if granted(&out).contains(&0) {
            delivered_at = Some(now);
        }
        for g in &out.grants {
            p.ack(g.start, g.end);
        }
        now += 10;
    }
    assert_eq!(delivered_at, Some(900), "within 9 × aging, not before");
}

#[test]
fn aged_levels_tie_at_ten_by_age_then_offset() {
    let s = SharedSettings {
        priority_aging_ms: 10,
        ..S
    };
    let mut p = SharedPartition::new(0);
    p.observe(&[rec(0, 10), rec(1, 9)], 0);
    p.observe(&[rec(2, 10)], 5);
    // At 100 both levels are capped at 10 and their oldest messages are equally old:
    // the lower offset goes first, then the next level's.
    assert_eq!(granted(&p.poll(100, 10, &s)), vec![0, 1, 2]);
    let mut q = SharedPartition::new(0);
    q.observe(&[rec(0, 10)], 50);
    q.observe(&[rec(1, 8)], 0);
    // Level 8 aged to 10 and is older: it goes first despite its lower base priority.
    assert_eq!(granted(&q.poll(100, 10, &s)), vec![1, 0]);
}

#[test]
fn delay_is_never_early_and_due_exactly_at_deliver_at() {
    let mut p = SharedPartition::new(0);
    let mut delayed = rec(0, 10);
    delayed.deliver_at_ms = Some(50);
    p.observe(&[delayed, rec(1, 1)], 0);
    assert_eq!(p.counts().delayed, 1);
    assert_eq!(p.next_due_ms(), Some(50));
    assert_eq!(granted(&p.poll(0, 10, &S)), vec![1]);
    assert!(p.poll(49, 10, &S).grants.is_empty(), "never early");
    assert_eq!(granted(&p.poll(50, 10, &S)), vec![0], "due exactly then");
    // A deliver-at already passed when observed is ready at once.
    let mut late = rec(2, 5);
    late.deliver_at_ms = Some(40);
    p.observe(&[late], 60);
    assert_eq!(granted(&p.poll(60, 10, &S)), vec![2]);
    p.check();
}

#[test]
fn ttl_is_checked_when_observed_due_and_granted() {
    let mut p = SharedPartition::new(0);
    let mut gone = rec(0, 5);
    gone.expires_at_ms = Some(10);
    let mut later = rec(1, 5);
    later.expires_at_ms = Some(30);
    let mut delayed = rec(2, 5);
    delayed.deliver_at_ms = Some(50);
    delayed.expires_at_ms = Some(40);
    let mut fine = rec(3, 5);
    fine.expires_at_ms = Some(1_000);
    p.observe(&[gone, later, delayed, fine], 10);
    // Offset 0 expired when observed (expires_at <= now).
    let out = p.poll(10, 0, &S);
    assert_eq!(out.expired, vec![range(0, 1, 0)]);
    assert!(out.grants.is_empty());
    // Offset 1 expired while ready: found when it would be granted; 3 is delivered.
    let out = p.poll(30, 10, &S);
    assert_eq!(granted(&out), vec![3]);
    assert_eq!(out.expired, vec![range(1, 2, 0)]);
    // Offset 2's TTL passed before it became due.
    let out = p.poll(50, 10, &S);
    assert!(out.grants.is_empty());
    assert_eq!(out.expired, vec![range(2, 3, 0)]);
    assert_eq!(p.counts().settling, 3);
    let done = p.settle(0, 3);
    assert_eq!(done.ranges, vec![(0, 3)]);
    assert_eq!(p.floor(), 3);
    p.check();
}

#[test]
fn ttl_passing_during_a_lease_expires_the_redelivery() {
    let mut p = SharedPartition::new(0);
    let mut r = rec(0, 5);
    r.expires_at_ms = Some(150);
    p.observe(&[r], 0);
    assert_eq!(granted(&p.poll(0, 1, &S)), vec![0]);
    let out = p.poll(200, 1, &S);
    assert!(out.grants.is_empty());
    assert_eq!(out.expired, vec![range(0, 1, 1)]);
}

#[test]
fn dead_after_exactly_n_attempts_via_lease_expiry() {
    let mut p = SharedPartition::new(0);
    p.observe(&[rec(0, 5), rec(1, 5)], 0);
    for (now, attempt) in [(0, 1), (100, 2), (200, 3)] {
        let out = p.poll(now, 10, &S);
        assert_eq!(
            out.grants,
            vec![Grant {
                start: 0,
                end: 2,
                attempt
            }]
        );
        assert!(out.dead.is_empty());
    }
    let out = p.poll(300, 10, &S);
    assert!(out.grants.is_empty(), "no fourth delivery");
    assert_eq!(out.dead, vec![range(0, 2, 3)]);
    assert!(p.poll(400, 10, &S).dead.is_empty(), "reported once");
    assert_eq!(p.settle(0, 2).count, 2);
    assert_eq!(p.floor(), 2);
}

#[test]
fn dead_after_exactly_n_attempts_via_nack() {
    let mut p = SharedPartition::new(0);
    p.observe(&[rec(0, 5)], 0);
    for attempt in 1..=3u32 {
        let now = i64::from(attempt) * 10;
        assert_eq!(offsets(&p.poll(now, 1, &S).grants), vec![(0, attempt)]);
        let n = p.nack(0, 1, now, 0, &S);
        if attempt < 3 {
            assert_eq!((n.requeued, n.dead.len()), (1, 0));
        } else {
            assert_eq!(n.requeued, 0);
            assert_eq!(n.dead, vec![range(0, 1, 3)]);
        }
    }
    let out = p.poll(100, 1, &S);
    assert!(
        out.grants.is_empty() && out.dead.is_empty(),
        "nack reported it"
    );
    assert_eq!(p.counts().settling, 1);
}

#[test]
fn nack_with_delay_redelivers_at_the_delay_end() {
    let mut p = SharedPartition::new(0);
    p.observe(&[rec(0, 5), rec(1, 5)], 0);
    p.poll(0, 2, &S);
    assert_eq!(p.nack(1, 2, 10, 30, &S).requeued, 1);
    assert_eq!(p.counts().delayed, 1);
    assert!(p.poll(39, 10, &S).grants.is_empty());
    assert_eq!(offsets(&p.poll(40, 10, &S).grants), vec![(1, 2)]);
    assert_eq!(p.nack(5, 9, 40, 0, &S).requeued, 0, "not leased");
}

#[test]
fn extend_moves_the_deadline_of_leased_offsets_only() {
    let mut p = SharedPartition::new(0);
    p.observe(&[rec(0, 5), rec(1, 5), rec(2, 5)], 0);
    p.poll(0, 2, &S);
    assert_eq!(p.extend(0, 3, 90, 50), 2);
    assert_eq!(p.next_due_ms(), Some(140));
    assert_eq!(granted(&p.poll(100, 10, &S)), vec![2]);
    assert_eq!(offsets(&p.poll(140, 10, &S).grants), vec![(0, 2), (1, 2)]);
}

#[test]
fn release_returns_offsets_to_their_previous_state() {
    let s = SharedSettings {
        priority_aging_ms: 100,
        ..S
    };
    let mut p = SharedPartition::new(0);
    p.observe(&[rec(0, 3), rec(1, 7), rec(2, 7)], 0);
    p.poll(0, 1, &s); // 1 at attempt 1
    let before = p.dump();
    let out = p.poll(100, 10, &s); // 1 expired -> attempt 2, then 2, then 0
    assert_eq!(offsets(&out.grants), vec![(1, 2), (2, 1), (0, 1)]);
    p.release(0, 3);
    let mut after = p.dump();
    // 1 went back to ready at attempt 1, ready since its lease deadline (100).
    assert_eq!(
        after.remove(&1),
        Some(Slot::Ready {
            priority: 7,
            attempts: 1,
            since: 100
        })
    );
    assert_eq!(after.get(&0), before.get(&0));
    assert_eq!(after.get(&2), before.get(&2));
    assert_eq!(
        offsets(&p.poll(100, 10, &s).grants),
        vec![(1, 2), (2, 1), (0, 1)]
    );
}

#[test]
fn restore_keeps_attempts_and_reports_exhausted_ones_at_once() {
    let mut p = SharedPartition::new(0);
    let recs: Vec<RecordInfo> = (0..6).map(|o| rec(o, 5)).collect();
    p.observe(&recs, 0);
    p.poll(0, 6, &S); // all at attempt 1
    p.ack(1, 2);
    p.poll(100, 2, &S); // 0, 2 at attempt 2
    p.poll(200, 1, &S); // 0 at attempt 3
    let d = p.durable(0);
    assert_eq!(d.floor, 0);
    assert_eq!(
        d.acked.iter().map(|(a, b, _)| (a, b)).collect::<Vec<_>>(),
        vec![(1, 2)]
    );
    let mut r = SharedPartition::restore(&d, &S);
    // Offset 0 used its 3 attempts: dead at the first poll, before any metadata is read.
    let out = r.poll(300, 10, &S);
    assert_eq!(out.dead, vec![range(0, 1, 3)]);
    assert!(out.grants.is_empty());
    assert_eq!(r.scan_request(6, &S), Some((0, 6)));
    r.observe(&recs, 300);
    let out = r.poll(300, 10, &S);
    assert_eq!(
        offsets(&out.grants),
        vec![(2, 3), (3, 2), (4, 2), (5, 2)],
        "attempts continue; acked 1 and dead 0 are not delivered"
    );
    r.check();
}

#[test]
fn ack_after_restart_reaches_offsets_not_yet_read_again() {
    let mut p = SharedPartition::new(0);
    p.observe(&[rec(0, 5), rec(1, 5), rec(2, 5)], 0);
    p.poll(0, 3, &S);
    let mut r = SharedPartition::restore(&p.durable(0), &S);
    let done = r.ack(0, 10);
    assert_eq!(done.ranges, vec![(0, 3)], "only what was delivered");
    assert_eq!(r.floor(), 3);
    assert_eq!(r.ack(5, 9).count, 0, "never delivered, never observed");
}

#[test]
fn scan_requests_respect_tracked_and_delayed_bounds() {
    let s = SharedSettings {
        max_tracked: 4,
        max_delayed: 2,
        ..S
    };
    let mut p = SharedPartition::new(10);
    assert_eq!(p.scan_request(10, &s), None, "nothing visible");
    assert_eq!(p.scan_request(100, &s), Some((10, 2)));
    let mut d = rec(10, 5);
    d.deliver_at_ms = Some(1_000);
    let mut e = rec(11, 5);
    e.deliver_at_ms = Some(2_000);
    assert_eq!(p.observe(&[d, e], 0), 2);
    assert_eq!(p.scan_request(100, &s), None, "delayed bound reached");
    let mut q = SharedPartition::new(0);
    assert_eq!(q.scan_request(100, &s), Some((0, 2)));
    q.observe(&[rec(0, 5), rec(1, 5)], 0);
    assert_eq!(q.scan_request(100, &s), Some((2, 2)));
    q.observe(&[rec(2, 5), rec(3, 5)], 0);
    assert_eq!(q.scan_request(100, &s), None, "tracked bound reached");
    q.poll(0, 2, &s);
    q.ack(0, 2);
    assert_eq!(q.scan_request(100, &s), Some((4, 2)));
}

#[test]
fn observe_takes_only_the_contiguous_part_at_the_scan_position() {
    let mut p = SharedPartition::new(0);
    assert_eq!(p.observe(&[rec(1, 5)], 0), 0, "gap before it");
    assert_eq!(p.observe(&[rec(0, 5), rec(1, 5), rec(3, 5)], 0), 2);
    assert_eq!(p.scan_position(), 2);
    assert_eq!(p.observe(&[rec(1, 5), rec(2, 5)], 0), 1, "repeat ignored");
    assert_eq!(p.counts().ready, 3);
}

#[test]
fn lease_bound_stops_granting() {
    let s = SharedSettings {
        max_leased: 10,
        ..S
    };
    let mut p = SharedPartition::new(0);
    let recs: Vec<RecordInfo> = (0..30).map(|o| rec(o, 5)).collect();
    p.observe(&recs, 0);
    assert_eq!(granted(&p.poll(0, 100, &s)).len(), 10);
    assert!(p.poll(1, 100, &s).grants.is_empty());
    p.ack(0, 4);
    assert_eq!(granted(&p.poll(1, 100, &s)), vec![10, 11, 12, 13]);
}

#[test]
fn skip_below_counts_retained_away_offsets_as_done() {
    let mut p = SharedPartition::new(0);
    let recs: Vec<RecordInfo> = (0..10).map(|o| rec(o, 5)).collect();
    p.observe(&recs, 0);
    p.poll(0, 5, &S);
    p.skip_below(8);
    assert_eq!(p.floor(), 8);
    let c = p.counts();
    assert_eq!((c.leased, c.ready, c.tracked), (0, 2, 2));
    assert_eq!(granted(&p.poll(0, 10, &S)), vec![8, 9]);
    assert_eq!(p.lag(12), 4);
    p.check();
}

#[test]
fn report_again_hands_out_unsettled_reports_once_more() {
    let mut p = SharedPartition::new(0);
    let mut r = rec(0, 5);
    r.expires_at_ms = Some(0);
    p.observe(&[r], 0);
    assert_eq!(p.poll(0, 1, &S).expired.len(), 1);
    assert!(p.poll(0, 1, &S).expired.is_empty());
    p.report_again(0, 10);
    assert_eq!(p.poll(0, 1, &S).expired, vec![range(0, 1, 0)]);
}

#[test]
fn zero_max_attempts_means_no_limit() {
    let s = SharedSettings {
        max_delivery_attempts: 0,
        ..S
    };
    let mut p = SharedPartition::new(0);
    p.observe(&[rec(0, 5)], 0);
    for i in 0..10i64 {
        assert_eq!(
            offsets(&p.poll(i * 100, 1, &s).grants),
            vec![(0, i as u32 + 1)]
        );
    }
}

#[test]
fn lowering_max_attempts_dead_letters_at_the_next_grant() {
    let mut p = SharedPartition::new(0);
    p.observe(&[rec(0, 5)], 0);
    p.poll(0, 1, &S);
    p.poll(100, 1, &S); // attempt 2, expires at 200
    let s = SharedSettings {
        max_delivery_attempts: 1,
        ..S
    };
    // The lease of attempt 2 expires under the new limit: dead, not ready.
    assert_eq!(p.poll(200, 1, &s).dead, vec![range(0, 1, 2)]);
    let mut q = SharedPartition::new(0);
    q.observe(&[rec(0, 5)], 0);
    q.poll(0, 1, &S);
    q.nack(0, 1, 0, 0, &S); // ready again with 1 attempt
    let out = q.poll(0, 1, &s);
    assert!(out.grants.is_empty());
    assert_eq!(out.dead, vec![range(0, 1, 1)]);
}

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const LONG: u64 = 10_000;

fn owned(c: &Coordinator, member: &str) -> Vec<u32> {
    c.members()
        .find(|m| m.id == member)
        .map(|m| m.partitions.to_vec())
        .unwrap_or_default()
}

fn owners(c: &Coordinator) -> Vec<Option<String>> {
    (0..c.partitions())
        .map(|p| c.owner(p).map(str::to_string))
        .collect()
}

/// a, b, c over six partitions, as built by `three_members_split_six_partitions_two_each`.
fn three_of_six() -> Coordinator {
    let mut c = Coordinator::new(6);
    for m in ["a", "b", "c"] {
        c.join(m, 0, LONG).unwrap();
    }
    c
}

#[test]
fn three_members_split_six_partitions_two_each() {
    let mut c = Coordinator::new(6);
    let a = c.join("a", 0, LONG).unwrap();
    assert_eq!(
        a,
        Assignment {
            generation: 1,
            partitions: vec![0, 1, 2, 3, 4, 5]
        }
    );
    let b = c.join("b", 0, LONG).unwrap();
    assert_eq!(b.partitions, vec![3, 4, 5], "a keeps its lowest three");
    let cc = c.join("c", 0, LONG).unwrap();
    assert_eq!(cc.generation, 3);
    assert_eq!(owned(&c, "a"), vec![0, 1]);
    assert_eq!(owned(&c, "b"), vec![3, 4]);
    assert_eq!(owned(&c, "c"), vec![2, 5]);
    assert_eq!(c.generation(), 3);
    assert_eq!(c.rebalances(), 3);
}

#[test]
fn fourth_member_moves_one_partition_and_the_rest_keep_fetching() {
    let mut c = three_of_six();
    let before = owners(&c);
    let old_gen = c.generation();
    let d = c.join("d", 10, LONG).unwrap();
    // Quotas 2,2,1,1: the fewest moves any balanced assignment can make is
    // 6 - (2 + 2 + 1 + 0) = 1.
    assert_eq!(d.partitions, vec![5]);
    assert_eq!(d.generation, old_gen + 1);
    let after = owners(&c);
    let moved: Vec<u32> = (0u32..)
        .zip(before.iter().zip(&after))
        .filter(|(_, (x, y))| x != y)
        .map(|(p, _)| p)
        .collect();
    assert_eq!(moved, vec![5]);

    // Unaffected partitions keep flowing with the old generation, no rejoin needed.
    for (m, p) in [("a", 0), ("a", 1), ("b", 3), ("b", 4), ("c", 2)] {
        assert_eq!(c.check(m, old_gen, p), Ok(()), "{m} on {p}");
    }
    // The old owner of 5 is fenced at once.
    assert_eq!(
        c.check("c", old_gen, 5),
        Err(CoordinatorError::StaleGeneration { current: 4 })
    );
    assert_eq!(c.check("d", 4, 5), Ok(()));
    assert_eq!(
        c.check("d", old_gen, 5),
        Err(CoordinatorError::StaleGeneration { current: 4 }),
        "the new owner must have seen the generation that gave it the partition"
    );
    let hb = c.heartbeat("c", old_gen, 20).unwrap();
    assert_eq!(
        hb,
        HeartbeatResult {
            generation: 4,
            partitions: vec![2],
            revoked: vec![5],
            rebalanced: true
        }
    );
    assert_eq!(
        c.check("c", 4, 5),
        Err(CoordinatorError::NotOwner { partition: 5 })
    );
}

#[test]
fn leaving_member_moves_only_its_partitions() {
    let mut c = three_of_six();
    c.join("d", 0, LONG).unwrap();
    let before = owners(&c);
    assert_eq!(owned(&c, "b"), vec![3, 4]);
    assert!(c.leave("b", 5));
    let after = owners(&c);
    for p in 0..6 {
        if [3, 4].contains(&p) {
            assert_ne!(after[p], Some("b".to_string()));
            assert!(after[p].is_some());
        } else {
            assert_eq!(after[p], before[p], "partition {p} moved");
        }
    }
    for m in ["a", "c", "d"] {
        assert_eq!(owned(&c, m).len(), 2);
    }
    assert!(!c.leave("b", 6), "already gone");
    assert_eq!(
        c.check("b", c.generation(), 3),
        Err(CoordinatorError::UnknownMember)
    );
}

#[test]
fn silent_member_expires_after_its_session_timeout() {
    let mut c = Coordinator::new(4);
    c.join("a", 0, 1000).unwrap();
    c.join("b", 0, 1000).unwrap();
    c.heartbeat("a", c.generation(), 800).unwrap();
    assert!(
        c.expire(1000).is_empty(),
        "exactly at the timeout is not past it"
    );
    assert_eq!(c.expire(1001), vec!["b".to_string()]);
    assert_eq!(owned(&c, "a"), vec![0, 1, 2, 3]);
    assert_eq!(
        c.heartbeat("b", c.generation(), 1002),
        Err(CoordinatorError::UnknownMember)
    );
    assert_eq!(c.expire(1800), Vec::<String>::new(), "a was seen at 800");
    assert_eq!(c.expire(1801), vec!["a".to_string()]);
    assert_eq!(c.owner(0), None);
}

#[test]
fn session_timeout_is_capped_by_the_settings() {
    let settings = CoordinatorSettings {
        session_timeout_ms: 2000,
        max_members: 4,
    };
    let mut c = Coordinator::with_settings(2, settings);
    c.join("a", 0, 0).unwrap();
    c.join("b", 0, 60_000).unwrap();
    c.join("c", 0, 500).unwrap();
    let timeouts: Vec<(&str, u64)> = c.members().map(|m| (m.id, m.session_timeout_ms)).collect();
    assert_eq!(timeouts, vec![("a", 2000), ("b", 2000), ("c", 500)]);
    assert_eq!(c.expire(2001), vec!["a", "b", "c"]);
}

#[test]
fn heartbeat_reports_revoked_partitions_once() {
    let mut c = Coordinator::new(4);
    let a = c.join("a", 0, LONG).unwrap();
    c.join("b", 0, LONG).unwrap();
    let hb = c.heartbeat("a", a.generation, 1).unwrap();
    assert_eq!(hb.revoked, vec![2, 3]);
    assert_eq!(hb.partitions, vec![0, 1]);
    assert!(hb.rebalanced);
    let hb = c.heartbeat("a", hb.generation, 2).unwrap();
    assert!(hb.revoked.is_empty(), "reported once");
    assert!(!hb.rebalanced);

    // Taken away and given back before a heartbeat: reported as revoked and owned.
    c.leave("b", 3);
    c.join("c", 4, LONG).unwrap();
    c.leave("c", 5);
    let hb = c.heartbeat("a", hb.generation, 6).unwrap();
    assert_eq!(hb.partitions, vec![0, 1, 2, 3]);
    assert_eq!(hb.revoked, vec![2, 3]);
}

#[test]
fn rejoin_clears_pending_revocations() {
    let mut c = Coordinator::new(2);
    c.join("a", 0, LONG).unwrap();
    c.join("b", 0, LONG).unwrap();
    let again = c.join("a", 1, LONG).unwrap();
    assert_eq!(again.partitions, vec![0]);
    assert!(
        c.heartbeat("a", again.generation, 2)
            .unwrap()
            .revoked
            .is_empty()
    );
}

#[test]
fn stale_generation_and_unknown_member_are_refused() {
    let mut c = three_of_six();
    let current = c.generation();
    assert_eq!(
        c.heartbeat("zz", current, 0),
        Err(CoordinatorError::UnknownMember)
    );
    assert_eq!(
        c.check("zz", current, 0),
        Err(CoordinatorError::UnknownMember)
    );
    assert_eq!(
        c.heartbeat("a", current + 1, 0),
        Err(CoordinatorError::StaleGeneration { current })
    );
    assert_eq!(
        c.check("a", current + 1, 0),
        Err(CoordinatorError::StaleGeneration { current })
    );
    // Partition 2 went to c at generation 3: at generation 1 a still believed it owned it.
    assert_eq!(
        c.check("a", 1, 2),
        Err(CoordinatorError::StaleGeneration { current })
    );
    assert_eq!(
        c.check("c", 2, 2),
        Err(CoordinatorError::StaleGeneration { current })
    );
    assert_eq!(c.check("c", 3, 2), Ok(()));
    assert_eq!(
        c.check("a", current, 2),
        Err(CoordinatorError::NotOwner { partition: 2 })
    );
    assert_eq!(
        c.check("a", current, 99),
        Err(CoordinatorError::NotOwner { partition: 99 })
    );
    // a has held 0 since generation 1.
    assert_eq!(c.check("a", 1, 0), Ok(()));
}

#[test]
fn growing_partitions_spreads_the_new_ones_without_moving_old_ones() {
    let mut c = three_of_six();
    let old_gen = c.generation();
    let before = owners(&c);
    c.set_partitions(8);
    assert_eq!(c.partitions(), 8);
    assert_eq!(c.generation(), old_gen + 1);
    let after = owners(&c);
    assert_eq!(&after[..6], &before[..]);
    assert_eq!(after[6].as_deref(), Some("a"));
    assert_eq!(after[7].as_deref(), Some("b"));
    assert_eq!(c.check("c", old_gen, 5), Ok(()));

    let rebalances = c.rebalances();
    c.set_partitions(4);
    c.set_partitions(8);
    assert_eq!(c.partitions(), 8, "partition counts never shrink");
    assert_eq!(c.rebalances(), rebalances);

    let mut empty = Coordinator::new(1);
    empty.set_partitions(3);
    assert_eq!(empty.join("a", 0, LONG).unwrap().partitions, vec![0, 1, 2]);
}

#[test]
fn too_many_members_is_refused_and_rejoin_is_idempotent() {
    let settings = CoordinatorSettings {
        session_timeout_ms: LONG,
        max_members: 2,
    };
    let mut c = Coordinator::with_settings(3, settings);
    c.join("a", 0, LONG).unwrap();
    let b = c.join("b", 0, LONG).unwrap();
    assert_eq!(c.join("c", 0, LONG), Err(CoordinatorError::TooManyMembers));
    let (generation, rebalances) = (c.generation(), c.rebalances());
    assert_eq!(c.join("b", 5, LONG).unwrap(), b);
    assert_eq!((c.generation(), c.rebalances()), (generation, rebalances));
    assert_eq!(c.members().find(|m| m.id == "b").unwrap().last_seen_ms, 5);
    assert!(c.leave("a", 6));
    assert!(c.join("c", 7, LONG).is_ok(), "room again");
}

#[test]
fn extra_members_beyond_the_partitions_idle_without_a_new_generation() {
    let mut c = Coordinator::new(2);
    c.join("a", 0, LONG).unwrap();
    c.join("b", 0, LONG).unwrap();
    let generation = c.generation();
    let idle = c.join("c", 0, LONG).unwrap();
    assert!(idle.partitions.is_empty());
    assert_eq!(idle.generation, generation, "nothing moved");
    c.leave("a", 1);
    assert_eq!(owned(&c, "c"), vec![0]);
    assert_eq!(c.generation(), generation + 1);
}

#[test]
fn last_member_leaving_leaves_every_partition_unowned() {
    let mut c = Coordinator::new(3);
    c.join("a", 0, LONG).unwrap();
    c.leave("a", 1);
    assert_eq!(c.generation(), 2);
    assert!((0..3).all(|p| c.owner(p).is_none()));
    let a = c.join("a", 2, LONG).unwrap();
    assert_eq!(a.partitions, vec![0, 1, 2]);
    assert_eq!(a.generation, 3);
}

// ---- Minimality against brute force -------------------------------------------------

fn is_balanced(target: &[Option<usize>], members: usize) -> bool {
    let mut counts = vec![0usize; members];
    for owner in target {
        match owner {
            Some(m) if *m < members => counts[*m] += 1,
            _ => return false,
        }
    }
    let floor = target.len() / members;
    counts.iter().all(|c| *c == floor || *c == floor + 1)
}

fn moved(before: &[Option<usize>], after: &[Option<usize>]) -> usize {
    before.iter().zip(after).filter(|(b, a)| b != a).count()
}

/// Every vector over `alphabet` of length `len`, via a base-`alphabet.len()` counter.
fn all_vectors<T: Clone>(alphabet: &[T], len: usize) -> Vec<Vec<T>> {
    let total = alphabet.len().pow(len as u32);
    (0..total)
        .map(|mut n| {
            (0..len)
                .map(|_| {
                    let v = alphabet[n % alphabet.len()].clone();
                    n /= alphabet.len();
                    v
                })
                .collect()
        })
        .collect()
}

#[test]
fn plan_moves_the_fewest_partitions_of_any_balanced_assignment() {
    for (members, max_partitions) in [(1, 6), (2, 6), (3, 5), (4, 4)] {
        // Current owners: none, any member, or one that left (index `members`).
        let mut alphabet: Vec<Option<usize>> = vec![None];
        alphabet.extend((0..=members).map(Some));
        let targets_alphabet: Vec<Option<usize>> = (0..members).map(Some).collect();
        for partitions in 0..=max_partitions {
            let balanced: Vec<Vec<Option<usize>>> = all_vectors(&targets_alphabet, partitions)
                .into_iter()
                .filter(|t| is_balanced(t, members))
                .collect();
            for before in all_vectors(&alphabet, partitions) {
                let plan = assign::plan(&before, members);
                assert!(is_balanced(&plan, members), "{before:?} -> {plan:?}");
                let best = balanced.iter().map(|t| moved(&before, t)).min().unwrap();
                assert_eq!(moved(&before, &plan), best, "{before:?} -> {plan:?}");
                assert_eq!(plan, assign::plan(&before, members), "deterministic");
            }
        }
    }
    assert_eq!(assign::plan(&[Some(0), None], 0), vec![None, None]);
}

// ---- Random operation sequences against a model ---------------------------------------

const IDS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];
const SETTINGS: CoordinatorSettings = CoordinatorSettings {
    session_timeout_ms: 2000,
    max_members: 6,
};

#[derive(Clone, Copy, Debug)]
enum Gen {
    Current,
    Previous,
    Zero,
    Future,
}

#[derive(Clone, Debug)]
enum Op {
    Join(usize, u64),
    Heartbeat(usize, Gen),
    Leave(usize),
    Expire,
    Advance(i64),
    Grow(u32),
}

fn op() -> impl Strategy<Value = Op> {
    let gen_pick = prop_oneof![
        4 => Just(Gen::Current),
        2 => Just(Gen::Previous),
        1 => Just(Gen::Zero),
        1 => Just(Gen::Future),
    ];
    prop_oneof![
        4 => (0..IDS.len(), prop::sample::select(vec![0u64, 500, 1500, 5000]))
            .prop_map(|(m, t)| Op::Join(m, t)),
        4 => (0..IDS.len(), gen_pick).prop_map(|(m, g)| Op::Heartbeat(m, g)),
        2 => (0..IDS.len()).prop_map(Op::Leave),
        2 => Just(Op::Expire),
        3 => (0i64..1500).prop_map(Op::Advance),
        1 => (1u32..=24).prop_map(Op::Grow),
    ]
}

#[derive(Debug, Default)]
struct ModelMember {
    timeout: u64,
    last_seen: i64,
    revoked: BTreeSet<u32>,
}

/// Fewest partitions any balanced assignment of `partitions` over `members` can move
/// from `before`, found by trying every choice of which members get the ceiling quota.
fn fewest_moves(before: &[Option<String>], members: &[&str], partitions: usize) -> usize {
    if members.is_empty() {
        return before.iter().filter(|o| o.is_some()).count();
    }
    let held: Vec<usize> = members
        .iter()
        .map(|m| before.iter().filter(|o| o.as_deref() == Some(*m)).count())
        .collect();
    let (floor, ceilings) = (partitions / members.len(), partitions % members.len());
    let best_kept = (0u32..1 << members.len())
        .filter(|mask| mask.count_ones() as usize == ceilings)
        .map(|mask| {
            (0..members.len())
                .map(|i| held[i].min(floor + usize::from(mask & (1 << i) != 0)))
                .sum::<usize>()
        })
        .max()
        .unwrap();
    partitions - best_kept
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn ordered_group_invariants_hold_under_random_operations(
        partitions in 1u32..=24,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let mut c = Coordinator::with_settings(partitions, SETTINGS);
        let mut model: BTreeMap<&str, ModelMember> = BTreeMap::new();
        let mut assigned_at: Vec<u32> = vec![0; partitions as usize];
        let mut now = 0i64;

        for op in ops {
            let before = owners(&c);
            let before_members: BTreeSet<&str> = model.keys().copied().collect();
            let gen_before = c.generation();
            let rebalances_before = c.rebalances();
            let mut may_rebalance = false;

            match op {
                Op::Join(i, timeout) => {
                    let id = IDS[i];
                    let result = c.join(id, now, timeout);
                    if !model.contains_key(id) && model.len() >= SETTINGS.max_members {
                        prop_assert_eq!(result, Err(CoordinatorError::TooManyMembers));
                    } else {
                        let a = result.unwrap();
                        prop_assert_eq!(a.generation, c.generation());
                        prop_assert_eq!(&a.partitions, &owned(&c, id));
                        let m = model.entry(id).or_insert(ModelMember { last_seen: now, ..Default::default() });
                        m.timeout = if timeout == 0 { 2000 } else { timeout.min(2000) };
                        m.last_seen = m.last_seen.max(now);
                        m.revoked.clear();
                        may_rebalance = !before_members.contains(id);
                    }
                }
                Op::Heartbeat(i, pick) => {
                    let id = IDS[i];
                    let current = c.generation();
                    let g = match pick {
                        Gen::Current => current,
                        Gen::Previous => current.saturating_sub(1),
                        Gen::Zero => 0,
                        Gen::Future => current + 1,
                    };
                    let result = c.heartbeat(id, g, now);
                    match model.get_mut(id) {
                        None => prop_assert_eq!(result, Err(CoordinatorError::UnknownMember)),
                        Some(_) if g > current => {
                            prop_assert_eq!(result, Err(CoordinatorError::StaleGeneration { current }));
                        }
                        Some(m) => {
                            let hb = result.unwrap();
                            prop_assert_eq!(hb.generation, current);
                            prop_assert_eq!(&hb.partitions, &owned(&c, id));
                            let revoked: Vec<u32> = std::mem::take(&mut m.revoked).into_iter().collect();
                            prop_assert_eq!(hb.revoked, revoked);
                            prop_assert_eq!(hb.rebalanced, g < current);
                            m.last_seen = m.last_seen.max(now);
                        }
                    }
                }
                Op::Leave(i) => {
                    let id = IDS[i];
                    prop_assert_eq!(c.leave(id, now), model.remove(id).is_some());
                    may_rebalance = true;
                }
                Op::Expire => {
                    let due: Vec<String> = model
                        .iter()
                        .filter(|(_, m)| now - m.last_seen > m.timeout as i64)
                        .map(|(id, _)| id.to_string())
                        .collect();
                    prop_assert_eq!(c.expire(now), due.clone());
                    for id in &due {
                        model.remove(id.as_str());
                    }
                    may_rebalance = !due.is_empty();
                }
                Op::Advance(dt) => now += dt,
                Op::Grow(p) => {
                    c.set_partitions(p);
                    prop_assert_eq!(c.partitions(), (before.len() as u32).max(p));
                    assigned_at.resize(c.partitions() as usize, 0);
                    may_rebalance = true;
                }
            }

            let after = owners(&c);
            let total = after.len();
            let members: Vec<&str> = model.keys().copied().collect();
            prop_assert_eq!(
                c.members().map(|m| m.id.to_string()).collect::<Vec<_>>(),
                members.iter().map(|m| m.to_string()).collect::<Vec<_>>()
            );
            if !may_rebalance {
                prop_assert_eq!(c.rebalances(), rebalances_before);
            }

            // (a) one owner per partition, a current member, and one whenever any member
            // exists; the members' views agree with `owner`.
            let mut seen = vec![false; total];
            for m in c.members() {
                for p in m.partitions {
                    prop_assert!(!seen[*p as usize], "partition {} owned twice", p);
                    seen[*p as usize] = true;
                    prop_assert_eq!(after[*p as usize].as_deref(), Some(m.id));
                }
            }
            for (p, o) in after.iter().enumerate() {
                prop_assert_eq!(o.is_some(), seen[p]);
                prop_assert_eq!(o.is_some(), !members.is_empty());
            }

            // (b) balanced.
            if !members.is_empty() {
                let floor = total / members.len();
                for m in c.members() {
                    let n = m.partitions.len();
                    prop_assert!(n == floor || n == floor + 1, "{} owns {} of {}", m.id, n, total);
                }
            }

            // (c) sticky and minimal: a surviving member at or below its new quota kept
            // everything; one above it kept only its own; nothing moved that did not have to.
            let before_padded: Vec<Option<String>> =
                (0..total).map(|p| before.get(p).cloned().flatten()).collect();
            for m in members.iter().filter(|m| before_members.contains(*m)) {
                let had: BTreeSet<usize> = (0..total).filter(|p| before_padded[*p].as_deref() == Some(*m)).collect();
                let has: BTreeSet<usize> = (0..total).filter(|p| after[*p].as_deref() == Some(*m)).collect();
                if had.len() <= has.len() {
                    prop_assert!(had.is_subset(&has), "{} lost {:?} while under quota", m, had.difference(&has).collect::<Vec<_>>());
                } else {
                    prop_assert!(has.is_subset(&had), "{} over quota got new partitions", m);
                }
            }
            let changed: Vec<usize> = (0..total).filter(|p| before_padded[*p] != after[*p]).collect();
            prop_assert_eq!(changed.len(), fewest_moves(&before_padded, &members, total));

            // (e) the generation goes up by exactly one iff ownership changed.
            let expected_gen = gen_before + u32::from(!changed.is_empty());
            prop_assert_eq!(c.generation(), expected_gen);
            for p in &changed {
                assigned_at[*p] = expected_gen;
                if let Some(old) = before_padded[*p].as_deref()
                    && let Some(m) = model.get_mut(old)
                {
                    m.revoked.insert(*p as u32);
                }
            }

            // (d) check accepts exactly the owner at a generation that has seen its
            // assignment, and refuses everyone and everything else with the right error.
            let current = c.generation();
            for id in IDS {
                for p in 0..total as u32 + 1 {
                    let at = assigned_at.get(p as usize).copied().unwrap_or(0);
                    for g in [0, at.saturating_sub(1), at, current.saturating_sub(1), current, current + 1] {
                        let owner = after.get(p as usize).cloned().flatten();
                        let expected = if !model.contains_key(id) {
                            Err(CoordinatorError::UnknownMember)
                        } else if g > current {
                            Err(CoordinatorError::StaleGeneration { current })
                        } else if owner.as_deref() == Some(id) {
                            if at <= g { Ok(()) } else { Err(CoordinatorError::StaleGeneration { current }) }
                        } else if g < current {
                            Err(CoordinatorError::StaleGeneration { current })
                        } else {
                            Err(CoordinatorError::NotOwner { partition: p })
                        };
                        prop_assert_eq!(c.check(id, g, p), expected, "{} g{} p{}", id, g, p);
                    }
                }
            }
        }
    }
}

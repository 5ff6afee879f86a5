//! Which nodes hold a partition: rendezvous (highest-random-weight) hashing of
//! `(destination, partition)` over the candidate nodes.
//!
//! Rendezvous hashing is chosen because a node joining or leaving changes only the
//! replica sets in which that node ranks high enough: every other partition keeps its
//! nodes, so a re-plan moves the minimum. Leaders are then spread by a greedy pass
//! (each partition's leader is the replica with the fewest leaders so far), which
//! keeps the leader counts within one of each other whenever the replica sets allow it.

use std::collections::BTreeMap;

/// The replicas of one partition; the first is the leader (hint).
pub type ReplicaSet = Vec<String>;

/// The weight of `node` for `(destination, partition)`: a 64-bit mix of all three.
fn weight(destination: &str, partition: u32, node: &str) -> u64 {
    let mut h = swarmmq_types::key_hash(destination.as_bytes());
    h ^= u64::from(partition).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h = mix(h);
    h ^= swarmmq_types::key_hash(node.as_bytes());
    mix(h)
}

/// splitmix64's finaliser: FNV alone is weak in its low bits, and rendezvous needs
/// every bit to vary with every input.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `replication_factor` highest-weight nodes for one partition, highest first.
/// Fewer nodes than the factor gives every node.
pub fn replicas_for(
    destination: &str,
    partition: u32,
    nodes: &[String],
    replication_factor: usize,
) -> ReplicaSet {
    let mut ranked: Vec<(u64, &String)> = nodes
        .iter()
        .map(|n| (weight(destination, partition, n), n))
        .collect();
    // Ties (astronomically rare) break by name so every node computes the same order.
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    ranked.dedup_by(|a, b| a.1 == b.1);
    ranked
        .into_iter()
        .take(replication_factor.max(1))
        .map(|(_, n)| n.clone())
        .collect()
}

/// Replica sets for every partition of a destination, leaders spread evenly.
pub fn place(
    destination: &str,
    partitions: u32,
    nodes: &[String],
    replication_factor: usize,
) -> Vec<ReplicaSet> {
    let mut sets: Vec<ReplicaSet> = (0..partitions)
        .map(|p| replicas_for(destination, p, nodes, replication_factor))
        .collect();
    spread_leaders(&mut sets);
    sets
}

/// Moves, in each replica set, the replica with the fewest leaders so far to the front.
fn spread_leaders(sets: &mut [ReplicaSet]) {
    let mut led: BTreeMap<String, usize> = BTreeMap::new();
    for set in sets.iter_mut() {
        let best = set
            .iter()
            .enumerate()
            .min_by_key(|(rank, n)| (led.get(*n).copied().unwrap_or(0), *rank))
            .map(|(i, _)| i);
        if let Some(i) = best {
            set.swap(0, i);
            if let Some(leader) = set.first() {
                *led.entry(leader.clone()).or_insert(0) += 1;
            }
        }
    }
}

/// The default replication factor: `min(3, nodes)`, at least 1.
pub fn default_replication_factor(nodes: usize) -> usize {
    nodes.clamp(1, 3)
}

/// One partition whose replica set must change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub partition: u32,
    pub from: ReplicaSet,
    pub to: ReplicaSet,
}

/// What must move when the candidate nodes change: only partitions whose replica set
/// (as a set) differs. A replica still in the set keeps its place; new ones take the
/// places of those that left.
pub fn plan(
    destination: &str,
    current: &[ReplicaSet],
    nodes: &[String],
    replication_factor: usize,
) -> Vec<Move> {
    let mut moves = Vec::new();
    for (p, from) in current.iter().enumerate() {
        let Ok(partition) = u32::try_from(p) else {
            break;
        };
        let wanted = replicas_for(destination, partition, nodes, replication_factor);
        let same = wanted.len() == from.len() && wanted.iter().all(|n| from.contains(n));
        if same {
            continue;
        }
        // Keep surviving replicas in their positions (the leader stays the leader when
        // it survives), fill the holes with the newcomers in rank order.
        let mut newcomers = wanted.iter().filter(|n| !from.contains(n));
        let mut to: ReplicaSet = from
            .iter()
            .filter_map(|n| {
                if wanted.contains(n) {
                    Some(n.clone())
                } else {
                    newcomers.next().cloned()
                }
            })
            .collect();
        to.extend(newcomers.cloned());
        to.truncate(replication_factor.max(1));
        moves.push(Move {
            partition,
            from: from.clone(),
            to,
        });
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn every_node_computes_the_same_distinct_replicas() {
        let all = nodes(5);
        let mut reversed = all.clone();
        reversed.reverse();
        for p in 0..50 {
            let a = replicas_for("orders", p, &all, 3);
            assert_eq!(a, replicas_for("orders", p, &reversed, 3));
            assert_eq!(a.len(), 3);
            let mut d = a.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3);
        }
        assert_eq!(replicas_for("x", 0, &nodes(2), 3).len(), 2);
        assert_eq!(default_replication_factor(1), 1);
        assert_eq!(default_replication_factor(5), 3);
    }

    #[test]
    fn leaders_are_spread_evenly() {
        let all = nodes(5);
        let sets = place("orders", 60, &all, 3);
        let mut led: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &sets {
            *led.entry(s[0].as_str()).or_default() += 1;
        }
        assert_eq!(led.len(), 5);
        let (min, max) = (led.values().min().unwrap(), led.values().max().unwrap());
        assert!(max - min <= 1, "leader counts {led:?}");
    }

    #[test]
    fn partitions_spread_over_every_node() {
        let all = nodes(7);
        let sets = place("t", 700, &all, 3);
        let mut held: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &sets {
            for n in s {
                *held.entry(n.as_str()).or_default() += 1;
            }
        }
        // 2100 replicas over 7 nodes: 300 each on average; hashing keeps it near.
        for (n, c) in held {
            assert!((200..400).contains(&c), "{n} holds {c}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Adding a node moves only partitions that the new node now holds, and
        /// removing one moves only partitions the removed node held.
        #[test]
        fn a_join_or_leave_moves_only_what_must_move(n in 2usize..8, parts in 1u32..64, rf in 1usize..4) {
            let before = nodes(n);
            let current = place("d", parts, &before, rf);
            let mut after = before.clone();
            after.push("node-new".into());
            for m in plan("d", &current, &after, rf) {
                prop_assert!(m.to.contains(&"node-new".to_string()));
                prop_assert!(!m.from.contains(&"node-new".to_string()));
                // Exactly one replica changed.
                let kept = m.to.iter().filter(|x| m.from.contains(x)).count();
                prop_assert_eq!(kept + 1, m.to.len().min(rf));
            }
            let gone = before[0].clone();
            let fewer: Vec<String> = before.iter().skip(1).cloned().collect();
            for m in plan("d", &current, &fewer, rf) {
                prop_assert!(m.from.contains(&gone));
                prop_assert!(!m.to.contains(&gone));
            }
        }
    }
}

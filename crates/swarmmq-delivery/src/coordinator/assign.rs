//! The target assignment of an ordered group: balanced and sticky, as a pure function of
//! who owns what now, so it can be checked exhaustively against brute force.

/// The owner of every partition after a rebalance.
///
/// `owners[p]` is the index of partition `p`'s current owner in the member list (sorted by
/// id), or `None` when it has none; an index `>= members` (an owner that left) counts as
/// none. Returns `None` for every partition when there are no members.
///
/// With `P` partitions and `n` members each member gets a quota of `floor(P/n)`, and
/// `P mod n` of them one more. A member keeps its lowest-numbered partitions up to its
/// quota; its surplus and the orphans (no owner, or owner left) form a pool that is handed
/// out lowest partition first to the members below quota, in member order.
///
/// Why this moves the fewest partitions: any balanced assignment gives member `m` some
/// quota `c_m` (with exactly `P mod n` ceilings), and `m` can keep at most
/// `min(owned_m, c_m)` of the partitions it has, so at least `P - Σ min(owned_m, c_m)`
/// partitions change owner. A ceiling quota raises that sum by one exactly when
/// `owned_m > floor`, so giving the ceilings to the members that own the most maximises
/// it, and keeping `min(owned_m, quota_m)` per member attains it.
pub(super) fn plan(owners: &[Option<usize>], members: usize) -> Vec<Option<usize>> {
    if members == 0 {
        return vec![None; owners.len()];
    }
    let floor = owners.len() / members;
    let ceilings = owners.len() % members;

    // Partitions each member holds now, ascending because `owners` is walked in order.
    let mut held: Vec<Vec<usize>> = vec![Vec::new(); members];
    let mut pool = Vec::new();
    for (partition, owner) in owners.iter().enumerate() {
        match owner.and_then(|m| held.get_mut(m)) {
            Some(list) => list.push(partition),
            None => pool.push(partition),
        }
    }

    let mut by_holdings: Vec<usize> = (0..members).collect();
    by_holdings.sort_by(|a, b| {
        let (la, lb) = (
            held.get(*a).map_or(0, Vec::len),
            held.get(*b).map_or(0, Vec::len),
        );
        lb.cmp(&la).then(a.cmp(b))
    });
    let mut quota = vec![floor; members];
    for m in by_holdings.into_iter().take(ceilings) {
        if let Some(q) = quota.get_mut(m) {
            *q += 1;
        }
    }

    let mut target: Vec<Option<usize>> =
        owners.iter().map(|o| o.filter(|m| *m < members)).collect();
    for (list, q) in held.iter_mut().zip(&quota) {
        if list.len() > *q {
            pool.extend(list.drain(*q..));
        }
    }
    pool.sort_unstable();
    let mut pool = pool.into_iter();
    for (m, (list, q)) in held.iter_mut().zip(&quota).enumerate() {
        while list.len() < *q {
            // The pool holds exactly the missing `Σ quota - Σ kept` partitions.
            let Some(partition) = pool.next() else { break };
            if let Some(slot) = target.get_mut(partition) {
                *slot = Some(m);
            }
            list.push(partition);
        }
    }
    target
}

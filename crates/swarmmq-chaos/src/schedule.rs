//! The fault schedule: a pure function of the seed and the run's shape, so a seed
//! replays the same faults (kinds, targets, times, pause lengths). Only "the metadata
//! leader" is resolved when the fault fires, since who leads depends on the run.
//! Adding a kind never changes what a seed draws for the others: the extra draws of a
//! partition (its minority) happen only for a partition.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

/// A fault the harness can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL a random node, then start it again.
    Kill,
    /// SIGKILL the metadata leader, then start it again.
    KillLeader,
    /// SIGSTOP a random node for 1-5 s, then SIGCONT.
    Pause,
    /// SIGTERM a random node (a graceful stop), then start it again.
    Restart,
    /// Cut a random minority (1 to N/2 nodes) off from the rest for 2-8 s, then heal.
    /// Needs network namespaces (`--netns`).
    Partition,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Kill,
        FaultKind::KillLeader,
        FaultKind::Pause,
        FaultKind::Restart,
        FaultKind::Partition,
    ];

    /// The process faults: what a run without network namespaces can inject.
    pub const PROCESS: [FaultKind; 4] = [
        FaultKind::Kill,
        FaultKind::KillLeader,
        FaultKind::Pause,
        FaultKind::Restart,
    ];

    /// Whether it needs network namespaces.
    pub fn needs_netns(self) -> bool {
        self == FaultKind::Partition
    }

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::Pause => "pause",
            FaultKind::Restart => "restart",
            FaultKind::Partition => "partition",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!("unknown fault {s:?}: one of kill, kill-leader, pause, restart, partition")
            })
    }
}

/// The shape the schedule is drawn for.
#[derive(Clone, Debug)]
pub struct ScheduleConfig {
    pub seed: u64,
    pub nodes: usize,
    /// Faults start within this time from the start of the workload.
    pub duration: Duration,
    /// One fault per this long.
    pub fault_every: Duration,
    /// The kinds to draw from (duplicates weigh a kind more).
    pub faults: Vec<FaultKind>,
}

/// One planned fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScheduledFault {
    /// From the start of the workload.
    #[serde(rename = "at_ms", serialize_with = "crate::report::millis")]
    pub at: Duration,
    pub kind: FaultKind,
    /// Node index (0-based). For [`FaultKind::KillLeader`] it is the fallback when no
    /// leader is known when the fault fires; for [`FaultKind::Partition`] it is one of
    /// the minority.
    pub target: usize,
    /// How long the node stays down (kill, kill-leader: before the restart), stopped
    /// (pause) or cut off (partition); zero for a graceful restart.
    #[serde(rename = "hold_ms", serialize_with = "crate::report::millis")]
    pub hold: Duration,
    /// The side cut off by a partition (0-based, sorted; `target` among them): 1 to
    /// N/2 nodes. Empty for the other kinds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub minority: Vec<usize>,
}

/// Most faults one schedule holds, whatever the duration and interval say.
pub const MAX_FAULTS: usize = 10_000;

/// Draws the schedule: fault k (1-based) at `k * fault_every` plus up to a tenth of the
/// interval of jitter, while that is before `duration`.
pub fn schedule(config: &ScheduleConfig) -> Vec<ScheduledFault> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut out = Vec::new();
    if config.faults.is_empty() || config.nodes == 0 || config.fault_every.is_zero() {
        return out;
    }
    let every = config.fault_every.as_millis().min(u128::from(u64::MAX)) as u64;
    for k in 1..=MAX_FAULTS as u64 {
        let jitter = rng.random_range(0..=every / 10);
        let at = Duration::from_millis(every.saturating_mul(k).saturating_add(jitter));
        if at >= config.duration {
            break;
        }
        let kind = config.faults[rng.random_range(0..config.faults.len())];
        let target = rng.random_range(0..config.nodes);
        let hold = match kind {
            FaultKind::Pause => Duration::from_millis(rng.random_range(1000..=5000)),
            FaultKind::Kill | FaultKind::KillLeader => {
                Duration::from_millis(rng.random_range(200..=2000))
            }
            FaultKind::Restart => Duration::ZERO,
            FaultKind::Partition => Duration::from_millis(rng.random_range(2000..=8000)),
        };
        let minority = if kind == FaultKind::Partition {
            draw_minority(&mut rng, config.nodes, target)
        } else {
            Vec::new()
        };
        out.push(ScheduledFault {
            at,
            kind,
            target,
            hold,
            minority,
        });
    }
    out
}

/// `target` plus 1 to N/2 - 1 more of the `nodes`, drawn by a partial Fisher-Yates
/// shuffle (spelled out so the draw is fixed by this code, not by a library version).
/// Fewer than 2 nodes cannot be split: the minority is then empty.
fn draw_minority(rng: &mut ChaCha8Rng, nodes: usize, target: usize) -> Vec<usize> {
    if nodes < 2 || target >= nodes {
        return Vec::new();
    }
    let size = rng.random_range(1..=nodes / 2);
    let mut others: Vec<usize> = (0..nodes).filter(|&i| i != target).collect();
    let mut minority = vec![target];
    for k in 0..size - 1 {
        let j = rng.random_range(k..others.len());
        others.swap(k, j);
        minority.push(others[k]);
    }
    minority.sort_unstable();
    minority
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_names_round_trip() {
        for k in FaultKind::ALL {
            assert_eq!(k.name().parse::<FaultKind>(), Ok(k));
        }
        assert!("partitions".parse::<FaultKind>().is_err());
        assert!(FaultKind::PROCESS.iter().all(|k| !k.needs_netns()));
        assert!(FaultKind::Partition.needs_netns());
    }

    #[test]
    fn a_partition_cuts_off_a_minority_that_holds_its_target() {
        let config = ScheduleConfig {
            seed: 3,
            nodes: 5,
            duration: Duration::from_secs(600),
            fault_every: Duration::from_secs(5),
            faults: vec![FaultKind::Partition, FaultKind::Kill],
        };
        let plan = schedule(&config);
        let parts: Vec<_> = plan
            .iter()
            .filter(|f| f.kind == FaultKind::Partition)
            .collect();
        assert!(parts.len() > 20);
        for f in &parts {
            assert!((1..=2).contains(&f.minority.len()), "{f:?}");
            assert!(f.minority.contains(&f.target));
            assert!(f.minority.windows(2).all(|w| w[0] < w[1]));
            assert!(f.hold >= Duration::from_secs(2) && f.hold <= Duration::from_secs(8));
        }
        // Both sizes occur, and the other kinds carry no minority.
        assert!(parts.iter().any(|f| f.minority.len() == 1));
        assert!(parts.iter().any(|f| f.minority.len() == 2));
        assert!(
            plan.iter()
                .filter(|f| f.kind != FaultKind::Partition)
                .all(|f| f.minority.is_empty())
        );
        // One node cannot be split.
        let one = ScheduleConfig { nodes: 1, ..config };
        assert!(schedule(&one).iter().all(|f| f.minority.is_empty()));
    }
}

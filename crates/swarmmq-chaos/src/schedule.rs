//! The fault schedule: a pure function of the seed and the run's shape, so a seed
//! replays the same faults (kinds, targets, times, pause lengths). Only "the metadata
//! leader" is resolved when the fault fires, since who leads depends on the run.

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
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Kill,
        FaultKind::KillLeader,
        FaultKind::Pause,
        FaultKind::Restart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::Pause => "pause",
            FaultKind::Restart => "restart",
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
            .ok_or_else(|| format!("unknown fault {s:?}: one of kill, kill-leader, pause, restart"))
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
    /// leader is known when the fault fires.
    pub target: usize,
    /// How long the node stays down (kill, kill-leader: before the restart) or stopped
    /// (pause); zero for a graceful restart.
    #[serde(rename = "hold_ms", serialize_with = "crate::report::millis")]
    pub hold: Duration,
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
        };
        out.push(ScheduledFault {
            at,
            kind,
            target,
            hold,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_names_round_trip() {
        for k in FaultKind::ALL {
            assert_eq!(k.name().parse::<FaultKind>(), Ok(k));
        }
        assert!("partition".parse::<FaultKind>().is_err());
    }
}

//! SwarmMQ's chaos harness: it starts a real local cluster of `swarmmq node` processes
//! ([`ClusterHarness`]), runs producers and consumers against it while recording
//! everything they were told ([`History`]), injects faults on a schedule drawn from a
//! seed ([`schedule`]), and afterwards judges the history ([`Checker`]). [`run`] does
//! all of it; `swarmmq chaos run` is its command line.
//!
//! Process faults go by the PID the harness started: SIGKILL and restart (of any node
//! or of the metadata leader), SIGSTOP/SIGCONT pauses, and a graceful SIGTERM restart.
//! Everything binds 127.0.0.1, unless the run uses network namespaces (`netns`, root
//! only): then each node has its own namespace and address behind a bridge, and a
//! partition fault cuts a seeded minority off (see [`NetnsLab`]).
//!
//! It is NOT: a delay/drop/reorder injector (partitions are all-or-nothing and
//! symmetric, and the harness's own clients always stay on the majority side), a disk
//! fault injector (torn writes, bit flips, disk full), or a deterministic simulation. Its
//! checks for replication (one leader per partition term, identical replicas up to the
//! commit index) are extension points of [`Checker`], not implemented until the
//! cluster exposes what they need (see the `checker` module docs).

mod checker;
mod error;
mod harness;
mod history;
mod http;
mod netns;
mod process;
mod report;
mod run;
mod schedule;
mod workload;

pub use checker::{
    Check, CheckInput, CheckReport, CheckResult, Checker, HistoryComplete, MAX_LISTED,
    MetadataOneLeaderPerTerm, MetadataView, NoDuplicates, NoLostMessages, Observations,
    PartitionOrder,
};
pub use error::ChaosError;
pub use harness::{ClusterHarness, ClusterView, HarnessConfig, MAX_NODES, cluster_view};
pub use history::{AckConfirmed, Acked, Delivery, History, Pull, Recorder};
pub use netns::{NetnsLab, netns_available};
pub use process::{NodeProcess, NodeSpec};
pub use report::render_text;
pub use run::{ChaosConfig, FaultRecord, RunReport, run};
pub use schedule::{FaultKind, MAX_FAULTS, ScheduleConfig, ScheduledFault, schedule};
/// Stops a [`run`] (the caller's Ctrl-C handler cancels it).
pub use tokio_util::sync::CancellationToken;
pub use workload::{ConsumerStats, ProducerStats, Workload, WorkloadConfig};

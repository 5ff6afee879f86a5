//! `swarmmq chaos run`: starts a local cluster of this same executable, runs a recorded
//! workload under a fault schedule drawn from a seed, heals, drains and checks (see the
//! `swarmmq-chaos` crate). Prints the seed first, each fault as it happens, then the
//! checker's report; exits non-zero on any violation. Ctrl-C or SIGTERM kills every
//! node it started (by PID), deletes the network namespaces it created (`--netns`) and
//! exits non-zero.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use swarmmq_chaos::{CancellationToken, ChaosConfig, FaultKind};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Args, Debug)]
pub struct ChaosArgs {
    #[command(subcommand)]
    pub command: ChaosCommand,
}

#[derive(Subcommand, Debug)]
pub enum ChaosCommand {
    /// One run: cluster, workload, seeded faults, heal, drain, check
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Seed of the fault schedule (default: a fresh one, printed first)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Nodes in the cluster
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=7))]
    pub nodes: u8,
    /// How long faults are injected while the workload runs
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// One fault per this long
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub fault_every: Duration,
    /// Faults to draw from: kill, kill-leader, pause, restart, partition (partition
    /// needs --netns)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kill,kill-leader,pause,restart"
    )]
    pub faults: Vec<FaultKind>,
    /// Partitions of the test destination
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub partitions: u32,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub producers: u16,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub consumers: u16,
    /// Messages per second per producer
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub rate: u32,
    /// Key every message by its id (a resend then always lands on the same partition)
    #[arg(long)]
    pub keyed: bool,
    /// Run each node in its own network namespace behind a bridge (root and `ip`
    /// needed); makes the partition fault possible. This side stays with the majority
    /// of a partition, so the workload only sees the cut-off nodes as unreachable
    #[arg(long)]
    pub netns: bool,
    /// Directory for node configs, data and logs (default: a new one under the
    /// system's temp dir, removed after a passing run)
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also write the whole report as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    match args.command {
        ChaosCommand::Run(a) => run_once(a).await,
    }
}

fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

async fn run_once(a: RunArgs) -> anyhow::Result<()> {
    let seed = a.seed.unwrap_or_else(fresh_seed);
    let (dir, remove_after) = match &a.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("swarmmq-chaos-{seed}-{}", std::process::id())),
            true,
        ),
    };
    if dir.join("node-1").exists() {
        anyhow::bail!(
            "{} already holds a cluster (node-1/); give an empty --dir",
            dir.display()
        );
    }
    let binary = std::env::current_exe().context("cannot find this executable")?;
    let mut config = ChaosConfig::new(binary, &dir, seed);
    config.nodes = usize::from(a.nodes);
    config.duration = a.duration;
    config.fault_every = a.fault_every;
    config.faults = a.faults.clone();
    config.partitions = a.partitions;
    config.producers = usize::from(a.producers);
    config.consumers = usize::from(a.consumers);
    config.rate_per_producer = a.rate;
    config.keyed = a.keyed;
    config.netns = a.netns;
    // Refused before anything is started: a clear message rather than a half-made run.
    config.validate().context("invalid chaos run")?;

    let cancel = CancellationToken::new();
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        stopper.cancel();
    });
    let log = |line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let report = swarmmq_chaos::run(&config, &log, &cancel)
        .await
        .with_context(|| {
            format!(
                "chaos run with seed {seed} did not finish (node logs in {})",
                dir.display()
            )
        })?;
    print!("{}", swarmmq_chaos::render_text(&report));
    if let Some(path) = &a.report {
        let json = serde_json::to_vec_pretty(&report).context("cannot encode the report")?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    if !report.passed() {
        anyhow::bail!(
            "chaos run with seed {seed} found violations (node logs in {})",
            dir.display()
        );
    }
    if remove_after {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

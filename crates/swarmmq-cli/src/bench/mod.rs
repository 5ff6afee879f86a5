//! `swarmmq bench`: end-to-end load against a running node, with an HDR histogram of
//! latencies. Every run is bounded by a message count or a duration.

mod consume;
mod e2e;
mod produce;
mod report;

use std::time::Duration;

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Publish as fast as allowed; latency = send to acknowledgement
    Produce(ProduceBench),
    /// Pull and acknowledge what is stored; latency = one pull round trip
    Consume(ConsumeBench),
    /// Publish at a rate and consume at once (into a fresh destination <name>-<ms>, deleted after); latency = publish to consume
    E2e(E2eBench),
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Node address and TLS
    #[command(flatten)]
    pub target: crate::cli::Target,
    /// Destination (created if missing)
    #[arg(long, short = 'd', default_value = "bench")]
    pub destination: String,
    /// Partitions of the destination when it is created
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ProduceBench {
    #[command(flatten)]
    pub common: Common,
    /// Payload bytes per message
    #[arg(long, default_value_t = 1024)]
    pub message_size: usize,
    /// Messages in total (ignored with --duration)
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Run for this long instead of a count (e.g. 30s)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Concurrent producers (one connection each)
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Bytes per batch
    #[arg(long, default_value_t = 256 * 1024)]
    pub batch_bytes: usize,
    /// Batch linger
    #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
    pub linger: Duration,
    /// Batches in flight per producer
    #[arg(long, default_value_t = 16)]
    pub in_flight: usize,
    /// Target total rate in messages per second (0: as fast as possible)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Bytes of messages a producer holds unacknowledged before `send` waits
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub max_buffered_bytes: usize,
}

#[derive(Args, Debug, Clone)]
pub struct ConsumeBench {
    #[command(flatten)]
    pub common: Common,
    /// Messages to consume in total (stops early when nothing more arrives for 2 s)
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Concurrent consumers in one group (one connection each)
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Group name (a fresh one reads from the start)
    #[arg(long)]
    pub group: Option<String>,
    /// Messages per pull
    #[arg(long, default_value_t = 2000)]
    pub batch: u32,
    /// Pulls in flight per consumer
    #[arg(long, default_value_t = 2)]
    pub in_flight: usize,
    /// Group mode (a new group is created per run unless --group is given)
    #[arg(long, value_enum, default_value_t = crate::cli::ModeArg::Shared)]
    pub mode: crate::cli::ModeArg,
    /// How messages are acknowledged
    #[arg(long, value_enum, default_value_t = AckArg::Batch)]
    pub ack: AckArg,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AckArg {
    /// One request per pull, consecutive offsets merged into ranges
    Batch,
    /// Every message acknowledged on its own (one single-offset range each), the acks of
    /// a pull sent together in one request
    Each,
    /// Every message acknowledged by its own request
    EachRequest,
    /// No ack requests: the node acknowledges on delivery (at most once)
    Auto,
}

#[derive(Args, Debug, Clone)]
pub struct E2eBench {
    #[command(flatten)]
    pub common: Common,
    /// Payload bytes per message (at least 8: the send time travels in the payload)
    #[arg(long, default_value_t = 1024)]
    pub message_size: usize,
    /// Publish rate, messages per second
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// How long to publish
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Batch linger of the producers
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    pub linger: Duration,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = match args.command {
        BenchCommand::Produce(b) => {
            let json = b.common.json;
            (produce::run(b).await?, json)
        }
        BenchCommand::Consume(b) => {
            let json = b.common.json;
            (consume::run(b).await?, json)
        }
        BenchCommand::E2e(b) => {
            let json = b.common.json;
            (e2e::run(b).await?, json)
        }
    };
    let (report, json) = report;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// Creates the destination if needed (same partitions: fine; other count: an error).
pub(crate) async fn ensure_destination(common: &Common) -> anyhow::Result<()> {
    use anyhow::Context;
    let admin = swarmmq_client::Admin::connect(common.target.connect_options()?)
        .await
        .with_context(|| format!("cannot reach a node at {}", common.target.node))?;
    let info = admin
        .create_destination(&common.destination, common.partitions, Default::default())
        .await?;
    if info.partitions.len() != common.partitions as usize {
        anyhow::bail!(
            "destination {} exists with {} partitions; pass --partitions {} or another --destination",
            common.destination,
            info.partitions.len(),
            info.partitions.len()
        );
    }
    Ok(())
}

/// A progress bar on stderr, hidden with --quiet or --json.
pub(crate) fn progress(common: &Common, total: Option<u64>, what: &str) -> indicatif::ProgressBar {
    if common.quiet || common.json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match total {
        Some(t) => indicatif::ProgressBar::new(t),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{{spinner}} {what} {{pos}}/{{len}} [{{elapsed_precise}}] {{per_sec}}"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

//! `nats-bench`: measures NATS JetStream with the method and output of `swarmmq bench`
//! (publish with a bounded window of unacknowledged messages, pull in batches with acks,
//! an HDR histogram of latencies, the same JSON fields), so the two can be run side by
//! side by `scripts/bench-compare.sh`.
//!
//! It is NOT part of SwarmMQ, not a general NATS tool, and not a load generator for
//! anything but one local server: it drives one stream with one producer or one consumer.

mod consume;
mod produce;
mod report;

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "nats-bench",
    version,
    about = "JetStream measured like `swarmmq bench`"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// (Re)create the stream and publish; latency = publish to acknowledgement
    Produce(ProduceArgs),
    /// Pull from a durable consumer in batches and acknowledge; latency = one pull round trip
    Consume(ConsumeArgs),
}

/// Options both commands share.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Server URL
    #[arg(long, short = 's', default_value = "nats://127.0.0.1:4222")]
    pub server: String,
    /// Stream name
    #[arg(long, default_value = "bench")]
    pub stream: String,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
    /// Timeout of every JetStream API request and publish acknowledgement
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug, Clone)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subject published to (the stream is created on exactly this subject)
    #[arg(long, default_value = "bench.x")]
    pub subject: String,
    /// Payload bytes per message
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=8 * 1024 * 1024))]
    pub message_size: u64,
    /// Messages in total
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub count: u64,
    /// Published messages whose acknowledgement is still awaited, at most
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub in_flight: u64,
    /// Keep the stream (and its messages) if it exists instead of recreating it empty
    #[arg(long)]
    pub keep_stream: bool,
}

/// How the consumer acknowledges.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum AckMode {
    /// Ack policy `all`: one confirmed ack of the last message per pull (as SwarmMQ acks
    /// a whole pull with one request)
    Batch,
    /// Ack policy `explicit`: every message acked; the last of each pull with confirmation
    Each,
}

#[derive(Args, Debug, Clone)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub common: Common,
    /// Durable consumer name (deleted and recreated so it reads from the start)
    #[arg(long, default_value = "bench-consumer")]
    pub consumer: String,
    /// Messages to consume in total (stops early when nothing more arrives for 2 s)
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub count: u64,
    /// Messages per pull
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch: u64,
    /// Pulls in flight
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub in_flight: u64,
    /// How messages are acknowledged
    #[arg(long, value_enum, default_value_t = AckMode::Batch)]
    pub ack: AckMode,
}

/// Accepts `500ms`, `30s`, `2m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .ok_or_else(|| format!("{s:?}: add a unit (ms, s or m)"))?;
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?}: expected a number then ms, s or m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(format!("{s:?}: the unit must be ms, s or m")),
    }
}

fn main() {
    let cli = Cli::parse();
    // Same runtime as the swarmmq binary: multi-threaded, one worker per core.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async move {
        let (report, json) = match cli.command {
            Command::Produce(a) => {
                let json = a.common.json;
                (produce::run(a).await?, json)
            }
            Command::Consume(a) => {
                let json = a.common.json;
                (consume::run(a).await?, json)
            }
        };
        if json {
            println!("{}", report.to_json());
        } else {
            print!("{}", report.to_text());
        }
        anyhow::Ok(())
    });
    // The client's background tasks must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(200));
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Connects with the timeouts of `common` applied to requests and acknowledgements.
pub(crate) async fn connect(
    common: &Common,
    max_ack_inflight: usize,
) -> anyhow::Result<async_nats::jetstream::Context> {
    use anyhow::Context as _;
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(common.timeout))
        .connection_timeout(Duration::from_secs(5))
        .connect(&common.server)
        .await
        .with_context(|| format!("cannot reach a NATS server at {}", common.server))?;
    Ok(async_nats::jetstream::ContextBuilder::new()
        .timeout(common.timeout)
        .max_ack_inflight(max_ack_inflight)
        .backpressure_on_inflight(true)
        .build(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_known_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn cli_shape_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

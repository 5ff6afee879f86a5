//! `swarmmq consume`: pull, print, then acknowledge what was printed.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use swarmmq_client::{Consumer, ConsumerConfig};

use crate::cli::{ConsumeArgs, ConsumeFormat, ModeArg};
use crate::output::message_json;

/// Long-poll length with `--follow`.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);
const PULL_BATCH: u64 = 1000;

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let mut config = ConsumerConfig::new(&args.destination, &args.group);
    config.max_wait = if args.follow { FOLLOW_WAIT } else { args.wait };
    config.partition = args.partition;
    config.auto_ack = args.no_ack;
    config.mode = args.mode.map(|m| match m {
        ModeArg::Shared => swarmmq_client::GroupMode::Shared,
        ModeArg::Ordered => swarmmq_client::GroupMode::Ordered,
    });
    config.start = args.from;
    let mut consumer = Consumer::connect(args.target.connect_options()?, config)
        .await
        .with_context(|| format!("cannot reach a node at {}", args.target.node))?;
    let stdout = std::io::stdout();
    let mut printed: u64 = 0;
    loop {
        if let Some(max) = args.max {
            if printed >= max {
                break;
            }
            consumer.set_max_messages((max - printed).min(PULL_BATCH) as u32);
        }
        let batch = tokio::select! {
            b = consumer.pull() => b?,
            _ = tokio::signal::ctrl_c() => break,
        };
        if batch.is_empty() {
            if args.follow {
                continue;
            }
            break;
        }
        {
            let mut out = std::io::BufWriter::new(stdout.lock());
            for m in &batch {
                match args.format {
                    ConsumeFormat::Raw => {
                        out.write_all(&m.payload)?;
                        out.write_all(b"\n")?;
                    }
                    ConsumeFormat::Json => writeln!(out, "{}", message_json(m))?,
                }
            }
            // Only what reached stdout is acknowledged: a failed write returns before the ack.
            out.flush().context("cannot write to stdout")?;
        }
        printed += batch.len() as u64;
        if args.nack {
            consumer
                .nack_with_reason(&batch, Duration::ZERO, "nacked by swarmmq consume --nack")
                .await?;
        } else if !args.no_ack {
            consumer.ack(&batch).await?;
        }
    }
    consumer.close().await?;
    Ok(())
}

//! `swarmmq consume`: pull, print, then acknowledge what was printed.
//!
//! With end-to-end encryption in play, a message that cannot be opened (wrong key,
//! altered, or sealed while no `--e2e-key` is given) is never printed: one `error:`
//! line on stderr names its partition, offset and reason, it is nacked (shared groups:
//! after the destination's attempts it moves to the dead-letter queue), consumption
//! goes on, and the exit status is non-zero at the end. An ordered group cannot skip a
//! message, so its partition stops there and the command ends after the batch.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use swarmmq_client::{
    Consumer, ConsumerConfig, DeliveredMessage, E2eError, E2eFailure, E2eKey, GroupMode,
};

use crate::cli::{ConsumeArgs, ConsumeFormat, ModeArg};
use crate::output::message_json;

/// Long-poll length with `--follow`.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);
const PULL_BATCH: u64 = 1000;
/// Failures remembered so a redelivered one is not reported twice; past this the set
/// starts over (a repeat line is better than unbounded memory).
const MAX_REMEMBERED_FAILURES: usize = 100_000;

fn reason(f: &E2eFailure) -> String {
    match &f.error {
        E2eError::NoKey { .. } => format!("cannot decrypt: {}; pass --e2e-key FILE", f.error),
        other => format!("cannot decrypt: {other}"),
    }
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let mut config = ConsumerConfig::new(&args.destination, &args.group);
    config.max_wait = if args.follow { FOLLOW_WAIT } else { args.wait };
    config.partition = args.partition;
    config.auto_ack = args.no_ack;
    config.mode = args.mode.map(|m| match m {
        ModeArg::Shared => GroupMode::Shared,
        ModeArg::Ordered => GroupMode::Ordered,
    });
    config.start = args.from;
    if let Some(path) = &args.e2e_key {
        config.e2e_key = Some(Arc::new(E2eKey::from_file(path)?));
    }
    let ordered = config.mode == Some(GroupMode::Ordered);
    let mut consumer = Consumer::connect(args.target.connect_options()?, config)
        .await
        .with_context(|| format!("cannot reach a node at {}", args.target.node))?;
    let stdout = std::io::stdout();
    let mut handled: u64 = 0;
    let mut reported: HashSet<(u32, u64)> = HashSet::new();
    let mut failed: u64 = 0;
    loop {
        if let Some(max) = args.max {
            if handled >= max {
                break;
            }
            consumer.set_max_messages((max - handled).min(PULL_BATCH) as u32);
        }
        let batch = tokio::select! {
            b = consumer.pull_opened() => b?,
            _ = tokio::signal::ctrl_c() => break,
        };
        if batch.is_empty() {
            if args.follow {
                continue;
            }
            break;
        }
        let mut good: Vec<DeliveredMessage> = Vec::with_capacity(batch.len());
        let mut bad: Vec<E2eFailure> = Vec::new();
        for r in batch {
            match r {
                Ok(m) => good.push(m),
                Err(f) => bad.push(f),
            }
        }
        if ordered && !bad.is_empty() {
            // A stream cannot skip: keep only what comes before the first failure of
            // each partition, and stop after this batch.
            let mut blocked: BTreeMap<u32, u64> = BTreeMap::new();
            for f in &bad {
                let at = blocked.entry(f.message.partition).or_insert(u64::MAX);
                *at = (*at).min(f.message.offset);
            }
            good.retain(|m| blocked.get(&m.partition).is_none_or(|b| m.offset < *b));
            bad.retain(|f| blocked.get(&f.message.partition) == Some(&f.message.offset));
        }
        {
            let mut out = std::io::BufWriter::new(stdout.lock());
            for m in &good {
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
        handled += good.len() as u64;
        if reported.len() >= MAX_REMEMBERED_FAILURES {
            reported.clear();
        }
        for f in &bad {
            if reported.insert((f.message.partition, f.message.offset)) {
                eprintln!(
                    "error: partition {} offset {}: {}",
                    f.message.partition,
                    f.message.offset,
                    reason(f)
                );
                failed += 1;
                handled += 1;
            }
        }
        if args.nack {
            consumer
                .nack_with_reason(&good, Duration::ZERO, "nacked by swarmmq consume --nack")
                .await?;
        } else if !args.no_ack {
            consumer.ack(&good).await?;
        }
        if !args.no_ack && !ordered {
            // The reason travels to the dead-letter headers; one nack per reason.
            let mut by_reason: BTreeMap<String, Vec<DeliveredMessage>> = BTreeMap::new();
            for f in bad {
                by_reason
                    .entry(f.error.to_string())
                    .or_default()
                    .push(*f.message);
            }
            for (why, sealed) in by_reason {
                consumer
                    .nack_with_reason(&sealed, Duration::ZERO, &why)
                    .await?;
            }
        } else if ordered && !bad.is_empty() {
            break;
        }
    }
    consumer.close().await?;
    if failed > 0 {
        anyhow::bail!(
            "{failed} message{} could not be decrypted (not printed, not acknowledged)",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

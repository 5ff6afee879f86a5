//! `swarmmq topic`: create, list, describe and delete destinations.

use std::time::Duration;

use anyhow::Context;
use swarmmq_client::{Admin, DestinationConfig, DestinationInfo};

use crate::cli::{Target, TopicArgs, TopicCommand};

fn info_json(d: &DestinationInfo) -> serde_json::Value {
    let c = &d.config;
    serde_json::json!({
        "name": d.name,
        "partitions": d.partitions.iter().map(|p| serde_json::json!({
            "partition": p.partition,
            "leader": p.leader,
            "start_offset": p.start_offset,
            "end_offset": p.end_offset,
            "size_bytes": p.size_bytes,
        })).collect::<Vec<_>>(),
        "config": {
            "retention_ms": c.retention_ms,
            "retention_bytes": c.retention_bytes,
            "max_message_bytes": c.max_message_bytes,
            "ack_timeout_ms": c.ack_timeout_ms,
            "max_delivery_attempts": c.max_delivery_attempts,
            "dedup_window_ms": c.dedup_window_ms,
            "dlq_enabled": c.dlq_enabled,
            "default_ttl_ms": c.default_ttl_ms,
            "expired_to_dlq": c.expired_to_dlq,
            "priority_aging_ms": c.priority_aging_ms,
        },
    })
}

fn messages(d: &DestinationInfo) -> u64 {
    d.partitions
        .iter()
        .map(|p| p.end_offset - p.start_offset)
        .sum()
}

async fn admin(target: &Target) -> anyhow::Result<Admin> {
    Admin::connect(target.connect_options()?)
        .await
        .with_context(|| format!("cannot reach a node at {}", target.node))
}

pub async fn run(args: TopicArgs) -> anyhow::Result<()> {
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            retention,
            ack_timeout,
            max_attempts,
            ttl,
            expired_to_dlq,
            no_dlq,
            dedup_window,
            priority_aging,
            target,
        } => {
            let ms = |d: Duration| d.as_millis() as u64;
            let config = DestinationConfig {
                retention_ms: retention.map(ms),
                ack_timeout_ms: ack_timeout.map(ms),
                max_delivery_attempts: max_attempts,
                default_ttl_ms: ttl.map(ms),
                expired_to_dlq: expired_to_dlq.then_some(true),
                dlq_enabled: no_dlq.then_some(false),
                dedup_window_ms: dedup_window.map(ms),
                priority_aging_ms: priority_aging.map(ms),
                ..DestinationConfig::default()
            };
            let info = admin(&target)
                .await?
                .create_destination(&name, partitions, config)
                .await?;
            println!(
                "created {} ({} partitions)",
                info.name,
                info.partitions.len()
            );
        }
        TopicCommand::List { target, json } => {
            let list = admin(&target).await?.list_destinations().await?;
            if json {
                let all: Vec<_> = list.iter().map(info_json).collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                println!(
                    "{:<40} {:>10} {:>14} {:>14}",
                    "NAME", "PARTITIONS", "MESSAGES", "BYTES"
                );
                for d in &list {
                    let bytes: u64 = d.partitions.iter().map(|p| p.size_bytes).sum();
                    println!(
                        "{:<40} {:>10} {:>14} {:>14}",
                        d.name,
                        d.partitions.len(),
                        messages(d),
                        bytes
                    );
                }
            }
        }
        TopicCommand::Describe { name, target, json } => {
            let d = admin(&target).await?.describe_destination(&name).await?;
            if json {
                println!("{}", info_json(&d));
            } else {
                println!("destination {}", d.name);
                let c = &d.config;
                let ms = |v: Option<u64>| {
                    v.map_or("none".to_string(), |m| {
                        humantime::format_duration(std::time::Duration::from_millis(m)).to_string()
                    })
                };
                println!("  retention: {}", ms(c.retention_ms));
                println!("  ack timeout: {}", ms(c.ack_timeout_ms));
                println!(
                    "  max message bytes: {}",
                    c.max_message_bytes.map_or("-".into(), |v| v.to_string())
                );
                println!(
                    "  max delivery attempts: {}",
                    c.max_delivery_attempts
                        .map_or("-".into(), |v| v.to_string())
                );
                println!(
                    "{:>11} {:>10} {:>14} {:>14} {:>14}",
                    "PARTITION", "LEADER", "START", "END", "BYTES"
                );
                for p in &d.partitions {
                    println!(
                        "{:>11} {:>10} {:>14} {:>14} {:>14}",
                        p.partition, p.leader, p.start_offset, p.end_offset, p.size_bytes
                    );
                }
            }
        }
        TopicCommand::Delete { name, target } => {
            admin(&target).await?.delete_destination(&name).await?;
            println!("deleted {name}");
        }
    }
    Ok(())
}

//! `swarmmq group`: list and describe consumer groups.

use anyhow::Context;
use swarmmq_client::{Admin, GroupDescription, GroupMode};

use crate::cli::{GroupArgs, GroupCommand};

fn mode_name(m: GroupMode) -> &'static str {
    match m {
        GroupMode::Shared => "shared",
        GroupMode::Ordered => "ordered",
    }
}

fn description_json(d: &GroupDescription) -> serde_json::Value {
    serde_json::json!({
        "group": d.group,
        "destination": d.destination,
        "mode": mode_name(d.mode),
        "generation": d.generation,
        "members": d.members.iter().map(|m| serde_json::json!({
            "consumer_id": m.consumer_id,
            "partitions": m.partitions,
            "last_seen_ms": m.last_seen_ms,
        })).collect::<Vec<_>>(),
        "partitions": d.partitions.iter().map(|p| serde_json::json!({
            "partition": p.partition,
            "owner": p.owner,
            "committed": p.committed,
            "end_offset": p.end_offset,
            "lag": p.lag,
            "in_flight": p.in_flight,
            "pending": p.pending,
            "delayed": p.delayed,
        })).collect::<Vec<_>>(),
        "dlq_moved": d.dlq_moved,
        "expired": d.expired,
    })
}

fn print_description(d: &GroupDescription) {
    println!(
        "group {} on {} ({}, generation {})",
        d.group,
        d.destination,
        mode_name(d.mode),
        d.generation
    );
    if d.members.is_empty() {
        println!("  members: none");
    }
    for m in &d.members {
        println!("  member {} partitions {:?}", m.consumer_id, m.partitions);
    }
    println!(
        "{:>11} {:>20} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "PARTITION", "OWNER", "COMMITTED", "END", "LAG", "IN-FLIGHT", "PENDING", "DELAYED"
    );
    for p in &d.partitions {
        println!(
            "{:>11} {:>20} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
            p.partition,
            p.owner.as_deref().unwrap_or("-"),
            p.committed,
            p.end_offset,
            p.lag,
            p.in_flight,
            p.pending,
            p.delayed
        );
    }
    println!("  moved to DLQ: {}   expired: {}", d.dlq_moved, d.expired);
}

pub async fn run(args: GroupArgs) -> anyhow::Result<()> {
    let target = match &args.command {
        GroupCommand::List { target, .. } | GroupCommand::Describe { target, .. } => target,
    };
    let admin = Admin::connect(target.connect_options()?)
        .await
        .with_context(|| format!("cannot reach a node at {}", target.node))?;
    match args.command {
        GroupCommand::List { json, .. } => {
            let groups = admin.list_groups().await?;
            if json {
                let all: Vec<_> = groups
                    .iter()
                    .map(|g| serde_json::json!({"group": g.group, "destination": g.destination, "mode": mode_name(g.mode), "members": g.members}))
                    .collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                println!(
                    "{:<30} {:<30} {:<8} {:>8}",
                    "GROUP", "DESTINATION", "MODE", "MEMBERS"
                );
                for g in &groups {
                    println!(
                        "{:<30} {:<30} {:<8} {:>8}",
                        g.group,
                        g.destination,
                        mode_name(g.mode),
                        g.members
                    );
                }
            }
        }
        GroupCommand::Describe {
            group,
            destination,
            json,
            ..
        } => {
            let destinations: Vec<String> = match destination {
                Some(d) => vec![d],
                None => admin
                    .list_groups()
                    .await?
                    .into_iter()
                    .filter(|g| g.group == group)
                    .map(|g| g.destination)
                    .collect(),
            };
            anyhow::ensure!(!destinations.is_empty(), "no group named {group:?}");
            let mut all = Vec::new();
            for d in destinations {
                all.push(admin.describe_group(&d, &group).await?);
            }
            if json {
                let v: Vec<_> = all.iter().map(description_json).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for d in &all {
                    print_description(d);
                }
            }
        }
    }
    Ok(())
}

//! `swarmmq cluster status`: the cluster as one node sees it (members, their state and
//! load, the metadata leader and term), as a table or as the node's JSON object.

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use swarmmq_client::Admin;

use crate::cli::Target;

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Nodes (id, address, state, load, partitions led, last seen), metadata leader and term
    Status {
        #[command(flatten)]
        target: Target,
        /// text: a header and a table; json: the node's JSON object on one line
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.command {
        ClusterCommand::Status { target, format } => {
            let admin = Admin::connect(target.connect_options()?)
                .await
                .with_context(|| format!("cannot reach a node at {}", target.node))?;
            let json = admin
                .cluster_status()
                .await
                .with_context(|| format!("cluster status from {}", target.node))?;
            let status: Value = serde_json::from_str(&json)
                .with_context(|| format!("{} answered a status that is not JSON", target.node))?;
            match format {
                StatusFormat::Json => println!("{status}"),
                StatusFormat::Text => print!("{}", render(&status)),
            }
        }
    }
    Ok(())
}

/// The text form: a header line, a table with one row per node, and a summary line
/// that names every node not alive. The leader's row is marked with `*`.
pub fn render(status: &Value) -> String {
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string()
    };
    let leader = status.get("leader").and_then(Value::as_str);
    let mut out = format!(
        "cluster {}  metadata leader {}  term {}  ({}, as seen by {})\n",
        text(status, "cluster"),
        leader.unwrap_or("none"),
        status.get("term").and_then(Value::as_u64).unwrap_or(0),
        if status.get("healthy").and_then(Value::as_bool) == Some(true) {
            "healthy"
        } else {
            "NOT healthy"
        },
        text(status, "node"),
    );
    let nodes = status
        .get("nodes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    out.push_str(&format!(
        "  {:<12} {:<22} {:<8} {:>10} {:>8} {:>9} {:>9} {:>4} {:>10}\n",
        "ID", "ADDRESS", "STATE", "PUB MSG/S", "P99 MS", "QUEUE", "DISK", "LED", "LAST SEEN"
    ));
    let mut not_alive = Vec::new();
    for n in nodes {
        let id = text(n, "id");
        let state = text(n, "state");
        if state != "alive" {
            not_alive.push(format!("{id} {state}"));
        }
        let load = n.get("load").unwrap_or(&Value::Null);
        let f = |key: &str| load.get(key).and_then(Value::as_f64).unwrap_or(0.0);
        let u = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
        let mark = if leader == Some(id.as_str()) {
            '*'
        } else {
            ' '
        };
        // A dead or suspect node is shouted, so it stands out in a column of "alive".
        let state_shown = if state == "alive" {
            state
        } else {
            state.to_uppercase()
        };
        out.push_str(&format!(
            "{mark} {:<12} {:<22} {:<8} {:>10.1} {:>8.1} {:>9} {:>9} {:>4} {:>10}\n",
            id,
            text(n, "addr"),
            state_shown,
            f("publish_rate"),
            f("publish_p99_ms"),
            u(load, "queue_depth"),
            bytes(u(load, "disk_used")),
            u(n, "partitions_led"),
            ago(n.get("last_seen_ms").and_then(Value::as_u64)),
        ));
    }
    let alive = nodes.len() - not_alive.len();
    let plural = if nodes.len() == 1 { "" } else { "s" };
    out.push_str(&format!("{} node{plural}, {alive} alive", nodes.len()));
    if !not_alive.is_empty() {
        out.push_str(&format!("; not alive: {}", not_alive.join(", ")));
    }
    if let Some(n) = status
        .get("under_replicated_partitions")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
    {
        out.push_str(&format!("; {n} under-replicated partitions"));
    }
    out.push('\n');
    out
}

/// Bytes in the largest binary unit that keeps the number at least 1.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// How long ago, from milliseconds.
fn ago(ms: Option<u64>) -> String {
    match ms {
        None => "-".to_string(),
        Some(ms) if ms < 1000 => format!("{ms}ms ago"),
        Some(ms) if ms < 120_000 => format!("{:.1}s ago", ms as f64 / 1000.0),
        Some(ms) => format!("{}m ago", ms / 60_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_node_stands_out_and_the_leader_is_marked() {
        let status = serde_json::json!({
            "cluster": "swarmmq", "node": "node-1", "leader": "node-2", "term": 3,
            "healthy": false,
            "nodes": [
                {"id": "node-1", "addr": "127.0.0.1:9001", "state": "alive",
                 "last_seen_ms": 0, "partitions_led": 2,
                 "load": {"publish_rate": 1500.0, "publish_p99_ms": 2.5, "queue_depth": 7,
                          "disk_used": 3145728, "partitions_led": 2}},
                {"id": "node-2", "addr": "127.0.0.1:9002", "state": "alive",
                 "last_seen_ms": 120, "partitions_led": 1, "load": {}},
                {"id": "node-3", "addr": "127.0.0.1:9003", "state": "dead",
                 "last_seen_ms": 4200, "partitions_led": 0, "load": {}},
            ]
        });
        let text = render(&status);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "cluster swarmmq  metadata leader node-2  term 3  (NOT healthy, as seen by node-1)"
        );
        assert!(
            lines[2].contains("1500.0") && lines[2].contains("3.0MiB"),
            "{text}"
        );
        assert!(lines[3].starts_with("* node-2"), "{text}");
        assert!(
            lines[4].contains("DEAD") && lines[4].contains("4.2s ago"),
            "{text}"
        );
        assert_eq!(lines[5], "3 nodes, 2 alive; not alive: node-3 dead");
    }

    #[test]
    fn sizes_and_ages_read_well() {
        assert_eq!(bytes(0), "0B");
        assert_eq!(bytes(1536), "1.5KiB");
        assert_eq!(ago(Some(5)), "5ms ago");
        assert_eq!(ago(Some(300_000)), "5m ago");
        assert_eq!(ago(None), "-");
    }
}

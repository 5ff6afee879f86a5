//! Creates a destination, lists all of them, and prints the node's health.
//!
//! `cargo run -p swarmmq-client --example admin -- 127.0.0.1:9001 orders 3`

use swarmmq_client::{Admin, DestinationConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".into());
    let name = args.next().unwrap_or_else(|| "orders".into());
    let partitions: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(3);

    let admin = Admin::connect(&addr).await?;
    let health = admin.health().await?;
    println!(
        "node {} is {} (version {})",
        health.node_id, health.status, health.version
    );
    let created = admin
        .create_destination(&name, partitions, DestinationConfig::default())
        .await?;
    println!(
        "{} has {} partitions",
        created.name,
        created.partitions.len()
    );
    for d in admin.list_destinations().await? {
        let messages: u64 = d
            .partitions
            .iter()
            .map(|p| p.end_offset - p.start_offset)
            .sum();
        println!(
            "  {:<30} {:>4} partitions {:>10} messages",
            d.name,
            d.partitions.len(),
            messages
        );
    }
    Ok(())
}

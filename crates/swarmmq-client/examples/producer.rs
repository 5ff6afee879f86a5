//! Publishes messages with keys and prints where each one was stored.
//!
//! Run a node (`cargo run --release -- node`), then:
//! `cargo run -p swarmmq-client --example producer -- 127.0.0.1:9001 orders 10`

use std::time::Duration;

use swarmmq_client::{Message, Producer, ProducerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".into());
    let destination = args.next().unwrap_or_else(|| "orders".into());
    let count: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10);

    let config = ProducerConfig {
        linger: Duration::from_millis(5),
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(&addr, config).await?;
    // Send everything first (batched and pipelined), then collect the receipts.
    let mut receipts = Vec::new();
    for i in 0..count {
        let message = Message::new(format!("order #{i}"))
            .with_key(format!("customer-{}", i % 3))
            .with_header("source", "example");
        receipts.push(producer.send(&destination, message).await?);
    }
    for receipt in receipts {
        let r = receipt.await?;
        println!(
            "stored {} at partition {} offset {}",
            r.id.map(|i| i.to_string()).unwrap_or_default(),
            r.partition,
            r.offset
        );
    }
    producer.close().await?;
    Ok(())
}

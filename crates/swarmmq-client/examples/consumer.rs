//! Pulls messages for a group, prints them and acknowledges them; stops when a pull
//! finds nothing for two seconds.
//!
//! `cargo run -p swarmmq-client --example consumer -- 127.0.0.1:9001 orders billing`

use std::time::Duration;

use swarmmq_client::{Consumer, ConsumerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".into());
    let destination = args.next().unwrap_or_else(|| "orders".into());
    let group = args.next().unwrap_or_else(|| "example".into());

    let mut config = ConsumerConfig::new(destination, group);
    config.max_wait = Duration::from_secs(2);
    let mut consumer = Consumer::connect(&addr, config).await?;
    loop {
        let batch = consumer.pull().await?;
        if batch.is_empty() {
            break;
        }
        for m in &batch {
            println!(
                "partition {} offset {} attempt {}: {}",
                m.partition,
                m.offset,
                m.delivery_attempt,
                String::from_utf8_lossy(&m.payload)
            );
        }
        // Acknowledge after processing; unacknowledged messages come back after the
        // destination's ack timeout.
        consumer.ack(&batch).await?;
    }
    Ok(())
}

//! `bench produce`: producers publish as fast as allowed (or at `--rate`); latency is
//! from `send` to the node's acknowledgement.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use swarmmq_client::{Message, Producer, ProducerConfig};
use tokio::sync::mpsc;

use super::report::{Report, histogram, record};
use super::{ProduceBench, ensure_destination, progress};

/// Paces sends to a rate: lets through as many as are due, checking in 1 ms steps.
pub(crate) struct Pacer {
    per_sec: u64,
    start: Instant,
    sent: u64,
}

impl Pacer {
    pub fn new(per_sec: u64) -> Self {
        Pacer {
            per_sec,
            start: Instant::now(),
            sent: 0,
        }
    }

    pub async fn wait(&mut self) {
        if self.per_sec == 0 {
            return;
        }
        loop {
            let due = (self.start.elapsed().as_secs_f64() * self.per_sec as f64) as u64;
            if self.sent < due {
                self.sent += 1;
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

pub async fn run(b: ProduceBench) -> anyhow::Result<Report> {
    ensure_destination(&b.common).await?;
    let payload = Bytes::from(vec![0x5a; b.message_size]);
    let producers = b.producers.max(1);
    let per_producer = b.count / producers as u64;
    let deadline = b.duration.map(|d| Instant::now() + d);
    let acked = Arc::new(AtomicU64::new(0));
    let bar = progress(
        &b.common,
        deadline
            .is_none()
            .then_some(per_producer * producers as u64),
        "acked",
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let config = ProducerConfig {
            linger: b.linger,
            max_batch_bytes: b.batch_bytes,
            max_in_flight: b.in_flight,
            max_buffered_bytes: b.max_buffered_bytes,
            ..ProducerConfig::default()
        };
        let producer = Producer::connect(b.common.target.connect_options()?, config).await?;
        let dest = b.common.destination.clone();
        let payload = payload.clone();
        let acked = Arc::clone(&acked);
        let rate = b.rate / producers as u64;
        tasks.push(tokio::spawn(async move {
            // Receipts are awaited by a second task, in order, so sending never stalls
            // on one slow acknowledgement.
            let (tx, mut rx) = mpsc::channel::<(Instant, swarmmq_client::ReceiptFuture)>(200_000);
            let collector = tokio::spawn(async move {
                let mut h = histogram();
                let mut errors = 0u64;
                while let Some((sent_at, fut)) = rx.recv().await {
                    match fut.await {
                        Ok(_) => {
                            record(&mut h, sent_at.elapsed());
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => errors += 1,
                    }
                }
                (h, errors)
            });
            let mut pacer = Pacer::new(rate);
            let mut sent = 0u64;
            let mut send_errors = 0u64;
            loop {
                match deadline {
                    Some(d) if Instant::now() >= d => break,
                    None if sent >= per_producer => break,
                    _ => {}
                }
                pacer.wait().await;
                let now = Instant::now();
                match producer.send(&dest, Message::new(payload.clone())).await {
                    Ok(fut) => {
                        if tx.send((now, fut)).await.is_err() {
                            break;
                        }
                        sent += 1;
                    }
                    Err(_) => {
                        send_errors += 1;
                        break;
                    }
                }
            }
            drop(tx);
            let _ = producer.close().await;
            let (h, errors) = collector.await.unwrap_or_else(|_| (histogram(), 0));
            (h, errors + send_errors)
        }));
    }
    let ticker = {
        let acked = Arc::clone(&acked);
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                bar.set_position(acked.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut latency = histogram();
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        latency.add(&h).ok();
        errors += e;
    }
    let elapsed = started.elapsed();
    ticker.abort();
    bar.finish_and_clear();
    let messages = acked.load(Ordering::Relaxed);
    Ok(Report {
        mode: "produce",
        messages,
        payload_bytes: messages * b.message_size as u64,
        elapsed,
        latency,
        latency_meaning: "send to acknowledgement",
        errors,
        settings: serde_json::json!({
            "node": b.common.target.node, "destination": b.common.destination, "partitions": b.common.partitions,
            "message_size": b.message_size, "producers": producers, "batch_bytes": b.batch_bytes,
            "linger_ms": b.linger.as_secs_f64() * 1000.0, "in_flight": b.in_flight, "rate": b.rate,
            "max_buffered_bytes": b.max_buffered_bytes,
            "count": b.count, "duration_s": b.duration.map(|d| d.as_secs_f64()),
        }),
    })
}

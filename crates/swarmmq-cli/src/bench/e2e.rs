//! `bench e2e`: publish at a steady rate while consumers pull; latency is from the
//! moment a message is handed to the producer to the moment a consumer has it. The
//! send time travels in the first 8 payload bytes (same machine, same clock).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use swarmmq_client::{
    AckRequest, Connection, Message, Producer, ProducerConfig, PullRequest, Request, Response,
    ranges_of,
};

use super::produce::Pacer;
use super::report::{Report, histogram, record};
use super::{E2eBench, ensure_destination, progress};

/// After publishing stops, consumers get this long to drain.
const DRAIN: Duration = Duration::from_secs(5);

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub async fn run(b: E2eBench) -> anyhow::Result<Report> {
    anyhow::ensure!(
        b.message_size >= 8,
        "--message-size must be at least 8 for e2e"
    );
    ensure_destination(&b.common).await?;
    let group = format!("e2e-{}", swarmmq_types::now_ms());
    let published = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let bar = progress(&b.common, None, "consumed");

    let mut consumers = Vec::new();
    for i in 0..b.consumers.max(1) {
        let conn = Connection::connect(b.common.target.connect_options()?).await?;
        let pull = Request::Pull(PullRequest {
            destination: b.common.destination.clone(),
            group: group.clone(),
            consumer_id: format!("e2e-{i}"),
            max_messages: 2000,
            max_bytes: 8 * 1024 * 1024,
            max_wait_ms: 100,
            partition: None,
            auto_ack: false,
            generation: 0,
        });
        let (consumed, stop) = (Arc::clone(&consumed), Arc::clone(&stop_consumers));
        let (dest, group) = (b.common.destination.clone(), group.clone());
        consumers.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut errors = 0u64;
            // Acks are sent without waiting for their answers before the next pull (as a
            // consumer committing asynchronously would); a few stay outstanding.
            let mut acks = std::collections::VecDeque::new();
            while !stop.load(Ordering::Relaxed) {
                let batch = match conn.call(&pull).await {
                    Ok(Response::Pull(p)) => p.messages,
                    _ => {
                        errors += 1;
                        continue;
                    }
                };
                let now = now_nanos();
                for m in &batch {
                    if let Some(ts) = m.payload.get(..8).and_then(|s| s.try_into().ok()) {
                        let sent = u64::from_be_bytes(ts);
                        record(&mut h, Duration::from_nanos(now.saturating_sub(sent)));
                    }
                }
                consumed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                if batch.is_empty() {
                    continue;
                }
                let ack = Request::Ack(AckRequest {
                    destination: dest.clone(),
                    group: group.clone(),
                    consumer_id: String::new(),
                    ranges: ranges_of(&batch),
                    generation: 0,
                });
                match conn.send(&ack).await {
                    Ok(f) => acks.push_back(f),
                    Err(_) => errors += 1,
                }
                while acks.len() > 4 {
                    if let Some(a) = acks.pop_front()
                        && !matches!(a.wait().await, Ok(Response::Ack(_)))
                    {
                        errors += 1;
                    }
                }
            }
            for a in acks {
                if !matches!(a.wait().await, Ok(Response::Ack(_))) {
                    errors += 1;
                }
            }
            (h, errors)
        }));
    }

    let started = Instant::now();
    let mut producers = Vec::new();
    let n = b.producers.max(1);
    for _ in 0..n {
        let config = ProducerConfig {
            linger: b.linger,
            ..ProducerConfig::default()
        };
        let producer = Producer::connect(b.common.target.connect_options()?, config).await?;
        let (dest, size, rate, duration) = (
            b.common.destination.clone(),
            b.message_size,
            b.rate / n as u64,
            b.duration,
        );
        let published = Arc::clone(&published);
        producers.push(tokio::spawn(async move {
            let mut pacer = Pacer::new(rate.max(1));
            let mut errors = 0u64;
            let mut receipts = Vec::new();
            while started.elapsed() < duration {
                pacer.wait().await;
                let mut payload = BytesMut::with_capacity(size);
                payload.put_u64(now_nanos());
                payload.resize(size, 0x5a);
                match producer.send(&dest, Message::new(payload.freeze())).await {
                    Ok(f) => receipts.push(f),
                    Err(_) => errors += 1,
                }
                if receipts.len() >= 10_000 {
                    for f in receipts.drain(..) {
                        if f.await.is_ok() {
                            published.fetch_add(1, Ordering::Relaxed);
                        } else {
                            errors += 1;
                        }
                    }
                }
            }
            for f in receipts {
                if f.await.is_ok() {
                    published.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors += 1;
                }
            }
            let _ = producer.close().await;
            errors
        }));
    }
    let ticker = {
        let consumed = Arc::clone(&consumed);
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                bar.set_position(consumed.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut errors = 0;
    for p in producers {
        errors += p.await?;
    }
    let elapsed = started.elapsed();
    let drain_until = Instant::now() + DRAIN;
    while consumed.load(Ordering::Relaxed) < published.load(Ordering::Relaxed)
        && Instant::now() < drain_until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_consumers.store(true, Ordering::Relaxed);
    let mut latency = histogram();
    for c in consumers {
        let (h, e) = c.await?;
        latency.add(&h).ok();
        errors += e;
    }
    ticker.abort();
    bar.finish_and_clear();
    if let Ok(admin) = swarmmq_client::Admin::connect(b.common.target.connect_options()?).await {
        let _ = admin.delete_destination(&b.common.destination).await;
    }
    let messages = consumed.load(Ordering::Relaxed);
    Ok(Report {
        mode: "e2e",
        messages,
        payload_bytes: messages * b.message_size as u64,
        elapsed,
        latency,
        latency_meaning: "publish to consume",
        errors,
        settings: serde_json::json!({
            "node": b.common.target.node, "destination": b.common.destination, "partitions": b.common.partitions,
            "message_size": b.message_size, "rate": b.rate, "duration_s": b.duration.as_secs_f64(),
            "producers": n, "consumers": b.consumers, "linger_ms": b.linger.as_secs_f64() * 1000.0,
            "published": published.load(Ordering::Relaxed),
        }),
    })
}

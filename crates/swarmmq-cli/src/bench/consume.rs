//! `bench consume`: consumers of one group pull and acknowledge what is stored, with a
//! few pulls in flight each; latency is one pull's round trip.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use swarmmq_client::{
    AckRequest, GroupMode, JoinGroupRequest, OffsetRange, PullRequest, Request, Response,
};

use swarmmq_client::{Connection, ranges_of};

use super::report::{Report, histogram, record};
use super::{AckArg, ConsumeBench, ensure_destination, progress};
use crate::cli::ModeArg;

/// A consumer stops after this long without a single message.
const IDLE_STOP: Duration = Duration::from_secs(2);

pub async fn run(b: ConsumeBench) -> anyhow::Result<Report> {
    ensure_destination(&b.common).await?;
    let group = b
        .group
        .clone()
        .unwrap_or_else(|| format!("bench-{}", swarmmq_types::now_ms()));
    let consumed = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let claimed = Arc::new(AtomicU64::new(0));
    let batch = b.batch.max(1);
    let bar = progress(&b.common, Some(b.count), "consumed");
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mode = match b.mode {
        ModeArg::Shared => GroupMode::Shared,
        ModeArg::Ordered => GroupMode::Ordered,
    };
    for i in 0..b.consumers.max(1) {
        let conn = Connection::connect(b.common.target.connect_options()?).await?;
        let consumer_id = format!("bench-consumer-{i}");
        // Every member joins first, so an ordered group has its assignment and generation.
        let join = Request::JoinGroup(JoinGroupRequest {
            destination: b.common.destination.clone(),
            group: group.clone(),
            consumer_id: consumer_id.clone(),
            mode: Some(mode),
            session_timeout_ms: 30_000,
        });
        let generation = match conn.call(&join).await? {
            Response::JoinGroup(j) => j.generation,
            _ => anyhow::bail!("unexpected answer to a join"),
        };
        let pull = Request::Pull(PullRequest {
            destination: b.common.destination.clone(),
            group: group.clone(),
            consumer_id: consumer_id.clone(),
            max_messages: b.batch,
            max_bytes: 16 * 1024 * 1024 - 128 * 1024,
            max_wait_ms: 500,
            partition: None,
            auto_ack: b.ack == AckArg::Auto,
            generation,
        });
        let ack_mode = b.ack;
        let (consumed, bytes, claimed, target, depth) = (
            Arc::clone(&consumed),
            Arc::clone(&bytes),
            Arc::clone(&claimed),
            b.count,
            b.in_flight.max(1),
        );
        let dest = b.common.destination.clone();
        let group = group.clone();
        // Below the connection's own in-flight cap (1024), or sends would wait on
        // answers this loop has not read yet.
        let ack_window = if ack_mode == AckArg::EachRequest {
            512
        } else {
            depth
        };
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut errors = 0u64;
            let mut pulls = VecDeque::new();
            let mut acks = VecDeque::new();
            let mut last_data = Instant::now();
            loop {
                let done =
                    consumed.load(Ordering::Relaxed) >= target || last_data.elapsed() > IDLE_STOP;
                if done && pulls.is_empty() {
                    break;
                }
                while !done && pulls.len() < depth {
                    // Ask only for what is still missing across all consumers, so the
                    // last pull does not sit out a long-poll for messages nobody needs.
                    let before = claimed.fetch_add(u64::from(batch), Ordering::AcqRel);
                    if before >= target {
                        claimed.fetch_sub(u64::from(batch), Ordering::AcqRel);
                        break;
                    }
                    let want = (target - before).min(u64::from(batch)) as u32;
                    claimed.fetch_sub(u64::from(batch - want), Ordering::AcqRel);
                    let mut req = pull.clone();
                    if let Request::Pull(p) = &mut req {
                        p.max_messages = want;
                    }
                    match conn.send(&req).await {
                        Ok(f) => pulls.push_back((Instant::now(), f, want)),
                        Err(_) => {
                            claimed.fetch_sub(u64::from(want), Ordering::AcqRel);
                            errors += 1;
                            break;
                        }
                    }
                }
                let Some((at, f, want)) = pulls.pop_front() else {
                    break;
                };
                match f.wait().await {
                    Ok(Response::Pull(p)) => {
                        record(&mut h, at.elapsed());
                        // What was asked for and not delivered is claimable again.
                        let short = u64::from(want).saturating_sub(p.messages.len() as u64);
                        claimed.fetch_sub(short, Ordering::AcqRel);
                        if p.messages.is_empty() {
                            continue;
                        }
                        last_data = Instant::now();
                        let n = p.messages.len() as u64;
                        let size: u64 = p.messages.iter().map(|m| m.payload.len() as u64).sum();
                        let single = |m: &swarmmq_client::DeliveredMessage| OffsetRange {
                            partition: m.partition,
                            start: m.offset,
                            end: m.offset + 1,
                        };
                        let per_request: Vec<Vec<OffsetRange>> = match ack_mode {
                            AckArg::Batch => vec![ranges_of(&p.messages)],
                            AckArg::Each => vec![p.messages.iter().map(single).collect()],
                            AckArg::EachRequest => {
                                p.messages.iter().map(|m| vec![single(m)]).collect()
                            }
                            AckArg::Auto => Vec::new(),
                        };
                        for ranges in per_request {
                            let ack = Request::Ack(AckRequest {
                                destination: dest.clone(),
                                group: group.clone(),
                                consumer_id: consumer_id.clone(),
                                ranges,
                                generation,
                            });
                            match conn.send(&ack).await {
                                Ok(f) => acks.push_back(f),
                                Err(_) => errors += 1,
                            }
                            // Read answers as we go: the connection caps requests in flight.
                            while acks.len() > ack_window {
                                if let Some(a) = acks.pop_front()
                                    && !matches!(a.wait().await, Ok(Response::Ack(_)))
                                {
                                    errors += 1;
                                }
                            }
                        }
                        consumed.fetch_add(n, Ordering::Relaxed);
                        bytes.fetch_add(size, Ordering::Relaxed);
                    }
                    _ => errors += 1,
                }
                // Acks are pipelined; only keep a bounded number unanswered.
                while acks.len() > ack_window {
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
    let mut latency = histogram();
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        latency.add(&h).ok();
        errors += e;
    }
    ticker.abort();
    bar.finish_and_clear();
    let messages = consumed.load(Ordering::Relaxed);
    // The idle wait at the end is not consuming time.
    let elapsed = started.elapsed().saturating_sub(if messages < b.count {
        IDLE_STOP
    } else {
        Duration::ZERO
    });
    Ok(Report {
        mode: "consume",
        messages,
        payload_bytes: bytes.load(Ordering::Relaxed),
        elapsed,
        latency,
        latency_meaning: "pull round trip",
        errors,
        settings: serde_json::json!({
            "node": b.common.target.node, "destination": b.common.destination, "group": group,
            "consumers": b.consumers, "batch": b.batch, "in_flight": b.in_flight, "count": b.count,
            "mode": format!("{:?}", b.mode).to_lowercase(), "ack": format!("{:?}", b.ack).to_lowercase(),
        }),
    })
}

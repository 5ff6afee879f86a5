//! `consume`: a fresh durable pull consumer reads the stream from the start, `--batch`
//! messages per pull with `--in-flight` pulls outstanding, as `swarmmq bench consume`
//! does. Latency = one pull's round trip (request sent to its last message received).
//!
//! Acknowledgement, by default (`--ack batch`): the consumer's ack policy is `all` and one
//! confirmed ack (a "double ack", which waits for the server's reply) of each pull's last
//! message covers the whole pull. That is the equivalent of SwarmMQ acknowledging a pull
//! with one request carrying its ranges. The confirmed acks are pipelined: at most
//! `--in-flight` are awaited at once, and all of them before the clock stops.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::pull::{Batch, Config};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::{ConsumerErrorKind, Stream};
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::report::{Report, histogram, record};
use crate::{AckMode, ConsumeArgs};

/// The run stops after this long without a single message (as swarmmq's).
const IDLE_STOP: Duration = Duration::from_secs(2);
/// Pause after an empty pull, so a drained stream is not polled in a busy loop.
const EMPTY_PAUSE: Duration = Duration::from_millis(10);

type AckTask = JoinHandle<Result<(), async_nats::Error>>;

pub async fn run(a: ConsumeArgs) -> anyhow::Result<Report> {
    let batch = usize::try_from(a.batch).context("--batch too large")?;
    let depth = usize::try_from(a.in_flight).context("--in-flight too large")?;
    let js = crate::connect(&a.common, 1).await?;
    let stream = js
        .get_stream(&a.common.stream)
        .await
        .with_context(|| format!("no stream {} (run produce first)", a.common.stream))?;
    let consumer = fresh_consumer(&stream, &a, batch, depth).await?;

    let mut h = histogram()?;
    let mut errors = 0u64;
    let mut consumed = 0u64;
    let mut bytes = 0u64;
    let mut requested = 0u64;
    let mut pulls: VecDeque<(Instant, Batch)> = VecDeque::with_capacity(depth);
    let mut acks: VecDeque<AckTask> = VecDeque::with_capacity(depth + 1);
    let started = Instant::now();
    let mut last_data = Instant::now();
    loop {
        let done = consumed >= a.count || last_data.elapsed() > IDLE_STOP;
        if done && pulls.is_empty() {
            break;
        }
        // Pulls beyond what the count still needs would only wait on an empty stream.
        while !done && pulls.len() < depth && requested < a.count {
            let at = Instant::now();
            match consumer.fetch().max_messages(batch).messages().await {
                Ok(b) => {
                    pulls.push_back((at, b));
                    requested += a.batch;
                }
                Err(_) => {
                    errors += 1;
                    break;
                }
            }
        }
        let Some((at, mut pull)) = pulls.pop_front() else {
            break;
        };
        let mut n = 0u64;
        let mut last = None;
        let drained = tokio::time::timeout(a.common.timeout, async {
            while let Some(m) = pull.next().await {
                match m {
                    Ok(m) => {
                        n += 1;
                        bytes += m.payload.len() as u64;
                        // Each mode acks every message but the last now; the last one's
                        // confirmed ack below then also tells that the others arrived.
                        let prev = last.replace(m);
                        if a.ack == AckMode::Each
                            && let Some(prev) = prev
                            && prev.ack().await.is_err()
                        {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
        })
        .await;
        if drained.is_err() {
            errors += 1;
        }
        record(&mut h, at.elapsed());
        // Unfulfilled part of the pull (an empty or short answer) may be asked again.
        requested = requested.saturating_sub(a.batch - n.min(a.batch));
        consumed += n;
        match last {
            Some(m) => {
                last_data = Instant::now();
                acks.push_back(tokio::spawn(async move { m.double_ack().await }));
            }
            None => tokio::time::sleep(EMPTY_PAUSE).await,
        }
        while acks.len() > depth {
            if let Some(t) = acks.pop_front() {
                errors += ack_failed(t).await;
            }
        }
    }
    for t in acks {
        errors += ack_failed(t).await;
    }
    // The idle wait at the end is not consuming time.
    let elapsed = started.elapsed().saturating_sub(if consumed < a.count {
        IDLE_STOP
    } else {
        Duration::ZERO
    });
    Ok(Report {
        mode: "consume",
        messages: consumed,
        payload_bytes: bytes,
        elapsed,
        latency: h,
        latency_meaning: "pull round trip",
        errors,
        settings: serde_json::json!({
            "system": "nats-jetstream", "server": a.common.server,
            "server_version": js.client().server_info().version,
            "stream": a.common.stream, "consumer": a.consumer, "consumers": 1,
            "batch": a.batch, "in_flight": a.in_flight, "count": a.count,
            "ack": match a.ack {
                AckMode::Batch => "ack policy all: one confirmed ack of the last message per pull, pipelined",
                AckMode::Each => "ack policy explicit: every message acked, the last of each pull confirmed, pipelined",
            },
        }),
    })
}

/// 1 when a confirmed ack failed or its task died, else 0.
async fn ack_failed(t: AckTask) -> u64 {
    match t.await {
        Ok(Ok(())) => 0,
        _ => 1,
    }
}

/// Deletes the durable consumer if it exists and creates it anew, reading from the start.
async fn fresh_consumer(
    stream: &Stream,
    a: &ConsumeArgs,
    batch: usize,
    depth: usize,
) -> anyhow::Result<PullConsumer> {
    match stream.delete_consumer(&a.consumer).await {
        Ok(_) => {}
        Err(e)
            if matches!(e.kind(), ConsumerErrorKind::JetStream(ref j)
                if j.error_code() == ErrorCode::CONSUMER_NOT_FOUND) => {}
        Err(e) => return Err(e).with_context(|| format!("cannot delete consumer {}", a.consumer)),
    }
    // Unacked messages: the pulls in flight plus the pulls whose ack is still in flight.
    // The server's default (1000) would stall pulls of 2000; twice the need leaves slack.
    let max_ack_pending = i64::try_from(batch.saturating_mul(2 * depth + 2))
        .context("--batch x --in-flight too large")?;
    stream
        .create_consumer(Config {
            durable_name: Some(a.consumer.clone()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: match a.ack {
                AckMode::Batch => AckPolicy::All,
                AckMode::Each => AckPolicy::Explicit,
            },
            max_ack_pending,
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot create consumer {}", a.consumer))
}

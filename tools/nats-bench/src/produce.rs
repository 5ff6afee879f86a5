//! `produce`: recreates the stream empty (file storage, one replica) and publishes with
//! JetStream publish. async-nats sends one request per message and hands back a future of
//! its acknowledgement; at most `--in-flight` of those are outstanding (the client's
//! `max_ack_inflight` with backpressure), and they are awaited in order by a second task,
//! as `swarmmq bench produce` awaits its receipts. Latency = publish call to ack.

use std::time::Instant;

use anyhow::Context as _;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{GetStreamErrorKind, PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::stream::{Config, StorageType};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::ProduceArgs;
use crate::report::{Report, histogram, record};

pub async fn run(a: ProduceArgs) -> anyhow::Result<Report> {
    let window = usize::try_from(a.in_flight).context("--in-flight too large")?;
    let size = usize::try_from(a.message_size).context("--message-size too large")?;
    let js = crate::connect(&a.common, window).await?;
    let server_version = js.client().server_info().version;
    prepare_stream(&js, &a).await?;

    let payload = Bytes::from(vec![0x5a; size]);
    // A Subject clones by reference count; a String would be copied for every message.
    let subject = async_nats::Subject::from(a.subject.as_str());
    // The channel only needs to hold what the window lets out; the window itself is the
    // client's semaphore, whose permit each future keeps until it is awaited.
    let (tx, mut rx) = mpsc::channel::<(Instant, PublishAckFuture)>(window);
    let mut h = histogram()?;
    let collector = tokio::spawn(async move {
        let mut acked = 0u64;
        let mut errors = 0u64;
        while let Some((sent_at, fut)) = rx.recv().await {
            match fut.await {
                Ok(_) => {
                    record(&mut h, sent_at.elapsed());
                    acked += 1;
                }
                Err(_) => errors += 1,
            }
        }
        (h, acked, errors)
    });

    let started = Instant::now();
    let mut send_errors = 0u64;
    for _ in 0..a.count {
        let now = Instant::now();
        match js.publish(subject.clone(), payload.clone()).await {
            Ok(fut) => {
                if tx.send((now, fut)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                send_errors += 1;
                // A missing stream will not come back; anything else is counted and ends
                // the run, as swarmmq's producer loop does.
                if e.kind() == PublishErrorKind::StreamNotFound {
                    anyhow::bail!("stream {} is gone: {e}", a.common.stream);
                }
                break;
            }
        }
    }
    drop(tx);
    let (latency, acked, ack_errors) = collector.await.context("ack collector failed")?;
    let elapsed = started.elapsed();
    Ok(Report {
        mode: "produce",
        messages: acked,
        payload_bytes: acked * a.message_size,
        elapsed,
        latency,
        latency_meaning: "send to acknowledgement",
        errors: send_errors + ack_errors,
        settings: serde_json::json!({
            "system": "nats-jetstream", "server": a.common.server, "server_version": server_version,
            "stream": a.common.stream, "subject": a.subject, "storage": "file", "replicas": 1,
            "message_size": a.message_size, "count": a.count, "producers": 1,
            "in_flight": a.in_flight,
            "in_flight_meaning": "messages published whose ack is awaited (async-nats max_ack_inflight, one message per publish request)",
        }),
    })
}

/// Deletes the stream if it exists and creates it empty, so every run starts alike.
async fn prepare_stream(
    js: &async_nats::jetstream::Context,
    a: &ProduceArgs,
) -> anyhow::Result<()> {
    let name = &a.common.stream;
    if !a.keep_stream {
        match js.delete_stream(name).await {
            Ok(_) => {}
            Err(e)
                if matches!(e.kind(), GetStreamErrorKind::JetStream(ref j)
                    if j.error_code() == ErrorCode::STREAM_NOT_FOUND) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot delete stream {name}")),
        }
    }
    js.get_or_create_stream(Config {
        name: name.clone(),
        subjects: vec![a.subject.clone()],
        storage: StorageType::File,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .with_context(|| format!("cannot create stream {name} (is JetStream enabled: -js?)"))?;
    Ok(())
}

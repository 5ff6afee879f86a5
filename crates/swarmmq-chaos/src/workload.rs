//! The workload: P producers and C consumers, each on its own node, that keep going
//! through faults. Producers publish unique ids (`p<producer>-<seq>`, payload the
//! sequence number, acks=all) at a fixed rate and record every receipt; a message
//! whose receipt failed is sent again with the same id (the node's dedup drops it if
//! it was stored after all). Consumers share one group, pull, record every answer and
//! ack each message alone, recording each ack the node confirms. Any error means "this
//! node is gone for now": the client is dropped and the next node tried.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use swarmmq_client::{
    Acks, Consumer, ConsumerConfig, Message, MessageId, Producer, ProducerConfig, ReceiptFuture,
};
use tokio_util::sync::CancellationToken;

use crate::history::{Acked, Delivery, Pull, Recorder};

/// The workload's shape.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub destination: String,
    pub group: String,
    pub producers: usize,
    pub consumers: usize,
    /// Messages per second per producer.
    pub rate_per_producer: u32,
    /// Messages per send round.
    pub batch: usize,
    /// Every client call (connect, receipts of a round, pull, ack) gives up after this.
    pub call_timeout: Duration,
    /// A producer stops creating messages after this many (it still resends).
    pub max_messages_per_producer: u64,
    /// Key every message by its id (the partition then follows the key; a resend lands
    /// on the same partition whatever nodes are down). Off: keyless, the node picks.
    pub keyed: bool,
}

/// What one producer went through.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProducerStats {
    pub producer: usize,
    /// Distinct messages created.
    pub created: u64,
    pub acked: u64,
    /// Receipts that failed (each such message is sent again while the run goes on).
    pub failed_sends: u64,
    /// Messages still without a receipt when the producer stopped.
    pub unacked_at_end: u64,
    pub errors: u64,
    pub reconnects: u64,
    /// Longest time from a first failure to the next success (failures the SDK
    /// reported; what it retried by itself shows in `longest_round_ms`).
    pub longest_unavailable_ms: u64,
    /// Longest send round, first send to last receipt: the SDK's own reconnects and
    /// resends included, so a node that is down but back within the SDK's retry time
    /// shows here and not as an error.
    pub longest_round_ms: u64,
    /// Receipts saying the node had the id already (a resend the node deduplicated).
    pub dedup_receipts: u64,
    pub last_error: Option<String>,
}

/// What one consumer went through.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConsumerStats {
    pub consumer: usize,
    pub pulls: u64,
    pub delivered: u64,
    pub acks_confirmed: u64,
    /// Acks the node answered with "nothing newly acknowledged" (lease gone).
    pub acks_not_applied: u64,
    pub errors: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
}

/// The running workload's tasks.
pub struct Workload {
    producers: Vec<tokio::task::JoinHandle<ProducerStats>>,
    consumers: Vec<tokio::task::JoinHandle<ConsumerStats>>,
    stop_producing: CancellationToken,
    stop_consuming: CancellationToken,
    last_delivery: Arc<AtomicU64>,
    started: Instant,
}

impl Workload {
    /// Starts the tasks. Producer `p` starts on node `p mod N`, consumer `c` on node
    /// `(c + P) mod N`, so with enough nodes they enter through different nodes.
    /// `stop` ends every task at once (the run's own end or an interrupt).
    pub fn start(
        config: &WorkloadConfig,
        addrs: Vec<String>,
        recorder: &Recorder,
        stop: &CancellationToken,
    ) -> Workload {
        let stop_producing = stop.child_token();
        let stop_consuming = stop.child_token();
        let started = Instant::now();
        let last_delivery = Arc::new(AtomicU64::new(0));
        let addrs = Arc::new(addrs);
        let producers = (0..config.producers)
            .map(|p| {
                tokio::spawn(produce(
                    p,
                    Arc::clone(&addrs),
                    config.clone(),
                    recorder.clone(),
                    stop_producing.clone(),
                ))
            })
            .collect();
        let consumers = (0..config.consumers)
            .map(|c| {
                tokio::spawn(consume(
                    c,
                    config.producers,
                    Arc::clone(&addrs),
                    config.clone(),
                    recorder.clone(),
                    stop_consuming.clone(),
                    Arc::clone(&last_delivery),
                    started,
                ))
            })
            .collect();
        Workload {
            producers,
            consumers,
            stop_producing,
            stop_consuming,
            last_delivery,
            started,
        }
    }

    /// How long since a consumer last got a message (since the start if none has).
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_delivery.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Stops the producers and returns what they went through.
    pub async fn stop_producers(&mut self) -> Vec<ProducerStats> {
        self.stop_producing.cancel();
        let mut out = Vec::new();
        for h in self.producers.drain(..) {
            if let Ok(s) = h.await {
                out.push(s);
            }
        }
        out
    }

    /// Stops the consumers and returns what they went through.
    pub async fn stop_consumers(&mut self) -> Vec<ConsumerStats> {
        self.stop_consuming.cancel();
        let mut out = Vec::new();
        for h in self.consumers.drain(..) {
            if let Ok(s) = h.await {
                out.push(s);
            }
        }
        out
    }
}

fn fail(stats: &mut ProducerStats, since: &mut Option<Instant>, e: String) {
    stats.errors += 1;
    stats.last_error = Some(e);
    since.get_or_insert_with(Instant::now);
}

fn message_id(producer: usize, seq: u64) -> String {
    format!("p{producer}-{seq:08}")
}

async fn produce(
    p: usize,
    addrs: Arc<Vec<String>>,
    config: WorkloadConfig,
    recorder: Recorder,
    stop: CancellationToken,
) -> ProducerStats {
    let mut stats = ProducerStats {
        producer: p,
        ..ProducerStats::default()
    };
    let n = addrs.len().max(1);
    let mut node = p % n;
    let batch = config.batch.max(1);
    // Bounded by construction: it only holds the messages of failed rounds, and a new
    // round takes from it first, never adding more than `batch` new messages.
    let mut resend: VecDeque<u64> = VecDeque::new();
    let mut seq = 0u64;
    let mut producer: Option<Producer> = None;
    let mut failing_since: Option<Instant> = None;
    let round = Duration::from_secs_f64(batch as f64 / f64::from(config.rate_per_producer.max(1)));
    let mut ticker = tokio::time::interval(round);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let Some(prod) = producer.as_ref() else {
            let client = ProducerConfig {
                acks: Acks::All,
                assign_ids: false,
                retry_timeout: config.call_timeout / 2,
                linger: Duration::from_millis(2),
                ..ProducerConfig::default()
            };
            match tokio::time::timeout(
                config.call_timeout,
                Producer::connect(addrs[node].as_str(), client),
            )
            .await
            {
                Ok(Ok(prod)) => producer = Some(prod),
                Ok(Err(e)) => {
                    fail(&mut stats, &mut failing_since, e.to_string());
                    node = (node + 1) % n;
                }
                Err(_) => {
                    fail(&mut stats, &mut failing_since, "connect timed out".into());
                    node = (node + 1) % n;
                }
            }
            continue;
        };
        let mut round_seqs: Vec<u64> = Vec::with_capacity(batch);
        while round_seqs.len() < batch
            && let Some(s) = resend.pop_front()
        {
            round_seqs.push(s);
        }
        while round_seqs.len() < batch && seq < config.max_messages_per_producer {
            round_seqs.push(seq);
            seq += 1;
            stats.created += 1;
        }
        if round_seqs.is_empty() {
            continue;
        }
        let round_started = Instant::now();
        let deadline = tokio::time::Instant::now() + config.call_timeout;
        let mut pending: Vec<(u64, Option<ReceiptFuture>)> = Vec::with_capacity(round_seqs.len());
        for s in round_seqs {
            let id = message_id(p, s);
            let Ok(mid) = MessageId::text(id.clone()) else {
                continue;
            };
            let mut m = Message::new(s.to_string()).with_id(mid);
            if config.keyed {
                m = m.with_key(id);
            }
            let sent = tokio::time::timeout_at(deadline, prod.send(&config.destination, m)).await;
            pending.push((s, sent.ok().and_then(Result::ok)));
        }
        let mut round_error: Option<String> = None;
        for (s, fut) in pending {
            let result = match fut {
                Some(f) => tokio::time::timeout_at(deadline, f)
                    .await
                    .map_err(|_| "receipt timed out".to_string())
                    .and_then(|r| r.map_err(|e| e.to_string())),
                None => Err("send refused or timed out".to_string()),
            };
            match result {
                Ok(r) => {
                    stats.acked += 1;
                    stats.dedup_receipts += u64::from(r.duplicate);
                    recorder.lock().push_acked(Acked {
                        id: message_id(p, s),
                        producer: p,
                        partition: r.partition,
                        offset: r.offset,
                        duplicate: r.duplicate,
                    });
                }
                Err(e) => {
                    stats.failed_sends += 1;
                    resend.push_back(s);
                    round_error.get_or_insert(e);
                }
            }
        }
        let round_ms = round_started
            .elapsed()
            .as_millis()
            .min(u128::from(u64::MAX)) as u64;
        stats.longest_round_ms = stats.longest_round_ms.max(round_ms);
        match round_error {
            Some(e) => {
                fail(&mut stats, &mut failing_since, e);
                // The node may be gone: start over on the next one. The old client's
                // task ends when its connection does.
                producer = None;
                stats.reconnects += 1;
                node = (node + 1) % n;
            }
            None => {
                if let Some(since) = failing_since.take() {
                    let ms = since.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
                    stats.longest_unavailable_ms = stats.longest_unavailable_ms.max(ms);
                }
            }
        }
    }
    if let Some(since) = failing_since {
        let ms = since.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
        stats.longest_unavailable_ms = stats.longest_unavailable_ms.max(ms);
    }
    stats.unacked_at_end = resend.len() as u64;
    if let Some(prod) = producer {
        let _ = tokio::time::timeout(config.call_timeout, prod.close()).await;
    }
    stats
}

#[allow(clippy::too_many_arguments)]
async fn consume(
    c: usize,
    producers: usize,
    addrs: Arc<Vec<String>>,
    config: WorkloadConfig,
    recorder: Recorder,
    stop: CancellationToken,
    last_delivery: Arc<AtomicU64>,
    started: Instant,
) -> ConsumerStats {
    let mut stats = ConsumerStats {
        consumer: c,
        ..ConsumerStats::default()
    };
    let n = addrs.len().max(1);
    let mut node = (c + producers) % n;
    let mut consumer: Option<Consumer> = None;
    let max_wait = Duration::from_millis(500);
    while !stop.is_cancelled() {
        let Some(cons) = consumer.as_mut() else {
            let mut cfg = ConsumerConfig::new(config.destination.clone(), config.group.clone());
            cfg.max_wait = max_wait;
            cfg.max_messages = 100;
            match tokio::time::timeout(
                config.call_timeout,
                Consumer::connect(addrs[node].as_str(), cfg),
            )
            .await
            {
                Ok(Ok(cons)) => consumer = Some(cons),
                Ok(Err(e)) => {
                    stats.errors += 1;
                    stats.last_error = Some(e.to_string());
                    node = (node + 1) % n;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(_) => {
                    stats.errors += 1;
                    stats.last_error = Some("connect timed out".into());
                    node = (node + 1) % n;
                }
            }
            continue;
        };
        let sent_at = recorder.lock().tick();
        let pulled = tokio::select! {
            _ = stop.cancelled() => break,
            r = tokio::time::timeout(max_wait + config.call_timeout, cons.pull()) => r,
        };
        let messages = match pulled {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                stats.errors += 1;
                stats.last_error = Some(e.to_string());
                consumer = None;
                stats.reconnects += 1;
                node = (node + 1) % n;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(_) => {
                stats.errors += 1;
                stats.last_error = Some("pull timed out".into());
                consumer = None;
                stats.reconnects += 1;
                node = (node + 1) % n;
                continue;
            }
        };
        stats.pulls += 1;
        if messages.is_empty() {
            continue;
        }
        let ms = started.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
        last_delivery.fetch_max(ms, Ordering::Relaxed);
        let deliveries: Vec<Delivery> = messages
            .iter()
            .map(|m| Delivery {
                id: m.id.as_ref().map(ToString::to_string).unwrap_or_default(),
                partition: m.partition,
                offset: m.offset,
                attempt: m.delivery_attempt,
            })
            .collect();
        stats.delivered += deliveries.len() as u64;
        recorder.lock().push_pull(Pull {
            consumer: c,
            sent_at,
            deliveries: deliveries.clone(),
        });
        // One ack per message, as the task asks: each confirmation is its own event.
        for (m, d) in messages.iter().zip(&deliveries) {
            match tokio::time::timeout(config.call_timeout, cons.ack(std::slice::from_ref(m))).await
            {
                Ok(Ok(count)) if count >= 1 => {
                    stats.acks_confirmed += 1;
                    recorder.lock().push_ack(c, d);
                }
                Ok(Ok(_)) => stats.acks_not_applied += 1,
                Ok(Err(e)) => {
                    stats.errors += 1;
                    stats.last_error = Some(e.to_string());
                    consumer = None;
                    stats.reconnects += 1;
                    node = (node + 1) % n;
                    break;
                }
                Err(_) => {
                    stats.errors += 1;
                    stats.last_error = Some("ack timed out".into());
                    consumer = None;
                    stats.reconnects += 1;
                    node = (node + 1) % n;
                    break;
                }
            }
        }
    }
    if let Some(cons) = consumer {
        let _ = tokio::time::timeout(config.call_timeout, cons.close()).await;
    }
    stats
}

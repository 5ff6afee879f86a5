//! The pull consumer: long-polls a destination for a group and acknowledges what it
//! has processed.
//!
//! In a **shared** group (the default) any member can receive any message; a message
//! not acknowledged within the group's ack timeout is delivered again. In an **ordered**
//! group the consumer joins, the node assigns it partitions exclusively, and a background
//! task heartbeats; acknowledging commits the position, and a consumer whose generation
//! went stale rejoins and carries on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarmmq_protocol::{
    AckRequest, CommitOffsetsRequest, DeliveredMessage, ExtendLeaseRequest, GroupMode,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, NackRequest, OffsetRange,
    PartitionOffset, PullRequest, Request, Response, SeekPosition, SeekRequest,
};
use swarmmq_types::{ErrorCode, PartitionId};
use tokio::task::JoinHandle;

use crate::connection::Connection;
use crate::error::ClientError;
use crate::options::ConnectOptions;

#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    pub destination: String,
    pub group: String,
    /// Identifies this member to the node; a fresh UUID by default.
    pub consumer_id: String,
    pub max_messages: u32,
    pub max_bytes: u32,
    /// Long-poll: how long one pull waits for the first message.
    pub max_wait: Duration,
    /// Read only this partition.
    pub partition: Option<PartitionId>,
    /// Let the node acknowledge on delivery (at most once).
    pub auto_ack: bool,
    /// Join the group in this mode (it is fixed when the group is created). `None`: a
    /// shared group, used without joining.
    pub mode: Option<GroupMode>,
    /// An ordered-group member silent for this long loses its partitions.
    pub session_timeout: Duration,
    /// Move the group's position here before the first pull (replay or skip).
    pub start: Option<SeekPosition>,
    /// Ordered groups: commit what earlier pulls returned at most this often, at the
    /// next pull (Kafka's auto-commit). `None`: commit only by `ack`/`commit`.
    pub auto_commit: Option<Duration>,
}

impl ConsumerConfig {
    pub fn new(destination: impl Into<String>, group: impl Into<String>) -> Self {
        ConsumerConfig {
            destination: destination.into(),
            group: group.into(),
            consumer_id: uuid::Uuid::now_v7().to_string(),
            max_messages: 1000,
            max_bytes: 8 * 1024 * 1024,
            max_wait: Duration::from_secs(5),
            partition: None,
            auto_ack: false,
            mode: None,
            session_timeout: Duration::from_secs(10),
            start: None,
            auto_commit: None,
        }
    }
}

/// What the node told this member at its last join or heartbeat.
#[derive(Clone, Debug, Default)]
struct Membership {
    generation: u32,
    assignment: Vec<PartitionId>,
}

pub struct Consumer {
    options: ConnectOptions,
    conn: Connection,
    config: ConsumerConfig,
    membership: Arc<Mutex<Membership>>,
    heartbeat: Option<JoinHandle<()>>,
    /// Next offset per partition after what pulls returned, for auto-commit.
    to_commit: std::collections::BTreeMap<PartitionId, u64>,
    last_commit: std::time::Instant,
}

/// Collapses deliveries into per-partition offset ranges (what ack and nack carry).
pub fn ranges_of<'a>(messages: impl IntoIterator<Item = &'a DeliveredMessage>) -> Vec<OffsetRange> {
    let mut points: Vec<(PartitionId, u64)> = messages
        .into_iter()
        .map(|m| (m.partition, m.offset))
        .collect();
    points.sort_unstable();
    points.dedup();
    let mut ranges: Vec<OffsetRange> = Vec::new();
    for (p, o) in points {
        match ranges.last_mut() {
            Some(r) if r.partition == p && r.end == o => r.end = o + 1,
            _ => ranges.push(OffsetRange {
                partition: p,
                start: o,
                end: o + 1,
            }),
        }
    }
    ranges
}

fn unexpected(op: &str) -> ClientError {
    ClientError::Protocol(format!("unexpected answer to {op}"))
}

fn join_request(c: &ConsumerConfig) -> Request {
    Request::JoinGroup(JoinGroupRequest {
        destination: c.destination.clone(),
        group: c.group.clone(),
        consumer_id: c.consumer_id.clone(),
        mode: c.mode,
        session_timeout_ms: u32::try_from(c.session_timeout.as_millis()).unwrap_or(u32::MAX),
    })
}

async fn join(
    conn: &Connection,
    c: &ConsumerConfig,
    m: &Mutex<Membership>,
) -> Result<Duration, ClientError> {
    match conn.call(&join_request(c)).await? {
        Response::JoinGroup(j) => {
            if let Ok(mut m) = m.lock() {
                m.generation = j.generation;
                m.assignment = j.assignment;
            }
            Ok(Duration::from_millis(u64::from(
                j.heartbeat_interval_ms.max(50),
            )))
        }
        _ => Err(unexpected("join")),
    }
}

/// Heartbeats an ordered-group membership; rejoins when the node says it went stale.
async fn heartbeat_loop(
    options: ConnectOptions,
    c: ConsumerConfig,
    m: Arc<Mutex<Membership>>,
    mut every: Duration,
) {
    let mut conn: Option<Connection> = None;
    loop {
        tokio::time::sleep(every).await;
        let current = match &conn {
            Some(c) if !c.is_closed() => c.clone(),
            _ => match Connection::connect(&options).await {
                Ok(c) => {
                    conn = Some(c.clone());
                    c
                }
                Err(_) => continue,
            },
        };
        let generation = m.lock().map(|m| m.generation).unwrap_or(0);
        let req = Request::Heartbeat(HeartbeatRequest {
            destination: c.destination.clone(),
            group: c.group.clone(),
            consumer_id: c.consumer_id.clone(),
            generation,
        });
        match current.call(&req).await {
            Ok(Response::Heartbeat(h)) => {
                if let Ok(mut m) = m.lock() {
                    m.generation = h.generation;
                    m.assignment = h.assignment;
                }
            }
            Err(ClientError::Server { code, .. })
                if code == ErrorCode::StaleGeneration || code == ErrorCode::UnknownGroup =>
            {
                if let Ok(d) = join(&current, &c, &m).await {
                    every = d;
                }
            }
            _ => {}
        }
    }
}

impl Consumer {
    /// Connects; joins the group when a mode is configured (starting the heartbeat of an
    /// ordered membership) and applies the configured start position.
    pub async fn connect(
        options: impl Into<ConnectOptions>,
        config: ConsumerConfig,
    ) -> Result<Consumer, ClientError> {
        let options = options.into();
        let conn = Connection::connect(&options).await?;
        let mut consumer = Consumer {
            options,
            conn,
            config,
            membership: Arc::new(Mutex::new(Membership::default())),
            heartbeat: None,
            to_commit: std::collections::BTreeMap::new(),
            last_commit: std::time::Instant::now(),
        };
        if consumer.config.mode.is_some() {
            let every = join(&consumer.conn, &consumer.config, &consumer.membership).await?;
            if consumer.config.mode == Some(GroupMode::Ordered) {
                consumer.heartbeat = Some(tokio::spawn(heartbeat_loop(
                    consumer.options.clone(),
                    consumer.config.clone(),
                    Arc::clone(&consumer.membership),
                    every,
                )));
            }
        }
        if let Some(position) = consumer.config.start {
            consumer.seek(position, consumer.config.partition).await?;
        }
        Ok(consumer)
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Caps how many messages the next pulls return.
    pub fn set_max_messages(&mut self, n: u32) {
        self.config.max_messages = n.max(1);
    }

    /// The generation of this member's assignment (ordered groups; 0 otherwise).
    pub fn generation(&self) -> u32 {
        self.membership.lock().map(|m| m.generation).unwrap_or(0)
    }

    /// Partitions this member owns (ordered groups) or may read (shared).
    pub fn assignment(&self) -> Vec<PartitionId> {
        self.membership
            .lock()
            .map(|m| m.assignment.clone())
            .unwrap_or_default()
    }

    async fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        if self.conn.is_closed() {
            self.conn = Connection::connect(&self.options).await?;
        }
        self.conn.call(req).await
    }

    /// Sends a request that carries the generation; after STALE_GENERATION the member
    /// rejoins (learning its current partitions) and the request goes again once.
    async fn call_fenced(
        &mut self,
        make: impl Fn(u32) -> Request,
    ) -> Result<Response, ClientError> {
        match self.call(&make(self.generation())).await {
            Err(ClientError::Server { code, .. })
                if code == ErrorCode::StaleGeneration
                    && self.config.mode == Some(GroupMode::Ordered) =>
            {
                if self.conn.is_closed() {
                    self.conn = Connection::connect(&self.options).await?;
                }
                join(&self.conn, &self.config, &self.membership).await?;
                self.call(&make(self.generation())).await
            }
            other => other,
        }
    }

    /// Waits up to `max_wait` for messages and returns what is deliverable (possibly
    /// nothing). In a shared group each message is leased to this consumer until acked
    /// or timed out; in an ordered group they come in offset order per owned partition.
    pub async fn pull(&mut self) -> Result<Vec<DeliveredMessage>, ClientError> {
        if let Some(every) = self.config.auto_commit
            && !self.to_commit.is_empty()
            && self.last_commit.elapsed() >= every
        {
            let offsets = std::mem::take(&mut self.to_commit)
                .into_iter()
                .map(|(partition, offset)| PartitionOffset { partition, offset })
                .collect();
            self.commit(offsets).await?;
            self.last_commit = std::time::Instant::now();
        }
        let c = self.config.clone();
        let resp = self
            .call_fenced(|generation| {
                Request::Pull(PullRequest {
                    destination: c.destination.clone(),
                    group: c.group.clone(),
                    consumer_id: c.consumer_id.clone(),
                    max_messages: c.max_messages,
                    max_bytes: c.max_bytes,
                    max_wait_ms: u32::try_from(c.max_wait.as_millis()).unwrap_or(u32::MAX),
                    partition: c.partition,
                    auto_ack: c.auto_ack,
                    generation,
                })
            })
            .await?;
        match resp {
            Response::Pull(p) => {
                if self.config.auto_commit.is_some() {
                    for m in &p.messages {
                        let next = self.to_commit.entry(m.partition).or_insert(0);
                        *next = (*next).max(m.offset + 1);
                    }
                }
                Ok(p.messages)
            }
            _ => Err(unexpected("pull")),
        }
    }

    /// Acknowledges messages (in an ordered group: commits past them); returns how many
    /// were newly acknowledged.
    pub async fn ack(&mut self, messages: &[DeliveredMessage]) -> Result<u64, ClientError> {
        self.ack_ranges(ranges_of(messages)).await
    }

    pub async fn ack_ranges(&mut self, ranges: Vec<OffsetRange>) -> Result<u64, ClientError> {
        if ranges.is_empty() {
            return Ok(0);
        }
        let c = self.config.clone();
        let resp = self
            .call_fenced(|generation| {
                Request::Ack(AckRequest {
                    destination: c.destination.clone(),
                    group: c.group.clone(),
                    consumer_id: c.consumer_id.clone(),
                    ranges: ranges.clone(),
                    generation,
                })
            })
            .await?;
        match resp {
            Response::Ack(a) => Ok(a.count),
            _ => Err(unexpected("ack")),
        }
    }

    /// Hands messages back for redelivery after `delay`, saying why (the reason travels
    /// to the dead-letter queue if the message ends there).
    pub async fn nack(
        &mut self,
        messages: &[DeliveredMessage],
        delay: Duration,
    ) -> Result<u64, ClientError> {
        self.nack_with_reason(messages, delay, "").await
    }

    pub async fn nack_with_reason(
        &mut self,
        messages: &[DeliveredMessage],
        delay: Duration,
        reason: &str,
    ) -> Result<u64, ClientError> {
        let ranges = ranges_of(messages);
        if ranges.is_empty() {
            return Ok(0);
        }
        let c = self.config.clone();
        let resp = self
            .call_fenced(|generation| {
                Request::Nack(NackRequest {
                    destination: c.destination.clone(),
                    group: c.group.clone(),
                    consumer_id: c.consumer_id.clone(),
                    ranges: ranges.clone(),
                    delay_ms: u32::try_from(delay.as_millis()).unwrap_or(u32::MAX),
                    generation,
                    reason: reason.to_string(),
                })
            })
            .await?;
        match resp {
            Response::Nack(a) => Ok(a.count),
            _ => Err(unexpected("nack")),
        }
    }

    /// Keeps leased messages invisible to others for `by` more (shared groups).
    pub async fn extend(
        &mut self,
        messages: &[DeliveredMessage],
        by: Duration,
    ) -> Result<u64, ClientError> {
        let req = Request::ExtendLease(ExtendLeaseRequest {
            destination: self.config.destination.clone(),
            group: self.config.group.clone(),
            consumer_id: self.config.consumer_id.clone(),
            ranges: ranges_of(messages),
            extend_ms: u32::try_from(by.as_millis()).unwrap_or(u32::MAX),
        });
        match self.call(&req).await? {
            Response::ExtendLease(a) => Ok(a.count),
            _ => Err(unexpected("extend")),
        }
    }

    /// Commits positions explicitly (ordered groups): `offset` is the next to consume.
    pub async fn commit(&mut self, offsets: Vec<PartitionOffset>) -> Result<(), ClientError> {
        let c = self.config.clone();
        let resp = self
            .call_fenced(|generation| {
                Request::CommitOffsets(CommitOffsetsRequest {
                    destination: c.destination.clone(),
                    group: c.group.clone(),
                    consumer_id: c.consumer_id.clone(),
                    generation,
                    offsets: offsets.clone(),
                })
            })
            .await?;
        match resp {
            Response::CommitOffsets => Ok(()),
            _ => Err(unexpected("commit")),
        }
    }

    /// Moves the group's position (all partitions, or one) to `position`; returns the
    /// resulting offsets.
    pub async fn seek(
        &mut self,
        position: SeekPosition,
        partition: Option<PartitionId>,
    ) -> Result<Vec<PartitionOffset>, ClientError> {
        let req = Request::Seek(SeekRequest {
            destination: self.config.destination.clone(),
            group: self.config.group.clone(),
            partition,
            position,
        });
        match self.call(&req).await? {
            Response::Seek(s) => Ok(s.offsets),
            _ => Err(unexpected("seek")),
        }
    }

    /// Leaves the group (an ordered group rebalances at once) and stops heartbeating.
    pub async fn close(mut self) -> Result<(), ClientError> {
        if self.config.auto_commit.is_some() && !self.to_commit.is_empty() {
            let offsets = std::mem::take(&mut self.to_commit)
                .into_iter()
                .map(|(partition, offset)| PartitionOffset { partition, offset })
                .collect();
            self.commit(offsets).await?;
        }
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if self.config.mode == Some(GroupMode::Ordered) {
            let req = Request::LeaveGroup(LeaveGroupRequest {
                destination: self.config.destination.clone(),
                group: self.config.group.clone(),
                consumer_id: self.config.consumer_id.clone(),
            });
            match self.call(&req).await? {
                Response::LeaveGroup => {}
                _ => return Err(unexpected("leave")),
            }
        }
        Ok(())
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(partition: u32, offset: u64) -> DeliveredMessage {
        DeliveredMessage {
            partition,
            offset,
            timestamp_ms: 0,
            priority: 5,
            delivery_attempt: 1,
            id: None,
            key: None,
            headers: Vec::new(),
            payload: Bytes::new(),
        }
    }

    #[test]
    fn ranges_merge_consecutive_offsets_per_partition() {
        let ms = [
            msg(0, 3),
            msg(1, 0),
            msg(0, 1),
            msg(0, 2),
            msg(0, 7),
            msg(1, 1),
            msg(0, 2),
        ];
        assert_eq!(
            ranges_of(&ms),
            vec![
                OffsetRange {
                    partition: 0,
                    start: 1,
                    end: 4
                },
                OffsetRange {
                    partition: 0,
                    start: 7,
                    end: 8
                },
                OffsetRange {
                    partition: 1,
                    start: 0,
                    end: 2
                },
            ]
        );
    }
}

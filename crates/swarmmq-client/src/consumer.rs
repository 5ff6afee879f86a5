//! The pull consumer: long-polls a destination for a group and acknowledges what it
//! has processed. A message not acknowledged within the group's ack timeout is
//! delivered again (to this or another member).

use std::time::Duration;

use swarmmq_protocol::{
    AckRequest, DeliveredMessage, NackRequest, OffsetRange, PullRequest, Request, Response,
};
use swarmmq_types::PartitionId;

use crate::connection::Connection;
use crate::error::ClientError;

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
        }
    }
}

pub struct Consumer {
    addr: String,
    conn: Connection,
    config: ConsumerConfig,
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

impl Consumer {
    pub async fn connect(addr: &str, config: ConsumerConfig) -> Result<Consumer, ClientError> {
        let conn = Connection::connect(addr).await?;
        Ok(Consumer {
            addr: addr.to_string(),
            conn,
            config,
        })
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Caps how many messages the next pulls return.
    pub fn set_max_messages(&mut self, n: u32) {
        self.config.max_messages = n.max(1);
    }

    async fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        if self.conn.is_closed() {
            self.conn = Connection::connect(&self.addr).await?;
        }
        self.conn.call(req).await
    }

    /// Waits up to `max_wait` for messages and returns what is deliverable (possibly
    /// nothing). Each message is leased to this consumer until acked or timed out.
    pub async fn pull(&mut self) -> Result<Vec<DeliveredMessage>, ClientError> {
        let c = &self.config;
        let req = Request::Pull(PullRequest {
            destination: c.destination.clone(),
            group: c.group.clone(),
            consumer_id: c.consumer_id.clone(),
            max_messages: c.max_messages,
            max_bytes: c.max_bytes,
            max_wait_ms: u32::try_from(c.max_wait.as_millis()).unwrap_or(u32::MAX),
            partition: c.partition,
            auto_ack: c.auto_ack,
            generation: 0,
        });
        match self.call(&req).await? {
            Response::Pull(p) => Ok(p.messages),
            _ => Err(ClientError::Protocol("unexpected answer to a pull".into())),
        }
    }

    /// Acknowledges messages; returns how many were newly acknowledged.
    pub async fn ack(&mut self, messages: &[DeliveredMessage]) -> Result<u64, ClientError> {
        self.ack_ranges(ranges_of(messages)).await
    }

    pub async fn ack_ranges(&mut self, ranges: Vec<OffsetRange>) -> Result<u64, ClientError> {
        if ranges.is_empty() {
            return Ok(0);
        }
        let req = Request::Ack(AckRequest {
            destination: self.config.destination.clone(),
            group: self.config.group.clone(),
            consumer_id: self.config.consumer_id.clone(),
            ranges,
            generation: 0,
        });
        match self.call(&req).await? {
            Response::Ack(a) => Ok(a.count),
            _ => Err(ClientError::Protocol("unexpected answer to an ack".into())),
        }
    }

    /// Hands messages back for redelivery after `delay`.
    pub async fn nack(
        &mut self,
        messages: &[DeliveredMessage],
        delay: Duration,
    ) -> Result<u64, ClientError> {
        let ranges = ranges_of(messages);
        if ranges.is_empty() {
            return Ok(0);
        }
        let req = Request::Nack(NackRequest {
            destination: self.config.destination.clone(),
            group: self.config.group.clone(),
            consumer_id: self.config.consumer_id.clone(),
            ranges,
            delay_ms: u32::try_from(delay.as_millis()).unwrap_or(u32::MAX),
            generation: 0,
            reason: String::new(),
        });
        match self.call(&req).await? {
            Response::Nack(a) => Ok(a.count),
            _ => Err(ClientError::Protocol("unexpected answer to a nack".into())),
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

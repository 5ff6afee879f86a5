//! The Rust SDK of SwarmMQ: a [`Producer`] that batches and pipelines publishes and
//! reports each message's partition and offset, a [`Consumer`] that long-polls and
//! acknowledges, and an [`Admin`] for destinations and health.
//!
//! It speaks the binary protocol of `swarmmq-protocol` over one TCP connection per
//! object (TLS 1.3 when [`ConnectOptions::tls`] is set), authenticating each
//! (re)connection first when [`ConnectOptions`] carries an API key; besides that it uses
//! only `swarmmq-crypto`, for optional end-to-end encryption ([`E2eKey`]: payloads sealed
//! by the producer, opened by the consumer, never readable by a node). It is not a node
//! and holds no state a node does not confirm.
//!
//! Smart client: with [`ProducerConfig::smart`] the producer fetches the cluster's
//! metadata (`Request::Metadata`), splits each batch by partition with the node's own
//! rules (keyed: `partition_for_key`; a batch's keyless messages: hash of the first
//! keyless id), and sends each part straight to the partition's owner with
//! [`Flags::DIRECT`] over one connection per owner (at most 16, same TLS and API key).
//! On `NOT_OWNER`, `UNAVAILABLE`, an unknown partition or a failed owner connection it
//! refreshes the map (at most every 200 ms) and routes the part again; a second failure
//! sends it through the connected node, which forwards. Order is kept per partition.
//! Without it, every request goes to the one node, which forwards (nothing changes on
//! the wire). See `docs/smart-client.md`.

mod admin;
mod connection;
mod consumer;
mod e2e;
mod error;
mod keys_admin;
mod options;
mod producer;
mod routing;
mod tls;

pub use admin::Admin;
pub use connection::Connection;
pub use consumer::{Consumer, ConsumerConfig, ranges_of};
pub use e2e::{E2E_HEADER, E2eError, E2eFailure, E2eKey};
pub use error::ClientError;
pub use options::{ConnectOptions, TlsOptions};
pub use producer::{Message, Producer, ProducerConfig, Receipt, ReceiptFuture};
pub use swarmmq_protocol::Flags;
pub use swarmmq_protocol::{
    AckRequest, Acks, DeliveredMessage, DestinationConfig, DestinationInfo, GroupDescription,
    GroupMode, GroupSummary, Header, HealthResponse, JoinGroupRequest, KeyInfo, KeysStatusResponse,
    MetadataResponse, OffsetRange, PartitionInfo, PartitionOffset, PullRequest, Request, Response,
    SeekPosition,
};
pub use swarmmq_types::{ErrorCode, MessageId};

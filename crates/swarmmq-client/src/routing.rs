//! Smart-client routing for the producer: which partition each message of a batch goes
//! to (the same rules a node applies), which node leads that partition (from the
//! cluster's metadata), and one connection per owner node.
//!
//! Everything here is an optimisation: any node accepts any publish and forwards it, so
//! when the map is stale or an owner is unreachable the producer sends through its
//! bootstrap connection instead. A publish never fails because of routing.

use std::collections::HashMap;
use std::time::Duration;

use swarmmq_protocol::{MetadataResponse, PublishMessage, Request, Response};
use swarmmq_types::{ErrorCode, MessageId, PartitionId, key_hash, partition_for_key};
use tokio::time::Instant;

use crate::connection::Connection;
use crate::error::ClientError;
use crate::options::ConnectOptions;

/// Most owner connections a producer keeps; parts for further nodes go through the
/// bootstrap connection (which forwards them).
pub(crate) const MAX_NODE_CONNECTIONS: usize = 16;
/// Metadata is fetched again at most this often, however many errors ask for it.
pub(crate) const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(200);
/// After a failed fetch, wait this long before the next (the node may refuse it).
const FAILED_REFRESH_PAUSE: Duration = Duration::from_secs(2);
/// An owner whose connection failed is not tried again for this long (a dead host may
/// take the whole connect timeout to refuse); its parts go through the bootstrap node.
const DOWN_PAUSE: Duration = Duration::from_secs(2);
/// Most owners remembered as down.
const MAX_DOWN: usize = 64;
/// Most destinations kept in the map (a metadata answer is bounded by the frame limit,
/// this bounds what one producer remembers of it).
const MAX_DESTINATIONS: usize = 100_000;

/// The partition the keyless messages of one publish go to: the hash of the first
/// keyless message's id (so a retry of the same batch lands on the same partition and
/// the node can drop duplicates), or `None` when that message has no id (the caller
/// picks one).
pub(crate) fn keyless_partition(messages: &[PublishMessage], partitions: u32) -> Option<u32> {
    if partitions == 0 {
        return Some(0);
    }
    let first = messages.iter().find(|m| m.key.is_none())?;
    let hash = match first.id.as_ref()? {
        MessageId::Uuid(bytes) => key_hash(bytes),
        MessageId::Text(text) => key_hash(text.as_bytes()),
    };
    // The remainder is < partitions, a u32.
    Some((hash % u64::from(partitions)) as u32)
}

/// Splits a batch into per-partition parts: `(partition, indexes into messages)`, each
/// part keeping message order, parts in ascending partition order. Keyed messages go to
/// `partition_for_key`; keyless ones all go to `keyless` (see [`keyless_partition`]).
pub(crate) fn split_by_partition(
    messages: &[PublishMessage],
    partitions: u32,
    keyless: u32,
) -> Vec<(PartitionId, Vec<usize>)> {
    let mut parts: Vec<(PartitionId, Vec<usize>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let p = match &m.key {
            Some(key) => partition_for_key(key, partitions),
            None => keyless,
        };
        match parts.iter_mut().find(|(q, _)| *q == p) {
            Some((_, idx)) => idx.push(i),
            None => parts.push((p, vec![i])),
        }
    }
    parts.sort_by_key(|(p, _)| *p);
    parts
}

/// Whether a direct send's failure means "the map is wrong or the owner is gone": the
/// part is routed again after a refresh instead of being retried as it is.
pub(crate) fn is_route_error(e: &ClientError) -> bool {
    match e {
        ClientError::Server { code, .. } => matches!(
            code,
            ErrorCode::NotOwner | ErrorCode::Unavailable | ErrorCode::UnknownPartition
        ),
        ClientError::Connect { .. }
        | ClientError::ConnectionLost { .. }
        | ClientError::Timeout(_) => true,
        _ => false,
    }
}

/// One destination as the metadata describes it.
struct Placement {
    /// Leader node id of each partition, by partition number.
    leaders: Vec<String>,
}

/// The producer's view of the cluster and its owner connections.
pub(crate) struct Router {
    options: ConnectOptions,
    destinations: HashMap<String, Placement>,
    /// Node id -> client address (`host:port`).
    nodes: HashMap<String, String>,
    /// Client address -> open connection.
    conns: HashMap<String, Connection>,
    /// Client address -> when the owner may be tried again.
    down: HashMap<String, Instant>,
    refresh_wanted: bool,
    next_refresh: Instant,
    /// Refreshed anyway once the map is this old (a destination re-created with more
    /// partitions gives no error to notice it by).
    max_age: Duration,
    fetched_at: Option<Instant>,
    /// Round-robin start for keyless batches whose first message has no id.
    next_keyless: u32,
}

/// Where one part of a batch should go.
pub(crate) enum Route {
    /// Straight to this owner, over this connection (`addr` names it).
    Direct { conn: Connection, addr: String },
    /// Through the bootstrap connection, without the DIRECT flag.
    Bootstrap,
}

impl Router {
    pub(crate) fn new(options: ConnectOptions, max_age: Duration) -> Router {
        Router {
            options,
            destinations: HashMap::new(),
            nodes: HashMap::new(),
            conns: HashMap::new(),
            down: HashMap::new(),
            refresh_wanted: true,
            next_refresh: Instant::now(),
            max_age,
            fetched_at: None,
            next_keyless: 0,
        }
    }

    /// Asks for a refresh at the next chance (rate-limited).
    pub(crate) fn want_refresh(&mut self) {
        self.refresh_wanted = true;
    }

    /// Whether a refresh is wanted (or the map is old) and allowed now.
    pub(crate) fn refresh_due(&self) -> bool {
        let old = self.fetched_at.is_none_or(|t| t.elapsed() >= self.max_age);
        (self.refresh_wanted || old) && Instant::now() >= self.next_refresh
    }

    /// Fetches metadata over `conn` and replaces the map. A failure keeps the old map.
    pub(crate) async fn refresh(&mut self, conn: &Connection) {
        self.next_refresh = Instant::now() + MIN_REFRESH_INTERVAL;
        match conn.call(&Request::Metadata).await {
            Ok(Response::Metadata(m)) => self.apply(m),
            Ok(_) => {
                tracing::warn!("unexpected answer to metadata; routing through the bootstrap node");
                self.next_refresh = Instant::now() + FAILED_REFRESH_PAUSE;
            }
            Err(e) => {
                tracing::warn!(error = %e, "metadata refresh failed; keeping the old map");
                self.next_refresh = Instant::now() + FAILED_REFRESH_PAUSE;
            }
        }
    }

    /// Notes a refresh that could not even be tried (no connection to ask).
    pub(crate) fn refresh_failed(&mut self) {
        self.next_refresh = Instant::now() + FAILED_REFRESH_PAUSE;
    }

    /// Any open owner connection (every node answers metadata).
    pub(crate) fn any_conn(&self) -> Option<Connection> {
        self.conns.values().find(|c| !c.is_closed()).cloned()
    }

    pub(crate) fn apply(&mut self, m: MetadataResponse) {
        self.fetched_at = Some(Instant::now());
        self.next_refresh = Instant::now() + MIN_REFRESH_INTERVAL;
        self.refresh_wanted = false;
        self.nodes = m
            .nodes
            .into_iter()
            .map(|n| (n.id, join_host_port(&n.host, n.port)))
            .collect();
        self.destinations.clear();
        for d in m.destinations.into_iter().take(MAX_DESTINATIONS) {
            let mut parts = d.partitions;
            parts.sort_by_key(|p| p.partition);
            // Partitions are numbered 0..n; a gap means a map this client cannot trust.
            let dense = parts
                .iter()
                .enumerate()
                .all(|(i, p)| p.partition as usize == i);
            if dense && !parts.is_empty() {
                let leaders = parts.into_iter().map(|p| p.leader).collect();
                self.destinations.insert(d.name, Placement { leaders });
            }
        }
        // Connections to nodes that left the map are closed; their in-flight parts fail
        // and are routed again.
        let live: Vec<&String> = self.nodes.values().collect();
        self.conns.retain(|addr, c| {
            let keep = live.contains(&addr) && !c.is_closed();
            if !keep {
                c.close();
            }
            keep
        });
    }

    /// How many partitions the map says `destination` has, if it knows it.
    pub(crate) fn partitions(&self, destination: &str) -> Option<u32> {
        self.destinations
            .get(destination)
            .and_then(|p| u32::try_from(p.leaders.len()).ok())
    }

    /// The partition of a batch's keyless messages.
    pub(crate) fn keyless(&mut self, messages: &[PublishMessage], partitions: u32) -> u32 {
        keyless_partition(messages, partitions).unwrap_or_else(|| {
            self.next_keyless = self.next_keyless.wrapping_add(1);
            self.next_keyless % partitions.max(1)
        })
    }

    /// Where a part for `destination`/`partition` goes, opening the owner's connection
    /// if needed. `Err` is a connection failure to the owner (route it again).
    pub(crate) async fn route(
        &mut self,
        destination: &str,
        partition: PartitionId,
    ) -> Result<Route, ClientError> {
        let Some(addr) = self
            .destinations
            .get(destination)
            .and_then(|d| d.leaders.get(partition as usize))
            .and_then(|leader| self.nodes.get(leader))
            .cloned()
        else {
            return Ok(Route::Bootstrap);
        };
        if let Some(c) = self.conns.get(&addr) {
            if !c.is_closed() {
                return Ok(Route::Direct {
                    conn: c.clone(),
                    addr,
                });
            }
            self.conns.remove(&addr);
        }
        let now = Instant::now();
        if self.conns.len() >= MAX_NODE_CONNECTIONS
            || self.down.get(&addr).is_some_and(|until| now < *until)
        {
            return Ok(Route::Bootstrap);
        }
        let mut options = self.options.clone();
        options.addr = addr.clone();
        let conn = match Connection::connect(options).await {
            Ok(c) => c,
            Err(e) => {
                self.mark_down(&addr);
                return Err(e);
            }
        };
        self.conns.insert(addr.clone(), conn.clone());
        Ok(Route::Direct { conn, addr })
    }

    /// Forgets a connection that failed; the owner is tried again after a pause.
    pub(crate) fn drop_conn(&mut self, addr: &str) {
        if let Some(c) = self.conns.remove(addr) {
            c.close();
        }
        self.mark_down(addr);
    }

    fn mark_down(&mut self, addr: &str) {
        let now = Instant::now();
        if self.down.len() >= MAX_DOWN {
            self.down.retain(|_, until| now < *until);
            if self.down.len() >= MAX_DOWN {
                self.down.clear();
            }
        }
        self.down.insert(addr.to_string(), now + DOWN_PAUSE);
    }

    pub(crate) fn close(&mut self) {
        for (_, c) in self.conns.drain() {
            c.close();
        }
    }
}

/// `host:port`, with brackets around an IPv6 host.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn msg(key: Option<&str>, id: Option<MessageId>) -> PublishMessage {
        PublishMessage {
            id,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            headers: Vec::new(),
            priority: 5,
            deliver_at_ms: None,
            ttl_ms: None,
            payload: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn keyed_messages_follow_partition_for_key_and_keep_their_order() {
        let messages: Vec<PublishMessage> = (0..200)
            .map(|i| msg(Some(&format!("key-{}", i % 13)), None))
            .collect();
        let parts = split_by_partition(&messages, 7, 0);
        let mut seen = Vec::new();
        for (p, idx) in &parts {
            assert!(idx.windows(2).all(|w| w[0] < w[1]), "order kept in {p}");
            for &i in idx {
                let key = messages[i].key.as_ref().unwrap();
                assert_eq!(partition_for_key(key, 7), *p);
                seen.push(i);
            }
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..200).collect::<Vec<_>>(),
            "every message in one part"
        );
        assert!(parts.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn keyless_messages_share_the_partition_of_the_first_keyless_id() {
        let id = MessageId::Uuid([7; 16]);
        let messages = vec![
            msg(Some("a"), Some(MessageId::Uuid([1; 16]))),
            msg(None, Some(id.clone())),
            msg(None, Some(MessageId::Uuid([9; 16]))),
            msg(None, None),
        ];
        let expect = (key_hash(&[7; 16]) % 5) as u32;
        assert_eq!(keyless_partition(&messages, 5), Some(expect));
        let parts = split_by_partition(&messages, 5, expect);
        let keyless: Vec<usize> = parts
            .iter()
            .filter(|(p, _)| *p == expect)
            .flat_map(|(_, idx)| idx.iter().copied())
            .filter(|&i| messages[i].key.is_none())
            .collect();
        assert_eq!(keyless, vec![1, 2, 3]);

        let text = vec![msg(None, Some(MessageId::Text("order-17".into())))];
        assert_eq!(
            keyless_partition(&text, 3),
            Some((key_hash(b"order-17") % 3) as u32)
        );
        assert_eq!(keyless_partition(&[msg(None, None)], 3), None);
        assert_eq!(keyless_partition(&[msg(Some("k"), None)], 3), None);
    }

    #[test]
    fn route_errors_are_the_ones_a_refresh_can_fix() {
        let server = |code| ClientError::Server {
            code,
            message: String::new(),
        };
        assert!(is_route_error(&server(ErrorCode::NotOwner)));
        assert!(is_route_error(&server(ErrorCode::Unavailable)));
        assert!(is_route_error(&server(ErrorCode::UnknownPartition)));
        assert!(is_route_error(&ClientError::ConnectionLost {
            addr: "a".into(),
            reason: "b".into()
        }));
        assert!(!is_route_error(&server(ErrorCode::MessageTooLarge)));
        assert!(!is_route_error(&ClientError::Closed));
    }

    #[test]
    fn the_map_keeps_dense_destinations_and_node_addresses() {
        use swarmmq_protocol::{DestinationConfig, DestinationInfo, NodeInfo, PartitionInfo};
        let part = |p, leader: &str| PartitionInfo {
            partition: p,
            leader: leader.into(),
            start_offset: 0,
            end_offset: 0,
            size_bytes: 0,
        };
        let mut r = Router::new(ConnectOptions::new("h:1"), Duration::from_secs(60));
        assert!(r.refresh_due());
        r.apply(MetadataResponse {
            cluster_name: "c".into(),
            nodes: vec![
                NodeInfo {
                    id: "n1".into(),
                    host: "127.0.0.1".into(),
                    port: 9001,
                },
                NodeInfo {
                    id: "n2".into(),
                    host: "::1".into(),
                    port: 9002,
                },
            ],
            destinations: vec![
                DestinationInfo {
                    name: "ok".into(),
                    partitions: vec![part(1, "n2"), part(0, "n1")],
                    config: DestinationConfig::default(),
                },
                DestinationInfo {
                    name: "gap".into(),
                    partitions: vec![part(0, "n1"), part(2, "n1")],
                    config: DestinationConfig::default(),
                },
            ],
        });
        assert_eq!(r.partitions("ok"), Some(2));
        assert_eq!(r.partitions("gap"), None);
        assert_eq!(r.nodes.get("n2").map(String::as_str), Some("[::1]:9002"));
        assert_eq!(r.destinations["ok"].leaders, vec!["n1", "n2"]);
        assert!(!r.refresh_due());
        r.want_refresh();
        assert!(!r.refresh_due(), "rate-limited right after a fetch");
    }
}

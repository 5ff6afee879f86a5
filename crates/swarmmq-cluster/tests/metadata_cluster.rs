//! Metadata Raft groups of real nodes in one process, talking over real TCP on 127.0.0.1.
//!
//! The transport here is a tiny length-prefixed request/response protocol (one connection
//! per call), standing in for the server's internal link.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use swarmmq_cluster::ClusterError;
use swarmmq_cluster::metadata::{
    DestinationMeta, MetaCommand, MetaReply, MetadataConfig, MetadataRaft, NodeRecord,
    PartitionPlacement, RaftTransport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const MAX_FRAME: usize = 64 * 1024 * 1024;
const WAIT: Duration = Duration::from_secs(10);

/// Request: `[len u32 BE][body]`. Response: `[status u8][len u32 BE][body]`, status 0 = the
/// body `handle_rpc` returned, 1 = its error text.
struct TcpTransport;

async fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = s.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut buf = vec![0; len];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame(s: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    s.write_u32(body.len() as u32).await?;
    s.write_all(body).await?;
    s.flush().await
}

impl RaftTransport for TcpTransport {
    fn call(
        &self,
        _target: &str,
        addr: SocketAddr,
        body: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>> {
        Box::pin(async move {
            let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            write_frame(&mut s, &body)
                .await
                .map_err(|e| e.to_string())?;
            let status = s.read_u8().await.map_err(|e| e.to_string())?;
            let reply = read_frame(&mut s).await.map_err(|e| e.to_string())?;
            match status {
                0 => Ok(reply),
                _ => Err(String::from_utf8_lossy(&reply).into_owned()),
            }
        })
    }
}

/// Serves `handle_rpc` for one node until aborted; connection tasks die with it.
fn serve(listener: TcpListener, raft: Arc<MetadataRaft>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let raft = raft.clone();
            conns.spawn(async move {
                while let Ok(req) = read_frame(&mut s).await {
                    let (status, body) = match raft.handle_rpc(&req).await {
                        Ok(b) => (0u8, b),
                        Err(e) => (1u8, e.to_string().into_bytes()),
                    };
                    if s.write_u8(status).await.is_err()
                        || write_frame(&mut s, &body).await.is_err()
                    {
                        break;
                    }
                }
            });
            // Reap finished connections so the set stays small.
            while conns.try_join_next().is_some() {}
        }
    })
}

struct Node {
    id: String,
    addr: SocketAddr,
    dir: PathBuf,
    raft: Arc<MetadataRaft>,
    server: JoinHandle<()>,
}

impl Node {
    /// Opens the node from `dir`, listening on `addr` (port 0 = pick one).
    async fn start(id: &str, dir: &Path, addr: SocketAddr) -> Node {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let raft = MetadataRaft::open(MetadataConfig {
            node_id: id.to_string(),
            dir: dir.to_path_buf(),
            transport: Arc::new(TcpTransport),
            heartbeat_interval: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(150),
            election_timeout_max: Duration::from_millis(300),
        })
        .await
        .unwrap();
        let raft = Arc::new(raft);
        let server = serve(listener, raft.clone());
        Node {
            id: id.to_string(),
            addr,
            dir: dir.to_path_buf(),
            raft,
            server,
        }
    }

    /// Stops Raft and the TCP server, as a crash of the process would.
    async fn stop(self) -> (String, PathBuf, SocketAddr) {
        self.raft.shutdown().await;
        self.server.abort();
        let _ = self.server.await;
        (self.id, self.dir, self.addr)
    }
}

async fn start_group(root: &Path, n: usize) -> Vec<Node> {
    let mut nodes = Vec::new();
    for i in 1..=n {
        let id = format!("n{i}");
        let dir = root.join(&id);
        nodes.push(Node::start(&id, &dir, "127.0.0.1:0".parse().unwrap()).await);
    }
    let voters: Vec<_> = nodes.iter().map(|n| (n.id.clone(), n.addr)).collect();
    // Every bootstrap node initializes with the same list, as the server does.
    for n in &nodes {
        n.raft.initialize(voters.clone()).await.unwrap();
    }
    // A second call is a no-op.
    nodes[0].raft.initialize(voters).await.unwrap();
    nodes
}

/// `RUST_LOG=openraft=info cargo test ...` shows what the nodes did.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every node names the same leader (one of `nodes`) and returns its index.
async fn agreed_leader(nodes: &[Node]) -> usize {
    let mut found = None;
    eventually("an agreed leader", || {
        let leaders: Vec<_> = nodes.iter().map(|n| n.raft.status().leader).collect();
        found = match &leaders[0] {
            Some(l) if leaders.iter().all(|x| x.as_ref() == Some(l)) => {
                nodes.iter().position(|n| &n.id == l)
            }
            _ => None,
        };
        found.is_some()
    })
    .await;
    found.unwrap()
}

fn record(id: &str, addr: SocketAddr) -> NodeRecord {
    NodeRecord {
        id: id.to_string(),
        client_addr: addr,
        http_addr: addr,
        internal_addr: addr,
        version: "0.1.0".to_string(),
    }
}

fn destination(name: &str) -> DestinationMeta {
    DestinationMeta {
        name: name.to_string(),
        spec: json!({"kind": "stream", "partitions": 2}),
        partitions: vec![
            PartitionPlacement {
                replicas: vec!["n1".to_string(), "n2".to_string()],
            },
            PartitionPlacement {
                replicas: vec!["n2".to_string(), "n3".to_string()],
            },
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_forward_fail_over_and_recover() {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_group(root.path(), 3).await;
    let li = agreed_leader(&nodes).await;
    let leader = nodes[li].raft.clone();
    let first_term = leader.status().term;
    assert!(first_term >= 1);
    assert_eq!(leader.status().voters.len(), 3);

    // Writes on the leader answer with what the state machine did.
    let mut changes = nodes[(li + 1) % 3].raft.subscribe();
    for n in &nodes {
        let reply = leader
            .propose(MetaCommand::RegisterNode(record(&n.id, n.addr)))
            .await
            .unwrap();
        assert_eq!(reply, MetaReply::Done);
    }
    let orders = destination("orders");
    assert_eq!(
        leader
            .propose(MetaCommand::CreateDestination(orders.clone()))
            .await
            .unwrap(),
        MetaReply::Created(orders.clone())
    );
    let mut again = destination("orders");
    again.spec = json!({"kind": "queue"});
    assert_eq!(
        leader
            .propose(MetaCommand::CreateDestination(again))
            .await
            .unwrap(),
        MetaReply::AlreadyExists(orders.clone())
    );

    // Followers converge and subscribers hear about it.
    eventually("followers applying the destination", || {
        nodes
            .iter()
            .all(|n| n.raft.state().destinations.get("orders") == Some(&orders))
    })
    .await;
    changes.changed().await.unwrap();
    assert_eq!(nodes[(li + 1) % 3].raft.state().nodes.len(), 3);

    // A follower refuses writes and linearizable reads, naming the leader and its address.
    let follower = nodes[(li + 1) % 3].raft.clone();
    let leader_id = nodes[li].id.clone();
    let leader_addr = nodes[li].addr;
    match follower
        .propose(MetaCommand::DeleteDestination {
            name: "orders".to_string(),
        })
        .await
    {
        Err(ClusterError::NotLeader { leader }) => {
            assert_eq!(leader, Some((leader_id.clone(), leader_addr)))
        }
        other => panic!("expected NotLeader, got {other:?}"),
    }
    assert!(matches!(
        follower.read_linearizable().await,
        Err(ClusterError::NotLeader { .. })
    ));
    let read = leader.read_linearizable().await.unwrap();
    assert_eq!(read.destinations.get("orders"), Some(&orders));
    assert!(read.last_applied >= 5);

    // The leader dies: the others elect a new one in a higher term and keep working.
    let dead = nodes.remove(li);
    let (dead_id, dead_dir, dead_addr) = dead.stop().await;
    let stopped_at = Instant::now();
    let ni = agreed_leader(&nodes).await;
    let failover = stopped_at.elapsed();
    let new_leader = nodes[ni].raft.clone();
    assert_ne!(nodes[ni].id, dead_id);
    assert!(new_leader.status().term > first_term);
    assert!(
        failover < Duration::from_secs(2),
        "failover took {failover:?}"
    );
    let assign = MetaCommand::AssignCoordinator {
        key: "orders/g1".to_string(),
        node: nodes[ni].id.clone(),
    };
    assert_eq!(new_leader.propose(assign).await.unwrap(), MetaReply::Done);
    assert_eq!(
        new_leader
            .propose(MetaCommand::DeleteDestination {
                name: "missing".to_string()
            })
            .await
            .unwrap(),
        MetaReply::NotFound
    );

    // The old leader restarts from its directory and catches up as a follower.
    let back = Node::start(&dead_id, &dead_dir, dead_addr).await;
    assert!(
        back.raft.state().destinations.contains_key("orders"),
        "state recovered from disk before rejoining"
    );
    eventually("restarted node catching up", || {
        back.raft.state().group_coordinators.get("orders/g1") == Some(&nodes[ni].id)
    })
    .await;
    nodes.push(back);
    let li = agreed_leader(&nodes).await;
    assert_eq!(nodes[li].id, nodes[ni].id);

    // A fourth node joins as a voter (the group is below five voters).
    let n4 = Node::start(
        "n4",
        &root.path().join("n4"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    new_leader.add_node(n4.id.clone(), n4.addr).await.unwrap();
    let st = new_leader.status();
    assert_eq!(st.voters.len(), 4);
    assert!(st.voters.contains(&"n4".to_string()));
    eventually("n4 applying the log", || {
        n4.raft.state().destinations.contains_key("orders")
    })
    .await;
    nodes.push(n4);

    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_voters_then_a_sixth_node_joins_as_learner() {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_group(root.path(), 5).await;
    let li = agreed_leader(&nodes).await;
    let leader = nodes[li].raft.clone();
    assert_eq!(leader.status().voters.len(), 5);
    let orders = destination("orders");
    assert_eq!(
        leader
            .propose(MetaCommand::CreateDestination(orders.clone()))
            .await
            .unwrap(),
        MetaReply::Created(orders.clone())
    );
    eventually("five nodes applying", || {
        nodes
            .iter()
            .all(|n| n.raft.state().destinations.contains_key("orders"))
    })
    .await;

    let n6 = Node::start(
        "n6",
        &root.path().join("n6"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    // Only the leader changes membership.
    let follower = &nodes[(li + 1) % 5];
    assert!(matches!(
        follower.raft.add_node(n6.id.clone(), n6.addr).await,
        Err(ClusterError::NotLeader { .. })
    ));
    leader.add_node(n6.id.clone(), n6.addr).await.unwrap();
    let st = leader.status();
    assert_eq!(st.voters.len(), 5);
    assert!(!st.voters.contains(&"n6".to_string()));
    assert_eq!(st.learners, vec!["n6".to_string()]);

    // The learner receives the log, including writes made after it joined.
    assert_eq!(
        leader
            .propose(MetaCommand::SetPlacement {
                name: "orders".to_string(),
                partition: 1,
                replicas: vec!["n6".to_string()],
            })
            .await
            .unwrap(),
        MetaReply::Done
    );
    eventually("learner applying", || {
        n6.raft
            .state()
            .destinations
            .get("orders")
            .is_some_and(|d| d.partitions[1].replicas == vec!["n6".to_string()])
    })
    .await;
    assert_eq!(n6.raft.status().learners, vec!["n6".to_string()]);
    nodes.push(n6);

    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_behind_a_compacted_log_gets_a_snapshot_and_the_group_restarts() {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_group(root.path(), 3).await;
    let li = agreed_leader(&nodes).await;
    let leader = nodes[li].raft.clone();
    assert!(matches!(
        leader.handle_rpc(b"not json").await,
        Err(ClusterError::Invalid(_))
    ));

    // A follower goes down; the leader moves on and compacts its log past it.
    let fi = (li + 1) % 3;
    let lagging = nodes.remove(fi);
    let (lag_id, lag_dir, lag_addr) = lagging.stop().await;
    for i in 0..20 {
        let reply = leader
            .propose(MetaCommand::CreateDestination(destination(&format!(
                "d{i}"
            ))))
            .await
            .unwrap();
        assert!(matches!(reply, MetaReply::Created(_)));
    }
    leader.compact().await.unwrap();

    // Back up, it can only catch up through a snapshot (its missing entries are gone).
    let back = Node::start(&lag_id, &lag_dir, lag_addr).await;
    eventually("snapshot install on the lagging follower", || {
        back.raft.state().destinations.len() == 20
    })
    .await;
    nodes.push(back);
    let expected = leader.state().destinations.clone();

    // The whole group stops and restarts from disk.
    let mut stopped = Vec::new();
    for n in nodes {
        stopped.push(n.stop().await);
    }
    let mut nodes = Vec::new();
    for (id, dir, addr) in stopped {
        nodes.push(Node::start(&id, &dir, addr).await);
    }
    let li = agreed_leader(&nodes).await;
    eventually("recovered state on every node", || {
        nodes
            .iter()
            .all(|n| n.raft.state().destinations == expected)
    })
    .await;
    assert_eq!(
        nodes[li]
            .raft
            .propose(MetaCommand::DeleteDestination {
                name: "d0".to_string()
            })
            .await
            .unwrap(),
        MetaReply::Done
    );
    for n in nodes {
        n.stop().await;
    }
}

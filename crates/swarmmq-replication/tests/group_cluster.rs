//! A 3-replica partition group in one process over real TCP on 127.0.0.1, with real
//! partition logs: replication, election, failover, catch-up of a restarted replica, and
//! the three logs byte-identical up to the commit point.
//!
//! The transport is a tiny length-prefixed request/response protocol (one connection
//! per call), standing in for the server's internal link.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use swarmmq_replication::{
    GroupSettings, PartitionGroup, ReplicaNode, ReplicaTransport, ReplicationError,
};
use swarmmq_storage::{LogConfig, PartitionLog};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const MAX_FRAME: usize = 64 * 1024 * 1024;
const WAIT: Duration = Duration::from_secs(10);
const GROUP: &str = "orders/0";

/// Request: `[len u32 BE][body]`. Response: `[status u8][len u32 BE][body]`, status 0 =
/// the body `handle_rpc` returned, 1 = its error text.
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

impl ReplicaTransport for TcpTransport {
    fn call(
        &self,
        _group: &str,
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

/// Serves `handle_rpc` for one replica until aborted.
fn serve(listener: TcpListener, group: Arc<PartitionGroup>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let group = group.clone();
            conns.spawn(async move {
                while let Ok(req) = read_frame(&mut s).await {
                    let (status, body) = match group.handle_rpc(&req).await {
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
            while conns.try_join_next().is_some() {}
        }
    })
}

struct Replica {
    id: String,
    addr: SocketAddr,
    dir: PathBuf,
    group: Arc<PartitionGroup>,
    server: JoinHandle<()>,
}

impl Replica {
    async fn start(id: &str, dir: &Path, addr: SocketAddr) -> Replica {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (log, _) = PartitionLog::open(&dir.join("log"), LogConfig::default()).unwrap();
        let mut settings = GroupSettings::new(GROUP.to_string(), id.to_string());
        settings.heartbeat_interval = Duration::from_millis(50);
        settings.election_timeout_min = Duration::from_millis(150);
        settings.election_timeout_max = Duration::from_millis(300);
        let (group, _) =
            PartitionGroup::start(settings, log, &dir.join("raft"), Arc::new(TcpTransport))
                .await
                .unwrap();
        let group = Arc::new(group);
        let server = serve(listener, group.clone());
        Replica {
            id: id.to_string(),
            addr,
            dir: dir.to_path_buf(),
            group,
            server,
        }
    }

    /// Stops Raft and the TCP server, as a crash of the process would.
    async fn stop(self) -> (String, PathBuf, SocketAddr) {
        self.group.shutdown().await;
        self.server.abort();
        let _ = self.server.await;
        (self.id, self.dir, self.addr)
    }

    /// Every batch below the commit point, as stored.
    fn committed_batches(&self) -> Vec<Bytes> {
        let upto = self.group.commit_watch().current().end_offset;
        let reader = self.group.reader();
        let mut out = Vec::new();
        let mut off = 0;
        while off < upto {
            let got = reader.read(off, 1 << 20, upto).unwrap();
            let Some(next) = got.next_offset() else { break };
            out.extend(got.batches.into_iter().map(|b| b.into_bytes()));
            off = next;
        }
        out
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every replica names the same leader and returns its position.
async fn agreed_leader(replicas: &[Replica]) -> usize {
    let mut found = None;
    eventually("an agreed leader", || {
        let leaders: Vec<_> = replicas.iter().map(|r| r.group.status().leader).collect();
        found = match &leaders[0] {
            Some(l) if leaders.iter().all(|x| x.as_ref() == Some(l)) => {
                replicas.iter().position(|r| &r.id == l)
            }
            _ => None,
        };
        found.is_some()
    })
    .await;
    found.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_replicate_fail_over_catch_up_and_agree_byte_for_byte() {
    let ring = common::ring();
    let root = tempfile::tempdir().unwrap();
    let mut replicas = Vec::new();
    for i in 1..=3 {
        let id = format!("n{i}");
        let dir = root.path().join(&id);
        replicas.push(Replica::start(&id, &dir, "127.0.0.1:0".parse().unwrap()).await);
    }
    let members: BTreeMap<String, ReplicaNode> = replicas
        .iter()
        .map(|r| (r.id.clone(), ReplicaNode { addr: r.addr }))
        .collect();
    for r in &replicas {
        r.group.initialize(members.clone()).await.unwrap();
    }

    // Replicate: every acknowledged batch gets the next offsets.
    let leader = agreed_leader(&replicas).await;
    let first_term = replicas[leader].group.status().term;
    let mut next = 0;
    for i in 0..20 {
        let reply = replicas[leader]
            .group
            .propose(common::fresh_batch(&ring, &format!("a{i}"), 5))
            .await
            .unwrap();
        assert_eq!((reply.base_offset, reply.next_offset), (next, next + 5));
        next = reply.next_offset;
    }
    // Followers learn the commit point and expose exactly that much.
    for r in &replicas {
        let mut w = r.group.commit_watch();
        tokio::time::timeout(WAIT, w.wait_for_offset(next))
            .await
            .unwrap()
            .unwrap();
    }
    // A follower refuses to propose and names the leader.
    let follower = (leader + 1) % 3;
    match replicas[follower]
        .group
        .propose(common::fresh_batch(&ring, "no", 1))
        .await
    {
        Err(ReplicationError::NotLeader { leader: l }) => {
            assert_eq!(l.as_deref(), Some(replicas[leader].id.as_str()));
        }
        other => panic!("expected NotLeader, got {other:?}"),
    }

    // Fail over: the leader dies; the other two elect a new one and carry on.
    let dead = replicas.remove(leader);
    let killed_at = Instant::now();
    let (dead_id, dead_dir, dead_addr) = dead.stop().await;
    let mut new_leader = None;
    eventually("a new leader", || {
        new_leader = replicas.iter().position(|r| {
            let s = r.group.status();
            s.leader.as_deref() == Some(r.id.as_str()) && s.term > first_term
        });
        new_leader.is_some()
    })
    .await;
    let new_leader = new_leader.unwrap();
    let mut served = None;
    for i in 0..10 {
        let reply = replicas[new_leader]
            .group
            .propose(common::fresh_batch(&ring, &format!("b{i}"), 3))
            .await
            .unwrap();
        served.get_or_insert(killed_at.elapsed());
        assert_eq!(reply.base_offset, next);
        next = reply.next_offset;
    }
    let failover = served.unwrap();
    assert!(
        failover < Duration::from_secs(5),
        "failover took {failover:?}"
    );
    let second_term = replicas[new_leader].group.status().term;

    // The dead replica restarts from its files and catches up from the log.
    replicas.push(Replica::start(&dead_id, &dead_dir, dead_addr).await);
    for r in &replicas {
        let mut w = r.group.commit_watch();
        tokio::time::timeout(WAIT, w.wait_for_offset(next))
            .await
            .unwrap()
            .unwrap();
    }

    // The three logs are byte-identical up to the commit point: the leader's stamped
    // batches, copied unchanged.
    let logs: Vec<Vec<Bytes>> = replicas.iter().map(Replica::committed_batches).collect();
    assert_eq!(logs[0].len(), 30);
    assert_eq!(logs[0], logs[1]);
    assert_eq!(logs[0], logs[2]);
    let terms: Vec<u64> = logs[0]
        .iter()
        .map(|b| swarmmq_storage::Batch::parse(b.clone()).unwrap().term())
        .collect();
    assert!(terms[..20].iter().all(|t| *t == first_term));
    assert!(terms[20..].iter().all(|t| *t == second_term));
    // And the payloads decrypt on the replica that was dead during the second half.
    let restarted = replicas.last().unwrap();
    let batch = restarted.group.reader().read(103, 1 << 20, next).unwrap();
    let rec: Vec<_> = batch.batches[0]
        .decrypt_records(&ring)
        .map(|r| r.unwrap().payload)
        .collect();
    assert_eq!(rec[0].as_ref(), b"b1-0");
    eprintln!("failover: first publish served {failover:?} after the leader was stopped");

    for r in replicas {
        r.stop().await;
    }
}

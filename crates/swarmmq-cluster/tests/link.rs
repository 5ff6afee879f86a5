//! The internal link over real TCP on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use swarmmq_cluster::link::{
    self, HandlerFuture, Hello, KIND_FORWARD, LinkConfig, LinkError, LinkHandler, LinkPool,
    StartFuture,
};
use swarmmq_crypto::MasterKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Echo {
    /// Payloads of ORDER requests, in the order their first phase ran.
    order: Mutex<Vec<Bytes>>,
}

const KIND_ORDER: u8 = 9;

impl LinkHandler for Echo {
    fn admit(&self, hello: &Hello, _peer: SocketAddr) -> Result<(), String> {
        if hello.node_id == "banned" {
            return Err("node id banned is not welcome".into());
        }
        Ok(())
    }

    fn handle(&self, from: Arc<str>, kind: u8, payload: Bytes) -> StartFuture {
        if kind == KIND_ORDER {
            self.order.lock().unwrap().push(payload.clone());
        }
        let rest: HandlerFuture = Box::pin(async move {
            if payload.as_ref() == b"fail" {
                return Err(format!("{from} asked for a failure"));
            }
            if payload.as_ref() == b"slow" {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let mut out = vec![kind];
            out.extend_from_slice(&payload);
            Ok(Bytes::from(out))
        });
        Box::pin(std::future::ready(rest))
    }
}

fn cfg(cluster: &str, id: &str, addr: SocketAddr, key: u8) -> Arc<LinkConfig> {
    Arc::new(LinkConfig::new(
        cluster.into(),
        id.into(),
        addr,
        MasterKey::from_bytes([key; 32]),
        1 << 20,
    ))
}

struct Server {
    addr: SocketAddr,
    handler: Arc<Echo>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn server_at(addr: SocketAddr, cluster: &str, id: &str, key: u8) -> Server {
    let listener = link::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let handler = Arc::new(Echo::default());
    let task = tokio::spawn(link::serve(
        listener,
        cfg(cluster, id, addr, key),
        Arc::clone(&handler) as Arc<dyn LinkHandler>,
        stop.clone(),
    ));
    Server {
        addr,
        handler,
        stop,
        task,
    }
}

async fn server(cluster: &str, id: &str, key: u8) -> Server {
    server_at("127.0.0.1:0".parse().unwrap(), cluster, id, key).await
}

fn client(cluster: &str, id: &str, key: u8) -> LinkPool {
    LinkPool::new(cfg(cluster, id, "127.0.0.1:1".parse().unwrap(), key))
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn pipelined_calls_get_their_own_answers_and_errors_pass_through() {
    let s = server("c", "node-2", 1).await;
    let pool = Arc::new(client("c", "node-1", 1));
    let mut calls = Vec::new();
    for i in 0..200u32 {
        let pool = Arc::clone(&pool);
        calls.push(tokio::spawn(async move {
            let body = Bytes::from(format!("msg-{i}"));
            let got = pool
                .call("node-2", s.addr, KIND_FORWARD, body.clone(), T)
                .await
                .unwrap();
            assert_eq!(&got[1..], &body[..]);
            assert_eq!(got[0], KIND_FORWARD);
        }));
    }
    for c in calls {
        c.await.unwrap();
    }
    let err = pool
        .call(
            "node-2",
            s.addr,
            KIND_FORWARD,
            Bytes::from_static(b"fail"),
            T,
        )
        .await
        .unwrap_err();
    assert_eq!(err, LinkError::Remote("node-1 asked for a failure".into()));
    // A remote error is an answer: the peer is alive and the circuit stays closed.
    assert_eq!(pool.breaker_state("node-2"), "closed");
    s.stop.cancel();
    s.task.await.unwrap();
}

#[tokio::test]
async fn other_clusters_keys_and_duplicate_ids_are_refused_with_reasons() {
    let s = server("prod", "node-2", 1).await;
    let other = client("staging", "node-9", 1);
    match other.probe(s.addr, T).await.unwrap_err() {
        LinkError::Refused(_, reason) => {
            assert!(reason.contains("cluster name mismatch"), "{reason}")
        }
        e => panic!("unexpected {e}"),
    }
    let wrong_key = client("prod", "node-9", 2);
    assert_eq!(
        wrong_key.probe(s.addr, T).await.unwrap_err(),
        LinkError::KeyMismatch(s.addr)
    );
    let dup = client("prod", "node-2", 1);
    match dup.probe(s.addr, T).await.unwrap_err() {
        LinkError::Refused(_, reason) => assert!(reason.contains("duplicate node id"), "{reason}"),
        e => panic!("unexpected {e}"),
    }
    let banned = client("prod", "banned", 1);
    match banned.probe(s.addr, T).await.unwrap_err() {
        LinkError::Refused(_, reason) => assert!(reason.contains("not welcome"), "{reason}"),
        e => panic!("unexpected {e}"),
    }
    client("prod", "node-3", 1).probe(s.addr, T).await.unwrap();
    s.stop.cancel();
}

#[tokio::test]
async fn garbage_and_oversized_frames_do_not_stop_the_server() {
    let s = server("c", "node-2", 1).await;
    let mut raw = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(T, raw.read_to_end(&mut sink)).await;
    // A valid handshake followed by a frame claiming 4 GiB.
    let pool = client("c", "node-1", 1);
    pool.probe(s.addr, T).await.unwrap();
    let mut raw = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut hello = b"SMQL\x01".to_vec();
    hello.extend_from_slice(&[0u8; 16]);
    for t in ["c", "node-7", "127.0.0.1:7"] {
        hello.extend_from_slice(&(t.len() as u16).to_be_bytes());
        hello.extend_from_slice(t.as_bytes());
    }
    raw.write_all(&hello).await.unwrap();
    raw.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let _ = tokio::time::timeout(T, raw.read_to_end(&mut sink)).await;
    pool.call("node-2", s.addr, KIND_FORWARD, Bytes::from_static(b"x"), T)
        .await
        .unwrap();
    s.stop.cancel();
}

#[tokio::test]
async fn a_dead_peer_opens_the_circuit_and_a_probe_closes_it_when_it_is_back() {
    let s = server("c", "node-2", 1).await;
    let addr = s.addr;
    let pool = client("c", "node-1", 1);
    pool.call("node-2", addr, KIND_FORWARD, Bytes::from_static(b"a"), T)
        .await
        .unwrap();
    s.stop.cancel();
    s.task.await.unwrap();
    let mut errors = Vec::new();
    for _ in 0..6 {
        errors.push(
            pool.call("node-2", addr, KIND_FORWARD, Bytes::from_static(b"a"), T)
                .await
                .unwrap_err(),
        );
    }
    assert!(
        matches!(errors[0], LinkError::Closed | LinkError::Connect(..)),
        "{:?}",
        errors[0]
    );
    assert!(matches!(errors[5], LinkError::CircuitOpen(_)), "{errors:?}");
    assert_eq!(pool.breaker_state("node-2"), "open");
    // A timeout also counts as a failure, and a slow answer past the limit is one.
    let back = server_at(addr, "c", "node-2", 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    pool.call("node-2", addr, KIND_FORWARD, Bytes::from_static(b"a"), T)
        .await
        .unwrap();
    assert_eq!(pool.breaker_state("node-2"), "closed");
    let slow = pool
        .call(
            "node-2",
            addr,
            KIND_FORWARD,
            Bytes::from_static(b"slow"),
            Duration::from_millis(50),
        )
        .await
        .unwrap_err();
    assert_eq!(slow, LinkError::Timeout(Duration::from_millis(50)));
    back.stop.cancel();
}

#[tokio::test]
async fn requests_started_in_order_run_their_first_phase_in_that_order() {
    let s = server("c", "node-2", 1).await;
    let pool = client("c", "node-1", 1);
    let mut waits = Vec::new();
    for i in 0..500u32 {
        let body = Bytes::from(i.to_be_bytes().to_vec());
        waits.push(
            pool.start("node-2", s.addr, KIND_ORDER, body, T)
                .await
                .unwrap(),
        );
    }
    for w in waits {
        w.await.unwrap();
    }
    let seen: Vec<u32> = s
        .handler
        .order
        .lock()
        .unwrap()
        .iter()
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(seen, (0..500).collect::<Vec<_>>());
    s.stop.cancel();
}

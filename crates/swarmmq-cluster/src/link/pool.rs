//! The calling side of the internal link: one pipelined connection per peer, opened on
//! first use and again after it breaks, with a timeout per call and a circuit breaker
//! per peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::breaker::{CircuitBreaker, Permit};
use super::error::LinkError;
use super::wire::{self, FrameReader, FrameWriter, Hello, SALT_LEN};
use super::{KIND_PING, LinkConfig, RESP_ERR, RESP_OK};

type Pending = Mutex<HashMap<u32, oneshot::Sender<Result<Bytes, LinkError>>>>;

/// One open connection to a peer.
struct Conn {
    tx: mpsc::Sender<(u8, u32, Bytes)>,
    pending: Arc<Pending>,
    next: AtomicU32,
    closed: Arc<AtomicBool>,
    slots: Arc<Semaphore>,
}

struct Peer {
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    breaker: CircuitBreaker,
}

/// Connections to every peer this node calls.
pub struct LinkPool {
    cfg: Arc<LinkConfig>,
    peers: Mutex<HashMap<String, Arc<Peer>>>,
}

impl LinkPool {
    pub fn new(cfg: Arc<LinkConfig>) -> Self {
        LinkPool {
            cfg,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn peer(&self, id: &str) -> Result<Arc<Peer>, LinkError> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = peers.get(id) {
            return Ok(Arc::clone(p));
        }
        if peers.len() >= self.cfg.max_peers {
            return Err(LinkError::TooManyPeers(self.cfg.max_peers));
        }
        let p = Arc::new(Peer {
            conn: tokio::sync::Mutex::new(None),
            breaker: CircuitBreaker::new(self.cfg.breaker_threshold, self.cfg.breaker_cool_down),
        });
        peers.insert(id.to_string(), Arc::clone(&p));
        Ok(p)
    }

    /// The breaker state of a peer (`closed`, `open`, `half-open`).
    pub fn breaker_state(&self, id: &str) -> &'static str {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.get(id).map_or("closed", |p| p.breaker.state_name())
    }

    /// Sends one request and waits for its answer, at most `timeout` in all.
    pub async fn call(
        &self,
        peer_id: &str,
        addr: SocketAddr,
        kind: u8,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, LinkError> {
        self.start(peer_id, addr, kind, payload, timeout)
            .await?
            .await
    }

    /// Queues one request on the peer's connection and returns the wait for its
    /// answer. Requests started one after the other reach the peer in that order
    /// (what keeps a producer's forwarded batches in order); the waits may overlap.
    /// `timeout` bounds both parts together.
    pub async fn start(
        &self,
        peer_id: &str,
        addr: SocketAddr,
        kind: u8,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<impl Future<Output = Result<Bytes, LinkError>> + Send + 'static, LinkError> {
        let peer = self.peer(peer_id)?;
        if peer.breaker.permit() == Permit::Refused {
            return Err(LinkError::CircuitOpen(peer_id.to_string()));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let queued = tokio::time::timeout_at(deadline, self.enqueue(&peer, addr, kind, payload))
            .await
            .unwrap_or(Err(LinkError::Timeout(timeout)));
        let queued = match queued {
            Ok(q) => q,
            Err(e) => {
                record(&peer, peer_id, addr, &Err(e.clone()));
                return Err(e);
            }
        };
        let peer_id = peer_id.to_string();
        Ok(async move {
            let result = tokio::time::timeout_at(deadline, queued.wait())
                .await
                .unwrap_or(Err(LinkError::Timeout(timeout)));
            record(&peer, &peer_id, addr, &result);
            result
        })
    }

    /// Checks that `addr` is a node of this cluster that admits this one: a ping on a
    /// fresh connection (used when joining through seeds, for a clear refusal).
    pub async fn probe(&self, addr: SocketAddr, timeout: Duration) -> Result<(), LinkError> {
        let conn = tokio::time::timeout(timeout, connect(&self.cfg, addr))
            .await
            .map_err(|_| LinkError::Timeout(timeout))??;
        let result = tokio::time::timeout(timeout, conn.request(KIND_PING, Bytes::new()))
            .await
            .map_err(|_| LinkError::Timeout(timeout))?;
        conn.closed.store(true, Ordering::Release);
        result.map(|_| ())
    }

    async fn enqueue(
        &self,
        peer: &Peer,
        addr: SocketAddr,
        kind: u8,
        payload: Bytes,
    ) -> Result<Queued, LinkError> {
        let conn = {
            let mut slot = peer.conn.lock().await;
            match slot.as_ref() {
                Some(c) if !c.closed.load(Ordering::Acquire) => Arc::clone(c),
                _ => {
                    let c = Arc::new(connect(&self.cfg, addr).await?);
                    *slot = Some(Arc::clone(&c));
                    c
                }
            }
        };
        conn.enqueue(kind, payload).await
    }
}

/// Feeds the outcome of a call to the peer's breaker.
fn record(peer: &Peer, peer_id: &str, addr: SocketAddr, result: &Result<Bytes, LinkError>) {
    match result {
        // The peer answered, even if with an error: it is alive.
        Ok(_) | Err(LinkError::Remote(_)) => peer.breaker.success(),
        Err(_) => {
            if peer.breaker.failure() {
                tracing::warn!(peer = peer_id, %addr, "circuit opened: calls to this node fail fast for a while");
            }
        }
    }
}

/// A request on the wire, waiting for its answer.
struct Queued {
    rx: oneshot::Receiver<Result<Bytes, LinkError>>,
    _slot: OwnedSemaphorePermit,
    _unregister: Unregister,
}

impl Queued {
    async fn wait(self) -> Result<Bytes, LinkError> {
        let Queued {
            rx,
            _slot,
            _unregister,
        } = self;
        rx.await.unwrap_or(Err(LinkError::Closed))
    }
}

/// Removes a pending entry however its call ends (answer, error, or a timeout).
struct Unregister(Arc<Pending>, u32);

impl Drop for Unregister {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

impl Conn {
    async fn enqueue(&self, kind: u8, payload: Bytes) -> Result<Queued, LinkError> {
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| LinkError::Closed)?;
        let corr = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(corr, tx);
        let unregister = Unregister(Arc::clone(&self.pending), corr);
        if self.closed.load(Ordering::Acquire) || self.tx.send((kind, corr, payload)).await.is_err()
        {
            return Err(LinkError::Closed);
        }
        Ok(Queued {
            rx,
            _slot: slot,
            _unregister: unregister,
        })
    }

    async fn request(&self, kind: u8, payload: Bytes) -> Result<Bytes, LinkError> {
        self.enqueue(kind, payload).await?.wait().await
    }
}

async fn connect(cfg: &Arc<LinkConfig>, addr: SocketAddr) -> Result<Conn, LinkError> {
    let stream = tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| LinkError::Connect(addr, "connect timed out".into()))?
        .map_err(|e| LinkError::Connect(addr, e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let io = |e: std::io::Error| LinkError::Connect(addr, e.to_string());
    let mut salt = [0u8; SALT_LEN];
    swarmmq_crypto::random_bytes(&mut salt).map_err(|e| LinkError::Connect(addr, e.to_string()))?;
    let hello = Hello {
        cluster: cfg.cluster.clone(),
        node_id: cfg.node_id.clone(),
        advertise: cfg.advertise.to_string(),
    };
    wr.write_all(&wire::encode_hello(&hello, &salt))
        .await
        .map_err(io)?;
    let answer = tokio::time::timeout(cfg.handshake_timeout, wire::read_answer(&mut rd))
        .await
        .map_err(|_| LinkError::Connect(addr, "handshake timed out".into()))?
        .map_err(io)?;
    let server_salt = answer.map_err(|reason| LinkError::Refused(addr, reason))?;
    let (c2s, s2c) = wire::session_keys(&cfg.master, &salt, &server_salt)
        .map_err(|e| LinkError::Connect(addr, e.to_string()))?;
    let mut reader = FrameReader::new(s2c, cfg.max_frame);
    let confirm = reader
        .read(&mut rd)
        .await
        .map_err(|_| LinkError::KeyMismatch(addr))?;
    if confirm.payload.as_ref() != wire::CONFIRM {
        return Err(LinkError::KeyMismatch(addr));
    }
    let pending: Arc<Pending> = Arc::new(Mutex::new(HashMap::new()));
    let closed = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::channel::<(u8, u32, Bytes)>(cfg.max_inflight);
    let mut writer = FrameWriter::new(c2s);
    let write_closed = Arc::clone(&closed);
    tokio::spawn(async move {
        let mut wr = BufWriter::with_capacity(64 * 1024, wr);
        while let Some((kind, corr, payload)) = rx.recv().await {
            if writer.write(&mut wr, kind, corr, &payload).await.is_err()
                || (rx.is_empty() && wr.flush().await.is_err())
            {
                write_closed.store(true, Ordering::Release);
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let (read_pending, read_closed) = (Arc::clone(&pending), Arc::clone(&closed));
    tokio::spawn(async move {
        loop {
            let frame = match reader.read(&mut rd).await {
                Ok(f) => f,
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::UnexpectedEof {
                        tracing::debug!(%addr, error = %e, "internal link read failed");
                    }
                    break;
                }
            };
            let waiter = read_pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&frame.correlation);
            if let Some(w) = waiter {
                let answer = match frame.kind {
                    RESP_OK => Ok(frame.payload),
                    RESP_ERR => Err(LinkError::Remote(
                        String::from_utf8_lossy(&frame.payload).into_owned(),
                    )),
                    other => Err(LinkError::Protocol(format!("unknown answer kind {other}"))),
                };
                let _ = w.send(answer);
            }
        }
        read_closed.store(true, Ordering::Release);
        // Wake every caller still waiting on this connection.
        read_pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    });
    Ok(Conn {
        tx,
        pending,
        next: AtomicU32::new(1),
        closed,
        slots: Arc::new(Semaphore::new(cfg.max_inflight)),
    })
}

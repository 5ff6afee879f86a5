//! The receiving side of the internal link: accepts nodes of the same cluster and runs
//! their requests concurrently through a [`LinkHandler`].

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::wire::{self, FrameReader, FrameWriter, Hello, SALT_LEN};
use super::{KIND_PING, LinkConfig, RESP_ERR, RESP_OK};
use crate::ClusterError;

/// A boxed future answering one request.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send>>;
/// The in-order first phase of a request; it yields the rest, which runs concurrently.
pub type StartFuture = Pin<Box<dyn Future<Output = HandlerFuture> + Send>>;

/// What a node does with requests that arrive over the link.
pub trait LinkHandler: Send + Sync + 'static {
    /// Whether a node that passed the cluster-name check may connect (e.g. its id is
    /// not used by another live node). `Err` is the reason it is told.
    fn admit(&self, hello: &Hello, peer: SocketAddr) -> Result<(), String>;
    /// Starts one request of `kind` from node `from`. The returned future is awaited
    /// before the next frame of the connection is read, so whatever must happen in
    /// the order the peer sent (queueing a publish) happens there; the future it
    /// yields (waiting for durability, a long poll) runs beside later requests.
    fn handle(&self, from: Arc<str>, kind: u8, payload: Bytes) -> StartFuture;
}

/// Binds the link's TCP listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ClusterError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ClusterError::Bind { addr, source })
}

/// Serves the link until `stop` fires; connections over the limit are closed at once.
pub async fn serve(
    listener: TcpListener,
    cfg: Arc<LinkConfig>,
    handler: Arc<dyn LinkHandler>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let tasks = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "internal link accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, limit = cfg.max_connections, "internal link refused: too many connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (cfg, handler, stop) = (Arc::clone(&cfg), Arc::clone(&handler), stop.clone());
        tasks.spawn(async move {
            if let Err(e) = connection(stream, peer, cfg, handler, stop).await {
                tracing::debug!(%peer, error = %e, "internal link connection ended");
            }
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    cfg: Arc<LinkConfig>,
    handler: Arc<dyn LinkHandler>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let (mut rd, mut wr) = stream.into_split();
    let (hello, client_salt) =
        tokio::time::timeout(cfg.handshake_timeout, wire::read_hello(&mut rd))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out")
            })??;
    let mut salt = [0u8; SALT_LEN];
    swarmmq_crypto::random_bytes(&mut salt).map_err(|e| std::io::Error::other(e.to_string()))?;
    let refusal = if hello.cluster != cfg.cluster {
        Some(format!(
            "cluster name mismatch: {peer} belongs to cluster {:?}, this node to {:?}",
            hello.cluster, cfg.cluster
        ))
    } else if hello.node_id == cfg.node_id && hello.advertise != cfg.advertise.to_string() {
        Some(format!(
            "duplicate node id {:?}: already used by the node at {}",
            hello.node_id, cfg.advertise
        ))
    } else {
        handler.admit(&hello, peer).err()
    };
    wr.write_all(&wire::encode_answer(refusal.as_deref(), &salt))
        .await?;
    if let Some(reason) = refusal {
        tracing::warn!(%peer, node = %hello.node_id, reason, "internal link refused a node");
        let _ = wr.shutdown().await;
        return Ok(());
    }
    let (c2s, s2c) = wire::session_keys(&cfg.master, &client_salt, &salt)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut reader = FrameReader::new(c2s, cfg.max_frame);
    let mut writer = FrameWriter::new(s2c);
    writer.write(&mut wr, 0, 0, wire::CONFIRM).await?;
    wr.flush().await?;

    let from: Arc<str> = hello.node_id.into();
    let (tx, mut rx) = mpsc::channel::<(u8, u32, Bytes)>(cfg.max_inflight);
    let write_task = tokio::spawn(async move {
        let mut wr = BufWriter::with_capacity(64 * 1024, wr);
        while let Some((kind, corr, payload)) = rx.recv().await {
            if writer.write(&mut wr, kind, corr, &payload).await.is_err() {
                return;
            }
            if rx.is_empty() && wr.flush().await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let inflight = Arc::new(Semaphore::new(cfg.max_inflight));
    let tasks = TaskTracker::new();
    let result = loop {
        let frame = tokio::select! {
            f = reader.read(&mut rd) => f,
            _ = stop.cancelled() => break Ok(()),
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break Ok(()),
            Err(e) => break Err(e),
        };
        if frame.kind == KIND_PING {
            let _ = tx.send((RESP_OK, frame.correlation, Bytes::new())).await;
            continue;
        }
        // Past the in-flight bound the link stops reading: TCP pushes back on the peer.
        let Ok(permit) = Arc::clone(&inflight).acquire_owned().await else {
            break Ok(());
        };
        let rest = handler
            .handle(Arc::clone(&from), frame.kind, frame.payload)
            .await;
        let tx = tx.clone();
        tasks.spawn(async move {
            let answer = rest.await;
            let msg = match answer {
                Ok(b) => (RESP_OK, frame.correlation, b),
                Err(text) => (RESP_ERR, frame.correlation, Bytes::from(text.into_bytes())),
            };
            let _ = tx.send(msg).await;
            drop(permit);
        });
    };
    tasks.close();
    tasks.wait().await;
    drop(tx);
    let _ = write_task.await;
    if let Err(e) = &result {
        tracing::warn!(%peer, node = %from, error = %e, "internal link connection failed");
    }
    result
}

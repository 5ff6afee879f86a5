//! Starting and stopping a node: data dir lock, listeners, recovery, background tasks,
//! and the graceful shutdown order (stop accepting, finish requests, fsync, exit).

use std::fs::File;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use swarmmq_types::ErrorCode;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::http::{self, HttpState};
use crate::keyring::KeyStore;
use crate::metrics::Metrics;
use crate::session;
use crate::settings::NodeSettings;
use crate::tls::{self, HandshakeFailures, TlsState};

/// Period of the node's housekeeping: group sessions, dead-letter sweeps, lag gauges.
const TICK: std::time::Duration = std::time::Duration::from_millis(250);

pub struct Node;

/// A started node. Dropping it does not stop it; call [`RunningNode::shutdown`] and
/// [`RunningNode::wait`].
pub struct RunningNode {
    client_addr: SocketAddr,
    http_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ServerError>>,
    tls: Option<Arc<TlsState>>,
}

impl RunningNode {
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Begins a graceful shutdown.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Reads the TLS certificate, key and CA files again (what SIGHUP does): new
    /// handshakes use them, established connections are untouched. False if TLS is
    /// off or the files are unusable (the previous ones stay; the reason is logged).
    pub fn reload_tls(&self) -> bool {
        match &self.tls {
            Some(tls) => tls.reload("reload request"),
            None => {
                tracing::info!("TLS reload requested, but TLS is not configured");
                false
            }
        }
    }

    /// Waits until the node has stopped; every acknowledged write is durable by then.
    pub async fn wait(self) -> Result<(), ServerError> {
        self.task.await.map_err(|e| ServerError::DataDir {
            path: "<node>".into(),
            reason: format!("node task failed: {e}"),
        })?
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

fn lock_data_dir(settings: &NodeSettings) -> Result<File, ServerError> {
    let dir = &settings.data_dir;
    std::fs::create_dir_all(dir).map_err(ServerError::io(dir))?;
    let path = dir.join("LOCK");
    let file = File::create(&path).map_err(ServerError::io(&path))?;
    file.try_lock().map_err(|_| ServerError::DataDir {
        path: dir.clone(),
        reason: "in use by another swarmmq process (LOCK is held)".into(),
    })?;
    Ok(file)
}

impl Node {
    /// Locks the data dir, binds HTTP (answering 503 while recovering), recovers every
    /// partition, then binds the client listener and serves until shut down.
    pub async fn start(settings: NodeSettings) -> Result<RunningNode, ServerError> {
        let lock = lock_data_dir(&settings)?;
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let broker_cell: Arc<OnceLock<Arc<Broker>>> = Arc::new(OnceLock::new());
        // Unusable TLS files stop the start before anything listens.
        let tls = match &settings.tls {
            Some(files) => Some(Arc::new(TlsState::load(files.clone())?)),
            None => None,
        };

        let http_listener = bind(settings.http_addr).await?;
        let http_addr = http_listener
            .local_addr()
            .map_err(|source| ServerError::Bind {
                addr: settings.http_addr,
                source,
            })?;
        let app = http::router(HttpState {
            broker: Arc::clone(&broker_cell),
            metrics: Arc::clone(&metrics),
            node_id: settings.node_id.to_string(),
            stopping: shutdown.clone(),
        });
        let http_stop = CancellationToken::new();
        let http_task = tokio::spawn({
            let stop = http_stop.clone();
            let tls = tls.clone();
            async move {
                match tls {
                    Some(tls) => tls::https::serve(http_listener, app, tls, stop).await,
                    None => {
                        let _ = axum::serve(http_listener, app)
                            .with_graceful_shutdown(stop.cancelled_owned())
                            .await;
                    }
                }
            }
        });

        let client_listener = bind(settings.client_addr).await?;
        let mut client_addr = client_listener
            .local_addr()
            .map_err(|source| ServerError::Bind {
                addr: settings.client_addr,
                source,
            })?;
        let keys = KeyStore::open(settings.master_key.as_ref(), &settings.data_dir)?;
        // The advertised address is the bound one (so port 0 in tests shows the real port).
        let mut settings = settings;
        settings.client_addr = client_addr;
        let broker = Arc::new(Broker::open(&settings, keys, Arc::clone(&metrics)).await?);
        let cluster_stop = CancellationToken::new();
        if settings.cluster.is_some() {
            crate::cluster::start(&broker, &settings, http_addr, cluster_stop.clone()).await?;
        }
        let _ = broker_cell.set(Arc::clone(&broker));
        client_addr = broker.client_addr;
        tracing::info!(node_id = %settings.node_id, client = %client_addr, http = %http_addr, data_dir = %settings.data_dir.display(), tls = tls.is_some(), mutual_tls = tls.as_ref().is_some_and(|t| t.mutual()), "node ready");
        if let Some(state) = &tls {
            tokio::spawn(tls::watch(
                Arc::clone(state),
                tls::RELOAD_POLL,
                shutdown.clone(),
            ));
        }

        if let Some(rx) = broker.dlq_rx.lock().ok().and_then(|mut r| r.take()) {
            tokio::spawn(crate::dlq::run(Arc::downgrade(&broker), rx));
        }
        let retention_every = settings.retention_check_interval;
        let grace = settings.shutdown_grace;
        let token = shutdown.clone();
        let session_tls = tls.clone();
        let task = tokio::spawn(async move {
            let sessions = TaskTracker::new();
            let retention = tokio::spawn({
                let broker = Arc::clone(&broker);
                let stop = token.clone();
                async move {
                    let mut tick = tokio::time::interval(retention_every);
                    tick.tick().await;
                    loop {
                        tokio::select! {
                            _ = tick.tick() => broker.run_retention().await,
                            _ = stop.cancelled() => return,
                        }
                    }
                }
            });
            let key_watch =
                tokio::spawn(crate::auth::watch(Arc::clone(&broker.auth), token.clone()));
            let ticker = tokio::spawn({
                let broker = Arc::clone(&broker);
                let stop = token.clone();
                async move {
                    let mut tick = tokio::time::interval(TICK);
                    loop {
                        tokio::select! {
                            _ = tick.tick() => broker.tick(),
                            _ = stop.cancelled() => return,
                        }
                    }
                }
            });
            accept_loop(client_listener, &broker, session_tls, &sessions, &token).await;
            tracing::info!("shutting down: finishing in-flight requests");
            sessions.close();
            if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "some connections did not finish in time"
                );
            }
            let _ = retention.await;
            let _ = ticker.await;
            let _ = key_watch.await;
            if let Some(rt) = broker.cluster() {
                cluster_stop.cancel();
                rt.shutdown().await;
            }
            broker.shutdown().await;
            http_stop.cancel();
            let _ = http_task.await;
            drop(lock);
            tracing::info!("node stopped; all acknowledged writes are durable");
            Ok(())
        });
        Ok(RunningNode {
            client_addr,
            http_addr,
            shutdown,
            task,
            tls,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    broker: &Arc<Broker>,
    tls: Option<Arc<TlsState>>,
    sessions: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(
        broker.limits.max_connections as usize,
    ));
    // Telling a TLS client it is over the limit costs a handshake: bound those too.
    let refusals = Arc::new(tokio::sync::Semaphore::new(MAX_TLS_REFUSALS));
    let failures = Arc::new(HandshakeFailures::new("client"));
    let notice: Arc<[u8]> = tls::protocol_notice().into();
    let next_producer = AtomicU64::new(1);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            if let Some(suppressed) = broker.guard.protocol_log.allow() {
                tracing::warn!(%peer, limit = broker.limits.max_connections, suppressed, "connection refused: too many connections");
            }
            broker.metrics.error(ErrorCode::TooManyConnections);
            let limit = broker.limits.max_connections;
            match &tls {
                None => {
                    sessions.spawn(refuse(stream, limit));
                }
                Some(tls) => {
                    if let Ok(slot) = Arc::clone(&refusals).try_acquire_owned() {
                        let (acceptor, failures) = (tls.client_acceptor(), Arc::clone(&failures));
                        let notice = Arc::clone(&notice);
                        sessions.spawn(async move {
                            if let Some(s) =
                                tls::handshake(acceptor, stream, peer, &failures, &notice).await
                            {
                                refuse(s, limit).await;
                            }
                            drop(slot);
                        });
                    }
                }
            }
            continue;
        };
        let broker = Arc::clone(broker);
        let token = shutdown.clone();
        let producer_id = next_producer.fetch_add(1, Ordering::Relaxed);
        let tls = tls.as_ref().map(|t| {
            (
                t.client_acceptor(),
                Arc::clone(&failures),
                Arc::clone(&notice),
            )
        });
        sessions.spawn(async move {
            broker.metrics.open_connections.inc();
            match tls {
                None => {
                    session::serve(stream, peer, None, Arc::clone(&broker), token, producer_id)
                        .await
                }
                Some((acceptor, failures, notice)) => {
                    let handshake = tokio::select! {
                        s = tls::handshake(acceptor, stream, peer, &failures, &notice) => s,
                        _ = token.cancelled() => None,
                    };
                    if let Some(s) = handshake {
                        let identity = tls::client_identity(&s);
                        session::serve(s, peer, identity, Arc::clone(&broker), token, producer_id)
                            .await;
                    }
                }
            }
            broker.metrics.open_connections.dec();
            drop(permit);
        });
    }
}

/// Most connections over the limit being told so over TLS at once; beyond it they are
/// closed without an answer.
const MAX_TLS_REFUSALS: usize = 64;

/// Tells a client over the connection limit why, then closes.
async fn refuse<S: tokio::io::AsyncWrite + Unpin>(mut stream: S, limit: u32) {
    use tokio::io::AsyncWriteExt;
    let mut frame = bytes::BytesMut::new();
    let resp = swarmmq_protocol::ErrorResponse {
        code: ErrorCode::TooManyConnections,
        message: format!("the node serves at most {limit} connections"),
    };
    if swarmmq_protocol::encode_error(0, 0, &resp, &swarmmq_types::Limits::DEFAULT, &mut frame)
        .is_ok()
    {
        let _ = stream.write_all(&frame).await;
    }
    let _ = stream.shutdown().await;
}

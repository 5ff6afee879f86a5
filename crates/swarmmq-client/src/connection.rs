//! One multiplexed connection to a node: any number of requests in flight, matched to
//! answers by correlation id (answers may arrive in any order).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use swarmmq_protocol::{
    AuthenticateRequest, Flags, FrameDecoder, Request, Response, decode_response,
    encode_request_flags,
};
use swarmmq_types::Limits;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::ClientError;
use crate::options::ConnectOptions;

/// Most requests one connection keeps in flight; `send` waits beyond it.
const MAX_IN_FLIGHT: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type Reply = oneshot::Sender<Result<Response, ClientError>>;

struct Shared {
    addr: String,
    pending: Mutex<HashMap<u32, Reply>>,
    closed: AtomicBool,
    close_reason: Mutex<Option<String>>,
    /// Set when the node refused this client for good (a TLS alert, a non-retriable
    /// connection-level error): what every waiter gets instead of a retriable loss.
    refused: Mutex<Option<ClientError>>,
    slots: Arc<Semaphore>,
}

impl Shared {
    fn lost(&self) -> ClientError {
        if let Some(e) = self.refused.lock().ok().and_then(|r| r.clone()) {
            return e;
        }
        let reason = self
            .close_reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "closed".to_string());
        ClientError::ConnectionLost {
            addr: self.addr.clone(),
            reason,
        }
    }

    /// Closes with an error retrying cannot fix (the same client would be refused again).
    fn refuse(&self, error: ClientError) {
        if let Ok(mut r) = self.refused.lock() {
            r.get_or_insert(error.clone());
        }
        self.close(error.to_string());
    }

    fn close(&self, reason: String) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Ok(mut r) = self.close_reason.lock() {
            r.get_or_insert(reason);
        }
        let waiting: Vec<Reply> = match self.pending.lock() {
            Ok(mut p) => p.drain().map(|(_, v)| v).collect(),
            Err(_) => Vec::new(),
        };
        for w in waiting {
            let _ = w.send(Err(self.lost()));
        }
        // Wake senders blocked on a slot so they see the closed flag.
        self.slots.close();
    }
}

/// A connection to one node. Cheap to clone; all clones share the socket.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
    tx: mpsc::Sender<BytesMut>,
    next_corr: Arc<AtomicU32>,
    limits: Limits,
}

/// The answer to one request, once it arrives.
pub struct ResponseFuture {
    rx: oneshot::Receiver<Result<Response, ClientError>>,
    _slot: tokio::sync::OwnedSemaphorePermit,
    shared: Arc<Shared>,
}

impl ResponseFuture {
    pub async fn wait(self) -> Result<Response, ClientError> {
        let lost = self.shared.lost();
        self.rx.await.unwrap_or(Err(lost))
    }
}

impl Connection {
    /// Connects to a node: an address (`host:port`) or [`ConnectOptions`] (TLS, API
    /// key). With an API key, the connection authenticates before it is returned; a
    /// refused key is [`ClientError::AuthRefused`] carrying the node's code.
    pub async fn connect(options: impl Into<ConnectOptions>) -> Result<Connection, ClientError> {
        let options = options.into();
        let conn = Connection::open(&options).await?;
        if let Some(api_key) = &options.api_key {
            let req = Request::Authenticate(AuthenticateRequest {
                api_key: api_key.clone(),
            });
            // Written before any other request can be, so everything after runs as it.
            let answer = conn.send(&req).await?.wait().await;
            match answer {
                Ok(Response::Authenticate(_)) => {}
                Ok(Response::Error(e)) => {
                    conn.close();
                    return Err(ClientError::AuthRefused {
                        addr: options.addr.clone(),
                        code: e.code,
                        message: e.message,
                    });
                }
                Ok(_) => {
                    conn.close();
                    return Err(ClientError::Protocol(
                        "unexpected answer to authenticate".into(),
                    ));
                }
                Err(e) => {
                    conn.close();
                    return Err(e);
                }
            }
        }
        Ok(conn)
    }

    async fn open(options: &ConnectOptions) -> Result<Connection, ClientError> {
        let addr = options.addr.as_str();
        let connect_err = |reason: String| ClientError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let timeout = || connect_err(format!("no answer within {CONNECT_TIMEOUT:?}"));
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
            .await
            .map_err(|_| timeout())?
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        match &options.tls {
            // Plain TCP keeps lock-free owned halves.
            None => {
                let (rd, wr) = stream.into_split();
                Ok(Self::start(addr, rd, wr))
            }
            Some(tls) => {
                let stream =
                    tokio::time::timeout_at(deadline, crate::tls::connect(tls, addr, stream))
                        .await
                        .map_err(|_| timeout())??;
                let (rd, wr) = tokio::io::split(stream);
                Ok(Self::start(addr, rd, wr))
            }
        }
    }

    fn start<R, W>(addr: &str, rd: R, wr: W) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let limits = Limits::DEFAULT;
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            refused: Mutex::new(None),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        });
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        tokio::spawn(write_loop(wr, rx, Arc::clone(&shared)));
        tokio::spawn(read_loop(rd, Arc::clone(&shared), limits.clone()));
        Connection {
            shared,
            tx,
            next_corr: Arc::new(AtomicU32::new(1)),
            limits,
        }
    }

    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Queues a request and returns its answer's future; requests are written in the
    /// order `send` is called.
    pub async fn send(&self, req: &Request) -> Result<ResponseFuture, ClientError> {
        self.send_flags(req, Flags::NONE).await
    }

    /// [`Connection::send`] with request flags: [`Flags::DIRECT`] asks the node to answer
    /// `NOT_OWNER` instead of forwarding a request for a partition it does not own.
    pub async fn send_flags(
        &self,
        req: &Request,
        flags: Flags,
    ) -> Result<ResponseFuture, ClientError> {
        if self.is_closed() {
            return Err(self.shared.lost());
        }
        let slot = Arc::clone(&self.shared.slots)
            .acquire_owned()
            .await
            .map_err(|_| self.shared.lost())?;
        let corr = self.next_corr.fetch_add(1, Ordering::Relaxed);
        let mut frame = BytesMut::new();
        encode_request_flags(corr, req, flags, &self.limits, &mut frame)
            .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        let (reply, rx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .map_err(|_| ClientError::Closed)?
            .insert(corr, reply);
        if self.tx.send(frame).await.is_err() {
            if let Ok(mut p) = self.shared.pending.lock() {
                p.remove(&corr);
            }
            return Err(self.shared.lost());
        }
        if self.is_closed() {
            // Closed meanwhile. If the waiter is still registered, it was inserted after
            // `close` drained the map and nobody will answer it. If it is gone, the read
            // loop already handed it its answer (a node may answer and close at once,
            // e.g. an auth refusal) or `close` handed it the loss: the future holds that.
            let orphaned = self
                .shared
                .pending
                .lock()
                .map(|mut p| p.remove(&corr).is_some())
                .unwrap_or(true);
            if orphaned {
                return Err(self.shared.lost());
            }
        }
        Ok(ResponseFuture {
            rx,
            _slot: slot,
            shared: Arc::clone(&self.shared),
        })
    }

    /// Sends a request and waits for its answer; an error answer becomes
    /// [`ClientError::Server`].
    pub async fn call(&self, req: &Request) -> Result<Response, ClientError> {
        match self.send(req).await?.wait().await? {
            Response::Error(e) => Err(ClientError::Server {
                code: e.code,
                message: e.message,
            }),
            other => Ok(other),
        }
    }

    /// Closes the connection; requests in flight fail with `ConnectionLost`.
    pub fn close(&self) {
        self.shared.close("closed by the client".to_string());
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    wr: W,
    mut rx: mpsc::Receiver<BytesMut>,
    shared: Arc<Shared>,
) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(first) = rx.recv().await {
        if shared.closed.load(Ordering::Acquire) {
            break;
        }
        let mut result = wr.write_all(&first).await;
        let mut n = 1;
        while result.is_ok() && n < 256 {
            match rx.try_recv() {
                Ok(next) => {
                    result = wr.write_all(&next).await;
                    n += 1;
                }
                Err(_) => break,
            }
        }
        if let Err(e) = result.and(wr.flush().await) {
            shared.close(format!("write failed: {e}"));
            break;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(mut rd: R, shared: Arc<Shared>, limits: Limits) {
    let mut decoder = FrameDecoder::new(&limits);
    let mut buf = BytesMut::with_capacity(256 * 1024);
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    let corr = frame.header.correlation_id;
                    let resp = decode_response(&frame.header, frame.body, &limits)
                        .map_err(|e| ClientError::Protocol(e.to_string()));
                    let waiter = shared.pending.lock().ok().and_then(|mut p| p.remove(&corr));
                    match waiter {
                        Some(w) => {
                            let _ = w.send(resp);
                        }
                        None => {
                            // Correlation id 0 carries connection-level errors (e.g. the
                            // node is at its connection limit).
                            if let Ok(Response::Error(e)) = resp {
                                if e.code.is_retriable() {
                                    shared.close(format!("{}: {}", e.code, e.message));
                                } else {
                                    shared.refuse(ClientError::Server {
                                        code: e.code,
                                        message: e.message,
                                    });
                                }
                                return;
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    shared.close(format!("bad frame from the node: {e}"));
                    return;
                }
            }
        }
        if buf.capacity() - buf.len() < 64 * 1024 {
            buf.reserve(256 * 1024);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) => {
                shared.close("the node closed the connection".to_string());
                return;
            }
            Ok(_) => {}
            Err(e) => {
                // A fatal TLS alert after the handshake: the node refused this client's
                // certificate (or lack of one); reconnecting would be refused again.
                let alert = match e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                {
                    Some(rustls::Error::AlertReceived(a)) => Some(*a),
                    _ => None,
                };
                if let Some(alert) = alert {
                    let hint = if alert == rustls::AlertDescription::CertificateRequired {
                        " (it requires a client certificate)"
                    } else {
                        ""
                    };
                    shared.refuse(ClientError::Tls(format!(
                        "the node at {} refused the TLS session: {e}{hint}",
                        shared.addr
                    )));
                } else {
                    shared.close(format!("read failed: {e}"));
                }
                return;
            }
        }
    }
}

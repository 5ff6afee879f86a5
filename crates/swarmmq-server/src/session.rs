//! One client connection: read frames, run requests concurrently (pipelining), write
//! answers as they complete, and stop cleanly.
//!
//! Backpressure: every decoded request holds permits for its frame's bytes (and one
//! request slot) until its answer is written; when a connection reaches its in-flight
//! limit the session stops reading the socket, and TCP pushes back on the client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use swarmmq_auth::Principal;
use swarmmq_protocol::{
    ErrorResponse, Frame, FrameDecoder, Opcode, Request, Response, decode_request, encode_error,
    encode_response,
};
use swarmmq_types::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin;
use crate::broker::Broker;
use crate::error::RequestError;
use crate::group_ops;
use crate::guard::{self, ConnLog, ConnWatch, TimedWrite};
use crate::keys;
use crate::publish;
use crate::pull;
use crate::stream::SessionStream;

mod authn;
mod routed;

const READ_CHUNK: usize = 256 * 1024;

/// An encoded answer and the permits it releases once written.
struct Outgoing {
    frame: BytesMut,
    _permits: Vec<OwnedSemaphorePermit>,
    /// The stream can no longer be trusted (fatal protocol error): close after this.
    close: bool,
}

pub(crate) struct Session {
    broker: Arc<Broker>,
    peer: std::net::SocketAddr,
    /// Subject CN of the client's verified certificate (mutual TLS).
    tls_identity: Option<String>,
    producer_id: u64,
    out: mpsc::Sender<Outgoing>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Who this connection acts as once an Authenticate succeeded (auth on).
    principal: Option<Principal>,
    /// The key store generation `principal` was checked against.
    principal_generation: u64,
    /// The key id of a principal revoked while connected, for a clear refusal.
    revoked_key: Option<String>,
    /// This connection's budget of protocol-error log lines.
    log: ConnLog,
}

pub(crate) async fn serve<S: SessionStream>(
    stream: S,
    peer: std::net::SocketAddr,
    tls_identity: Option<String>,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    producer_id: u64,
) {
    let (mut rd, wr) = stream.split_halves();
    let limits = broker.limits.clone();
    let (tx, rx) = mpsc::channel(limits.max_inflight_requests_per_connection as usize);
    let stalled = Arc::new(AtomicBool::new(false));
    let wr = TimedWrite::new(wr, broker.guard.frame_timeout, Arc::clone(&stalled));
    let writer = tokio::spawn(write_loop(wr, rx));
    // Clamped: a semaphore panics past MAX_PERMITS (2^61), and a config may say more.
    let bytes_budget = Arc::new(Semaphore::new(
        usize::try_from(limits.max_inflight_bytes_per_connection)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS),
    ));
    let request_slots = Arc::new(Semaphore::new(
        limits.max_inflight_requests_per_connection as usize,
    ));
    let mut session = Session {
        broker,
        peer,
        tls_identity,
        producer_id,
        out: tx,
        tasks: TaskTracker::new(),
        shutdown: shutdown.clone(),
        principal: None,
        principal_generation: 0,
        revoked_key: None,
        log: ConnLog::default(),
    };
    if let Some(identity) = &session.tls_identity {
        tracing::debug!(peer = %session.peer, identity, "client certificate verified");
    }
    session.adopt_certificate_identity();
    let mut decoder = FrameDecoder::new(&limits);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // The peer closed or broke its side (no lingering close needed then).
    let mut peer_done = false;
    let mut watch = ConnWatch::new(&session.broker.guard);
    'conn: loop {
        let mut framed = 0;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    framed += 1;
                    let size = frame.body.len() as u32 + swarmmq_protocol::HEADER_LEN as u32;
                    let permits = tokio::select! {
                        p = acquire(&bytes_budget, &request_slots, size) => p,
                        _ = shutdown.cancelled() => break 'conn,
                    };
                    let Some(permits) = permits else { break 'conn };
                    if !session.handle(frame, permits).await {
                        break 'conn;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    if let Some(suppressed) = session.log.allow(&session.broker.guard.protocol_log)
                    {
                        tracing::warn!(peer = %session.peer, code = %e.code(), error = %e, suppressed, "bad frame; closing the connection");
                    }
                    session.broker.metrics.error(e.code());
                    session
                        .send_error(
                            0,
                            None,
                            RequestError::new(e.code(), e.to_string()),
                            Vec::new(),
                            true,
                        )
                        .await;
                    break 'conn;
                }
            }
        }
        watch.framed(framed, !buf.is_empty());
        if writer.is_finished() {
            // The peer stopped reading (or the socket failed): nobody gets answers.
            break;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            n = rd.read_buf(&mut buf) => match n {
                Ok(0) => { peer_done = true; break }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(peer = %session.peer, error = %e, "connection read failed");
                    peer_done = true;
                    break;
                }
            },
            _ = watch.fired() => {
                let in_flight = request_slots.available_permits()
                    < limits.max_inflight_requests_per_connection as usize;
                if let Some(expiry) = watch.check(in_flight) {
                    let (broker, peer) = (&session.broker, session.peer);
                    if let Some(err) = guard::on_expiry(broker, peer, &session.log, expiry) {
                        session.send_error(0, None, err, Vec::new(), true).await;
                    }
                    break;
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
    let write_stalled = stalled.load(Ordering::Relaxed);
    guard::on_close(&session.broker, session.peer, &session.log, write_stalled);
    session.tasks.close();
    session.tasks.wait().await;
    drop(session);
    let _ = writer.await;
    if !peer_done && !shutdown.is_cancelled() {
        drain_before_close(&mut rd).await;
    }
}

/// Most time and bytes spent reading from a peer the node is closing on.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);
const LINGER_BYTES: usize = 1 << 20;

/// After the node closed its side on a fatal error, reads and discards what the peer
/// still sends for a moment: closing a socket with unread bytes makes the kernel send a
/// reset, and a reset can destroy the error answer before the peer has read it.
async fn drain_before_close<R: tokio::io::AsyncRead + Unpin>(rd: &mut R) {
    let mut sink = [0u8; 16 * 1024];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER, async {
        while left > 0 {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

async fn acquire(
    bytes: &Arc<Semaphore>,
    slots: &Arc<Semaphore>,
    size: u32,
) -> Option<Vec<OwnedSemaphorePermit>> {
    let b = Arc::clone(bytes).acquire_many_owned(size).await.ok()?;
    let s = Arc::clone(slots).acquire_owned().await.ok()?;
    Some(vec![b, s])
}

impl Session {
    /// Starts one request. Returns false when the connection must close.
    async fn handle(&mut self, frame: Frame, permits: Vec<OwnedSemaphorePermit>) -> bool {
        let corr = frame.header.correlation_id;
        let opcode = frame.header.opcode;
        let direct = frame.header.flags.contains(swarmmq_protocol::Flags::DIRECT);
        let request = match decode_request(&frame.header, frame.body, &self.broker.limits) {
            Ok(r) => r,
            Err(e) => {
                let fatal = e.is_fatal();
                if let Some(suppressed) = self.log.allow(&self.broker.guard.protocol_log) {
                    tracing::warn!(peer = %self.peer, opcode, code = %e.code(), error = %e, suppressed, "bad request");
                }
                self.broker.metrics.error(e.code());
                self.send_error(
                    corr,
                    Some(opcode),
                    RequestError::new(e.code(), e.to_string()),
                    permits,
                    fatal,
                )
                .await;
                return !fatal;
            }
        };
        let op = request.opcode();
        // In line, before the next frame is read: requests pipelined behind an
        // Authenticate, or after a revocation, are judged by the state it leaves.
        if self.broker.auth.enabled {
            self.recheck_principal();
        }
        if let Err(e) =
            crate::auth::authorize(&request, self.principal.as_ref(), self.broker.auth.enabled)
        {
            return self.refuse_request(corr, op, e, permits).await;
        }
        if let Some(rt) = self.broker.cluster()
            && routed::is_routed(&request)
        {
            self.handle_routed(rt, corr, op, request, direct, permits)
                .await;
            return true;
        }
        match request {
            Request::Authenticate(req) => {
                return self.authenticate(corr, op, req, permits).await;
            }
            Request::Publish(req) => {
                // Prepared in line: this is what keeps a producer's pipelined batches in order.
                match publish::prepare(&self.broker, req, self.producer_id).await {
                    Ok(pending) => {
                        let broker = Arc::clone(&self.broker);
                        let out = self.out.clone();
                        self.tasks.spawn(async move {
                            let result =
                                pending.finish(&broker.metrics).await.map(Response::Publish);
                            respond(&broker, &out, corr, op, result, permits).await;
                        });
                    }
                    Err(e) => {
                        respond(&self.broker, &self.out, corr, op, Err(e), permits).await;
                    }
                }
            }
            Request::Pull(req) => {
                let broker = Arc::clone(&self.broker);
                let out = self.out.clone();
                let cancel = self.shutdown.clone();
                self.tasks.spawn(async move {
                    match pull::pull(&broker, req, corr, &cancel).await {
                        Ok(frame) => {
                            let _ = out
                                .send(Outgoing {
                                    frame,
                                    _permits: permits,
                                    close: false,
                                })
                                .await;
                        }
                        Err(e) => respond(&broker, &out, corr, op, Err(e), permits).await,
                    }
                });
            }
            other => {
                let broker = Arc::clone(&self.broker);
                let out = self.out.clone();
                self.tasks.spawn(async move {
                    let result = run_small(&broker, other).await;
                    respond(&broker, &out, corr, op, result, permits).await;
                });
            }
        }
        true
    }

    async fn send_error(
        &self,
        corr: u32,
        opcode: Option<u8>,
        err: RequestError,
        permits: Vec<OwnedSemaphorePermit>,
        close: bool,
    ) {
        let mut frame = BytesMut::new();
        let resp = ErrorResponse {
            code: err.code,
            message: err.message,
        };
        if encode_error(
            corr,
            opcode.unwrap_or(0),
            &resp,
            &self.broker.limits,
            &mut frame,
        )
        .is_ok()
        {
            let _ = self
                .out
                .send(Outgoing {
                    frame,
                    _permits: permits,
                    close,
                })
                .await;
        }
    }
}

pub(crate) async fn run_small(broker: &Broker, req: Request) -> Result<Response, RequestError> {
    Ok(match req {
        Request::Ack(r) => Response::Ack(group_ops::ack(broker, r).await?),
        Request::Nack(r) => Response::Nack(group_ops::nack(broker, r).await?),
        Request::ExtendLease(r) => Response::ExtendLease(group_ops::extend(broker, r).await?),
        Request::JoinGroup(r) => Response::JoinGroup(group_ops::join(broker, r).await?),
        Request::Heartbeat(r) => Response::Heartbeat(group_ops::heartbeat(broker, r).await?),
        Request::LeaveGroup(r) => {
            group_ops::leave(broker, r).await?;
            Response::LeaveGroup
        }
        Request::CommitOffsets(r) => {
            group_ops::commit_offsets(broker, r).await?;
            Response::CommitOffsets
        }
        Request::Seek(r) => Response::Seek(group_ops::seek(broker, r).await?),
        Request::ListGroups => Response::ListGroups(group_ops::list(broker)?),
        Request::DescribeGroup(r) => Response::DescribeGroup(group_ops::describe(broker, r)?),
        Request::CreateDestination(r) => {
            Response::CreateDestination(admin::create(broker, r).await?)
        }
        Request::DeleteDestination { name } => {
            admin::delete(broker, &name).await?;
            Response::DeleteDestination
        }
        Request::ListDestinations => Response::ListDestinations(admin::list(broker)?),
        Request::DescribeDestination { name } => {
            Response::DescribeDestination(admin::describe(broker, &name)?)
        }
        Request::Health => Response::Health(admin::health(broker)),
        Request::Metadata => Response::Metadata(admin::metadata(broker)?),
        Request::ClusterStatus => Response::ClusterStatus {
            json: admin::cluster_status(broker)?,
        },
        Request::KeysStatus => Response::KeysStatus(keys::status(broker).await?),
        Request::KeysRotate => Response::KeysRotate(keys::rotate(broker).await?),
        Request::KeysRetire { id } => {
            keys::retire(broker, id).await?;
            Response::KeysRetire
        }
        Request::Publish(_) | Request::Pull(_) | Request::Authenticate(_) => {
            return Err(RequestError::new(
                ErrorCode::Internal,
                "request routed to the wrong handler",
            ));
        }
    })
}

async fn respond(
    broker: &Broker,
    out: &mpsc::Sender<Outgoing>,
    corr: u32,
    op: Opcode,
    result: Result<Response, RequestError>,
    permits: Vec<OwnedSemaphorePermit>,
) {
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            broker.metrics.error(e.code);
            if let Some(suppressed) = broker.guard.request_log.allow() {
                tracing::info!(opcode = ?op, code = %e.code, error = %e.message, suppressed, "request failed");
            }
            Response::Error(ErrorResponse {
                code: e.code,
                message: e.message,
            })
        }
    };
    let mut frame = BytesMut::new();
    if let Err(e) = encode_response(corr, op, &resp, &broker.limits, &mut frame) {
        tracing::error!(opcode = ?op, error = %e, "could not encode an answer");
        frame.clear();
        let fallback = Response::Error(ErrorResponse {
            code: ErrorCode::Internal,
            message: format!("could not encode the answer: {e}"),
        });
        if encode_response(corr, op, &fallback, &broker.limits, &mut frame).is_err() {
            return;
        }
    }
    let _ = out
        .send(Outgoing {
            frame,
            _permits: permits,
            close: false,
        })
        .await;
}

async fn write_loop<W: AsyncWrite + Unpin>(wr: TimedWrite<W>, mut rx: mpsc::Receiver<Outgoing>) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let mut done = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut close = first.close;
        if wr.write_all(&first.frame).await.is_err() {
            return;
        }
        done.push(first);
        // Coalesce whatever else is ready into the same flush.
        while !close && done.len() < 256 {
            match rx.try_recv() {
                Ok(next) => {
                    close = next.close;
                    if wr.write_all(&next.frame).await.is_err() {
                        return;
                    }
                    done.push(next);
                }
                Err(_) => break,
            }
        }
        if wr.flush().await.is_err() {
            return;
        }
        // Permits go back only now that the bytes are on the socket.
        done.clear();
        if close {
            let _ = wr.shutdown().await;
            return;
        }
    }
    let _ = wr.shutdown().await;
}

//! The batching producer.
//!
//! `send` puts a message into its destination's open batch and returns a future of its
//! receipt. A batch goes out when it is full (`max_batch_bytes`/`max_batch_messages`)
//! or `linger` after its first message, and up to `max_in_flight` batches are on the
//! wire at once. Receipts resolve strictly in send order. When the connection drops or
//! the node answers a retriable error, every unanswered batch is sent again, in the
//! original order, over a new connection, so what is acknowledged keeps the order it
//! was sent in (a batch the node had already stored may be stored twice: delivery is
//! at least once; message ids let the node drop such duplicates).
//!
//! With [`ProducerConfig::smart`] the producer routes by itself (see `routing`): each
//! batch is split by partition and every part goes straight to the partition's owner
//! with the DIRECT flag; receipts then resolve in send order per partition. A part the
//! owner refuses (`NOT_OWNER`, `UNAVAILABLE`, an unknown partition) or cannot take (its
//! connection failed) is routed again after a metadata refresh, and after a second such
//! failure it goes through the bootstrap connection, which forwards it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use swarmmq_protocol::{Acks, Flags, Header, PublishMessage, PublishRequest, Request, Response};
use swarmmq_types::{MessageId, PartitionId, Priority};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::connection::Connection;
use crate::e2e::{E2eKey, seal_message};
use crate::error::ClientError;
use crate::options::ConnectOptions;
use crate::routing::{Route, Router, is_route_error, split_by_partition};

#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// How long a batch waits for more messages after its first.
    pub linger: Duration,
    pub max_batch_bytes: usize,
    pub max_batch_messages: usize,
    /// Batches on the wire at once.
    pub max_in_flight: usize,
    /// Bytes of messages accepted but not yet acknowledged; `send` waits beyond it.
    pub max_buffered_bytes: usize,
    pub acks: Acks,
    /// How long to keep reconnecting and resending before failing the waiting messages.
    pub retry_timeout: Duration,
    /// Give every message without an id a fresh UUIDv7 (enables dedup on the node).
    pub assign_ids: bool,
    /// Seal every payload with this end-to-end key before it leaves the process (the
    /// node stores and delivers ciphertext; see [`crate::E2eKey`]). Messages then always
    /// get an id, whatever `assign_ids` says: the id is bound to the ciphertext.
    pub e2e_key: Option<Arc<E2eKey>>,
    /// Smart client: fetch the cluster's metadata and send each partition's messages
    /// straight to its owner node (at most 16 extra connections, same TLS and API key).
    /// Off: everything goes to the one node connected to, which forwards.
    pub smart: bool,
    /// A smart producer refetches metadata at least this often, besides on routing
    /// errors (a destination re-created with more partitions gives no error).
    pub metadata_max_age: Duration,
}

impl ProducerConfig {
    /// Turns smart routing (the `smart` field) on or off.
    pub fn smart(mut self, on: bool) -> Self {
        self.smart = on;
        self
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger: Duration::from_millis(1),
            max_batch_bytes: 256 * 1024,
            max_batch_messages: 10_000,
            max_in_flight: 16,
            max_buffered_bytes: 64 * 1024 * 1024,
            acks: Acks::All,
            retry_timeout: Duration::from_secs(30),
            assign_ids: true,
            e2e_key: None,
            smart: false,
            metadata_max_age: Duration::from_secs(30),
        }
    }
}

/// A message to publish.
#[derive(Clone, Debug)]
pub struct Message {
    pub id: Option<MessageId>,
    pub key: Option<Bytes>,
    pub headers: Vec<Header>,
    pub priority: Priority,
    pub deliver_at_ms: Option<i64>,
    pub ttl_ms: Option<u64>,
    pub payload: Bytes,
}

impl Message {
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Message {
            id: None,
            key: None,
            headers: Vec::new(),
            priority: Priority::DEFAULT,
            deliver_at_ms: None,
            ttl_ms: None,
            payload: payload.into(),
        }
    }

    pub fn with_id(mut self, id: MessageId) -> Self {
        self.id = Some(id);
        self
    }

    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Not delivered before `delay` from now.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        let at = swarmmq_types::now_ms().saturating_add(delay.as_millis() as i64);
        self.deliver_at_ms = Some(at);
        self
    }

    /// Never delivered after `ttl` from publish.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl_ms = Some(ttl.as_millis() as u64);
        self
    }

    fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 6)
            .sum();
        self.payload.len() + self.key.as_ref().map_or(0, Bytes::len) + headers + 64
    }
}

/// Where a message was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub id: Option<MessageId>,
    pub partition: PartitionId,
    pub offset: u64,
    /// The node had this id already (dedup); the offset is the original's.
    pub duplicate: bool,
}

/// Resolves to a message's [`Receipt`] once the node has it durably.
pub struct ReceiptFuture(oneshot::Receiver<Result<Receipt, ClientError>>);

impl Future for ReceiptFuture {
    type Output = Result<Receipt, ClientError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready(r),
            Poll::Ready(Err(_)) => Poll::Ready(Err(ClientError::Closed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

struct Waiter {
    reply: oneshot::Sender<Result<Receipt, ClientError>>,
    id: Option<MessageId>,
    _permit: OwnedSemaphorePermit,
}

// Send is the hot path and Flush is rare; boxing the message would cost an allocation
// per message to shrink a variant almost never built.
#[allow(clippy::large_enum_variant)]
enum Command {
    Send {
        destination: String,
        message: PublishMessage,
        size: usize,
        waiter: Waiter,
    },
    Flush(oneshot::Sender<Result<(), ClientError>>),
}

pub struct Producer {
    tx: mpsc::Sender<Command>,
    budget: Arc<Semaphore>,
    config: ProducerConfig,
    task: JoinHandle<()>,
}

impl Producer {
    /// Connects to a node (`host:port` or [`ConnectOptions`]); fails at once if it cannot
    /// be reached or refuses the API key. Reconnects use the same options.
    pub async fn connect(
        options: impl Into<ConnectOptions>,
        config: ProducerConfig,
    ) -> Result<Producer, ClientError> {
        let options = options.into();
        if config.max_in_flight == 0
            || config.max_batch_messages == 0
            || config.max_batch_bytes == 0
        {
            return Err(ClientError::InvalidArgument(
                "max_in_flight, max_batch_messages and max_batch_bytes must be at least 1".into(),
            ));
        }
        let conn = Connection::connect(&options).await?;
        let router = if config.smart {
            let mut router = Router::new(options.clone(), config.metadata_max_age);
            router.refresh(&conn).await;
            Some(router)
        } else {
            None
        };
        let (tx, rx) = mpsc::channel(1024);
        // Clamped: a semaphore panics past MAX_PERMITS (2^61), and a config may say more.
        let budget = Arc::new(Semaphore::new(
            config.max_buffered_bytes.clamp(1, Semaphore::MAX_PERMITS),
        ));
        let pipeline = Pipeline {
            options,
            config: config.clone(),
            conn: Some(conn),
            open: HashMap::new(),
            ready: VecDeque::new(),
            in_flight: VecDeque::new(),
            flushers: Vec::new(),
            failing_since: None,
            resume_at: None,
            failures: 0,
            router,
        };
        let task = tokio::spawn(pipeline.run(rx));
        Ok(Producer {
            tx,
            budget,
            config,
            task,
        })
    }

    /// Adds a message to its destination's batch; waits while `max_buffered_bytes` are
    /// outstanding. The returned future resolves when the node has the message durably.
    pub async fn send(
        &self,
        destination: &str,
        mut message: Message,
    ) -> Result<ReceiptFuture, ClientError> {
        let e2e = self.config.e2e_key.as_deref();
        if (self.config.assign_ids || e2e.is_some()) && message.id.is_none() {
            message.id = Some(MessageId::new_v7());
        }
        // Sealing adds the envelope and the marker header.
        let size = message.size() + if e2e.is_some() { 128 } else { 0 };
        let permits =
            u32::try_from(size.min(self.config.max_buffered_bytes.max(1))).unwrap_or(u32::MAX);
        let permit = Arc::clone(&self.budget)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| ClientError::Closed)?;
        let (reply, rx) = oneshot::channel();
        let waiter = Waiter {
            reply,
            id: message.id.clone(),
            _permit: permit,
        };
        let mut message = PublishMessage {
            id: message.id,
            key: message.key,
            headers: message.headers,
            priority: message.priority.get(),
            deliver_at_ms: message.deliver_at_ms,
            ttl_ms: message.ttl_ms,
            payload: message.payload,
        };
        if let Some(key) = e2e {
            seal_message(key, &mut message)?;
        }
        self.tx
            .send(Command::Send {
                destination: destination.to_string(),
                message,
                size,
                waiter,
            })
            .await
            .map_err(|_| ClientError::Closed)?;
        Ok(ReceiptFuture(rx))
    }

    /// Sends every open batch now and waits until all messages sent so far are answered.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::Flush(done))
            .await
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Flushes, then stops the producer.
    pub async fn close(self) -> Result<(), ClientError> {
        let flushed = self.flush().await;
        drop(self.tx);
        let _ = self.task.await;
        flushed
    }
}

struct OpenBatch {
    messages: Vec<PublishMessage>,
    waiters: Vec<Waiter>,
    bytes: usize,
    deadline: Instant,
}

struct Batch {
    request: Request,
    waiters: Vec<Waiter>,
    target: Target,
}

/// Where a batch goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// As it is, through the bootstrap connection, no flags: every batch of a plain
    /// producer, and a smart producer's fallback.
    Bootstrap,
    /// A smart producer's batch not yet split by partition; `attempt` counts direct
    /// sends of its messages that failed on routing.
    Unrouted { attempt: u8 },
    /// One partition's part, sent with DIRECT to the partition's owner.
    Direct { partition: PartitionId, attempt: u8 },
}

/// Direct sends of a message that may fail on routing before it goes the forwarding way.
const DIRECT_ATTEMPTS: u8 = 2;

struct InFlight {
    batch: Batch,
    answer: Pin<Box<dyn Future<Output = Result<Response, ClientError>> + Send>>,
    /// The owner address a direct send went to; `None`: the bootstrap connection.
    via: Option<String>,
}

/// What the smart dispatcher did with the front batch.
enum Step {
    /// Sent it or put something back in the queue: look at the front again.
    Again,
    /// It must wait for answers first.
    Wait,
    /// It goes through the bootstrap connection.
    Bootstrap,
}

struct Pipeline {
    options: ConnectOptions,
    config: ProducerConfig,
    conn: Option<Connection>,
    open: HashMap<String, OpenBatch>,
    ready: VecDeque<Batch>,
    in_flight: VecDeque<InFlight>,
    flushers: Vec<oneshot::Sender<Result<(), ClientError>>>,
    /// When the current run of connection failures began (for `retry_timeout`).
    failing_since: Option<Instant>,
    /// No sending before this (backoff after a failure).
    resume_at: Option<Instant>,
    failures: u32,
    /// Smart routing state; `None`: a plain producer.
    router: Option<Router>,
}

async fn front_answer(in_flight: &mut VecDeque<InFlight>) -> Result<Response, ClientError> {
    match in_flight.front_mut() {
        Some(f) => f.answer.as_mut().await,
        None => std::future::pending().await,
    }
}

impl Pipeline {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut accepting = true;
        loop {
            self.dispatch().await;
            let idle = self.open.is_empty() && self.ready.is_empty() && self.in_flight.is_empty();
            if idle {
                for f in self.flushers.drain(..) {
                    let _ = f.send(Ok(()));
                }
                if !accepting {
                    if let Some(r) = self.router.as_mut() {
                        r.close();
                    }
                    return;
                }
            }
            let linger_until = self.open.values().map(|b| b.deadline).min();
            let resume_at = self.resume_at;
            tokio::select! {
                cmd = rx.recv(), if accepting => {
                    accepting = self.on_command(cmd);
                    if self.config.linger.is_zero() {
                        // Zero linger: take what is queued already, then send it now. A
                        // timer would add up to 2 ms (tokio timers tick in whole ms).
                        let mut taken = 0;
                        while accepting && taken < self.config.max_batch_messages {
                            match rx.try_recv() {
                                Ok(cmd) => accepting = self.on_command(Some(cmd)),
                                Err(mpsc::error::TryRecvError::Empty) => break,
                                Err(mpsc::error::TryRecvError::Disconnected) => {
                                    accepting = self.on_command(None)
                                }
                            }
                            taken += 1;
                        }
                        self.seal_all();
                    }
                }
                _ = tokio::time::sleep_until(linger_until.unwrap_or_else(Instant::now)), if linger_until.is_some() => {
                    let now = Instant::now();
                    let due: Vec<String> = self.open.iter().filter(|(_, b)| b.deadline <= now).map(|(d, _)| d.clone()).collect();
                    for d in due {
                        self.seal(&d);
                    }
                }
                answer = front_answer(&mut self.in_flight), if !self.in_flight.is_empty() => {
                    self.on_answer(answer);
                }
                _ = tokio::time::sleep_until(resume_at.unwrap_or_else(Instant::now)), if resume_at.is_some() => {
                    self.resume_at = None;
                }
            }
        }
    }

    /// Applies one command from the handles; returns whether more may come.
    fn on_command(&mut self, cmd: Option<Command>) -> bool {
        match cmd {
            Some(Command::Send {
                destination,
                message,
                size,
                waiter,
            }) => self.add(destination, message, size, waiter),
            Some(Command::Flush(done)) => {
                self.seal_all();
                self.flushers.push(done);
            }
            None => {
                self.seal_all();
                return false;
            }
        }
        true
    }

    fn add(&mut self, destination: String, message: PublishMessage, size: usize, waiter: Waiter) {
        let linger = self.config.linger;
        let batch = self
            .open
            .entry(destination.clone())
            .or_insert_with(|| OpenBatch {
                messages: Vec::new(),
                waiters: Vec::new(),
                bytes: 0,
                deadline: Instant::now() + linger,
            });
        batch.messages.push(message);
        batch.waiters.push(waiter);
        batch.bytes += size;
        if batch.bytes >= self.config.max_batch_bytes
            || batch.messages.len() >= self.config.max_batch_messages
        {
            self.seal(&destination);
        }
    }

    fn seal(&mut self, destination: &str) {
        if let Some(b) = self.open.remove(destination) {
            self.ready.push_back(Batch {
                request: Request::Publish(PublishRequest {
                    destination: destination.to_string(),
                    acks: self.config.acks,
                    partition: None,
                    messages: b.messages,
                }),
                waiters: b.waiters,
                target: if self.router.is_some() {
                    Target::Unrouted { attempt: 0 }
                } else {
                    Target::Bootstrap
                },
            });
        }
    }

    fn seal_all(&mut self) {
        let all: Vec<String> = self.open.keys().cloned().collect();
        for d in all {
            self.seal(&d);
        }
    }

    /// Puts ready batches on the wire, reconnecting first if needed.
    async fn dispatch(&mut self) {
        if self.resume_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        while self.in_flight.len() < self.config.max_in_flight && !self.ready.is_empty() {
            if self.router.is_some() {
                match self.dispatch_smart().await {
                    Step::Again => continue,
                    Step::Wait => return,
                    Step::Bootstrap => {}
                }
            }
            let conn = match &self.conn {
                Some(c) if !c.is_closed() => c.clone(),
                _ => match self.reconnect().await {
                    Some(c) => c,
                    None => return,
                },
            };
            let Some(batch) = self.ready.pop_front() else {
                return;
            };
            match conn.send(&batch.request).await {
                Ok(fut) => self.in_flight.push_back(InFlight {
                    batch,
                    answer: Box::pin(fut.wait()),
                    via: None,
                }),
                Err(e) if e.is_retriable() => {
                    self.ready.push_front(batch);
                    self.requeue_in_flight();
                    self.conn = None;
                    self.note_failure(&e);
                    return;
                }
                Err(e) => fail(batch, &e),
            }
        }
    }

    async fn reconnect(&mut self) -> Option<Connection> {
        match Connection::connect(&self.options).await {
            Ok(c) => {
                tracing::info!(addr = %self.options.addr, "producer reconnected");
                self.conn = Some(c.clone());
                Some(c)
            }
            Err(e) if !e.is_retriable() => {
                // A refused key will be refused again: fail what waits instead of
                // retrying until `retry_timeout`.
                tracing::warn!(addr = %self.options.addr, error = %e, "producer cannot reconnect");
                self.conn = None;
                self.requeue_in_flight();
                for b in self.ready.drain(..) {
                    fail(b, &e);
                }
                None
            }
            Err(e) => {
                self.conn = None;
                self.note_failure(&e);
                None
            }
        }
    }

    /// Starts or continues a failure run; past `retry_timeout` fails everything waiting.
    fn note_failure(&mut self, e: &ClientError) {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        self.failures = self.failures.saturating_add(1);
        let backoff = Duration::from_millis(50u64 << self.failures.min(5));
        self.resume_at = Some(Instant::now() + backoff);
        if since.elapsed() >= self.config.retry_timeout {
            tracing::warn!(addr = %self.options.addr, error = %e, "producer gave up retrying");
            self.requeue_in_flight();
            for b in self.ready.drain(..) {
                fail(b, e);
            }
            self.failing_since = None;
        }
    }

    /// Moves every unanswered batch back to the front of the queue, in order.
    fn requeue_in_flight(&mut self) {
        while let Some(f) = self.in_flight.pop_back() {
            self.ready.push_front(f.batch);
        }
    }

    fn on_answer(&mut self, answer: Result<Response, ClientError>) {
        let Some(front) = self.in_flight.pop_front() else {
            return;
        };
        if let Some(via) = front.via.clone() {
            let failure = match &answer {
                Ok(Response::Error(e)) => Some(ClientError::Server {
                    code: e.code,
                    message: e.message.clone(),
                }),
                Err(e) => Some(e.clone()),
                Ok(_) => None,
            };
            if let Some(e) = failure.filter(is_route_error) {
                self.on_route_error(front, &via, &e);
                return;
            }
        }
        match answer {
            Ok(Response::Publish(resp)) => {
                self.failing_since = None;
                self.failures = 0;
                let mut waiters = front.batch.waiters.into_iter();
                for run in resp.runs {
                    for i in 0..u64::from(run.count) {
                        if let Some(w) = waiters.next() {
                            let _ = w.reply.send(Ok(Receipt {
                                id: w.id.clone(),
                                partition: run.partition,
                                offset: run.base_offset + i,
                                duplicate: run.duplicate,
                            }));
                        }
                    }
                }
                let missing = ClientError::Protocol(
                    "the node's answer covered fewer messages than were sent".into(),
                );
                for w in waiters {
                    let _ = w.reply.send(Err(missing.clone()));
                }
            }
            Ok(Response::Error(e)) => {
                let err = ClientError::Server {
                    code: e.code,
                    message: e.message,
                };
                if err.is_retriable() {
                    // Resend this batch and everything after it, in order, so stored
                    // order keeps send order.
                    self.in_flight.push_front(front);
                    self.requeue_in_flight();
                    self.note_failure(&err);
                } else {
                    fail(front.batch, &err);
                }
            }
            Ok(_) => fail(
                front.batch,
                &ClientError::Protocol("unexpected answer to a publish".into()),
            ),
            Err(e) if e.is_retriable() => {
                self.in_flight.push_front(front);
                self.requeue_in_flight();
                self.conn = None;
                self.note_failure(&e);
            }
            Err(e) => fail(front.batch, &e),
        }
    }
}

impl Pipeline {
    /// Routes the front batch of a smart producer: splits a whole batch by partition,
    /// sends a part straight to its owner, or says it goes through the bootstrap node.
    async fn dispatch_smart(&mut self) -> Step {
        self.refresh_if_due().await;
        let Some(router) = self.router.as_mut() else {
            return Step::Bootstrap;
        };
        let Some(front) = self.ready.front_mut() else {
            return Step::Wait;
        };
        let Request::Publish(req) = &mut front.request else {
            return Step::Bootstrap;
        };
        match front.target {
            Target::Bootstrap => {
                let destination = req.destination.clone();
                if lane_busy(&self.in_flight, &destination, None, None) {
                    Step::Wait
                } else {
                    Step::Bootstrap
                }
            }
            Target::Unrouted { attempt } => {
                let Some(n) = router.partitions(&req.destination) else {
                    // Not in the map (not created yet: the node may auto-create it).
                    // The node routes it; the map is fetched again for what follows.
                    front.target = Target::Bootstrap;
                    router.want_refresh();
                    return Step::Again;
                };
                let keyless = router.keyless(&req.messages, n);
                let parts = split_by_partition(&req.messages, n, keyless);
                let Some(batch) = self.ready.pop_front() else {
                    return Step::Wait;
                };
                for part in split_batch(batch, &parts, attempt).into_iter().rev() {
                    self.ready.push_front(part);
                }
                Step::Again
            }
            Target::Direct { partition, .. } => {
                let destination = req.destination.clone();
                let route = router.route(&destination, partition).await;
                let (conn, addr) = match route {
                    Ok(Route::Direct { conn, addr }) => (conn, addr),
                    Ok(Route::Bootstrap) => {
                        // The owner is unknown or over the connection bound: the node
                        // applies the same partition rules when told no partition.
                        req.partition = None;
                        front.target = Target::Bootstrap;
                        return Step::Again;
                    }
                    Err(e) => {
                        if let Some(batch) = self.ready.pop_front() {
                            self.reroute(batch, &e);
                        }
                        return Step::Again;
                    }
                };
                if lane_busy(&self.in_flight, &destination, Some(partition), Some(&addr)) {
                    return Step::Wait;
                }
                let Some(batch) = self.ready.pop_front() else {
                    return Step::Wait;
                };
                match conn.send_flags(&batch.request, Flags::DIRECT).await {
                    Ok(fut) => self.in_flight.push_back(InFlight {
                        batch,
                        answer: Box::pin(fut.wait()),
                        via: Some(addr),
                    }),
                    Err(e) if is_route_error(&e) => {
                        if let Some(r) = self.router.as_mut() {
                            r.drop_conn(&addr);
                        }
                        self.reroute(batch, &e);
                    }
                    Err(e) => fail(batch, &e),
                }
                Step::Again
            }
        }
    }

    /// Fetches metadata when the router wants it (rate-limited), over the bootstrap
    /// connection or, when that is down, any owner connection.
    async fn refresh_if_due(&mut self) {
        let Some(router) = self.router.as_mut() else {
            return;
        };
        if !router.refresh_due() {
            return;
        }
        let conn = match &self.conn {
            Some(c) if !c.is_closed() => Some(c.clone()),
            _ => router.any_conn(),
        };
        match conn {
            Some(c) => router.refresh(&c).await,
            None => router.refresh_failed(),
        }
    }

    /// A direct send failed on routing: this part and every later in-flight part of the
    /// same partition (sent after it on the same connection) are routed again, in
    /// order, after a metadata refresh.
    fn on_route_error(&mut self, front: InFlight, via: &str, e: &ClientError) {
        tracing::debug!(addr = via, error = %e, "direct publish refused; routing again");
        if let Some(r) = self.router.as_mut()
            && !matches!(e, ClientError::Server { .. })
        {
            r.drop_conn(via);
        }
        let lane = lane_of(&front.batch).map(|(d, p)| (d.to_string(), p));
        let mut again = vec![front.batch];
        let mut kept = VecDeque::with_capacity(self.in_flight.len());
        for f in self.in_flight.drain(..) {
            let same = match (&lane, lane_of(&f.batch)) {
                (Some((d, p)), Some((fd, fp))) => d == fd && *p == fp,
                _ => false,
            };
            if same {
                again.push(f.batch);
            } else {
                kept.push_back(f);
            }
        }
        self.in_flight = kept;
        for b in again.into_iter().rev() {
            self.reroute(b, e);
        }
    }

    /// Puts a part that failed on routing back at the front of the queue: split again
    /// by the (refreshed) map, or, once it has failed [`DIRECT_ATTEMPTS`] times, sent
    /// as it is through the bootstrap connection.
    fn reroute(&mut self, batch: Batch, e: &ClientError) {
        if let Some(r) = self.router.as_mut() {
            r.want_refresh();
        }
        let attempt = match batch.target {
            Target::Direct { attempt, .. } | Target::Unrouted { attempt } => {
                attempt.saturating_add(1)
            }
            Target::Bootstrap => DIRECT_ATTEMPTS,
        };
        let mut request = batch.request;
        if let Request::Publish(req) = &mut request {
            req.partition = None;
        }
        let target = if attempt >= DIRECT_ATTEMPTS {
            tracing::debug!(error = %e, "routing through the bootstrap node");
            Target::Bootstrap
        } else {
            Target::Unrouted { attempt }
        };
        self.ready.push_front(Batch {
            request,
            waiters: batch.waiters,
            target,
        });
    }
}

/// The (destination, partition) a batch is bound to; partition `None`: the node picks.
fn lane_of(batch: &Batch) -> Option<(&str, Option<PartitionId>)> {
    let Request::Publish(req) = &batch.request else {
        return None;
    };
    let partition = match batch.target {
        Target::Direct { partition, .. } => Some(partition),
        _ => None,
    };
    Some((req.destination.as_str(), partition))
}

/// Whether a send for `destination`/`partition` over `via` must wait: something for
/// the same partition (or for a partition only the node knows) is in flight over
/// another connection, and two connections do not keep order between them.
fn lane_busy(
    in_flight: &VecDeque<InFlight>,
    destination: &str,
    partition: Option<PartitionId>,
    via: Option<&str>,
) -> bool {
    in_flight.iter().any(|f| {
        let Some((d, p)) = lane_of(&f.batch) else {
            return false;
        };
        let same_lane = d == destination && (p.is_none() || partition.is_none() || p == partition);
        same_lane && f.via.as_deref() != via
    })
}

/// Splits a whole batch into one part per partition (`parts` from
/// `split_by_partition`), each with its messages and waiters in their original order.
fn split_batch(batch: Batch, parts: &[(PartitionId, Vec<usize>)], attempt: u8) -> Vec<Batch> {
    let Request::Publish(req) = batch.request else {
        return vec![batch];
    };
    let messages = scatter(req.messages, parts);
    let waiters = scatter(batch.waiters, parts);
    parts
        .iter()
        .zip(messages.into_iter().zip(waiters))
        .map(|((p, _), (messages, waiters))| Batch {
            request: Request::Publish(PublishRequest {
                destination: req.destination.clone(),
                acks: req.acks,
                partition: Some(*p),
                messages,
            }),
            waiters,
            target: Target::Direct {
                partition: *p,
                attempt,
            },
        })
        .collect()
}

/// Moves `items` into groups by index lists (each index used once, groups keep the
/// order of their indexes); an index not listed or out of range is dropped.
fn scatter<T, P>(items: Vec<T>, parts: &[(P, Vec<usize>)]) -> Vec<Vec<T>> {
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    parts
        .iter()
        .map(|(_, idx)| {
            idx.iter()
                .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
                .collect()
        })
        .collect()
}

fn fail(batch: Batch, e: &ClientError) {
    for w in batch.waiters {
        let _ = w.reply.send(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use swarmmq_types::partition_for_key;

    use super::*;

    #[test]
    fn scatter_moves_each_item_once_in_index_order() {
        let items: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
        let parts = vec![(0u32, vec![1, 4]), (2, vec![0, 2, 5]), (3, vec![3, 9])];
        let groups = scatter(items, &parts);
        assert_eq!(
            groups,
            vec![vec!["m1", "m4"], vec!["m0", "m2", "m5"], vec!["m3"]]
        );
        // An index listed twice is used once.
        let groups = scatter(vec![1, 2], &[((), vec![0, 0, 1])]);
        assert_eq!(groups, vec![vec![1, 2]]);
    }

    #[tokio::test]
    async fn a_split_batch_answers_every_waiter_with_its_own_receipt() {
        let budget = Arc::new(Semaphore::new(100));
        let keys = ["a", "b", "a", "c", "b", "a"];
        let mut messages = Vec::new();
        let mut waiters = Vec::new();
        let mut receipts = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let id = MessageId::Uuid([i as u8; 16]);
            messages.push(PublishMessage {
                id: Some(id.clone()),
                key: Some(Bytes::from_static(k.as_bytes())),
                headers: Vec::new(),
                priority: 5,
                deliver_at_ms: None,
                ttl_ms: None,
                payload: Bytes::from(format!("p{i}")),
            });
            let (reply, rx) = oneshot::channel();
            let permit = Arc::clone(&budget).acquire_owned().await.unwrap();
            waiters.push(Waiter {
                reply,
                id: Some(id),
                _permit: permit,
            });
            receipts.push(ReceiptFuture(rx));
        }
        let parts = split_by_partition(&messages, 4, 0);
        let batch = Batch {
            request: Request::Publish(PublishRequest {
                destination: "d".into(),
                acks: Acks::All,
                partition: None,
                messages,
            }),
            waiters,
            target: Target::Unrouted { attempt: 1 },
        };
        let split = split_batch(batch, &parts, 1);
        assert_eq!(split.len(), parts.len());
        // Answer each part as a node would: consecutive offsets from 100 * partition.
        let mut pipeline_answers = Vec::new();
        for b in split {
            let Request::Publish(req) = &b.request else {
                panic!("a publish")
            };
            let p = req.partition.unwrap();
            assert_eq!(
                b.target,
                Target::Direct {
                    partition: p,
                    attempt: 1
                }
            );
            assert_eq!(req.messages.len(), b.waiters.len());
            for (m, w) in req.messages.iter().zip(&b.waiters) {
                assert_eq!(m.id, w.id, "message and waiter stay paired");
                assert_eq!(partition_for_key(m.key.as_ref().unwrap(), 4), p);
            }
            pipeline_answers.push((p, req.messages.len(), b.waiters));
        }
        for (p, n, waiters) in pipeline_answers {
            for (i, w) in waiters.into_iter().enumerate() {
                let _ = w.reply.send(Ok(Receipt {
                    id: w.id.clone(),
                    partition: p,
                    offset: u64::from(p) * 100 + i as u64,
                    duplicate: false,
                }));
            }
            assert!(n > 0);
        }
        let mut next: HashMap<u32, u64> = HashMap::new();
        for (i, r) in receipts.into_iter().enumerate() {
            let r = r.await.unwrap();
            assert_eq!(r.id, Some(MessageId::Uuid([i as u8; 16])), "receipt {i}");
            assert_eq!(r.partition, partition_for_key(keys[i].as_bytes(), 4));
            // In send order within each partition.
            let want = next
                .entry(r.partition)
                .or_insert(u64::from(r.partition) * 100);
            assert_eq!(r.offset, *want);
            *want += 1;
        }
    }
}

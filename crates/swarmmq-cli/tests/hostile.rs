//! The real `swarmmq` binary in its own process under hostile load, while a
//! well-behaved SDK client publishes and consumes: thousands of garbage and truncated
//! frames on short connections, frames with random bodies, length prefixes of 4 GiB and
//! one byte past `max_frame_size`, unknown opcodes, bad magic and versions, slow-loris
//! connections that dribble a header and never finish it, idle connections, a flood
//! past `max_connections`, and peers that never read their answers.
//!
//! Asserted at the end: the node is alive and `/health` answers 200; its peak RSS stays
//! under [`RSS_BOUND_KIB`]; the client got every message exactly once; each attack got
//! the documented answer (error code, close, deadline); every event is counted in the
//! metrics while the log holds the expected lines without a line per byte, frame or
//! connection.
//!
//! The node runs with small limits (set through `SWARMMQ_PERFORMANCE_*` variables, the
//! env overrides of the config) so that every limit is reached in seconds.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use swarmmq_client::{Admin, Consumer, ConsumerConfig, Message, Producer, ProducerConfig};
use swarmmq_protocol::{
    Flags, FrameDecoder, FrameHeader, HEADER_LEN, PublishMessage, PublishRequest, Request,
    Response, VERSION, decode_response, encode_request,
};
use swarmmq_types::{ErrorCode, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MESSAGES: usize = 2000;
const DESTINATION: &str = "hostile-ok";
const MAX_CONNECTIONS: usize = 64;
const FRAME_TIMEOUT: Duration = Duration::from_secs(1);
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_FRAME: u32 = 1 << 20;
/// Peak RSS allowed: a debug node idles at a few tens of MiB; the worst case this load
/// could force is one partial frame per connection (64 x 1 MiB) plus the destination's
/// tail cache (at most 32 MiB) and in-flight answers. 256 MiB leaves room for the
/// allocator without hiding a leak that grows with the number of connections or bytes.
const RSS_BOUND_KIB: u64 = 256 * 1024;

/// xorshift64*: reproducible garbage without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Counts of what the node did to the hostile connections, by name.
#[derive(Default, Debug)]
struct Tally(BTreeMap<String, u64>);

impl Tally {
    fn add(&mut self, key: &str, n: u64) {
        *self.0.entry(key.to_owned()).or_default() += n;
    }

    fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    fn merge(&mut self, other: Tally) {
        for (k, v) in other.0 {
            self.add(&k, v);
        }
    }

    /// Records one connection's answers and whether the node closed it.
    fn record(&mut self, kind: &str, answers: &[(u32, Option<ErrorCode>)], closed: bool) {
        self.add("connections", 1);
        self.add(&format!("{kind}.connections"), 1);
        for (_, code) in answers {
            let name = code.map_or("OK", |c| c.name());
            self.add(&format!("{kind}.{name}"), 1);
        }
        if closed {
            self.add(&format!("{kind}.closed"), 1);
        }
    }
}

fn header(opcode: u8, corr: u32, body_len: u32) -> [u8; HEADER_LEN] {
    FrameHeader {
        version: VERSION,
        opcode,
        flags: Flags::NONE,
        correlation_id: corr,
        body_len,
    }
    .to_bytes()
}

/// The node turned the connection away at its connection limit.
fn refused(answers: &[(u32, Option<ErrorCode>)]) -> bool {
    answers.first() == Some(&(0, Some(ErrorCode::TooManyConnections)))
}

/// Tries a hostile connection until the node serves one (it refuses connections past
/// its limit while the flood holds the slots); counts the refusals.
async fn until_served<F, Fut>(
    t: &mut Tally,
    mut attempt: F,
) -> Option<(Vec<(u32, Option<ErrorCode>)>, bool)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<(Vec<(u32, Option<ErrorCode>)>, bool)>>,
{
    for _ in 0..200 {
        match attempt().await {
            None => t.add("connect_failed", 1),
            Some((answers, _)) if refused(&answers) => {
                t.add("refused", 1);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some(outcome) => return Some(outcome),
        }
    }
    None
}

async fn connect(addr: &str) -> Option<TcpStream> {
    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()
}

/// Reads what the node sends until it closes the connection, `want` answers arrived,
/// or `within` passed: (correlation id, error code or None for a normal answer) per
/// frame, and whether the node closed the connection.
async fn drain(
    stream: &mut TcpStream,
    want: usize,
    within: Duration,
) -> (Vec<(u32, Option<ErrorCode>)>, bool) {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = BytesMut::new();
    let mut dec = FrameDecoder::new(&Limits::DEFAULT);
    let mut out = Vec::new();
    loop {
        while let Ok(Some(f)) = dec.decode(&mut buf) {
            let code = match decode_response(&f.header, f.body, &Limits::DEFAULT) {
                Ok(Response::Error(e)) => Some(e.code),
                Ok(_) => None,
                Err(e) => panic!("the node sent a frame that does not decode: {e}"),
            };
            out.push((f.header.correlation_id, code));
        }
        if out.len() >= want {
            return (out, false);
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(_)) => {}
            Err(_) => return (out, false),
        }
    }
}

/// Short connections, each sending random bytes (almost always a bad magic).
async fn garbage(addr: String, seed: u64, n: usize) -> Tally {
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    for _ in 0..n {
        let len = 1 + rng.below(300);
        let bytes = rng.bytes(len);
        let outcome = until_served(&mut t, || async {
            let mut s = connect(&addr).await?;
            let _ = s.write_all(&bytes).await;
            Some(drain(&mut s, usize::MAX, Duration::from_secs(5)).await)
        })
        .await;
        if let Some((answers, closed)) = outcome {
            t.record("garbage", &answers, closed);
        }
    }
    t
}

/// Connections sending well-framed requests with random opcodes and random bodies:
/// every frame is answered and the connection goes on.
async fn random_frames(addr: String, seed: u64, n: usize, per_conn: usize) -> Tally {
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    for _ in 0..n {
        let mut wire = Vec::new();
        for corr in 1..=per_conn as u32 {
            let len = rng.below(200);
            let body = rng.bytes(len);
            // Half known opcodes (their body decoders meet random bytes), half any
            // byte; Health & co with empty bodies are left out (they would succeed).
            let opcode = match rng.next() {
                r if r % 2 == 0 => 1 + (r >> 8) as u8 % 18,
                r => (r >> 8) as u8,
            };
            let opcode = if matches!(opcode, 7 | 9 | 10 | 17) {
                1
            } else {
                opcode
            };
            wire.extend_from_slice(&header(opcode, corr, body.len() as u32));
            wire.extend_from_slice(&body);
        }
        let outcome = until_served(&mut t, || async {
            let mut s = connect(&addr).await?;
            let _ = s.write_all(&wire).await;
            Some(drain(&mut s, per_conn, Duration::from_secs(10)).await)
        })
        .await;
        if let Some((answers, closed)) = outcome {
            t.record("random_frames", &answers, closed);
        }
    }
    t
}

/// A valid publish frame cut short, then the peer hangs up.
async fn truncated(addr: String, seed: u64, n: usize) -> Tally {
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    let publish = Request::Publish(PublishRequest {
        destination: "truncated".into(),
        acks: Default::default(),
        partition: None,
        messages: vec![
            PublishMessage {
                id: None,
                key: None,
                headers: vec![],
                priority: 5,
                deliver_at_ms: None,
                ttl_ms: None,
                payload: Bytes::from(vec![7u8; 3000]),
            };
            4
        ],
    });
    let mut frame = BytesMut::new();
    encode_request(1, &publish, &Limits::DEFAULT, &mut frame).unwrap();
    for _ in 0..n {
        let Some(mut s) = connect(&addr).await else {
            t.add("connect_failed", 1);
            continue;
        };
        let cut = rng.below(frame.len() - 1);
        let _ = s.write_all(&frame[..cut]).await;
        drop(s);
        t.add("connections", 1);
        t.add("truncated.connections", 1);
    }
    t
}

/// Length prefixes of 4 GiB and one byte past the frame limit.
async fn oversized(addr: String, n: usize) -> Tally {
    let mut t = Tally::default();
    for i in 0..n {
        let body_len = if i % 2 == 0 {
            u32::MAX
        } else {
            MAX_FRAME - HEADER_LEN as u32 + 1
        };
        let outcome = until_served(&mut t, || async {
            let mut s = connect(&addr).await?;
            let _ = s.write_all(&header(1, 9, body_len)).await;
            Some(drain(&mut s, usize::MAX, Duration::from_secs(5)).await)
        })
        .await;
        if let Some((answers, closed)) = outcome {
            t.record("oversized", &answers, closed);
        }
    }
    t
}

/// Unknown opcodes (answered, the connection goes on), bad magic and an unsupported
/// version (answered once, then closed).
async fn bad_headers(addr: String, n: usize) -> Tally {
    let mut t = Tally::default();
    for i in 0..n {
        let (kind, wire, want) = match i % 3 {
            0 => {
                let opcode = [0u8, 200, 255][i / 3 % 3];
                let mut wire = header(opcode, 5, 0).to_vec();
                wire.extend_from_slice(&header(9, 6, 0));
                ("unknown_opcode", wire, 2)
            }
            1 => {
                let mut h = header(9, 5, 0);
                h[0..2].copy_from_slice(b"QS");
                ("bad_magic", h.to_vec(), usize::MAX)
            }
            _ => {
                let mut h = header(9, 5, 0);
                h[2] = VERSION + 1;
                ("bad_version", h.to_vec(), usize::MAX)
            }
        };
        let outcome = until_served(&mut t, || async {
            let mut s = connect(&addr).await?;
            let _ = s.write_all(&wire).await;
            Some(drain(&mut s, want, Duration::from_secs(5)).await)
        })
        .await;
        if let Some((answers, closed)) = outcome {
            t.record(kind, &answers, closed);
        }
    }
    t
}

/// Slow-loris: a frame header sent one byte every 200 ms, never finished. Returns the
/// tally and the time from the first byte to the node's close.
async fn slow_loris(addr: String, corr: u32) -> (Tally, Duration) {
    let mut t = Tally::default();
    for _ in 0..200 {
        let Some((answers, closed, took)) = dribble_once(&addr, corr).await else {
            t.add("connect_failed", 1);
            continue;
        };
        if refused(&answers) {
            t.add("refused", 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        t.record("slow_loris", &answers, closed);
        return (t, took);
    }
    (t, Duration::ZERO)
}

async fn dribble_once(
    addr: &str,
    corr: u32,
) -> Option<(Vec<(u32, Option<ErrorCode>)>, bool, Duration)> {
    let s = connect(addr).await?;
    let (mut rd, mut wr) = s.into_split();
    let started = Instant::now();
    let dribble = tokio::spawn(async move {
        for b in &header(9, corr, 0)[..HEADER_LEN - 1] {
            if wr.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Never the last byte: hold the connection until the node gives up.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let mut buf = BytesMut::new();
    let mut dec = FrameDecoder::new(&Limits::DEFAULT);
    let mut answers = Vec::new();
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(15), rd.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => {}
            Err(_) => break false,
        }
        while let Ok(Some(f)) = dec.decode(&mut buf) {
            let code = match decode_response(&f.header, f.body, &Limits::DEFAULT) {
                Ok(Response::Error(e)) => Some(e.code),
                _ => None,
            };
            answers.push((f.header.correlation_id, code));
        }
    };
    let took = started.elapsed();
    dribble.abort();
    Some((answers, closed, took))
}

/// Connected and silent; returns the tally and the time until the node closed it.
async fn idle(addr: String) -> (Tally, Duration) {
    let mut t = Tally::default();
    let Some(mut s) = connect(&addr).await else {
        t.add("connect_failed", 1);
        return (t, Duration::ZERO);
    };
    let started = Instant::now();
    let (answers, closed) = drain(&mut s, usize::MAX, Duration::from_secs(15)).await;
    t.record("idle", &answers, closed);
    (t, started.elapsed())
}

/// A peer that pipelines requests and never reads an answer, with a tiny receive
/// buffer; returns whether the node dropped it.
async fn never_reads(addr: String) -> Tally {
    let mut t = Tally::default();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_secs(5),
        socket.connect(addr.parse().unwrap()),
    )
    .await
    else {
        t.add("connect_failed", 1);
        return t;
    };
    let mut burst = Vec::new();
    for corr in 0..4096u32 {
        burst.extend_from_slice(&header(9, corr, 0));
    }
    let started = Instant::now();
    let dropped = loop {
        match tokio::time::timeout(Duration::from_secs(10), s.write_all(&burst)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break true,
            Err(_) => break false,
        }
        if started.elapsed() > Duration::from_secs(15) {
            break false;
        }
    };
    t.add("connections", 1);
    t.add("never_reads.connections", 1);
    if dropped {
        t.add("never_reads.closed", 1);
    }
    t
}

/// The well-behaved client: publishes MESSAGES distinct messages in rounds while the
/// attack runs and consumes them with acks; returns how often each payload arrived.
async fn well_behaved(
    producer: Producer,
    mut consumer: Consumer,
    published: Arc<AtomicBool>,
) -> HashMap<String, u32> {
    let send = async {
        let mut receipts = Vec::new();
        for round in 0..20 {
            for i in round * 100..(round + 1) * 100 {
                let m = Message::new(format!("m-{i:05}"));
                receipts.push(producer.send(DESTINATION, m).await.expect("send"));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        for (i, r) in receipts.into_iter().enumerate() {
            r.await
                .unwrap_or_else(|e| panic!("message {i} was not acknowledged: {e}"));
        }
        published.store(true, Ordering::Release);
    };
    let receive = async {
        let mut seen: HashMap<String, u32> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(50);
        let mut quiet_after_all = 0;
        while Instant::now() < deadline {
            match consumer.pull().await {
                Ok(msgs) => {
                    for m in &msgs {
                        let text = String::from_utf8_lossy(&m.payload).into_owned();
                        *seen.entry(text).or_default() += 1;
                    }
                    if !msgs.is_empty() {
                        consumer.ack(&msgs).await.expect("ack");
                    } else if seen.len() == MESSAGES && published.load(Ordering::Acquire) {
                        // Everything arrived; two empty pulls more show nothing is late.
                        quiet_after_all += 1;
                        if quiet_after_all == 2 {
                            break;
                        }
                    }
                }
                Err(e) if e.is_retriable() => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the well-behaved consumer failed: {e}"),
            }
        }
        seen
    };
    let ((), seen) = tokio::join!(send, receive);
    seen
}

/// The log without the terminal colour codes the text format writes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ended by a letter.
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn proc_status_kib(pid: i32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from /proc/{pid}/status"))
}

#[test]
fn a_node_under_hostile_load_keeps_serving_a_well_behaved_client() {
    let test_started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let max_connections = MAX_CONNECTIONS.to_string();
    let frame_timeout = format!("{}ms", FRAME_TIMEOUT.as_millis());
    let idle_timeout = format!("{}ms", IDLE_TIMEOUT.as_millis());
    let max_frame = MAX_FRAME.to_string();
    let mut node = NodeProcess::start_with(
        &dir.path().join("data"),
        &[],
        &[
            ("SWARMMQ_PERFORMANCE_MAX_CONNECTIONS", &max_connections),
            ("SWARMMQ_PERFORMANCE_FRAME_TIMEOUT", &frame_timeout),
            ("SWARMMQ_PERFORMANCE_IDLE_TIMEOUT", &idle_timeout),
            ("SWARMMQ_PERFORMANCE_MAX_FRAME_SIZE", &max_frame),
            ("SWARMMQ_PERFORMANCE_MAX_MESSAGE_SIZE", "256KiB"),
            ("SWARMMQ_PERFORMANCE_MAX_INFLIGHT_BYTES", "4MiB"),
        ],
    );
    let addr = node.addr();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let (tally, seen, loris_max, idle_max) = rt.block_on(async {
        // The well-behaved client connects first, so the flood cannot lock it out.
        let admin = Admin::connect(&addr).await.unwrap();
        admin
            .create_destination(DESTINATION, 1, Default::default())
            .await
            .unwrap();
        drop(admin);
        let producer_config = ProducerConfig {
            max_batch_messages: 50,
            linger: Duration::from_millis(2),
            ..ProducerConfig::default()
        };
        let producer = Producer::connect(&addr, producer_config).await.unwrap();
        let mut consumer_config = ConsumerConfig::new(DESTINATION, "well-behaved");
        consumer_config.max_wait = Duration::from_millis(300);
        consumer_config.max_messages = 200;
        let consumer = Consumer::connect(&addr, consumer_config).await.unwrap();
        let published = Arc::new(AtomicBool::new(false));
        let good = tokio::spawn(well_behaved(producer, consumer, Arc::clone(&published)));

        let mut attacks = Vec::new();
        for k in 0..4u64 {
            attacks.push(tokio::spawn(garbage(addr.clone(), 11 + k, 300)));
        }
        for k in 0..2u64 {
            attacks.push(tokio::spawn(random_frames(addr.clone(), 21 + k, 100, 20)));
            attacks.push(tokio::spawn(truncated(addr.clone(), 31 + k, 250)));
        }
        attacks.push(tokio::spawn(oversized(addr.clone(), 100)));
        attacks.push(tokio::spawn(bad_headers(addr.clone(), 90)));
        for _ in 0..3 {
            attacks.push(tokio::spawn(never_reads(addr.clone())));
        }
        let mut loris = Vec::new();
        for corr in 0..40 {
            loris.push(tokio::spawn(slow_loris(addr.clone(), corr)));
        }
        let mut idles = Vec::new();
        for _ in 0..20 {
            idles.push(tokio::spawn(idle(addr.clone())));
        }
        // A flood: 150 connections at once, held open and silent.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut flood = Vec::new();
        for _ in 0..150 {
            flood.push(tokio::spawn(idle(addr.clone())));
        }

        let mut tally = Tally::default();
        for a in attacks {
            tally.merge(a.await.unwrap());
        }
        let (mut loris_max, mut idle_max) = (Duration::ZERO, Duration::ZERO);
        for l in loris {
            let (t, took) = l.await.unwrap();
            if t.get("slow_loris.closed") == 1 {
                loris_max = loris_max.max(took);
            }
            tally.merge(t);
        }
        for i in idles.into_iter().chain(flood) {
            let (t, took) = i.await.unwrap();
            if t.get("idle.closed") == 1 && t.get("idle.TOO_MANY_CONNECTIONS") == 0 {
                idle_max = idle_max.max(took);
            }
            tally.merge(t);
        }
        let seen = good.await.unwrap();
        (tally, seen, loris_max, idle_max)
    });
    eprintln!("hostile tally: {tally:#?}");
    eprintln!("slowest slow-loris close {loris_max:?}, slowest idle close {idle_max:?}");

    // The node survived and still serves.
    let child = node.child.as_mut().unwrap();
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the node died; log:\n{}",
        node.log_text()
    );
    assert_eq!(
        http_get(node.http(), "/health").map(|(s, _)| s),
        Some(200),
        "/health after the attack"
    );

    // The well-behaved client got every message exactly once.
    assert_eq!(seen.len(), MESSAGES, "distinct messages received");
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(dups.is_empty(), "delivered more than once: {dups:?}");
    for i in 0..MESSAGES {
        assert!(seen.contains_key(&format!("m-{i:05}")), "m-{i:05} missing");
    }

    // Each attack got its documented answer.
    assert!(tally.get("connections") >= 2000, "{tally:?}");
    assert!(tally.get("garbage.MALFORMED_FRAME") > 100, "{tally:?}");
    assert_eq!(
        tally.get("garbage.closed"),
        tally.get("garbage.connections"),
        "every garbage connection is closed by the node"
    );
    // Random bodies: each frame answered under its own correlation id, none fatal.
    assert!(tally.get("random_frames.UNKNOWN_OPCODE") > 100, "{tally:?}");
    assert!(tally.get("random_frames.MALFORMED_FRAME") > 10, "{tally:?}");
    assert!(
        tally.get("random_frames.INVALID_REQUEST") > 100,
        "{tally:?}"
    );
    assert_eq!(tally.get("random_frames.closed"), 0, "{tally:?}");
    assert!(tally.get("refused") > 0, "{tally:?}");
    // Every served connection of these kinds got exactly its documented answer.
    for (kind, code) in [
        ("oversized", "FRAME_TOO_LARGE"),
        ("unknown_opcode", "UNKNOWN_OPCODE"),
        ("unknown_opcode", "OK"),
        ("bad_magic", "MALFORMED_FRAME"),
        ("bad_version", "UNSUPPORTED_VERSION"),
        ("slow_loris", "TIMEOUT"),
    ] {
        let served = tally.get(&format!("{kind}.connections"));
        assert!(served > 0, "{kind}: {tally:?}");
        assert_eq!(
            tally.get(&format!("{kind}.{code}")),
            served,
            "{kind}: {tally:?}"
        );
    }
    for kind in ["oversized", "bad_magic", "bad_version"] {
        assert_eq!(
            tally.get(&format!("{kind}.closed")),
            tally.get(&format!("{kind}.connections")),
            "{kind}: the node closes after a fatal error"
        );
    }
    assert_eq!(
        tally.get("unknown_opcode.closed"),
        0,
        "an unknown opcode is not fatal"
    );
    assert_eq!(
        tally.get("slow_loris.closed"),
        tally.get("slow_loris.connections")
    );
    assert_eq!(tally.get("idle.closed"), tally.get("idle.connections"));
    assert!(
        tally.get("idle.TOO_MANY_CONNECTIONS") > 0,
        "the flood passed max_connections"
    );
    assert_eq!(
        tally.get("never_reads.closed"),
        tally.get("never_reads.connections")
    );
    // Slow-loris: closed within the frame timeout of the first byte (plus slack for a
    // loaded debug node); idle: within the idle timeout plus slack.
    assert!(
        loris_max <= FRAME_TIMEOUT + Duration::from_secs(4),
        "{loris_max:?}"
    );
    assert!(
        idle_max <= IDLE_TIMEOUT * 2 + Duration::from_secs(4),
        "{idle_max:?}"
    );

    // Memory: peak RSS bounded.
    let pid = node.pid();
    let (rss, hwm) = (
        proc_status_kib(pid, "VmRSS:"),
        proc_status_kib(pid, "VmHWM:"),
    );
    eprintln!("node RSS {rss} KiB, peak {hwm} KiB");
    assert!(hwm < RSS_BOUND_KIB, "peak RSS {hwm} KiB");

    // Every event is counted...
    let (_, metrics) = http_get(node.http(), "/metrics").expect("metrics");
    for code in [
        "MALFORMED_FRAME",
        "UNKNOWN_OPCODE",
        "FRAME_TOO_LARGE",
        "UNSUPPORTED_VERSION",
        "TIMEOUT",
        "TOO_MANY_CONNECTIONS",
    ] {
        let n = metric(
            &metrics,
            "swarmmq_errors_total",
            &format!("code=\"{code}\""),
        );
        assert!(n > 0.0, "{code} not counted:\n{metrics}");
    }
    let malformed = metric(&metrics, "swarmmq_errors_total", "code=\"MALFORMED_FRAME\"");
    assert!(malformed >= tally.get("garbage.MALFORMED_FRAME") as f64);

    // ...while the log has each kind of line, but not one per frame or connection.
    let log = strip_ansi(&node.log_text());
    let lines = log.lines().count() as u64;
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    eprintln!(
        "node log: {lines} lines for {} hostile connections",
        tally.get("connections")
    );
    for needle in [
        "bad frame; closing the connection",
        "bad request",
        "frame not completed in time",
        "connection refused: too many connections",
    ] {
        assert!(count(needle) > 0, "no {needle:?} line in the log:\n{log}");
    }
    assert!(
        log.lines()
            .any(|l| l.contains("suppressed=") && !l.contains("suppressed=0")),
        "no line reports held-back lines:\n{log}"
    );
    assert!(lines < 1000, "{lines} log lines");
    assert!(
        lines * 2 < tally.get("connections"),
        "{lines} log lines for {} connections",
        tally.get("connections")
    );
    eprintln!("test took {:?}", test_started.elapsed());
    assert_eq!(node.terminate(), Some(0), "clean shutdown after the attack");
}

/// The real binary with every setting at the far end of what the config accepts (set
/// through environment overrides): it starts, stores, deduplicates and delivers, and
/// never panics. Three of these values used to: a `max_inflight_bytes` past 2^61 killed
/// every session, a `dedup_window` near the end of time panicked on the second publish
/// and poisoned the destination, a huge `segment_size` panicked in recovery (and is now
/// refused, like frames past 60MiB, which made every partition fail).
#[test]
fn a_node_with_extreme_but_valid_settings_serves_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let forever = "300000000y";
    let node = NodeProcess::start_with(
        &dir.path().join("data"),
        &[],
        &[
            ("SWARMMQ_PERFORMANCE_MAX_CONNECTIONS", "4294967295"),
            ("SWARMMQ_PERFORMANCE_MAX_FRAME_SIZE", "60MiB"),
            ("SWARMMQ_PERFORMANCE_MAX_MESSAGE_SIZE", "61376KiB"),
            (
                "SWARMMQ_PERFORMANCE_MAX_INFLIGHT_BYTES",
                "18446744073709551615",
            ),
            ("SWARMMQ_PERFORMANCE_BATCH_SIZE", "100000"),
            ("SWARMMQ_PERFORMANCE_ACK_TIMEOUT", forever),
            ("SWARMMQ_PERFORMANCE_FRAME_TIMEOUT", "7d"),
            ("SWARMMQ_PERFORMANCE_IDLE_TIMEOUT", "7d"),
            ("SWARMMQ_STORAGE_READ_CACHE_SIZE", "18446744073709551615"),
            ("SWARMMQ_STORAGE_SEGMENT_SIZE", "4032MiB"),
            ("SWARMMQ_STORAGE_SEGMENT_AGE", forever),
            ("SWARMMQ_STORAGE_RETENTION_AGE", forever),
            ("SWARMMQ_STORAGE_FSYNC", "interval"),
            ("SWARMMQ_STORAGE_FSYNC_INTERVAL", forever),
            ("SWARMMQ_DELIVERY_DEDUP_WINDOW", forever),
            ("SWARMMQ_DELIVERY_DEDUP_MAX_IDS", "4294967295"),
            ("SWARMMQ_DELIVERY_MAX_DELIVERY_ATTEMPTS", "4294967295"),
        ],
    );
    let addr = node.addr();
    for _ in 0..2 {
        ok(&swarmmq(
            &[
                "produce", "-n", &addr, "-d", "far", "-m", "same", "--id", "same-id",
            ],
            None,
        ));
    }
    ok(&swarmmq(
        &[
            "produce", "-n", &addr, "-d", "far", "-m", "other", "--count", "3",
        ],
        None,
    ));
    let out = ok(&swarmmq(
        &["consume", "-n", &addr, "-d", "far", "-g", "g", "--max", "4"],
        None,
    ));
    let mut got: Vec<&str> = out.lines().collect();
    got.sort_unstable();
    assert_eq!(
        got,
        ["other", "other", "other", "same"],
        "dedup kept one copy"
    );
    assert_eq!(http_get(node.http(), "/health").map(|(s, _)| s), Some(200));
    let log = node.log_text();
    assert!(!log.contains("panicked"), "the node panicked:\n{log}");
}

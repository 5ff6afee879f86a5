//! A chitchat [`Transport`] whose every UDP datagram is sealed with AES-256-GCM.
//!
//! Datagram layout (version 1):
//! ```text
//! offset  size  field
//! 0       2     magic 0x53 0x47 ("SG")
//! 2       1     format version = 1
//! 3       12    nonce (random per datagram)
//! 15      n     ciphertext of chitchat's serialized message
//! 15+n    16    GCM tag
//! ```
//! The 3 header bytes are the AEAD's associated data. Random nonces are what CLUSTER.md chose for gossip: volume is low and many nodes share
//! the key, so no counter could be kept unique across them.
//!
//! Anything that does not open (garbage, another cluster's key, a truncated or oversize
//! datagram) is dropped and counted; the log line is rate-limited so a flood cannot
//! flood the log too. Nothing a peer sends can stop the socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use swarmmq_crypto::{CHANNEL_NONCE_LEN, CHANNEL_TAG_LEN, ChannelKey};
use tokio::sync::Mutex;
use tracing::{debug, warn};

use super::codec::{Decoded, MAX_UDP_PAYLOAD, WireCodec};
use crate::ClusterError;

/// Magic and format version; authenticated as associated data, so a datagram of another
/// format version can never be opened as this one.
const HEADER: [u8; 3] = [0x53, 0x47, 0x01];
/// Bytes a sealed datagram adds to chitchat's message.
pub const SEAL_OVERHEAD: usize = HEADER.len() + CHANNEL_NONCE_LEN + CHANNEL_TAG_LEN;
/// The largest datagram sent or accepted (the IPv4 UDP payload limit).
pub const MAX_DATAGRAM: usize = MAX_UDP_PAYLOAD;
/// At most one rejection log line per this period per socket.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Counters shared between the socket and its owner.
#[derive(Debug, Default)]
pub(crate) struct TransportStats {
    rejected: AtomicU64,
}

impl TransportStats {
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// Chitchat transport over AES-256-GCM-sealed UDP.
///
/// [`SealedTransport::bind`] binds the socket at once so that a port-0 address resolves
/// to a real port before chitchat needs its advertise address; chitchat's `open` of that
/// same address then takes the bound socket.
pub struct SealedTransport {
    key: Arc<ChannelKey>,
    stats: Arc<TransportStats>,
    local_addr: SocketAddr,
    bound: Mutex<Option<tokio::net::UdpSocket>>,
}

impl SealedTransport {
    /// Binds `addr` (port 0 picks a free port; see [`Self::local_addr`]).
    pub async fn bind(addr: SocketAddr, key: Arc<ChannelKey>) -> Result<Self, ClusterError> {
        let socket = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| ClusterError::Bind { addr, source })?;
        let local_addr = socket
            .local_addr()
            .map_err(|source| ClusterError::Bind { addr, source })?;
        Ok(SealedTransport {
            key,
            stats: Arc::default(),
            local_addr,
            bound: Mutex::new(Some(socket)),
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Datagrams dropped because they did not open or parse, since bind.
    pub fn rejected_datagrams(&self) -> u64 {
        self.stats.rejected()
    }

    pub(crate) fn stats(&self) -> Arc<TransportStats> {
        self.stats.clone()
    }
}

#[async_trait]
impl Transport for SealedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let prebound = self.bound.lock().await.take();
        let socket = match prebound {
            Some(socket) if listen_addr == self.local_addr => socket,
            _ => tokio::net::UdpSocket::bind(listen_addr)
                .await
                .with_context(|| format!("cannot bind {listen_addr}/udp for gossip"))?,
        };
        Ok(Box::new(SealedSocket {
            local_addr: socket.local_addr()?,
            socket,
            key: self.key.clone(),
            stats: self.stats.clone(),
            codec: WireCodec::open().await?,
            recv_buf: vec![0u8; MAX_DATAGRAM + 1].into_boxed_slice(),
            out: Vec::with_capacity(MAX_DATAGRAM),
            sealed: Vec::with_capacity(MAX_DATAGRAM),
            reject_log: RejectLog::default(),
        }))
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy)]
enum Reject {
    TooShort,
    Oversize,
    WrongHeader,
    /// Wrong key (another cluster), tampered, or random bytes.
    Unauthentic,
    /// Opened fine but chitchat could not parse it (a peer of another chitchat version).
    Unparseable,
    /// Opened fine but lost between the codec sockets (loopback buffer overflow).
    Lost,
}

/// At most one line per [`REJECT_LOG_EVERY`], carrying the count it stands for.
#[derive(Default)]
struct RejectLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RejectLog {
    fn record(&mut self, from: SocketAddr, reason: Reject) {
        self.suppressed += 1;
        let due = self.last.is_none_or(|t| t.elapsed() >= REJECT_LOG_EVERY);
        if due {
            warn!(%from, ?reason, dropped = self.suppressed, "gossip datagram(s) dropped");
            self.last = Some(Instant::now());
            self.suppressed = 0;
        } else {
            debug!(%from, ?reason, "gossip datagram dropped");
        }
    }
}

struct SealedSocket {
    socket: tokio::net::UdpSocket,
    local_addr: SocketAddr,
    key: Arc<ChannelKey>,
    stats: Arc<TransportStats>,
    codec: WireCodec,
    /// One byte over the limit, so an oversize datagram shows as such instead of
    /// silently truncated.
    recv_buf: Box<[u8]>,
    out: Vec<u8>,
    sealed: Vec<u8>,
    reject_log: RejectLog,
}

impl SealedSocket {
    fn reject(&mut self, from: SocketAddr, reason: Reject) {
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
        self.reject_log.record(from, reason);
    }
}

/// Opens `buf` (one received datagram) in place; returns where the plaintext is.
fn open_datagram(key: &ChannelKey, buf: &mut [u8]) -> Result<std::ops::Range<usize>, Reject> {
    if buf.len() > MAX_DATAGRAM {
        return Err(Reject::Oversize);
    }
    if buf.len() < SEAL_OVERHEAD {
        return Err(Reject::TooShort);
    }
    let (header, rest) = buf.split_at_mut(HEADER.len());
    if header != HEADER {
        return Err(Reject::WrongHeader);
    }
    let (nonce, body) = rest.split_at_mut(CHANNEL_NONCE_LEN);
    let nonce: [u8; CHANNEL_NONCE_LEN] = (&*nonce).try_into().map_err(|_| Reject::TooShort)?;
    let plain_len = key
        .open(nonce, &HEADER, body)
        .map_err(|_| Reject::Unauthentic)?
        .len();
    let start = HEADER.len() + CHANNEL_NONCE_LEN;
    Ok(start..start + plain_len)
}

/// Transient receive errors: ICMP feedback for an earlier send to a closed port.
fn is_transient(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::OutOfMemory
            | std::io::ErrorKind::Interrupted
    )
}

#[async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        let plain = self.codec.encode(envelope).await?;
        let num_bytes_sent = plain.len();
        if num_bytes_sent + SEAL_OVERHEAD > MAX_DATAGRAM {
            // chitchat fills a datagram up to the UDP limit only with very large states
            // (hundreds of nodes); refusing beats sending a datagram no one can receive.
            bail!("gossip message of {num_bytes_sent} bytes does not fit a sealed datagram");
        }
        self.sealed.clear();
        self.sealed.extend_from_slice(plain);
        let mut nonce = [0u8; CHANNEL_NONCE_LEN];
        swarmmq_crypto::random_bytes(&mut nonce)?;
        self.key.seal(nonce, &HEADER, &mut self.sealed)?;
        self.out.clear();
        self.out.extend_from_slice(&HEADER);
        self.out.extend_from_slice(&nonce);
        self.out.extend_from_slice(&self.sealed);
        self.socket
            .send_to(&self.out, to)
            .await
            .with_context(|| format!("gossip send to {to} failed"))?;
        Ok(SendOutcome { num_bytes_sent })
    }

    /// Cancel-safe (chitchat races it against its gossip timer): a datagram read from
    /// the network is handed to the codec synchronously, and the codec keeps its own
    /// progress, so a cancelled call resumes where it stopped.
    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            if self.codec.busy() {
                match self.codec.next().await? {
                    Decoded::Message(outcome) => return Ok(outcome),
                    Decoded::Invalid(from) => self.reject(from, Reject::Unparseable),
                    Decoded::Lost(from) => self.reject(from, Reject::Lost),
                    Decoded::Settled => {}
                }
                continue;
            }
            let (len, from) = match self.socket.recv_from(&mut self.recv_buf).await {
                Ok(received) => received,
                Err(err) if is_transient(&err) => continue,
                Err(err) => return Err(err).context("gossip socket failed"),
            };
            let Some(datagram) = self.recv_buf.get_mut(..len) else {
                continue;
            };
            match open_datagram(&self.key, datagram) {
                Ok(range) => {
                    let Some(plain) = self.recv_buf.get(range) else {
                        continue;
                    };
                    if let Err(err) = self.codec.submit(plain, from, len) {
                        debug!(%from, error = %err, "gossip datagram not handed to chitchat");
                        self.reject(from, Reject::Lost);
                    }
                }
                Err(reason) => self.reject(from, reason),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use swarmmq_crypto::MasterKey;

    use super::*;

    fn key(b: u8) -> ChannelKey {
        ChannelKey::derive(
            &MasterKey::from_bytes([b; 32]),
            b"test",
            b"swarmmq/v1/gossip",
        )
        .unwrap()
    }

    fn seal(key: &ChannelKey, plain: &[u8]) -> Vec<u8> {
        let mut body = plain.to_vec();
        let nonce = [9u8; CHANNEL_NONCE_LEN];
        key.seal(nonce, &HEADER, &mut body).unwrap();
        let mut out = HEADER.to_vec();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn a_sealed_datagram_opens_only_with_its_key_and_header() {
        let k = key(1);
        let mut d = seal(&k, b"chitchat bytes");
        assert_eq!(d.len(), 14 + SEAL_OVERHEAD);
        let range = open_datagram(&k, &mut d.clone()).unwrap();
        let mut opened = d.clone();
        open_datagram(&k, &mut opened).unwrap();
        assert_eq!(&opened[range], b"chitchat bytes");

        assert!(matches!(
            open_datagram(&key(2), &mut d.clone()),
            Err(Reject::Unauthentic)
        ));
        d[2] = 0x02;
        assert!(matches!(
            open_datagram(&k, &mut d.clone()),
            Err(Reject::WrongHeader)
        ));
        assert!(matches!(
            open_datagram(&k, &mut [0x53, 0x47, 1]),
            Err(Reject::TooShort)
        ));
        let mut huge = vec![0u8; MAX_DATAGRAM + 1];
        huge[..3].copy_from_slice(&HEADER);
        assert!(matches!(
            open_datagram(&k, &mut huge),
            Err(Reject::Oversize)
        ));
    }

    #[test]
    fn a_flipped_bit_anywhere_is_rejected() {
        let k = key(1);
        let d = seal(&k, b"0123456789");
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x01;
            assert!(
                open_datagram(&k, &mut bad).is_err(),
                "bit flip at {i} accepted"
            );
        }
    }
}

//! Chitchat's own wire encoding, reached through a private loopback socket pair.
//!
//! chitchat 0.13 keeps `ChitchatEnvelope::{serialize, deserialize}` and the digest
//! encoding crate-private: the only public code that turns an envelope into bytes (and
//! back) is its plain `transport::UdpSocket`. Rather than re-implementing (or copying)
//! its wire format, [`WireCodec`] owns one such chitchat socket and one raw "bridge"
//! socket, both on 127.0.0.1 and connected to each other only:
//!
//! - encode: the chitchat socket sends the envelope to the bridge; the bridge reads the
//!   exact bytes chitchat produced.
//! - decode: the bridge sends opened plaintext to the chitchat socket, which parses it.
//!
//! Decoding has one hard part: chitchat's socket silently drops bytes it cannot parse,
//! so after each payload the bridge also sends a *sentinel*, a tiny valid Syn whose
//! cluster id holds a per-process secret and a sequence number. The sentinel arriving
//! first means the payload was unparseable; the sequence number lets a late datagram be
//! recognised as stale instead of being paired with the wrong sender. Deadlines make
//! sure a lost datagram can never stall the receive path.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use chitchat::transport::{RecvOutcome, Socket, UdpSocket as ChitchatUdpSocket};
use chitchat::{ChitchatEnvelope, ChitchatMessage, ProtocolVersion};
use tokio::time::{Instant, timeout, timeout_at};

/// The largest UDP payload over IPv4; chitchat never produces more.
pub(crate) const MAX_UDP_PAYLOAD: usize = 65_507;

/// How long an encode may take: loopback delivery is immediate, so this only trips if
/// the runtime itself is stalled.
const ENCODE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long to wait for a submitted payload (or its sentinel) to come back parsed.
/// Generous, because giving up early risks pairing a late payload with the next sender.
const PAYLOAD_TIMEOUT: Duration = Duration::from_millis(500);
/// How long to wait for the sentinel once its payload was parsed: it was queued before
/// the payload was read, so it is either there already or lost.
const SENTINEL_TIMEOUT: Duration = Duration::from_millis(100);
/// Digits of the sequence number inside the sentinel's cluster id (fixed width so the
/// encoded sentinel can be patched in place).
const SEQ_DIGITS: usize = 20;

/// What a decode step produced.
pub(crate) enum Decoded {
    /// The submitted payload parsed; the origin and length are the submitter's.
    Message(RecvOutcome),
    /// The submitted payload did not parse (came from `from`).
    Invalid(SocketAddr),
    /// Neither payload nor sentinel came back in time (loopback buffer overflow).
    Lost(SocketAddr),
    /// A trailing sentinel was consumed; nothing for the caller.
    Settled,
}

enum State {
    Idle,
    AwaitPayload {
        seq: u64,
        from: SocketAddr,
        len: usize,
        deadline: Instant,
    },
    AwaitSentinel {
        seq: u64,
        deadline: Instant,
    },
}

/// Encodes and decodes chitchat envelopes with chitchat's own code (see module docs).
pub(crate) struct WireCodec {
    chitchat: ChitchatUdpSocket,
    bridge: tokio::net::UdpSocket,
    bridge_addr: SocketAddr,
    /// `swarmmq-codec:<secret>:` — never leaves the host, so no peer can forge it.
    sentinel_prefix: String,
    /// The encoded sentinel for sequence 0; the digits are patched per use.
    sentinel_bytes: Vec<u8>,
    /// Where the sequence digits sit inside `sentinel_bytes`.
    sentinel_seq_at: usize,
    encoded: Box<[u8]>,
    state: State,
    /// Sequence number of the last submission.
    submitted: u64,
    /// Every submission up to this one is finished (sentinel seen or given up).
    settled: u64,
}

impl WireCodec {
    /// Binds the loopback pair and encodes the sentinel once.
    pub(crate) async fn open() -> anyhow::Result<WireCodec> {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let chitchat = ChitchatUdpSocket::open(loopback).await?;
        let chitchat_addr = chitchat.local_addr()?;
        let bridge = tokio::net::UdpSocket::bind(loopback)
            .await
            .context("cannot bind the gossip codec socket")?;
        // Connected: the kernel then delivers only the chitchat socket's datagrams here.
        bridge
            .connect(chitchat_addr)
            .await
            .context("cannot connect the gossip codec socket")?;
        let bridge_addr = bridge.local_addr()?;

        let mut secret = [0u8; 16];
        swarmmq_crypto::random_bytes(&mut secret)?;
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let sentinel_prefix = format!("swarmmq-codec:{hex}:");
        let mut codec = WireCodec {
            chitchat,
            bridge,
            bridge_addr,
            sentinel_prefix,
            sentinel_bytes: Vec::new(),
            sentinel_seq_at: 0,
            encoded: vec![0u8; MAX_UDP_PAYLOAD + 1].into_boxed_slice(),
            state: State::Idle,
            submitted: 0,
            settled: 0,
        };
        let placeholder = format!("{}{:0width$}", codec.sentinel_prefix, 0, width = SEQ_DIGITS);
        let sentinel = ChitchatEnvelope {
            version: ProtocolVersion::V0,
            message: ChitchatMessage::Syn {
                cluster_id: placeholder.clone(),
                digest: Default::default(),
            },
        };
        let bytes = codec.encode(sentinel).await?.to_vec();
        // Strings are stored verbatim in chitchat's format; finding ours proves it.
        let at = bytes
            .windows(placeholder.len())
            .position(|w| w == placeholder.as_bytes())
            .context("chitchat's encoding of the codec sentinel is not as expected")?;
        codec.sentinel_seq_at = at + codec.sentinel_prefix.len();
        codec.sentinel_bytes = bytes;
        Ok(codec)
    }

    /// Chitchat's bytes for `envelope`.
    pub(crate) async fn encode(&mut self, envelope: ChitchatEnvelope) -> anyhow::Result<&[u8]> {
        // A previous encode abandoned by its caller may have left bytes behind.
        while self.bridge.try_recv(&mut self.encoded).is_ok() {}
        self.chitchat.send(self.bridge_addr, envelope).await?;
        let len = timeout(ENCODE_TIMEOUT, self.bridge.recv(&mut self.encoded))
            .await
            .context("gossip codec: encode timed out")?
            .context("gossip codec: encode failed")?;
        if len > MAX_UDP_PAYLOAD {
            bail!("gossip codec: chitchat produced {len} bytes");
        }
        Ok(&self.encoded[..len])
    }

    /// Whether a submission is still being decoded ([`Self::next`] must run before the
    /// next [`Self::submit`]).
    pub(crate) fn busy(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Hands opened plaintext from `from` (`len` bytes on the wire) to chitchat's parser.
    /// Synchronous on purpose: nothing can cancel it half-way (chitchat cancels `recv`).
    pub(crate) fn submit(
        &mut self,
        plain: &[u8],
        from: SocketAddr,
        len: usize,
    ) -> anyhow::Result<()> {
        if self.busy() {
            bail!("gossip codec: submit while busy");
        }
        let seq = self.submitted + 1;
        let digits = format!("{seq:0width$}", width = SEQ_DIGITS);
        let Some(slot) = self
            .sentinel_bytes
            .get_mut(self.sentinel_seq_at..self.sentinel_seq_at + SEQ_DIGITS)
        else {
            bail!("gossip codec: sentinel not initialised");
        };
        slot.copy_from_slice(digits.as_bytes());
        self.bridge
            .try_send(plain)
            .context("gossip codec: loopback send failed")?;
        self.submitted = seq;
        // If the sentinel cannot be sent, the payload deadline still ends the wait.
        let _ = self.bridge.try_send(&self.sentinel_bytes);
        self.state = State::AwaitPayload {
            seq,
            from,
            len,
            deadline: Instant::now() + PAYLOAD_TIMEOUT,
        };
        Ok(())
    }

    /// Drives the current submission one step. Cancel-safe: all progress is in `self`.
    pub(crate) async fn next(&mut self) -> anyhow::Result<Decoded> {
        loop {
            let deadline = match self.state {
                State::Idle => return Ok(Decoded::Settled),
                State::AwaitPayload { deadline, .. } | State::AwaitSentinel { deadline, .. } => {
                    deadline
                }
            };
            let outcome = match timeout_at(deadline, self.chitchat.recv()).await {
                Ok(outcome) => outcome?,
                Err(_) => return Ok(self.give_up()),
            };
            if outcome.from_addr != self.bridge_addr {
                // Some other local process wrote to the codec socket; not ours.
                continue;
            }
            if let Some(seq) = self.sentinel_seq(&outcome.envelope) {
                self.settled = self.settled.max(seq);
                match self.state {
                    State::AwaitPayload { seq: cur, from, .. } if seq >= cur => {
                        self.state = State::Idle;
                        return Ok(Decoded::Invalid(from));
                    }
                    State::AwaitSentinel { seq: cur, .. } if seq >= cur => {
                        self.state = State::Idle;
                        return Ok(Decoded::Settled);
                    }
                    _ => continue,
                }
            }
            match self.state {
                // Only the payload sent right after the last settled sentinel is ours.
                State::AwaitPayload { seq, from, len, .. } if self.settled + 1 == seq => {
                    self.state = State::AwaitSentinel {
                        seq,
                        deadline: Instant::now() + SENTINEL_TIMEOUT,
                    };
                    return Ok(Decoded::Message(RecvOutcome {
                        from_addr: from,
                        envelope: outcome.envelope,
                        num_bytes_received: len,
                    }));
                }
                _ => continue,
            }
        }
    }

    fn give_up(&mut self) -> Decoded {
        let decoded = match self.state {
            State::AwaitPayload { from, .. } => Decoded::Lost(from),
            _ => Decoded::Settled,
        };
        self.settled = self.submitted;
        self.state = State::Idle;
        decoded
    }

    fn sentinel_seq(&self, envelope: &ChitchatEnvelope) -> Option<u64> {
        match &envelope.message {
            ChitchatMessage::Syn { cluster_id, .. } => cluster_id
                .strip_prefix(self.sentinel_prefix.as_str())
                .and_then(|digits| digits.parse().ok()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn(cluster_id: &str) -> ChitchatEnvelope {
        ChitchatEnvelope {
            version: ProtocolVersion::V0,
            message: ChitchatMessage::Syn {
                cluster_id: cluster_id.into(),
                digest: Default::default(),
            },
        }
    }

    async fn decode(codec: &mut WireCodec, bytes: &[u8], from: SocketAddr) -> Decoded {
        codec.submit(bytes, from, bytes.len()).unwrap();
        let decoded = codec.next().await.unwrap();
        // Drain the trailing sentinel so the codec is ready for the next one.
        while codec.busy() {
            codec.next().await.unwrap();
        }
        decoded
    }

    #[tokio::test]
    async fn chitchat_bytes_round_trip_and_keep_their_sender() {
        let mut codec = WireCodec::open().await.unwrap();
        let from: SocketAddr = "10.1.2.3:7000".parse().unwrap();
        for i in 0..50 {
            let name = format!("cluster-{i}");
            let bytes = codec.encode(syn(&name)).await.unwrap().to_vec();
            assert!(bytes.windows(name.len()).any(|w| w == name.as_bytes()));
            match decode(&mut codec, &bytes, from).await {
                Decoded::Message(outcome) => {
                    assert_eq!(outcome.from_addr, from);
                    assert_eq!(outcome.num_bytes_received, bytes.len());
                    assert_eq!(outcome.envelope, syn(&name));
                }
                _ => panic!("round {i}: not decoded"),
            }
        }
    }

    #[tokio::test]
    async fn unparseable_bytes_are_reported_and_do_not_shift_later_senders() {
        let mut codec = WireCodec::open().await.unwrap();
        let good = codec.encode(syn("c")).await.unwrap().to_vec();
        let bad_from: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let good_from: SocketAddr = "10.0.0.2:2".parse().unwrap();
        for junk in [&b"junk"[..], &[0u8; 100][..], &good[..good.len() - 1]] {
            assert!(matches!(
                decode(&mut codec, junk, bad_from).await,
                Decoded::Invalid(f) if f == bad_from
            ));
            match decode(&mut codec, &good, good_from).await {
                Decoded::Message(outcome) => assert_eq!(outcome.from_addr, good_from),
                _ => panic!("valid bytes after junk not decoded"),
            }
        }
    }

    #[tokio::test]
    async fn a_decode_cancelled_midway_resumes() {
        let mut codec = WireCodec::open().await.unwrap();
        let good = codec.encode(syn("c")).await.unwrap().to_vec();
        let from: SocketAddr = "10.0.0.3:3".parse().unwrap();
        codec.submit(&good, from, good.len()).unwrap();
        assert!(
            codec.submit(&good, from, good.len()).is_err(),
            "second submit while busy"
        );
        // Poll once and drop if pending, as chitchat's select! does when its timer fires
        // first; the message must then come from the next call, exactly once.
        let decoded = match tokio::time::timeout(Duration::ZERO, codec.next()).await {
            Ok(decoded) => decoded.unwrap(),
            Err(_) => codec.next().await.unwrap(),
        };
        match decoded {
            Decoded::Message(outcome) => assert_eq!(outcome.from_addr, from),
            _ => panic!("decode lost by cancellation"),
        }
        assert!(matches!(codec.next().await.unwrap(), Decoded::Settled));
        assert!(!codec.busy());
    }
}

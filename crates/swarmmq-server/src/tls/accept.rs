//! The server side of a handshake: bounded in time, with failures logged without
//! letting a flood of bad clients flood the log.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::subject::common_name;

/// Longest a client may take to finish its handshake; it holds a connection slot
/// meanwhile, so a slow or silent client must not keep it.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Socket reads under TLS go through a buffer of this size: rustls asks for at most a
/// few KiB at a time, and a syscall per 4 KiB costs more than the decryption.
const SOCKET_READ_BUF: usize = 64 * 1024;

/// A server-side TLS connection.
pub(crate) type ServerTls = TlsStream<BufReader<TcpStream>>;

/// At most one warning line per listener per this period; the rest go to debug.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Rate-limited reporting of failed handshakes on one listener.
pub(crate) struct HandshakeFailures {
    listener: &'static str,
    /// When the last warning was logged, and failures since then not warned about.
    state: Mutex<(Option<Instant>, u64)>,
}

impl HandshakeFailures {
    pub(crate) fn new(listener: &'static str) -> Self {
        HandshakeFailures {
            listener,
            state: Mutex::new((None, 0)),
        }
    }

    fn record(&self, peer: SocketAddr, reason: &str) {
        let suppressed = match self.state.lock() {
            Ok(mut s) => {
                let due = s.0.is_none_or(|t| t.elapsed() >= WARN_EVERY);
                if due {
                    let n = s.1;
                    *s = (Some(Instant::now()), 0);
                    Some(n)
                } else {
                    s.1 += 1;
                    None
                }
            }
            Err(_) => None,
        };
        match suppressed {
            Some(earlier) => tracing::warn!(
                listener = self.listener,
                %peer,
                error = reason,
                suppressed_since_last = earlier,
                "TLS handshake failed"
            ),
            None => {
                tracing::debug!(listener = self.listener, %peer, error = reason, "TLS handshake failed")
            }
        }
    }
}

/// First byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// Most bytes read from a plaintext client while waiting for it to close.
const MAX_DRAIN: usize = 64 * 1024;
/// Longest wait for more bytes (or the close) of a plaintext client after the notice.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// Runs the server handshake on `stream`; `None` (after logging) if it fails or takes
/// longer than [`HANDSHAKE_TIMEOUT`]. A client that does not start with a TLS record
/// gets `plaintext_reply` in clear (a fixed "use TLS" notice, nothing else) and is closed.
pub(crate) async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    failures: &HandshakeFailures,
    plaintext_reply: &[u8],
) -> Option<ServerTls> {
    let attempt = async {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            let mut stream = stream;
            stream.write_all(plaintext_reply).await?;
            let _ = stream.shutdown().await;
            // Closing with the client's bytes unread would reset the connection and
            // could destroy the notice in flight: read until the client closes.
            let mut sink = [0u8; 4096];
            let mut drained = 0usize;
            while drained < MAX_DRAIN {
                match tokio::time::timeout(DRAIN_WAIT, stream.read(&mut sink)).await {
                    Ok(Ok(n)) if n > 0 => drained += n,
                    _ => break,
                }
            }
            return Err(std::io::Error::other(
                "plaintext client: the first bytes are not a TLS handshake",
            ));
        }
        acceptor
            .accept(BufReader::with_capacity(SOCKET_READ_BUF, stream))
            .await
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt).await {
        Ok(Ok(tls)) => Some(tls),
        // Connected and closed without a byte: a port probe (load balancer, readiness
        // check), not a failed client.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof && e.get_ref().is_none() => {
            tracing::debug!(listener = failures.listener, %peer, "closed before the handshake");
            None
        }
        Ok(Err(e)) => {
            failures.record(peer, &e.to_string());
            None
        }
        Err(_) => {
            failures.record(
                peer,
                &format!("no complete handshake within {HANDSHAKE_TIMEOUT:?}"),
            );
            None
        }
    }
}

/// What a plaintext SwarmMQ client gets from a TLS listener: an error frame it can show.
pub(crate) fn protocol_notice() -> Vec<u8> {
    let mut frame = bytes::BytesMut::new();
    let resp = swarmmq_protocol::ErrorResponse {
        code: swarmmq_types::ErrorCode::InvalidRequest,
        message: "this node requires TLS; connect with TLS (swarmmq: --tls-ca FILE)".into(),
    };
    match swarmmq_protocol::encode_error(0, 0, &resp, &swarmmq_types::Limits::DEFAULT, &mut frame) {
        Ok(()) => frame.to_vec(),
        Err(_) => Vec::new(),
    }
}

/// What a plain-HTTP client gets from the HTTPS listener.
pub(crate) const HTTP_NOTICE: &[u8] = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 33\r\n\r\nthis port serves HTTPS, not HTTP\n";

/// The subject CN of the client's verified certificate (mutual TLS), if it sent one.
pub(crate) fn client_identity(tls: &ServerTls) -> Option<String> {
    let certs = tls.get_ref().1.peer_certificates()?;
    common_name(certs.first()?.as_ref())
}

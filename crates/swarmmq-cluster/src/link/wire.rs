//! The bytes of the internal link: a clear handshake, then sealed frames.
//!
//! ```text
//! hello (client -> server, clear):
//!   "SMQL" | version u8 | salt [16] | cluster name (u16 len, utf-8) | node id (u16 len)
//!   | advertised internal address (u16 len)
//! answer (server -> client, clear):
//!   "SMQL" | version u8 | status u8 (0 ok, 1 refused) | salt [16] | text (u16 len)
//!   then, when ok, one sealed frame whose body is CONFIRM (proves the master key)
//! frame (both directions, after the handshake):
//!   length u32 (of what follows) | AES-256-GCM( kind u8 | correlation u32 | payload ) | tag
//! ```
//! Keys: `HKDF(master, salt = client salt || server salt, purpose = c2s | s2c)`; nonce =
//! 4 zero bytes || a per-direction frame counter (u64), so a nonce never repeats under
//! one key and a replayed or reordered frame fails to open.

use std::io;

use swarmmq_crypto::{CHANNEL_TAG_LEN, ChannelKey, MasterKey};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ClusterError;

pub(crate) const MAGIC: &[u8; 4] = b"SMQL";
pub(crate) const VERSION: u8 = 1;
pub(crate) const SALT_LEN: usize = 16;
/// Most bytes of a handshake text (names, addresses, refusal reasons).
const MAX_TEXT: usize = 1024;
/// The body of the server's first sealed frame.
pub(crate) const CONFIRM: &[u8] = b"swarmmq link ok";
/// Kind byte + correlation id.
pub(crate) const FRAME_HEAD: usize = 5;

/// What a connecting node says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub cluster: String,
    pub node_id: String,
    pub advertise: String,
}

pub(crate) fn put_text(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let n = bytes.len().min(MAX_TEXT);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(bytes.get(..n).unwrap_or_default());
}

async fn read_text<R: AsyncRead + Unpin>(rd: &mut R) -> io::Result<String> {
    let n = usize::from(rd.read_u16().await?);
    if n > MAX_TEXT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "handshake text too long",
        ));
    }
    let mut buf = vec![0u8; n];
    rd.read_exact(&mut buf).await?;
    String::from_utf8(buf)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "handshake text is not UTF-8"))
}

async fn read_magic<R: AsyncRead + Unpin>(rd: &mut R) -> io::Result<()> {
    let mut head = [0u8; 5];
    rd.read_exact(&mut head).await?;
    if &head[..4] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a SwarmMQ internal link (bad magic)",
        ));
    }
    if head[4] != VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unsupported internal link version {}", head[4]),
        ));
    }
    Ok(())
}

pub(crate) fn encode_hello(hello: &Hello, salt: &[u8; SALT_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(salt);
    put_text(&mut out, &hello.cluster);
    put_text(&mut out, &hello.node_id);
    put_text(&mut out, &hello.advertise);
    out
}

pub(crate) async fn read_hello<R: AsyncRead + Unpin>(
    rd: &mut R,
) -> io::Result<(Hello, [u8; SALT_LEN])> {
    read_magic(rd).await?;
    let mut salt = [0u8; SALT_LEN];
    rd.read_exact(&mut salt).await?;
    let cluster = read_text(rd).await?;
    let node_id = read_text(rd).await?;
    let advertise = read_text(rd).await?;
    Ok((
        Hello {
            cluster,
            node_id,
            advertise,
        },
        salt,
    ))
}

pub(crate) fn encode_answer(refusal: Option<&str>, salt: &[u8; SALT_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(u8::from(refusal.is_some()));
    out.extend_from_slice(salt);
    put_text(&mut out, refusal.unwrap_or(""));
    out
}

/// The server's answer: its salt, or the reason it refused.
pub(crate) async fn read_answer<R: AsyncRead + Unpin>(
    rd: &mut R,
) -> io::Result<Result<[u8; SALT_LEN], String>> {
    read_magic(rd).await?;
    let status = rd.read_u8().await?;
    let mut salt = [0u8; SALT_LEN];
    rd.read_exact(&mut salt).await?;
    let text = read_text(rd).await?;
    Ok(if status == 0 { Ok(salt) } else { Err(text) })
}

/// The two directions' keys of one connection.
pub(crate) fn session_keys(
    master: &MasterKey,
    client_salt: &[u8; SALT_LEN],
    server_salt: &[u8; SALT_LEN],
) -> Result<(ChannelKey, ChannelKey), ClusterError> {
    let mut salt = [0u8; 2 * SALT_LEN];
    salt[..SALT_LEN].copy_from_slice(client_salt);
    salt[SALT_LEN..].copy_from_slice(server_salt);
    Ok((
        ChannelKey::derive(master, &salt, b"swarmmq/v1/link/c2s")?,
        ChannelKey::derive(master, &salt, b"swarmmq/v1/link/s2c")?,
    ))
}

fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// Seals and writes frames in order on one direction of a connection.
pub(crate) struct FrameWriter {
    key: ChannelKey,
    counter: u64,
    buf: Vec<u8>,
}

impl FrameWriter {
    pub(crate) fn new(key: ChannelKey) -> Self {
        FrameWriter {
            key,
            counter: 0,
            buf: Vec::new(),
        }
    }

    /// Seals one frame and writes it (not flushed).
    pub(crate) async fn write<W: AsyncWrite + Unpin>(
        &mut self,
        wr: &mut W,
        kind: u8,
        correlation: u32,
        payload: &[u8],
    ) -> io::Result<()> {
        self.buf.clear();
        self.buf.push(kind);
        self.buf.extend_from_slice(&correlation.to_be_bytes());
        self.buf.extend_from_slice(payload);
        self.key
            .seal(nonce(self.counter), MAGIC, &mut self.buf)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.counter += 1;
        let len = u32::try_from(self.buf.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        wr.write_all(&len.to_be_bytes()).await?;
        wr.write_all(&self.buf).await
    }
}

/// Reads and opens frames in order on one direction of a connection.
pub(crate) struct FrameReader {
    key: ChannelKey,
    counter: u64,
    max_frame: usize,
}

/// One opened frame.
pub(crate) struct InFrame {
    pub kind: u8,
    pub correlation: u32,
    pub payload: bytes::Bytes,
}

impl FrameReader {
    pub(crate) fn new(key: ChannelKey, max_frame: usize) -> Self {
        FrameReader {
            key,
            counter: 0,
            max_frame,
        }
    }

    pub(crate) async fn read<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> io::Result<InFrame> {
        let len = rd.read_u32().await? as usize;
        if len < FRAME_HEAD + CHANNEL_TAG_LEN || len > self.max_frame + FRAME_HEAD + CHANNEL_TAG_LEN
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("internal frame of {len} bytes is outside the limits"),
            ));
        }
        let mut buf = vec![0u8; len];
        rd.read_exact(&mut buf).await?;
        let plain_len = self
            .key
            .open(nonce(self.counter), MAGIC, &mut buf)
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "internal frame does not open (another master key, or altered bytes)",
                )
            })?
            .len();
        self.counter += 1;
        buf.truncate(plain_len);
        let mut bytes = bytes::Bytes::from(buf);
        let head = bytes.split_to(FRAME_HEAD);
        let kind = head[0];
        let correlation = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        Ok(InFrame {
            kind,
            correlation,
            payload: bytes,
        })
    }
}

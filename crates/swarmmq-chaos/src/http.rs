//! A minimal HTTP/1.0 GET for a node's `/health` and `/v1/admin/cluster`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Answers longer than this are cut (a cluster status is a few KiB).
const MAX_ANSWER: u64 = 1024 * 1024;

/// The status code and body, or `None` when the node does not answer within `timeout`
/// (a paused node accepts the connection and then says nothing).
pub async fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut raw = Vec::new();
        s.take(MAX_ANSWER).read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw);
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((status, body))
    };
    tokio::time::timeout(timeout, exchange).await.ok().flatten()
}

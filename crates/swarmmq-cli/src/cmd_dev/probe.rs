//! Readiness probes over the nodes' HTTP port: `/health` and `/v1/admin/cluster`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Answers larger than this are cut (a cluster status is a few KiB).
const MAX_ANSWER: u64 = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(2);

/// A minimal HTTP/1.0 GET: the status code and body, or `None` when the node does not
/// answer in time.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
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
    tokio::time::timeout(TIMEOUT, exchange).await.ok().flatten()
}

/// What a cluster status says is still missing for `want` alive nodes and a leader;
/// empty when the cluster is complete.
pub fn missing(status: &serde_json::Value, want: &[String]) -> Vec<String> {
    let mut missing = Vec::new();
    if status
        .get("leader")
        .and_then(serde_json::Value::as_str)
        .is_none()
    {
        missing.push("no metadata leader".to_string());
    }
    let nodes = status
        .get("nodes")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for id in want {
        let state = nodes
            .iter()
            .find(|n| n.get("id").and_then(serde_json::Value::as_str) == Some(id))
            .and_then(|n| n.get("state").and_then(serde_json::Value::as_str));
        match state {
            Some("alive") => {}
            Some(other) => missing.push(format!("{id} is {other}")),
            None => missing.push(format!("{id} not a member yet")),
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_the_leader_and_each_node_not_alive() {
        let want = vec!["node-1".to_string(), "node-2".into(), "node-3".into()];
        let status = serde_json::json!({"leader": null, "nodes": [
            {"id": "node-1", "state": "alive"}, {"id": "node-2", "state": "suspect"}]});
        assert_eq!(
            missing(&status, &want),
            [
                "no metadata leader",
                "node-2 is suspect",
                "node-3 not a member yet"
            ]
        );
        let status = serde_json::json!({"leader": "node-1", "nodes": [
            {"id": "node-1", "state": "alive"}, {"id": "node-2", "state": "alive"},
            {"id": "node-3", "state": "alive"}]});
        assert!(missing(&status, &want).is_empty());
    }
}

//! Shapes of what the CLI prints.

use base64::Engine;
use swarmmq_client::DeliveredMessage;

/// An error and its causes on one line: `outer: inner: root`.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        // Skip a cause already quoted by its parent's message.
        if parts.last().is_some_and(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ").replace('\n', " ")
}

/// Bytes as a JSON string when they are UTF-8, else as `{"base64": "..."}`.
fn bytes_value(b: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(b) {
        Ok(s) => serde_json::Value::String(s.to_string()),
        Err(_) => {
            serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) })
        }
    }
}

/// One consumed message as the JSON line `consume --format json` prints.
pub fn message_json(m: &DeliveredMessage) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = m
        .headers
        .iter()
        .map(|h| (h.name.clone(), bytes_value(&h.value)))
        .collect();
    serde_json::json!({
        "id": m.id.as_ref().map(|i| i.to_string()),
        "partition": m.partition,
        "offset": m.offset,
        "priority": m.priority,
        "timestamp": m.timestamp_ms,
        "delivery_attempt": m.delivery_attempt,
        "key": m.key.as_ref().map(|k| bytes_value(k)),
        "headers": headers,
        "payload": bytes_value(&m.payload),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_causes_without_repeats() {
        let e = anyhow::anyhow!("root cause").context("while connecting");
        assert_eq!(one_line(&e), "while connecting: root cause");
    }

    #[test]
    fn binary_payloads_become_base64() {
        assert_eq!(bytes_value(b"hi"), serde_json::json!("hi"));
        assert_eq!(
            bytes_value(&[0xff, 0x00]),
            serde_json::json!({"base64": "/wA="})
        );
    }
}

//! Helpers shared by the integration tests: real batches under a real key.

#![allow(dead_code)]

use swarmmq_crypto::{KeyRing, MasterKey};
use swarmmq_replication::BatchData;
use swarmmq_storage::{BatchBuilder, RecordInput};

pub fn ring() -> KeyRing {
    KeyRing::single(MasterKey::from_bytes([7; 32]))
}

/// A fresh (unstamped) batch of `n` records whose payloads name `tag`.
pub fn fresh_batch(ring: &KeyRing, tag: &str, n: u32) -> BatchData {
    let mut b = BatchBuilder::new(ring, 1, 256).unwrap();
    for i in 0..n {
        let payload = format!("{tag}-{i}");
        b.push(RecordInput {
            timestamp_ms: 1_700_000_000_000,
            priority: 5,
            id: None,
            key: None,
            headers: &[],
            deliver_at_ms: None,
            expires_at_ms: None,
            payload: payload.as_bytes(),
        })
        .unwrap();
    }
    BatchData::from_encoded(b.finish())
}

//! Reading what a pull needs from a partition log: record metadata for the delivery
//! state's lookahead, and decrypted records by offset.

use std::sync::Arc;

use swarmmq_crypto::KeyRing;
use swarmmq_delivery::RecordInfo;
use swarmmq_storage::{LogReader, Record};

use crate::error::RequestError;

/// Bytes read per storage call while scanning metadata.
const SCAN_READ_BYTES: usize = 1024 * 1024;

/// Metadata of up to `max` records from `from`, below `visible`.
pub(crate) fn read_infos(
    reader: &LogReader,
    from: u64,
    max: u64,
    visible: u64,
) -> Result<Vec<RecordInfo>, RequestError> {
    let mut out = Vec::new();
    let mut next = from;
    while (out.len() as u64) < max && next < visible {
        let read = reader.read(next, SCAN_READ_BYTES, visible)?;
        if read.batches.is_empty() {
            break;
        }
        for batch in &read.batches {
            for meta in batch.records_meta() {
                let meta = meta?;
                if meta.offset < next || (out.len() as u64) >= max {
                    continue;
                }
                out.push(RecordInfo {
                    offset: meta.offset,
                    priority: meta.priority.get(),
                    timestamp_ms: meta.timestamp_ms,
                    deliver_at_ms: meta.deliver_at_ms,
                    expires_at_ms: meta.expires_at_ms,
                });
                next = meta.offset + 1;
            }
            next = next.max(batch.next_offset());
        }
    }
    Ok(out)
}

/// Decrypted records of the batch read last; consecutive offsets of one batch are
/// served from it without reading or decrypting again. The key ring is the node's at
/// the cursor's creation: it holds the key id of every batch below `visible`.
pub(crate) struct BatchCursor<'a> {
    reader: &'a LogReader,
    ring: Arc<KeyRing>,
    visible: u64,
    base: u64,
    records: Vec<Record>,
}

impl<'a> BatchCursor<'a> {
    pub fn new(reader: &'a LogReader, ring: Arc<KeyRing>, visible: u64) -> Self {
        BatchCursor {
            reader,
            ring,
            visible,
            base: 0,
            records: Vec::new(),
        }
    }

    /// The record at `offset`, or `None` when the log no longer has it (retention).
    pub fn get(&mut self, offset: u64) -> Result<Option<&Record>, RequestError> {
        let cached = offset >= self.base && offset < self.base + self.records.len() as u64;
        if !cached {
            if offset >= self.visible || offset < self.reader.start_offset() {
                return Ok(None);
            }
            // One byte asked for: the reader returns exactly the batch holding `offset`.
            let read = self.reader.read(offset, 1, self.visible)?;
            let Some(batch) = read.batches.into_iter().next() else {
                return Ok(None);
            };
            self.base = batch.base_offset();
            self.records.clear();
            for r in batch.decrypt_records(&self.ring) {
                self.records.push(r?);
            }
        }
        Ok(self.records.get((offset - self.base) as usize))
    }
}

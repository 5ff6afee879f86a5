//! The record batch: the unit of append, fsync, replication and read. Layout byte by
//! byte in `docs/storage.md`; the constants here are the single source of truth.

mod builder;
mod header;
mod record;
mod view;

pub use builder::{BatchBuilder, EncodedBatch, RecordHeaderRef, RecordInput};
pub use header::{BatchHeader, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_BATCH_LEN};
pub use record::{Record, RecordHeaders, RecordMeta};
pub use view::{Batch, DecodeBatches, DecryptRecords, RecordsMeta, decode_batches};

//! The storage layer of a SwarmMQ node: the encrypted record batch format and the
//! segmented, crash-safe partition log (segments, sparse indexes, recovery, retention).
//!
//! One [`PartitionLog`] per partition directory is the single writer; any number of
//! [`LogReader`] clones read concurrently with it. Payloads are AES-256-GCM ciphertext
//! from the moment a record enters a [`BatchBuilder`]; nothing in a log directory is
//! plaintext payload. The byte formats are documented in `docs/storage.md`.
//!
//! The active segment is written with `O_DIRECT` from an aligned staging buffer where
//! the file system supports it ([`IoMode`]; `docs/adr/0002-direct-io.md` says why), and
//! the newest batches stay in a bounded in-memory tail cache that serves readers near
//! the end of the log.
//!
//! This crate is NOT: the wire protocol (it never depends on `swarmmq-protocol`), the
//! Raft implementation (it only offers the primitives a Raft log store needs: a term per
//! batch, `truncate_suffix`, `append_raw`), delivery state (leases, acks), a cache of
//! older data (reads behind the tail cache go to the files), or async: all calls block,
//! and the caller runs them off the async threads.

mod batch;
mod error;
mod varint;

pub use batch::{
    Batch, BatchBuilder, BatchHeader, DecodeBatches, DecryptRecords, EncodedBatch, FORMAT_VERSION,
    HEADER_LEN, MAGIC, MAX_BATCH_LEN, Record, RecordHeaderRef, RecordHeaders, RecordInput,
    RecordMeta, RecordsMeta, decode_batches,
};
pub use error::StorageError;

mod cache;
mod config;
mod index;
mod io;
mod key_usage;
mod log;
mod pending_sync;
mod reader;
mod recovery;
mod retention;
mod segment;

pub use config::{FsyncPolicy, IoMode, LogConfig};
pub use key_usage::{KeyIdUsage, KeyUsage, MAX_KEY_IDS};
pub use log::{AppendOutcome, PartitionLog};
pub use pending_sync::PendingSync;
pub use reader::{LogReader, ReadResult};
pub use recovery::{RecoveryReport, TornTail};
pub use retention::RetentionReport;

//! Configuration of a SwarmMQ node: the [`Config`] struct with its documented defaults,
//! loading in layers (embedded defaults <- one YAML file <- `SWARMMQ_*` environment;
//! command-line flags are applied by the caller), and validation with errors that name
//! the key, its origin and the reason.
//!
//! This crate is configuration only. It does no I/O besides reading the one config file
//! (it never checks that the TLS files or data directory exist, binds nothing, starts
//! nothing) and depends on no SwarmMQ crate but `swarmmq-types`.

mod byte_size;
mod choices;
mod config;
mod de;
mod env;
mod error;
mod master_key;
mod sections;
mod tree;
mod validate;

pub use byte_size::ByteSize;
pub use choices::{FsyncPolicy, LogFormat, NodeRole, ReplicationMode};
pub use config::{API_KEYS_FILE_NAME, Config, FRAME_OVERHEAD, MAX_FILE_BYTES, process_env};
pub use error::{ConfigError, Origin};
pub use master_key::MasterKey;
pub use sections::{
    ClusterNode, ClusterSection, DeliverySection, LogSection, NodeSection, PerformanceSection,
    SecuritySection, StorageSection,
};

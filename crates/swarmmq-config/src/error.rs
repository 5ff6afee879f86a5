use std::fmt;
use std::path::PathBuf;

/// Where a refused value came from; shown as the first words of the error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// YAML text given directly, or the merged struct being validated: no prefix.
    Inline,
    /// The YAML file at this path.
    File(PathBuf),
    /// The named `SWARMMQ_*` environment variable.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Inline => Ok(()),
            Origin::File(path) => write!(f, "config file {}: ", path.display()),
            Origin::Env(var) => write!(f, "env {var}: "),
        }
    }
}

/// Every way a configuration can be refused. Each text names the key's full path (or
/// the file or variable) and the reason, so a user can fix it without reading code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("config file {}: cannot read: {reason}", path.display())]
    Read { path: PathBuf, reason: String },

    /// The config file is larger than [`crate::MAX_FILE_BYTES`].
    #[error("config file {}: is {len} bytes long; the limit is {max}", path.display())]
    TooLarge { path: PathBuf, len: u64, max: u64 },

    /// The YAML text is not well-formed.
    #[error("{origin}YAML error at line {line}, column {column}: {message}")]
    Yaml {
        origin: Origin,
        line: u64,
        column: u64,
        message: String,
    },

    /// A key that the configuration does not have (usually a typo).
    #[error("{origin}unknown key \"{key}\" ({})", known_text(parent, known))]
    UnknownKey {
        origin: Origin,
        /// Full path of the unknown key, e.g. `storage.data_dri`.
        key: String,
        /// Path of the enclosing section; empty at the top level.
        parent: String,
        /// The keys that exist there, in declaration order.
        known: Vec<String>,
    },

    /// A value of the wrong type or out of range; `key` is its full path.
    #[error("{origin}{}{reason}", key_prefix(key))]
    Invalid {
        origin: Origin,
        key: String,
        reason: String,
    },

    /// Both spellings of the master key variable are set, to different values.
    #[error(
        "env SWARMMQ_MASTER_KEY and env SWARMMQ_SECURITY_MASTER_KEY are both set and differ; set only one"
    )]
    MasterKeyConflict,

    /// Text that is not a byte size.
    #[error("{0:?} is not a size (use e.g. 1MiB, 512KB, 1048576)")]
    NotASize(String),

    /// A byte size past `u64::MAX` bytes.
    #[error("{0:?} is too large a size (at most 16EiB - 1)")]
    SizeTooLarge(String),

    /// Text that is not one of an enum's spellings.
    #[error("unknown value {value:?}, expected one of {expected}")]
    UnknownValue {
        value: String,
        expected: &'static str,
    },

    /// A master key that is not the base64 of 32 bytes. Never echoes the key.
    #[error("not the base64 of 32 bytes ({0})")]
    BadMasterKey(String),
}

impl ConfigError {
    /// A refusal of the value at `key` found by validation (no origin prefix).
    pub(crate) fn invalid(key: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            origin: Origin::Inline,
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

fn known_text(parent: &str, known: &[String]) -> String {
    if parent.is_empty() {
        format!("known sections: {}", known.join(", "))
    } else {
        format!("known keys in {parent}: {}", known.join(", "))
    }
}

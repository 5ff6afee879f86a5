use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use swarmmq_types::Limits;

use crate::de::{NodeDe, struct_fields};
use crate::error::{ConfigError, Origin};
use crate::sections::{
    ClusterSection, DeliverySection, LogSection, NodeSection, PerformanceSection, SecuritySection,
    StorageSection,
};
use crate::tree::{Node, Value};

/// A config file larger than this is refused before it is read: real ones are a few KiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The key file's name in the data dir when `security.api_keys_file` is not set.
pub const API_KEYS_FILE_NAME: &str = "api-keys.json";

/// Framing room reserved around the largest message in a frame (headers, key, fields).
pub const FRAME_OVERHEAD: u64 = 64 * 1024;

/// A node's whole configuration. `Config::default()` is a single node that just works.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node: NodeSection,
    pub cluster: ClusterSection,
    pub performance: PerformanceSection,
    pub storage: StorageSection,
    pub delivery: DeliverySection,
    pub security: SecuritySection,
    pub log: LogSection,
}

impl Config {
    /// Loads the layers `defaults <- YAML file (if any) <- environment`.
    ///
    /// `env` is the process environment in production (see [`crate::process_env`]) and a
    /// literal list in tests. Only `SWARMMQ_*` entries are looked at. The result is not
    /// yet validated: the caller applies its command-line flags, then calls
    /// [`Config::validate`].
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (mut root, origin) = match file {
            Some(path) => {
                let origin = Origin::File(path.to_owned());
                (parse_yaml(&read_file(path)?, &origin)?, origin)
            }
            None => (Node::new(Value::Null), Origin::Inline),
        };
        crate::env::overlay(&mut root, struct_fields::<Config>(), env)?;
        from_tree(&root, &origin)
    }

    /// Parses YAML text over the defaults, without environment. Not validated.
    pub fn from_yaml_str(yaml: &str) -> Result<Config, ConfigError> {
        let origin = Origin::Inline;
        from_tree(&parse_yaml(yaml, &origin)?, &origin)
    }

    /// Where the API keys are: `security.api_keys_file`, or `api-keys.json` in the
    /// data dir. The node and `swarmmq auth` both resolve it this way.
    pub fn api_keys_file(&self) -> PathBuf {
        self.security
            .api_keys_file
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join(API_KEYS_FILE_NAME))
    }

    /// [`Limits::DEFAULT`] with the configurable bounds taken from `performance`.
    ///
    /// Values too large for a limit saturate; [`Config::validate`] refuses them first.
    pub fn limits(&self) -> Limits {
        let p = &self.performance;
        let frame = saturate(p.max_frame_size.as_u64());
        // A pull answer must fit in one frame with room for its framing.
        let pull = saturate(p.max_frame_size.as_u64().saturating_sub(FRAME_OVERHEAD));
        Limits {
            max_frame_bytes: frame,
            max_message_bytes: saturate(p.max_message_size.as_u64()),
            max_batch_messages: p.batch_size,
            max_connections: p.max_connections,
            max_inflight_bytes_per_connection: p.max_inflight_bytes.as_u64(),
            max_pull_bytes: Limits::DEFAULT.max_pull_bytes.min(pull),
            ..Limits::DEFAULT
        }
    }
}

fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn from_tree(root: &Node, origin: &Origin) -> Result<Config, ConfigError> {
    Config::deserialize(NodeDe {
        node: root,
        path: String::new(),
    })
    .map_err(|e| e.into_config_error(origin))
}

fn parse_yaml(text: &str, origin: &Origin) -> Result<Node, ConfigError> {
    // Files are bounded when read; this bounds text handed over directly.
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::Invalid {
            origin: origin.clone(),
            key: String::new(),
            reason: format!(
                "YAML text is {} bytes long; the limit is {MAX_FILE_BYTES}",
                text.len()
            ),
        });
    }
    let options = serde_saphyr::options! {
        with_snippet: false,
        // YAML 1.1 booleans (`no`, `on`) are a classic config trap: keep them strings.
        strict_booleans: true,
    };
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|e| {
        let message = e.without_snippet().to_string();
        match e.location() {
            Some(at) => {
                let suffix = format!(" at line {}, column {}", at.line(), at.column());
                ConfigError::Yaml {
                    origin: origin.clone(),
                    line: at.line(),
                    column: at.column(),
                    message: message.strip_suffix(&suffix).unwrap_or(&message).to_owned(),
                }
            }
            None => ConfigError::Invalid {
                origin: origin.clone(),
                key: String::new(),
                reason: format!("YAML error: {message}"),
            },
        }
    })
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    let read_error = |e: io::Error| ConfigError::Read {
        path: path.to_owned(),
        reason: io_reason(&e),
    };
    let too_large = |len: u64| ConfigError::TooLarge {
        path: path.to_owned(),
        len,
        max: MAX_FILE_BYTES,
    };
    let file = File::open(path).map_err(read_error)?;
    let len = file.metadata().map_err(read_error)?.len();
    if len > MAX_FILE_BYTES {
        return Err(too_large(len));
    }
    let mut text = String::new();
    // `take` bounds the read even if the file grows after the size check.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    let read = text.len() as u64;
    if read > MAX_FILE_BYTES {
        return Err(too_large(read));
    }
    Ok(text)
}

/// The OS's words for an I/O error, without Rust's " (os error N)" tail.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}

/// The process environment as UTF-8 pairs, for [`Config::load`].
///
/// `std::env::vars` panics on a non-UTF-8 entry; here such entries are skipped, except
/// `SWARMMQ_*` values, which are passed on lossily so the user sees them refused rather
/// than silently ignored.
pub fn process_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(name, value)| {
        let name = name.into_string().ok()?;
        let value = match value.into_string() {
            Ok(value) => value,
            Err(raw) if name.starts_with("SWARMMQ_") => raw.to_string_lossy().into_owned(),
            Err(_) => return None,
        };
        Some((name, value))
    })
}

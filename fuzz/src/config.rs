//! Node configuration: YAML text through the real loader (a real file), with
//! `SWARMMQ_*` environment overrides on top, then validation and the derived limits.
//!
//! Rules checked: loading and validating never panic; every refusal is a
//! `ConfigError` with a text; without environment, loading a file and parsing the same
//! text inline agree; a configuration that validates converts to limits that the
//! storage layer accepts for every partition.

use std::path::PathBuf;
use std::sync::OnceLock;

use swarmmq_config::{Config, ConfigError};

/// One file per process, rewritten for every input (tmpfs when there is one).
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let base = std::path::Path::new("/dev/shm");
        let dir = if base.is_dir() {
            tempfile::tempdir_in(base)
        } else {
            tempfile::tempdir()
        }
        .expect("temp dir");
        let path = dir.path().join("node.yaml");
        (dir, path)
    })
    .1
}

/// Splits an input into the YAML text and `NAME=VALUE` environment entries: the text
/// ends at the first NUL, each later NUL starts an entry. A name without the
/// `SWARMMQ_` prefix gets it, so mutations land on variables the loader reads.
pub fn split(data: &[u8]) -> (String, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let yaml = parts.next().unwrap_or_default().to_owned();
    let env = parts
        .map(|entry| {
            let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
            let name = if name.starts_with("SWARMMQ_") {
                name.to_owned()
            } else {
                format!("SWARMMQ_{name}")
            };
            (name, value.to_owned())
        })
        .collect();
    (yaml, env)
}

fn check_error(e: &ConfigError) {
    assert!(
        !matches!(e, ConfigError::Read { .. }),
        "the scratch file must be readable: {e}"
    );
    assert!(!e.to_string().is_empty());
}

pub fn check_input(data: &[u8]) {
    let (yaml, env) = split(data);
    let path = scratch();
    std::fs::write(path, &yaml).expect("write scratch config");
    let no_env = env.is_empty();
    let loaded = Config::load(Some(path), env);
    match &loaded {
        Ok(config) => match config.validate() {
            Ok(()) => {
                let limits = config.limits();
                assert!(limits.max_frame_bytes > 0);
                assert!(u64::from(limits.max_message_bytes) < u64::from(limits.max_frame_bytes));
                // What every partition log of the node will require: a batch made from
                // one frame fits the storage format, and a segment plus one batch
                // stays addressable by u32 index positions. A config that passes
                // validation but breaks these makes every partition refuse to open.
                assert!(limits.max_frame_bytes < swarmmq_storage::MAX_BATCH_LEN);
                let segment = config.storage.segment_size.as_u64();
                assert!(segment + u64::from(swarmmq_storage::MAX_BATCH_LEN) <= u64::from(u32::MAX));
            }
            Err(e) => check_error(&e),
        },
        Err(e) => check_error(e),
    }
    if no_env {
        let inline = Config::from_yaml_str(&yaml);
        match (&loaded, &inline) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "file and inline loading disagree"),
            (Err(_), Err(_)) => {}
            _ => panic!("file and inline loading disagree: {loaded:?} vs {inline:?}"),
        }
    }
}

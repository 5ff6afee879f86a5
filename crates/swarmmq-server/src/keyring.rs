//! Where the node's master key comes from: config or environment first, else the
//! `master.key` file in the data dir, generated (mode 0600) on first start.
//!
//! A `key-check` file remembers a fingerprint of each key id that wrote data here, so a
//! node started with the wrong key refuses to start instead of failing on every read.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use swarmmq_crypto::{KeyRing, MasterKey};

use crate::error::ServerError;

const KEY_FILE: &str = "master.key";
const CHECK_FILE: &str = "key-check";

pub(crate) fn load_keyring(
    configured: Option<&MasterKey>,
    data_dir: &Path,
) -> Result<KeyRing, ServerError> {
    let key_path = data_dir.join(KEY_FILE);
    let key = match configured {
        Some(k) => k.clone(),
        None if key_path.exists() => {
            let text = fs::read_to_string(&key_path).map_err(ServerError::io(&key_path))?;
            MasterKey::from_base64(text.trim())
                .map_err(|e| ServerError::MasterKey(format!("{}: {e}", key_path.display())))?
        }
        None => {
            let key = MasterKey::generate()
                .map_err(|e| ServerError::MasterKey(format!("cannot generate: {e}")))?;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key_path)
                .map_err(ServerError::io(&key_path))?;
            f.write_all(key.to_base64().as_bytes())
                .and_then(|_| f.write_all(b"\n"))
                .and_then(|_| f.sync_all())
                .map_err(ServerError::io(&key_path))?;
            tracing::warn!(
                path = %key_path.display(),
                "no master key configured; generated a new one into the data dir. Back it up: without it the data cannot be read"
            );
            key
        }
    };
    let ring = KeyRing::single(key);
    verify_fingerprint(&ring, data_dir)?;
    Ok(ring)
}

/// Refuses a key whose fingerprint differs from the one recorded for its id.
fn verify_fingerprint(ring: &KeyRing, data_dir: &Path) -> Result<(), ServerError> {
    let path = data_dir.join(CHECK_FILE);
    let id = ring.active_id();
    let fingerprint = ring
        .get(id)
        .and_then(|k| k.fingerprint())
        .map_err(|e| ServerError::MasterKey(e.to_string()))?;
    let line = format!("{id} {fingerprint}");
    if path.exists() {
        let text = fs::read_to_string(&path).map_err(ServerError::io(&path))?;
        for l in text.lines() {
            let mut parts = l.split_whitespace();
            if parts.next() == Some(id.to_string().as_str()) {
                if parts.next() == Some(fingerprint.as_str()) {
                    return Ok(());
                }
                return Err(ServerError::MasterKey(format!(
                    "the master key given for key id {id} is not the key that encrypted the data in {}; \
                     start with the original key (config security.master_key, SWARMMQ_MASTER_KEY or {}/{KEY_FILE})",
                    data_dir.display(),
                    data_dir.display()
                )));
            }
        }
    }
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(ServerError::io(&path))?;
    writeln!(f, "{line}")
        .and_then(|_| f.sync_all())
        .map_err(ServerError::io(&path))?;
    Ok(())
}

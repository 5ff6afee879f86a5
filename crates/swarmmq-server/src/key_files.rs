//! The master-key files of a data dir (formats in `docs/storage.md`):
//!
//! - `master.key`: key id 1 when none is configured (base64, 0600);
//! - `master-<id>.key`: every key made by a rotation (base64, 0600);
//! - `key-check`: one `id fingerprint` line per key id that ever wrote here, so a
//!   wrong key is refused at start instead of failing every read;
//! - `key-state.json`: the active id and the retired ids, replaced atomically.
//!
//! Every write is made durable before it counts: file fsynced, then renamed (for
//! replaced files), then the directory fsynced.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use swarmmq_crypto::MasterKey;

use crate::error::ServerError;

pub(crate) const KEY_FILE: &str = "master.key";
pub(crate) const CHECK_FILE: &str = "key-check";
pub(crate) const STATE_FILE: &str = "key-state.json";

/// Highest key id a node uses: rotations are rare, and this bounds the state file and
/// the status answer (`swarmmq_protocol::MAX_KEYS`).
pub(crate) const MAX_KEY_ID: u32 = swarmmq_protocol::MAX_KEYS;

/// Bounds on what is read from the small files, checked before reading.
const MAX_KEY_FILE_BYTES: u64 = 1024;
const MAX_CHECK_FILE_BYTES: u64 = 1 << 20;
const MAX_STATE_FILE_BYTES: u64 = 1 << 20;

/// `key-state.json`: which id writes, which ids are gone for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyStateFile {
    pub active: u32,
    #[serde(default)]
    pub retired: BTreeSet<u32>,
}

impl Default for KeyStateFile {
    fn default() -> Self {
        KeyStateFile {
            active: 1,
            retired: BTreeSet::new(),
        }
    }
}

/// The file that holds key `id`: `master.key` for id 1, `master-<id>.key` otherwise.
pub(crate) fn key_path(dir: &Path, id: u32) -> PathBuf {
    if id == 1 {
        dir.join(KEY_FILE)
    } else {
        dir.join(format!("master-{id}.key"))
    }
}

/// The id of a rotated key file name (`master-<id>.key`, id >= 2).
pub(crate) fn rotated_key_id(name: &str) -> Option<u32> {
    let id: u32 = name
        .strip_prefix("master-")?
        .strip_suffix(".key")?
        .parse()
        .ok()?;
    // `master-01.key` would parse as 1 too; only the canonical spelling counts.
    (id >= 2 && name == format!("master-{id}.key")).then_some(id)
}

/// Reads a small file whole, refusing one larger than `max` before reading it.
fn read_bounded(path: &Path, max: u64) -> Result<Option<String>, ServerError> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ServerError::io(path)(e)),
    };
    let len = f.metadata().map_err(ServerError::io(path))?.len();
    if len > max {
        return Err(ServerError::DataDir {
            path: path.to_path_buf(),
            reason: format!("{len} bytes, more than the {max} such a file may have"),
        });
    }
    let mut text = String::with_capacity(len as usize);
    f.take(max)
        .read_to_string(&mut text)
        .map_err(ServerError::io(path))?;
    Ok(Some(text))
}

/// The key in `path`, if the file exists.
pub(crate) fn read_key(path: &Path) -> Result<Option<MasterKey>, ServerError> {
    let Some(text) = read_bounded(path, MAX_KEY_FILE_BYTES)? else {
        return Ok(None);
    };
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "master key file is readable by group or others; chmod 600 it");
    }
    MasterKey::from_base64(text.trim())
        .map(Some)
        .map_err(|e| ServerError::MasterKey(format!("{}: {e}", path.display())))
}

/// Writes a new key file (0600) durably; refuses to replace an existing one, because
/// replacing a key makes the data under it unreadable.
pub(crate) fn write_new_key(dir: &Path, id: u32, key: &MasterKey) -> Result<(), ServerError> {
    let path = key_path(dir, id);
    if path.exists() {
        return Err(ServerError::MasterKey(format!(
            "{} already exists; refusing to replace a key",
            path.display()
        )));
    }
    let tmp = path.with_extension("key.tmp");
    // A leftover of an interrupted write never held a key that was used.
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(ServerError::io(&tmp))?;
    f.write_all(key.to_base64().as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(ServerError::io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(ServerError::io(&path))?;
    sync_dir(dir)
}

/// Removes a retired key's file durably (absent is fine: retiring is idempotent).
pub(crate) fn remove_key(dir: &Path, id: u32) -> Result<(), ServerError> {
    let path = key_path(dir, id);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ServerError::io(&path)(e)),
    }
}

/// Ids of the rotated key files present (`master-<id>.key`), ascending.
pub(crate) fn list_rotated_keys(dir: &Path) -> Result<BTreeSet<u32>, ServerError> {
    let mut ids = BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(ServerError::io(dir))? {
        let entry = entry.map_err(ServerError::io(dir))?;
        if let Some(id) = entry.file_name().to_str().and_then(rotated_key_id) {
            if id > MAX_KEY_ID {
                return Err(ServerError::MasterKey(format!(
                    "{}: key ids above {MAX_KEY_ID} are not used",
                    entry.path().display()
                )));
            }
            ids.insert(id);
        }
    }
    Ok(ids)
}

/// `key-check`: fingerprint per key id (empty when the file does not exist yet).
pub(crate) fn read_check(dir: &Path) -> Result<BTreeMap<u32, String>, ServerError> {
    let path = dir.join(CHECK_FILE);
    let mut out = BTreeMap::new();
    let Some(text) = read_bounded(&path, MAX_CHECK_FILE_BYTES)? else {
        return Ok(out);
    };
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let parsed = match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(fp), None) => id.parse::<u32>().ok().map(|id| (id, fp)),
            _ => None,
        };
        let Some((id, fp)) = parsed else {
            return Err(ServerError::DataDir {
                path: path.clone(),
                reason: format!("line {} is not `<key id> <fingerprint>`", n + 1),
            });
        };
        // The first line for an id is the one that counts (the file is append-only).
        out.entry(id).or_insert_with(|| fp.to_string());
    }
    Ok(out)
}

/// Appends `id fingerprint` to `key-check` and fsyncs it.
pub(crate) fn append_check(dir: &Path, id: u32, fingerprint: &str) -> Result<(), ServerError> {
    let path = dir.join(CHECK_FILE);
    let created = !path.exists();
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(ServerError::io(&path))?;
    writeln!(f, "{id} {fingerprint}")
        .and_then(|_| f.sync_all())
        .map_err(ServerError::io(&path))?;
    if created {
        sync_dir(dir)?;
    }
    Ok(())
}

/// `key-state.json`, or `None` when the node never rotated a key.
pub(crate) fn read_state(dir: &Path) -> Result<Option<KeyStateFile>, ServerError> {
    let path = dir.join(STATE_FILE);
    let Some(text) = read_bounded(&path, MAX_STATE_FILE_BYTES)? else {
        return Ok(None);
    };
    let state: KeyStateFile = serde_json::from_str(&text).map_err(|e| ServerError::DataDir {
        path: path.clone(),
        reason: format!("unreadable key state: {e}"),
    })?;
    if state.active == 0 || state.active > MAX_KEY_ID || state.retired.contains(&state.active) {
        return Err(ServerError::DataDir {
            path,
            reason: format!("active key id {} is not a usable id", state.active),
        });
    }
    Ok(Some(state))
}

/// Replaces `key-state.json` atomically: temp file, fsync, rename, directory fsync.
pub(crate) fn write_state(dir: &Path, state: &KeyStateFile) -> Result<(), ServerError> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let json = serde_json::to_vec_pretty(state).map_err(|e| ServerError::DataDir {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let mut f = fs::File::create(&tmp).map_err(ServerError::io(&tmp))?;
    f.write_all(&json)
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(ServerError::io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(ServerError::io(&path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), ServerError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ServerError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_names() {
        assert_eq!(rotated_key_id("master-2.key"), Some(2));
        assert_eq!(rotated_key_id("master-4096.key"), Some(4096));
        for bad in [
            "master-1.key",
            "master-0.key",
            "master-02.key",
            "master-x.key",
            "master-2.key.tmp",
            "master.key",
            "master--2.key",
        ] {
            assert_eq!(rotated_key_id(bad), None, "{bad}");
        }
        let dir = Path::new("/d");
        assert_eq!(key_path(dir, 1), Path::new("/d/master.key"));
        assert_eq!(key_path(dir, 7), Path::new("/d/master-7.key"));
    }

    #[test]
    fn key_files_are_private_durable_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate().unwrap();
        write_new_key(dir.path(), 3, &key).unwrap();
        let path = dir.path().join("master-3.key");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = read_key(&path).unwrap().unwrap();
        assert_eq!(back.expose_secret(), key.expose_secret());
        assert!(write_new_key(dir.path(), 3, &MasterKey::generate().unwrap()).is_err());
        assert_eq!(
            read_key(&path).unwrap().unwrap().expose_secret(),
            key.expose_secret(),
            "the refused write left the key alone"
        );
        assert_eq!(list_rotated_keys(dir.path()).unwrap(), BTreeSet::from([3]));
        remove_key(dir.path(), 3).unwrap();
        remove_key(dir.path(), 3).unwrap();
        assert!(list_rotated_keys(dir.path()).unwrap().is_empty());
        assert!(read_key(&path).unwrap().is_none());

        fs::write(&path, "x".repeat(2000)).unwrap();
        assert!(read_key(&path).is_err(), "oversized key file refused");
    }

    #[test]
    fn check_and_state_files_round_trip_and_refuse_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_check(dir.path()).unwrap().is_empty());
        append_check(dir.path(), 1, "aa").unwrap();
        append_check(dir.path(), 2, "bb").unwrap();
        append_check(dir.path(), 1, "cc").unwrap();
        let check = read_check(dir.path()).unwrap();
        assert_eq!(check.get(&1).map(String::as_str), Some("aa"));
        assert_eq!(check.get(&2).map(String::as_str), Some("bb"));
        fs::write(dir.path().join(CHECK_FILE), "1 aa\nnonsense\n").unwrap();
        assert!(read_check(dir.path()).is_err());

        assert_eq!(read_state(dir.path()).unwrap(), None);
        let state = KeyStateFile {
            active: 3,
            retired: BTreeSet::from([2]),
        };
        write_state(dir.path(), &state).unwrap();
        assert_eq!(read_state(dir.path()).unwrap(), Some(state));
        assert!(!dir.path().join("key-state.json.tmp").exists());
        fs::write(
            dir.path().join(STATE_FILE),
            r#"{"active": 2, "retired": [2]}"#,
        )
        .unwrap();
        assert!(
            read_state(dir.path()).is_err(),
            "active id cannot be retired"
        );
        fs::write(dir.path().join(STATE_FILE), "{").unwrap();
        assert!(read_state(dir.path()).is_err());
    }
}

//! The key file: bounded read, atomic write (temp file, fsync, rename, fsync of the
//! directory) with mode 0600, and an advisory lock around read-modify-write so that two
//! CLI invocations cannot lose each other's update.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::record::RecordJson;
use crate::{AuthError, KeyStore};

/// A key file larger than this is refused before it is read. 10,000 keys of typical
/// size take about 4 MiB.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    version: u32,
    keys: Vec<RecordJson>,
}

/// The advisory lock file that guards `path` (`<path>.lock`). The lock is on a file
/// of its own because the key file itself is replaced by rename on every save.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".tmp");
    path.with_file_name(name)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl KeyStore {
    /// Reads the key file at `path`: [`AuthError::Missing`] when there is none,
    /// [`AuthError::Corrupt`] (naming the file) when it is not a valid key file.
    pub fn load(path: &Path) -> Result<KeyStore, AuthError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AuthError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(AuthError::io(path)(e)),
        };
        let len = file.metadata().map_err(AuthError::io(path))?.len();
        let too_large = |len| AuthError::FileTooLarge {
            path: path.to_owned(),
            len,
            max: MAX_FILE_BYTES,
        };
        if len > MAX_FILE_BYTES {
            return Err(too_large(len));
        }
        let mut text = Vec::with_capacity(len as usize);
        // `take` bounds the read even if the file grows after the size check.
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(AuthError::io(path))?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(too_large(text.len() as u64));
        }
        let corrupt = |reason: String| AuthError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let parsed: FileJson = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if parsed.version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {} is not {FORMAT_VERSION}; was it written by a newer swarmmq?",
                parsed.version
            )));
        }
        let records = parsed
            .keys
            .into_iter()
            .map(RecordJson::into_record)
            .collect::<Result<Vec<_>, _>>()
            .map_err(corrupt)?;
        KeyStore::from_records(records).map_err(|e| corrupt(e.to_string()))
    }

    /// [`KeyStore::load`], with a missing file read as an empty store.
    pub fn load_or_empty(path: &Path) -> Result<KeyStore, AuthError> {
        match KeyStore::load(path) {
            Err(AuthError::Missing { .. }) => Ok(KeyStore::new()),
            other => other,
        }
    }

    /// Writes the store to `path` atomically: a reader sees the old file or the new
    /// one, never a mix, and after a crash the file is one or the other. Mode 0600.
    /// Creates the parent directory (mode 0700) when missing. Concurrent writers must
    /// hold the lock: use [`KeyStore::update`].
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        let json = FileJson {
            version: FORMAT_VERSION,
            keys: self.records().iter().map(RecordJson::from).collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&json).map_err(|e| AuthError::Corrupt {
            path: path.to_owned(),
            reason: format!("cannot encode: {e}"),
        })?;
        bytes.push(b'\n');
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(AuthError::FileTooLarge {
                path: path.to_owned(),
                len: bytes.len() as u64,
                max: MAX_FILE_BYTES,
            });
        }
        let dir = parent_dir(path);
        create_private_dir(dir)?;
        let tmp = temp_path(path);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(AuthError::io(&tmp))?;
        // `mode` applies only when the file is created; a leftover temp file keeps its own.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(AuthError::io(&tmp))?;
        file.write_all(&bytes).map_err(AuthError::io(&tmp))?;
        file.sync_all().map_err(AuthError::io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(AuthError::io(path))?;
        // The rename is durable only once the directory entry is.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(AuthError::io(dir))?;
        Ok(())
    }

    /// Read-modify-write under the file's advisory lock: loads `path` (empty when
    /// missing), runs `change`, and saves only if it succeeded. A second process calling
    /// this waits for the first, so neither update is lost.
    pub fn update<T>(
        path: &Path,
        change: impl FnOnce(&mut KeyStore) -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        let _lock = lock(path)?;
        let mut store = KeyStore::load_or_empty(path)?;
        let out = change(&mut store)?;
        store.save(path)?;
        Ok(out)
    }
}

fn create_private_dir(dir: &Path) -> Result<(), AuthError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(AuthError::io(dir))
}

/// Takes the exclusive advisory lock of `path`'s lock file, waiting for it; released
/// when the returned file is dropped (or the process exits).
fn lock(path: &Path) -> Result<File, AuthError> {
    create_private_dir(parent_dir(path))?;
    let lock_file = lock_path(path);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_file)
        .map_err(AuthError::io(&lock_file))?;
    file.lock().map_err(AuthError::io(&lock_file))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    #[test]
    fn save_then_load_keeps_every_record_and_never_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/api-keys.json");
        let mut s = KeyStore::new();
        let a = s.create_key("a", &["produce:a.*", "consume:b"]).unwrap();
        let b = s.create_key("b", &["admin"]).unwrap();
        s.revoke("b").unwrap();
        s.save(&path).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let secret_a = &a.key[17..];
        assert!(!text.contains(secret_a), "the secret is in the file");
        assert!(!text.contains(&b.key[17..]));
        assert!(text.contains(&a.id) && text.contains("produce:a.*"));

        let loaded = KeyStore::load(&path).unwrap();
        assert_eq!(loaded.records(), s.records());
        assert!(
            loaded
                .verify(&a.key)
                .unwrap()
                .allows(Action::Produce, "a.x")
        );
        assert!(matches!(
            loaded.verify(&b.key).unwrap_err(),
            AuthError::Revoked { .. }
        ));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn a_missing_file_is_reported_or_read_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.json");
        assert!(matches!(
            KeyStore::load(&path).unwrap_err(),
            AuthError::Missing { .. }
        ));
        assert!(KeyStore::load_or_empty(&path).unwrap().is_empty());
    }

    #[test]
    fn a_corrupt_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-keys.json");
        let mut good = KeyStore::new();
        good.create_key("a", &["admin"]).unwrap();
        good.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let cases = [
            ("{not json".to_string(), "key"),
            (text[..text.len() / 2].to_string(), "EOF"),
            (text.replace("\"admin\"", "\"root\""), "invalid permission"),
            (
                text.replace("\"version\": 1", "\"version\": 9"),
                "format version 9",
            ),
            (text.replace("\"salt\": \"", "\"salt\": \"zz"), "salt"),
            (text.replace("\"name\"", "\"nom\""), "unknown field"),
        ];
        for (content, expected) in cases {
            std::fs::write(&path, &content).unwrap();
            let err = KeyStore::load(&path).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, AuthError::Corrupt { .. }), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains(expected), "expected {expected:?} in {msg}");
        }
    }

    #[test]
    fn duplicate_active_names_in_a_file_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let mut s = KeyStore::new();
        s.create_key("a", &["admin"]).unwrap();
        s.create_key("b", &["admin"]).unwrap();
        s.save(&path).unwrap();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"name\": \"b\"", "\"name\": \"a\"");
        std::fs::write(&path, text).unwrap();
        let msg = KeyStore::load(&path).unwrap_err().to_string();
        assert!(msg.contains("already exists"), "{msg}");
    }

    #[test]
    fn an_oversized_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        let f = File::create(&path).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let err = KeyStore::load(&path).unwrap_err();
        assert!(matches!(err, AuthError::FileTooLarge { .. }), "{err}");
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-keys.json");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..5 {
                        KeyStore::update(&path, |s| {
                            s.create_key(&format!("k{t}-{i}"), &["admin"]).map(|_| ())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(KeyStore::load(&path).unwrap().len(), 40);
    }

    #[test]
    fn a_failed_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-keys.json");
        KeyStore::update(&path, |s| s.create_key("a", &["admin"]).map(|_| ())).unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = KeyStore::update(&path, |s| s.create_key("a", &["admin"]).map(|_| ()));
        assert!(matches!(err, Err(AuthError::DuplicateName(_))));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn lock_path_sits_beside_the_file() {
        assert_eq!(
            lock_path(Path::new("/d/api-keys.json")),
            PathBuf::from("/d/api-keys.json.lock")
        );
        assert_eq!(
            temp_path(Path::new("/d/api-keys.json")),
            PathBuf::from("/d/.api-keys.json.tmp")
        );
    }
}

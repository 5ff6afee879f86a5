//! The node's master keys: loaded from config and the data dir at start, replaceable
//! while the node runs (rotation adds a key and makes it active; retiring removes one
//! no data uses).
//!
//! Key id 1 comes from `security.master_key` / `SWARMMQ_MASTER_KEY`, else from
//! `<data_dir>/master.key` (generated, 0600, on the first start of an empty data dir).
//! Rotated keys live in `master-<id>.key`. `key-check` remembers each id's fingerprint so
//! a wrong key is refused at start; `key-state.json` records the active and retired ids.
//! A key the data dir says is in use but whose file is missing stops the start with an
//! error naming it: the node never runs with part of its data unreadable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use swarmmq_crypto::{KeyRing, MasterKey};
use swarmmq_types::ErrorCode;
use tokio::sync::{Mutex, MutexGuard, RwLockReadGuard};

use crate::error::{RequestError, ServerError};
use crate::key_files::{self, KeyStateFile, MAX_KEY_ID};

/// What the key store knows besides the keys themselves.
#[derive(Clone, Debug)]
pub(crate) struct KeyState {
    pub file: KeyStateFile,
    /// Fingerprint per key id, as recorded in `key-check` (retired ids included).
    pub fingerprints: BTreeMap<u32, String>,
}

impl KeyState {
    /// The next id a rotation may use: above every id ever recorded, so none is reused.
    fn next_id(&self, ring: &KeyRing) -> Result<u32, RequestError> {
        // Checked before anything is written: a key on disk the ring cannot hold would
        // stop the next start.
        if ring.len() >= KeyRing::MAX_KEYS {
            return Err(RequestError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "the node already holds {} master keys; retire unused ones first",
                    ring.len()
                ),
            ));
        }
        let highest = ring
            .ids()
            .chain(self.file.retired.iter().copied())
            .chain(self.fingerprints.keys().copied())
            .chain([self.file.active])
            .max()
            .unwrap_or(1);
        if highest >= MAX_KEY_ID {
            return Err(RequestError::new(
                ErrorCode::InvalidRequest,
                format!("key ids are used up to {MAX_KEY_ID}; no further rotation is possible"),
            ));
        }
        Ok(highest + 1)
    }
}

/// The live key ring and the serialised key administration.
pub(crate) struct KeyStore {
    dir: PathBuf,
    ring: RwLock<Arc<KeyRing>>,
    /// Held shared by every publish from taking the ring until its batches are queued to
    /// their partitions. Taking it exclusively once proves that no batch built under an
    /// older ring is still on its way to a queue.
    writers: tokio::sync::RwLock<()>,
    /// Rotate and retire run one at a time, under this lock.
    state: Mutex<KeyState>,
}

impl KeyStore {
    /// Loads every key, checks each against its recorded fingerprint, and activates the
    /// recorded active id.
    pub fn open(configured: Option<&MasterKey>, dir: &Path) -> Result<KeyStore, ServerError> {
        let state_file = key_files::read_state(dir)?;
        let fresh_state = state_file.is_none();
        let file = state_file.unwrap_or_default();
        let mut fingerprints = key_files::read_check(dir)?;
        let mut keys: BTreeMap<u32, MasterKey> = BTreeMap::new();

        if file.retired.contains(&1) {
            if configured.is_some() {
                tracing::warn!(
                    "security.master_key is set, but key id 1 was retired; the configured key is not used"
                );
            }
            finish_retirement(dir, 1)?;
        } else if let Some(k) = configured {
            keys.insert(1, k.clone());
        } else if let Some(k) = key_files::read_key(&key_files::key_path(dir, 1))? {
            keys.insert(1, k);
        } else if fresh_state && !fingerprints.contains_key(&1) {
            let key = MasterKey::generate()
                .map_err(|e| ServerError::MasterKey(format!("cannot generate: {e}")))?;
            key_files::write_new_key(dir, 1, &key)?;
            tracing::warn!(
                path = %key_files::key_path(dir, 1).display(),
                "no master key configured; generated a new one into the data dir. Back it up: without it the data cannot be read"
            );
            keys.insert(1, key);
        }

        for id in key_files::list_rotated_keys(dir)? {
            if file.retired.contains(&id) {
                finish_retirement(dir, id)?;
                continue;
            }
            if let Some(k) = key_files::read_key(&key_files::key_path(dir, id))? {
                keys.insert(id, k);
            }
        }

        // Every id that wrote here and was not retired must have its key.
        let needed: BTreeSet<u32> = fingerprints
            .keys()
            .copied()
            .chain([file.active])
            .filter(|id| !file.retired.contains(id))
            .collect();
        for id in needed {
            if !keys.contains_key(&id) {
                return Err(missing_key(dir, id, fingerprints.get(&id)));
            }
        }

        for (id, key) in &keys {
            let fingerprint = key
                .fingerprint()
                .map_err(|e| ServerError::MasterKey(e.to_string()))?;
            match fingerprints.get(id) {
                Some(recorded) if *recorded == fingerprint => {}
                Some(_) => return Err(wrong_key(dir, *id)),
                None => {
                    key_files::append_check(dir, *id, &fingerprint)?;
                    fingerprints.insert(*id, fingerprint);
                }
            }
        }

        let mut keys = keys.into_iter();
        let ring_err = |e: swarmmq_crypto::CryptoError| ServerError::MasterKey(e.to_string());
        let (first_id, first_key) = keys
            .next()
            .ok_or_else(|| ServerError::MasterKey("no master key is available".into()))?;
        let mut ring = KeyRing::with_active(first_id, first_key).map_err(ring_err)?;
        for (id, key) in keys {
            ring.add(id, key).map_err(ring_err)?;
        }
        ring.set_active(file.active).map_err(ring_err)?;
        tracing::info!(active = file.active, ids = ?ring.ids().collect::<Vec<_>>(), "master keys loaded");
        Ok(KeyStore {
            dir: dir.to_path_buf(),
            ring: RwLock::new(Arc::new(ring)),
            writers: tokio::sync::RwLock::new(()),
            state: Mutex::new(KeyState { file, fingerprints }),
        })
    }

    /// The ring as it is now. Readers take it once per read; it holds every id of every
    /// batch visible at that moment.
    pub fn current(&self) -> Arc<KeyRing> {
        Arc::clone(&self.ring.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The ring to build new batches with, and a guard to hold until they are queued.
    pub async fn for_write(&self) -> (RwLockReadGuard<'_, ()>, Arc<KeyRing>) {
        let guard = self.writers.read().await;
        (guard, self.current())
    }

    /// Waits until every publish that took a ring before this call has queued its batches.
    pub async fn drain_writers(&self) {
        drop(self.writers.write().await);
    }

    /// The key administration lock with the state it protects.
    pub async fn admin(&self) -> MutexGuard<'_, KeyState> {
        self.state.lock().await
    }

    fn replace_ring(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
    }

    /// Generates a key under the next unused id, stores it durably and makes it active.
    /// Batches built after this returns use it.
    pub async fn rotate(&self, state: &mut KeyState) -> Result<u32, RequestError> {
        let mut ring = (*self.current()).clone();
        let id = state.next_id(&ring)?;
        let internal = |e: String| RequestError::new(ErrorCode::Internal, e);
        let key = MasterKey::generate().map_err(|e| internal(e.to_string()))?;
        let fingerprint = key.fingerprint().map_err(|e| internal(e.to_string()))?;
        let mut file = state.file.clone();
        file.active = id;
        let (dir, stored, fp, new_file) = (
            self.dir.clone(),
            key.clone(),
            fingerprint.clone(),
            file.clone(),
        );
        // Key first, then its fingerprint, then the state that makes it active: a crash
        // in between leaves an unused key, never an active id without its key.
        blocking(move || {
            key_files::write_new_key(&dir, id, &stored)?;
            key_files::append_check(&dir, id, &fp)?;
            key_files::write_state(&dir, &new_file)
        })
        .await?;
        ring.add(id, key).map_err(|e| internal(e.to_string()))?;
        ring.set_active(id).map_err(|e| internal(e.to_string()))?;
        self.replace_ring(ring);
        state.file = file;
        state.fingerprints.insert(id, fingerprint);
        tracing::info!(
            key_id = id,
            "master key rotated; new batches use the new key"
        );
        Ok(id)
    }

    /// Records `id` as retired, removes its key file and takes it out of the ring. The
    /// caller has checked that no stored batch uses it.
    pub async fn retire(&self, state: &mut KeyState, id: u32) -> Result<(), RequestError> {
        let mut ring = (*self.current()).clone();
        ring.remove(id)
            .map_err(|e| RequestError::new(ErrorCode::InvalidRequest, e.to_string()))?;
        let mut file = state.file.clone();
        file.retired.insert(id);
        let (dir, new_file) = (self.dir.clone(), file.clone());
        // The state file is the commit point; a crash before the key file is removed
        // is finished at the next start.
        blocking(move || {
            key_files::write_state(&dir, &new_file)?;
            key_files::remove_key(&dir, id)
        })
        .await?;
        self.replace_ring(ring);
        state.file = file;
        tracing::info!(key_id = id, "master key retired");
        Ok(())
    }
}

async fn blocking(
    f: impl FnOnce() -> Result<(), ServerError> + Send + 'static,
) -> Result<(), RequestError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(|e| RequestError::new(ErrorCode::StorageFailure, e.to_string()))
}

/// A retired id's key file still present (a crash between the state write and the
/// removal): the state says it is retired, so the removal is completed.
fn finish_retirement(dir: &Path, id: u32) -> Result<(), ServerError> {
    let path = key_files::key_path(dir, id);
    if path.exists() {
        tracing::warn!(key_id = id, path = %path.display(), "removing the file of a retired key");
        key_files::remove_key(dir, id)?;
    }
    Ok(())
}

fn missing_key(dir: &Path, id: u32, fingerprint: Option<&String>) -> ServerError {
    let source = if id == 1 {
        format!(
            "config security.master_key, SWARMMQ_MASTER_KEY or {}",
            key_files::key_path(dir, 1).display()
        )
    } else {
        key_files::key_path(dir, id).display().to_string()
    };
    ServerError::MasterKey(format!(
        "key id {id}{} is missing: data in {} may be encrypted under it; restore {source} from your backup",
        fingerprint
            .map(|f| format!(" (fingerprint {f})"))
            .unwrap_or_default(),
        dir.display(),
    ))
}

fn wrong_key(dir: &Path, id: u32) -> ServerError {
    let source = if id == 1 {
        format!(
            "config security.master_key, SWARMMQ_MASTER_KEY or {}",
            key_files::key_path(dir, 1).display()
        )
    } else {
        key_files::key_path(dir, id).display().to_string()
    };
    ServerError::MasterKey(format!(
        "the master key given for key id {id} is not the key that encrypted the data in {}; start with the original key ({source})",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(store: &KeyStore) -> Vec<u32> {
        store.current().ids().collect()
    }

    #[tokio::test]
    async fn rotate_retire_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(None, dir.path()).unwrap();
        assert_eq!((store.current().active_id(), ids(&store)), (1, vec![1]));
        let k1 = store.current().get(1).unwrap().clone();

        let mut st = store.admin().await;
        assert_eq!(store.rotate(&mut st).await.unwrap(), 2);
        assert_eq!(store.rotate(&mut st).await.unwrap(), 3);
        assert_eq!(
            (store.current().active_id(), ids(&store)),
            (3, vec![1, 2, 3])
        );
        let err = store.retire(&mut st, 3).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        store.retire(&mut st, 2).await.unwrap();
        assert_eq!(ids(&store), vec![1, 3]);
        assert!(!dir.path().join("master-2.key").exists());
        // Retired ids are never reused.
        assert_eq!(store.rotate(&mut st).await.unwrap(), 4);
        drop(st);
        drop(store);

        let again = KeyStore::open(None, dir.path()).unwrap();
        assert_eq!(
            (again.current().active_id(), ids(&again)),
            (4, vec![1, 3, 4])
        );
        assert_eq!(
            again.current().get(1).unwrap().expose_secret(),
            k1.expose_secret()
        );
        let st = again.admin().await;
        assert_eq!(st.file.retired, BTreeSet::from([2]));
        assert!(
            st.fingerprints.contains_key(&2),
            "retired fingerprints stay on record"
        );
    }

    #[tokio::test]
    async fn a_missing_or_wrong_key_refuses_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(None, dir.path()).unwrap();
        let mut st = store.admin().await;
        store.rotate(&mut st).await.unwrap();
        drop(st);
        drop(store);

        let key2 = dir.path().join("master-2.key");
        let saved = std::fs::read(&key2).unwrap();
        std::fs::remove_file(&key2).unwrap();
        let err = KeyStore::open(None, dir.path()).err().unwrap().to_string();
        assert!(err.contains("key id 2") && err.contains("missing"), "{err}");
        assert!(err.contains("master-2.key"), "{err}");

        std::fs::write(&key2, MasterKey::generate().unwrap().to_base64().as_bytes()).unwrap();
        let err = KeyStore::open(None, dir.path()).err().unwrap().to_string();
        assert!(err.contains("not the key that encrypted"), "{err}");

        std::fs::write(&key2, &saved).unwrap();
        std::fs::remove_file(dir.path().join("master.key")).unwrap();
        let err = KeyStore::open(None, dir.path()).err().unwrap().to_string();
        assert!(err.contains("key id 1") && err.contains("missing"), "{err}");
        assert!(
            !dir.path().join("master.key").exists(),
            "no new key 1 is generated over existing data"
        );

        // A configured key 1 other than the recorded one is refused.
        let wrong = MasterKey::generate().unwrap();
        assert!(KeyStore::open(Some(&wrong), dir.path()).is_err());
    }

    #[tokio::test]
    async fn retiring_key_1_survives_a_restart_without_regenerating_it() {
        let dir = tempfile::tempdir().unwrap();
        let configured = MasterKey::generate().unwrap();
        let store = KeyStore::open(Some(&configured), dir.path()).unwrap();
        assert!(!dir.path().join("master.key").exists());
        let mut st = store.admin().await;
        store.rotate(&mut st).await.unwrap();
        store.retire(&mut st, 1).await.unwrap();
        drop(st);
        drop(store);
        for given in [Some(&configured), None] {
            let again = KeyStore::open(given, dir.path()).unwrap();
            assert_eq!(ids(&again), vec![2]);
            assert!(!dir.path().join("master.key").exists());
        }
    }
}

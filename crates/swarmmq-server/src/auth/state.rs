//! The node's view of its API keys: the current key store, swapped whole when the key
//! file changes, a generation number that sessions compare to notice a swap, and the
//! per-address limiter of failed attempts.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use swarmmq_auth::{AuthError, FailureLimiter, KeyStore};

/// What identifies one version of the key file. The CLI replaces the file by rename,
/// so the inode changes on every save even within one mtime tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

pub(crate) struct AuthState {
    pub enabled: bool,
    path: PathBuf,
    store: RwLock<Arc<KeyStore>>,
    /// Bumped after every swap of `store`; a session whose principal was resolved at an
    /// older generation looks its key up again.
    generation: AtomicU64,
    /// The file version `store` was loaded from (or last failed to load from).
    loaded: Mutex<Option<FileStamp>>,
    limiter: Mutex<FailureLimiter>,
}

impl AuthState {
    /// Loads the key file when auth is on. A missing or unreadable file leaves the node
    /// running with no keys (so it refuses every request but Health), and says how to
    /// fix it in the log.
    pub fn open(enabled: bool, path: PathBuf, data_dir: &Path) -> AuthState {
        let state = AuthState {
            enabled,
            path,
            store: RwLock::new(Arc::new(KeyStore::new())),
            generation: AtomicU64::new(0),
            loaded: Mutex::new(None),
            limiter: Mutex::new(FailureLimiter::default()),
        };
        if !enabled {
            return state;
        }
        match state.reload() {
            Ok(n) => tracing::info!(
                file = %state.path.display(),
                active_keys = n,
                "authentication on: API keys loaded"
            ),
            Err(AuthError::Missing { .. }) => tracing::warn!(
                file = %state.path.display(),
                "authentication is on but there is no API key file, so every request but \
                 health is refused; create the first key with: swarmmq auth create-key \
                 --data-dir {} --name admin --allow admin",
                data_dir.display()
            ),
            Err(e) => tracing::error!(
                error = %e,
                "authentication is on but the API key file cannot be used, so every request \
                 but health is refused; fix or recreate it (swarmmq auth list shows what is wrong)"
            ),
        }
        state
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current keys. Read [`AuthState::generation`] first: a swap in between then
    /// only makes the caller look again later, never miss a revocation.
    pub fn store(&self) -> Arc<KeyStore> {
        match self.store.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn swap(&self, store: KeyStore) {
        match self.store.write() {
            Ok(mut s) => *s = Arc::new(store),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(store),
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Loads the file now, whatever its stamp; returns the number of active keys. A
    /// missing file empties the store (deleting the file revokes every key); any other
    /// failure keeps the keys in use.
    pub fn reload(&self) -> Result<usize, AuthError> {
        let before = stamp(&self.path);
        if let Ok(mut l) = self.loaded.lock() {
            *l = before;
        }
        match KeyStore::load(&self.path) {
            Ok(store) => {
                let n = store.active_count();
                self.swap(store);
                Ok(n)
            }
            Err(e @ AuthError::Missing { .. }) => {
                self.swap(KeyStore::new());
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Reloads when the file changed since the last load; logs the outcome. Cheap when
    /// nothing changed (one `stat`).
    pub fn reload_if_changed(&self) {
        let now = stamp(&self.path);
        let unchanged = self.loaded.lock().map(|l| *l == now).unwrap_or(false);
        if unchanged {
            return;
        }
        self.reload_and_log("the API key file changed");
    }

    pub fn reload_and_log(&self, why: &str) {
        match self.reload() {
            Ok(n) => tracing::info!(
                file = %self.path.display(),
                active_keys = n,
                "{why}: API keys reloaded"
            ),
            Err(AuthError::Missing { .. }) => tracing::warn!(
                file = %self.path.display(),
                "{why}: the API key file is gone, so no key is accepted any more"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "{why}: the API key file cannot be used; the keys loaded before stay in use"
            ),
        }
    }

    /// `Err(time left)` while `ip` is blocked for too many failed attempts.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Duration> {
        match self.limiter.lock() {
            Ok(l) => l.check(ip, Instant::now()),
            Err(_) => Ok(()),
        }
    }

    /// Counts a failed attempt; true when it blocked the address.
    pub fn record_failure(&self, ip: IpAddr) -> bool {
        self.limiter
            .lock()
            .map(|mut l| l.record_failure(ip, Instant::now()))
            .unwrap_or(false)
    }
}

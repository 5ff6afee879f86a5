//! The node's live TLS configuration, and its replacement on SIGHUP or when the files
//! change. New handshakes take the configuration current at accept time; established
//! connections keep the one they were made with. A reload that fails changes nothing.

use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::TlsFiles;
use super::config::server_config;
use crate::error::ServerError;

/// What identifies one version of a file: (inode, size, mtime s, mtime ns); `None`
/// while it is missing. The inode catches a replacement by rename that keeps the mtime.
type Stamp = Option<(u64, u64, i64, i64)>;

struct Configs {
    client: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
}

struct Watch {
    /// The files as they were when the current configuration was (last tried to be) read.
    loaded: Vec<Stamp>,
    /// The files at the previous poll: a change is acted on only once it has settled.
    seen: Vec<Stamp>,
}

pub(crate) struct TlsState {
    files: TlsFiles,
    configs: RwLock<Arc<Configs>>,
    watch: Mutex<Watch>,
}

fn stamp(path: &std::path::Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

impl TlsState {
    /// Reads every file; fails (with the file and reason) if any is unusable.
    pub(crate) fn load(files: TlsFiles) -> Result<TlsState, ServerError> {
        let stamps = Self::stamps(&files);
        let configs = Self::build(&files)?;
        Ok(TlsState {
            files,
            configs: RwLock::new(Arc::new(configs)),
            watch: Mutex::new(Watch {
                loaded: stamps.clone(),
                seen: stamps,
            }),
        })
    }

    fn stamps(files: &TlsFiles) -> Vec<Stamp> {
        let mut out = vec![stamp(&files.cert), stamp(&files.key)];
        if let Some(ca) = &files.ca {
            out.push(stamp(ca));
        }
        out
    }

    fn build(files: &TlsFiles) -> Result<Configs, ServerError> {
        // The client listener asks for client certificates when a CA is set; HTTP
        // (health, metrics: no message data) does not, so plain probes keep working.
        let client = server_config(&files.cert, &files.key, files.ca.as_deref(), &[])?;
        let http = server_config(&files.cert, &files.key, None, &[b"http/1.1"])?;
        Ok(Configs {
            client: Arc::new(client),
            http: Arc::new(http),
        })
    }

    fn current(&self) -> Arc<Configs> {
        match self.configs.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The acceptor for the client protocol listener, with the current configuration.
    pub(crate) fn client_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.current().client))
    }

    /// The acceptor for the HTTP listener, with the current configuration.
    pub(crate) fn http_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.current().http))
    }

    /// Whether client certificates are required on the client listener.
    pub(crate) fn mutual(&self) -> bool {
        self.files.ca.is_some()
    }

    /// Reads the files again. On success new handshakes use them; on failure the
    /// current configuration stays and one error line says why.
    pub(crate) fn reload(&self, trigger: &str) -> bool {
        let stamps = Self::stamps(&self.files);
        if let Ok(mut w) = self.watch.lock() {
            w.loaded = stamps.clone();
            w.seen = stamps;
        }
        match Self::build(&self.files) {
            Ok(configs) => {
                match self.configs.write() {
                    Ok(mut c) => *c = Arc::new(configs),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(configs),
                }
                tracing::info!(trigger, cert = %self.files.cert.display(), "TLS certificates reloaded");
                true
            }
            Err(e) => {
                tracing::error!(trigger, error = %e, "TLS reload failed; keeping the previous certificates");
                false
            }
        }
    }

    /// Whether the files changed since they were last read and have stayed the same
    /// since the previous poll (so a copy in progress is not read half-written).
    fn settled_change(&self) -> bool {
        let now = Self::stamps(&self.files);
        let Ok(mut w) = self.watch.lock() else {
            return false;
        };
        if now == w.loaded {
            w.seen = now;
            return false;
        }
        if now != w.seen {
            w.seen = now;
            return false;
        }
        true
    }
}

/// Polls the files' stamps every `every` and reloads once a change has settled.
pub(crate) async fn watch(state: Arc<TlsState>, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if state.settled_change() {
            state.reload("file change");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_pki::{TestCa, accepts, client};
    use super::*;

    #[tokio::test]
    async fn reload_switches_new_handshakes_and_keeps_the_old_config_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let old_ca = TestCa::new(dir.path(), "old");
        let new_ca = TestCa::new(dir.path(), "new");
        let files = old_ca.node_files(false);
        let state = TlsState::load(files.clone()).unwrap();
        assert!(!state.mutual());
        assert!(
            accepts(state.client_acceptor(), client(&old_ca.ca_pem, None))
                .await
                .is_some()
        );
        assert!(
            accepts(state.http_acceptor(), client(&old_ca.ca_pem, None))
                .await
                .is_some()
        );

        // Replace certificate and key with ones from another CA.
        let (cert, key) = new_ca.leaf("node2");
        std::fs::copy(&cert, &files.cert).unwrap();
        std::fs::copy(&key, &files.key).unwrap();
        assert!(state.reload("test"));
        assert!(
            accepts(state.client_acceptor(), client(&new_ca.ca_pem, None))
                .await
                .is_some()
        );
        assert!(
            accepts(state.http_acceptor(), client(&new_ca.ca_pem, None))
                .await
                .is_some()
        );
        assert!(
            accepts(state.client_acceptor(), client(&old_ca.ca_pem, None))
                .await
                .is_none()
        );

        // A broken file, then a key that does not match: the last good config stays.
        std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
        assert!(!state.reload("test"));
        assert!(
            accepts(state.client_acceptor(), client(&new_ca.ca_pem, None))
                .await
                .is_some()
        );
        let (other_cert, _) = new_ca.leaf("node3");
        std::fs::copy(&other_cert, &files.cert).unwrap();
        assert!(!state.reload("test"));
        assert!(
            accepts(state.client_acceptor(), client(&new_ca.ca_pem, None))
                .await
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_change_is_picked_up_once_it_has_settled() {
        let dir = tempfile::tempdir().unwrap();
        let old_ca = TestCa::new(dir.path(), "old");
        let new_ca = TestCa::new(dir.path(), "new");
        let files = old_ca.node_files(false);
        let state = TlsState::load(files.clone()).unwrap();
        assert!(!state.settled_change(), "nothing changed");
        let (cert, key) = new_ca.leaf("node2");
        std::fs::copy(&cert, &files.cert).unwrap();
        std::fs::copy(&key, &files.key).unwrap();
        assert!(!state.settled_change(), "just changed: wait one poll");
        assert!(state.settled_change(), "unchanged since the last poll");
        assert!(state.reload("file change"));
        assert!(!state.settled_change(), "read already");

        // The watcher task does the same on its own.
        let state = Arc::new(state);
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch(
            Arc::clone(&state),
            Duration::from_millis(20),
            stop.clone(),
        ));
        let (cert, key) = old_ca.leaf("node4");
        std::fs::copy(&cert, &files.cert).unwrap();
        std::fs::copy(&key, &files.key).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while accepts(state.client_acceptor(), client(&old_ca.ca_pem, None))
            .await
            .is_none()
        {
            assert!(std::time::Instant::now() < deadline, "not reloaded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn mutual_tls_requires_a_client_certificate_and_reports_its_cn() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path(), "cluster");
        let other = TestCa::new(dir.path(), "other");
        let state = TlsState::load(ca.node_files(true)).unwrap();
        assert!(state.mutual());
        let alice = ca.leaf("alice");
        let mallory = other.leaf("mallory");
        assert_eq!(
            accepts(state.client_acceptor(), client(&ca.ca_pem, Some(&alice))).await,
            Some(Some("alice".to_string()))
        );
        assert_eq!(
            accepts(state.client_acceptor(), client(&ca.ca_pem, None)).await,
            None
        );
        assert_eq!(
            accepts(state.client_acceptor(), client(&ca.ca_pem, Some(&mallory))).await,
            None
        );
        // HTTP (health, metrics) does not ask for one.
        assert_eq!(
            accepts(state.http_acceptor(), client(&ca.ca_pem, None)).await,
            Some(None)
        );
    }
}

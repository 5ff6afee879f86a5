//! One `swarmmq node` process of the harness: started from a given binary with its
//! own config, data dir and log, and signalled only by the PID it was started with,
//! and only while that child is not yet reaped (a reaped PID may name someone else).

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::ChaosError;

/// `SWARMMQ_*` variables passed on to a node; every other one is dropped because the
/// environment outranks the config file (a stray `SWARMMQ_NODE_PORT` would give every
/// node the same port).
const PASSED_ON: &[&str] = &["SWARMMQ_LOG_LEVEL", "SWARMMQ_LOG_FORMAT"];

/// Where one node lives: its addresses (on 127.0.0.1, or its namespace's address in a
/// `--netns` run) and files. Fixed for the whole run, so a restarted node comes back at
/// the same addresses on the same data.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// `node-1`, `node-2`, ...
    pub id: String,
    pub client: SocketAddr,
    pub http: SocketAddr,
    pub internal: SocketAddr,
    pub grpc_port: u16,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// The network namespace it runs in (started through `ip netns exec`, which execs
    /// the node in place, so the PID is still the node's own).
    pub netns: Option<String>,
}

/// A node's process (or its absence, between a kill and a restart).
pub struct NodeProcess {
    spec: NodeSpec,
    binary: PathBuf,
    child: Option<Child>,
    paused: bool,
    /// How many times it was started (1 after the first start).
    starts: u32,
}

impl NodeProcess {
    pub(crate) fn new(spec: NodeSpec, binary: &Path) -> NodeProcess {
        NodeProcess {
            spec,
            binary: binary.to_path_buf(),
            child: None,
            paused: false,
            starts: 0,
        }
    }

    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// The PID of the running (unreaped) process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Starts `<binary> node --config <config>` (inside its namespace, if any), stdout and stderr appended to its log,
    /// the shared master key in `SWARMMQ_MASTER_KEY`. Does not wait for readiness.
    pub(crate) fn spawn(&mut self, master_key_b64: &str) -> Result<(), ChaosError> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .map_err(|e| ChaosError::io(format!("cannot open {}", self.spec.log.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| ChaosError::io(format!("cannot open {}", self.spec.log.display()), e))?;
        let mut cmd = match &self.spec.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.as_str()]).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        cmd.arg("node")
            .arg("--config")
            .arg(&self.spec.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("SWARMMQ_") && !PASSED_ON.contains(&text.as_ref()) {
                cmd.env_remove::<&OsString>(&name);
            }
        }
        cmd.env("SWARMMQ_MASTER_KEY", master_key_b64)
            .env("NO_COLOR", "1");
        let child = cmd.spawn().map_err(|e| {
            ChaosError::io(
                format!("cannot start {} ({})", self.spec.id, self.binary.display()),
                e,
            )
        })?;
        self.child = Some(child);
        self.paused = false;
        self.starts += 1;
        Ok(())
    }

    /// `Some(status)` once the process has ended on its own (it is then reaped and
    /// forgotten, so its PID is never signalled again).
    pub(crate) fn poll_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        self.paused = false;
        Some(status)
    }

    pub fn is_running(&mut self) -> bool {
        self.poll_exit();
        self.child.is_some()
    }

    /// Sends `sig` to the child's PID, which is still ours (unreaped).
    fn signal(&mut self, sig: libc::c_int) -> bool {
        if self.poll_exit().is_some() {
            return false;
        }
        let Some(pid) = self
            .child
            .as_ref()
            .and_then(|c| libc::pid_t::try_from(c.id()).ok())
        else {
            return false;
        };
        // SAFETY: kill(2) has no memory-safety preconditions; the PID is our own child,
        // not yet reaped (checked just above), so it cannot name another process.
        unsafe { libc::kill(pid, sig) == 0 }
    }

    /// SIGKILL and reap. Returns whether a process was running.
    pub(crate) fn kill9(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        // std refuses to signal a reaped child, so this never reaches another process.
        let _ = child.kill();
        let _ = child.wait();
        self.paused = false;
        true
    }

    /// SIGSTOP: the process keeps its sockets but answers nothing.
    pub(crate) fn pause(&mut self) -> bool {
        let sent = self.signal(libc::SIGSTOP);
        self.paused = sent;
        sent
    }

    /// SIGCONT after [`NodeProcess::pause`].
    pub(crate) fn resume(&mut self) -> bool {
        let sent = self.signal(libc::SIGCONT);
        if sent {
            self.paused = false;
        }
        sent
    }

    /// SIGTERM (after SIGCONT if paused: a stopped process would never see it), then up
    /// to `grace` for it to exit, then SIGKILL. Returns `true` when it exited by itself.
    pub(crate) async fn terminate(&mut self, grace: Duration) -> bool {
        if self.paused {
            self.resume();
        }
        if !self.signal(libc::SIGTERM) {
            return self.child.is_none();
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.poll_exit().is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill9();
        false
    }

    /// The last `lines` lines of its log (the last 16 KiB of it at most).
    pub fn log_tail(&self, lines: usize) -> String {
        use std::io::{Read, Seek, SeekFrom};
        const MAX: u64 = 16 * 1024;
        let Ok(mut f) = std::fs::File::open(&self.spec.log) else {
            return String::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if f.seek(SeekFrom::Start(len.saturating_sub(MAX))).is_err() {
            return String::new();
        }
        let mut buf = Vec::new();
        if f.take(MAX).read_to_end(&mut buf).is_err() {
            return String::new();
        }
        let text = String::from_utf8_lossy(&buf);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if self.paused {
            self.resume();
        }
        self.kill9();
    }
}

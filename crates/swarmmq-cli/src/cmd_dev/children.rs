//! The node processes of a dev cluster: started from this same executable, signalled
//! only by the PIDs this process started and has not yet reaped.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::layout::NodeLayout;

/// `SWARMMQ_*` variables passed on to the nodes; every other one is dropped, because
/// the environment outranks the config file (a `SWARMMQ_NODE_PORT` in the caller's
/// shell would give every node the same port).
const PASSED_ON: &[&str] = &["SWARMMQ_LOG_LEVEL", "SWARMMQ_LOG_FORMAT"];

/// One running node.
pub struct NodeChild {
    pub layout: NodeLayout,
    child: Child,
    /// Set once reaped: its PID may then belong to someone else and is never signalled.
    exited: Option<ExitStatus>,
}

impl NodeChild {
    /// Starts `swarmmq node --config <its config>` with stdout and stderr appended to
    /// its log and the shared master key in its environment.
    pub fn spawn(layout: &NodeLayout, master_key_b64: &str) -> anyhow::Result<NodeChild> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&layout.log)
            .with_context(|| format!("cannot open {}", layout.log.display()))?;
        let log2 = log
            .try_clone()
            .with_context(|| format!("cannot open {}", layout.log.display()))?;
        let mut cmd = Command::new(exe);
        cmd.arg("node")
            .arg("--config")
            .arg(&layout.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("SWARMMQ_") && !PASSED_ON.contains(&text.as_ref()) {
                cmd.env_remove::<&OsString>(&name);
            }
        }
        cmd.env("SWARMMQ_MASTER_KEY", master_key_b64);
        // The log is a file: no colour escapes in it.
        cmd.env("NO_COLOR", "1");
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", layout.id))?;
        Ok(NodeChild {
            layout: layout.clone(),
            child,
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status once the process has ended (reaping it), else `None`.
    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exited = Some(status);
        }
        self.exited
    }

    /// Sends SIGTERM, unless the process has already ended and been reaped.
    pub fn terminate(&mut self) {
        if self.poll_exit().is_some() {
            return;
        }
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) has no memory-safety preconditions; the PID is our own unreaped
        // child (checked just above), so it cannot name another process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }

    /// SIGKILL (through std, which refuses once the child is reaped) and reap.
    pub fn kill(&mut self) {
        if self.poll_exit().is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.exited = Some(status);
            }
        }
    }

    /// The last `lines` lines of its log, for an error report.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.layout.log, lines)
    }
}

/// SIGTERM to every node, up to `grace` for them to finish, then SIGKILL to the rest.
/// Returns the ids of the nodes that had to be killed.
pub async fn stop_all(children: &mut [NodeChild], grace: Duration) -> Vec<String> {
    for c in children.iter_mut() {
        c.terminate();
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && children.iter_mut().any(|c| c.poll_exit().is_none()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut killed = Vec::new();
    for c in children.iter_mut() {
        if c.poll_exit().is_none() {
            c.kill();
            killed.push(c.layout.id.clone());
        }
    }
    killed
}

/// The last `lines` lines of the file's last 16 KiB (logs can be large).
fn tail(path: &Path, lines: usize) -> String {
    const MAX: u64 = 16 * 1024;
    let Ok(mut f) = std::fs::File::open(path) else {
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

//! Checks that need more than one field, or a range, run on the final merged struct
//! (after command-line flags), so they cannot name an origin: only the key.

use std::collections::HashSet;
use std::time::Duration;

use swarmmq_types::Limits;

use crate::config::FRAME_OVERHEAD;
use crate::{ByteSize, Config, ConfigError, FsyncPolicy};

/// The largest frame: a publish frame becomes one record batch per partition, a batch
/// may be larger than its frame (at most about 3 MiB more for 100 000 tiny messages),
/// and the storage format's batches end at 64 MiB (`swarmmq_storage::MAX_BATCH_LEN`).
/// Larger frames made every partition refuse to open.
const MAX_FRAME: u64 = 60 * 1024 * 1024;

/// The largest segment: index positions are `u32`, and a segment may overshoot its size
/// by one batch (at most 64 MiB). Larger values made every partition refuse to open.
const MAX_SEGMENT: u64 = (4 * 1024 - 64) * 1024 * 1024;

/// Longest connection timeout: a bound keeps deadline arithmetic far from overflow, and
/// a connection silent for a week is not a client worth waiting for.
const MAX_CONNECTION_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Most replicas of a partition: the largest cluster the design targets is 7 nodes.
const MAX_REPLICATION_FACTOR: u32 = 7;

type Check = Result<(), ConfigError>;

fn refuse(key: &str, reason: impl Into<String>) -> Check {
    Err(ConfigError::invalid(key, reason))
}

impl Config {
    /// Refuses a configuration the node could not run with, naming the first bad key.
    ///
    /// Existence of files (TLS, data dir) is the node's business, not checked here.
    pub fn validate(&self) -> Check {
        self.check_ports()?;
        self.check_bind()?;
        self.check_performance()?;
        self.check_storage()?;
        self.check_delivery()?;
        self.check_security()?;
        self.check_cluster()?;
        self.check_log()
    }

    fn check_ports(&self) -> Check {
        let ports = [
            ("node.port", self.node.port),
            ("node.http_port", self.node.http_port),
            ("node.grpc_port", self.node.grpc_port),
            ("cluster.internal_port", self.cluster.internal_port),
        ];
        for (i, (key, port)) in ports.iter().enumerate() {
            if *port == 0 {
                return refuse(key, "must not be 0");
            }
            if let Some((other, _)) = ports[..i].iter().find(|(_, p)| p == port) {
                return refuse(
                    key,
                    format!("{port} is also {other}; every port must differ"),
                );
            }
        }
        Ok(())
    }

    fn check_bind(&self) -> Check {
        let s = &self.security;
        let tls = s.tls_cert.is_some() && s.tls_key.is_some();
        if !self.node.bind.is_loopback() && !tls && !s.allow_insecure {
            return refuse(
                "node.bind",
                format!(
                    "{} is not a loopback address and TLS is not configured; set \
                     security.tls_cert and security.tls_key, or security.allow_insecure: true",
                    self.node.bind
                ),
            );
        }
        Ok(())
    }

    fn check_performance(&self) -> Check {
        let p = &self.performance;
        let frame = p.max_frame_size.as_u64();
        if frame <= FRAME_OVERHEAD {
            return refuse(
                "performance.max_frame_size",
                format!(
                    "{} leaves no room for a message; it must be more than {}",
                    p.max_frame_size,
                    ByteSize(FRAME_OVERHEAD)
                ),
            );
        }
        if frame > MAX_FRAME {
            return refuse(
                "performance.max_frame_size",
                format!(
                    "{} is more than the most, {}",
                    p.max_frame_size,
                    ByteSize(MAX_FRAME)
                ),
            );
        }
        if p.max_message_size.as_u64() == 0 {
            return refuse("performance.max_message_size", "must be more than 0");
        }
        let room = ByteSize(frame - FRAME_OVERHEAD);
        if p.max_message_size > room {
            return refuse(
                "performance.max_message_size",
                format!(
                    "{} does not fit in a frame: it must be at most performance.max_frame_size \
                     ({}) less {} of framing, i.e. {room}",
                    p.max_message_size,
                    p.max_frame_size,
                    ByteSize(FRAME_OVERHEAD)
                ),
            );
        }
        if p.max_inflight_bytes < p.max_frame_size {
            return refuse(
                "performance.max_inflight_bytes",
                format!(
                    "{} is less than performance.max_frame_size ({}); one frame must fit",
                    p.max_inflight_bytes, p.max_frame_size
                ),
            );
        }
        let max_batch = Limits::DEFAULT.max_batch_messages;
        if !(1..=max_batch).contains(&p.batch_size) {
            return refuse(
                "performance.batch_size",
                format!("{} is out of range 1..={max_batch}", p.batch_size),
            );
        }
        if p.ack_timeout.is_zero() {
            return refuse("performance.ack_timeout", "must be more than 0s");
        }
        if p.max_connections == 0 {
            return refuse("performance.max_connections", "must be at least 1");
        }
        for (key, timeout) in [
            ("performance.frame_timeout", p.frame_timeout),
            ("performance.idle_timeout", p.idle_timeout),
        ] {
            if timeout.is_zero() {
                return refuse(key, "must be more than 0s");
            }
            if timeout > MAX_CONNECTION_TIMEOUT {
                return refuse(key, "must be at most 7d");
            }
        }
        Ok(())
    }

    fn check_storage(&self) -> Check {
        let s = &self.storage;
        if s.data_dir.as_os_str().is_empty() {
            return refuse("storage.data_dir", "must not be empty");
        }
        positive_size("storage.max_disk_usage", s.max_disk_usage)?;
        if s.fsync == FsyncPolicy::Interval && s.fsync_interval.is_zero() {
            return refuse(
                "storage.fsync_interval",
                "must be more than 0s when storage.fsync is interval",
            );
        }
        positive_size("storage.segment_size", Some(s.segment_size))?;
        if s.segment_size.as_u64() > MAX_SEGMENT {
            return refuse(
                "storage.segment_size",
                format!(
                    "{} is more than the most, {}",
                    s.segment_size,
                    ByteSize(MAX_SEGMENT)
                ),
            );
        }
        positive_duration("storage.segment_age", Some(s.segment_age))?;
        positive_duration("storage.retention_age", s.retention_age)?;
        positive_size("storage.retention_bytes", s.retention_bytes)?;
        let max = Limits::DEFAULT.max_partitions;
        if !(1..=max).contains(&s.default_partitions) {
            return refuse(
                "storage.default_partitions",
                format!("{} is out of range 1..={max}", s.default_partitions),
            );
        }
        Ok(())
    }

    fn check_delivery(&self) -> Check {
        if self.delivery.max_delivery_attempts == 0 {
            return refuse("delivery.max_delivery_attempts", "must be at least 1");
        }
        Ok(())
    }

    fn check_security(&self) -> Check {
        let s = &self.security;
        match (&s.tls_cert, &s.tls_key) {
            (Some(_), None) => {
                return refuse(
                    "security.tls_key",
                    "is required when security.tls_cert is set",
                );
            }
            (None, Some(_)) => {
                return refuse(
                    "security.tls_cert",
                    "is required when security.tls_key is set",
                );
            }
            _ => {}
        }
        if let Some(file) = &s.api_keys_file {
            if file.as_os_str().is_empty() {
                return refuse(
                    "security.api_keys_file",
                    "must not be empty (leave it out for <storage.data_dir>/api-keys.json)",
                );
            }
            if file.file_name().is_none() || file.as_os_str().to_string_lossy().ends_with('/') {
                return refuse(
                    "security.api_keys_file",
                    format!("{} names a directory; name the file", file.display()),
                );
            }
        }
        if s.tls_ca.is_some() && s.tls_cert.is_none() {
            return refuse(
                "security.tls_ca",
                "needs security.tls_cert and security.tls_key (mutual TLS is on top of TLS)",
            );
        }
        Ok(())
    }

    fn check_cluster(&self) -> Check {
        let name = &self.cluster.name;
        if name.is_empty() || name.len() > 64 {
            return refuse("cluster.name", "must be 1 to 64 characters long");
        }
        if let Some(ch) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return refuse(
                "cluster.name",
                format!("{name:?} has the character {ch:?}; allowed are a-z A-Z 0-9 . _ -"),
            );
        }
        let mut ids = HashSet::new();
        let mut addresses = HashSet::new();
        for (i, node) in self.cluster.nodes.iter().enumerate() {
            let key = format!("cluster.nodes[{i}]");
            if !ids.insert(node.id.as_str()) {
                return refuse(
                    &format!("{key}.id"),
                    format!("{:?} is listed twice", node.id.as_str()),
                );
            }
            check_address(&format!("{key}.address"), &node.address)?;
            if !addresses.insert(node.address.as_str()) {
                return refuse(
                    &format!("{key}.address"),
                    format!("{:?} is listed twice", node.address),
                );
            }
            if node.roles.is_empty() {
                return refuse(&format!("{key}.roles"), "must name at least one role");
            }
        }
        self.check_own_entry()?;
        for (i, seed) in self.cluster.seeds.iter().enumerate() {
            check_address(&format!("cluster.seeds[{i}]"), seed)?;
        }
        if let Some(rf) = self.cluster.replication_factor
            && !(1..=MAX_REPLICATION_FACTOR).contains(&rf)
        {
            return refuse(
                "cluster.replication_factor",
                format!("{rf} is out of range 1..={MAX_REPLICATION_FACTOR}"),
            );
        }
        if self.cluster.replication == crate::ReplicationMode::Raft && !self.cluster.is_enabled() {
            return refuse(
                "cluster.replication",
                "raft needs cluster mode: list cluster.nodes or cluster.seeds",
            );
        }
        let join = self.cluster.join_timeout;
        if join.is_zero() {
            return refuse("cluster.join_timeout", "must be more than 0s");
        }
        if join > MAX_CONNECTION_TIMEOUT {
            return refuse("cluster.join_timeout", "must be at most 7d");
        }
        Ok(())
    }

    /// This node's own entry in `cluster.nodes` says where the others reach it, so it
    /// must listen there. Refused rather than followed: a silent override would hide a
    /// wrong `--internal-port` or a copy-pasted entry, and two nodes would then fight
    /// over one port.
    fn check_own_entry(&self) -> Check {
        let own = self
            .cluster
            .nodes
            .iter()
            .enumerate()
            .find(|(_, n)| n.id == self.node.id);
        let Some((i, entry)) = own else {
            return Ok(());
        };
        let port = entry
            .address
            .trim()
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        let internal = self.cluster.internal_port;
        match port {
            Some(p) if p != internal => refuse(
                "cluster.internal_port",
                format!(
                    "{internal} differs from the port of this node's own entry \
                     cluster.nodes[{i}] ({} at {:?}); set cluster.internal_port to {p}",
                    entry.id.as_str(),
                    entry.address
                ),
            ),
            _ => Ok(()),
        }
    }

    fn check_log(&self) -> Check {
        // Full EnvFilter parsing is left to the node, which owns tracing-subscriber.
        if self.log.level.trim().is_empty() {
            return refuse(
                "log.level",
                "must not be empty (e.g. info, or swarmmq=debug,info)",
            );
        }
        Ok(())
    }
}

fn positive_size(key: &str, size: Option<ByteSize>) -> Check {
    match size {
        Some(ByteSize(0)) => refuse(key, "must be more than 0 (leave it out for no limit)"),
        _ => Ok(()),
    }
}

fn positive_duration(key: &str, duration: Option<Duration>) -> Check {
    match duration {
        Some(d) if d.is_zero() => refuse(key, "must be more than 0s"),
        _ => Ok(()),
    }
}

/// `host:port` with a non-empty host and a port 1..=65535; IPv6 hosts in brackets.
fn check_address(key: &str, text: &str) -> Check {
    let address = text.trim();
    let bad = |why: &str| {
        refuse(
            key,
            format!(
                "{:?} is not host:port ({why})",
                text.chars().take(64).collect::<String>()
            ),
        )
    };
    let Some((host, port)) = address.rsplit_once(':') else {
        return bad("no port");
    };
    if host.is_empty() {
        return bad("no host");
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return bad("put an IPv6 address in brackets, e.g. [::1]:9001");
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return bad("the host has a space, slash or control character");
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => bad("the port must be 1 to 65535"),
        Ok(_) => Ok(()),
    }
}

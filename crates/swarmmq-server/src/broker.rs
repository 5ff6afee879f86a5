//! The node's registry of destinations and groups, and its admin operations.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use swarmmq_delivery::SharedSettings;
use swarmmq_protocol::{CreateDestinationRequest, DestinationConfig, GroupMode};
use swarmmq_storage::FsyncPolicy;
use swarmmq_types::{DestinationName, ErrorCode, GroupName, Limits};

use crate::destination::{Destination, DestinationSpec, PartitionEnv, SPEC_FILE};
use crate::dlq::{self, DeadLetter};
use crate::error::{RequestError, ServerError};
use crate::group::{self, Group, GroupParams};
use crate::guard::Guard;
use crate::keyring::KeyStore;
use crate::metrics::Metrics;
use crate::partition::DiskBudget;
use crate::settings::NodeSettings;

pub(crate) struct Broker {
    pub node_id: String,
    pub cluster_name: String,
    pub client_addr: std::net::SocketAddr,
    pub limits: Limits,
    pub keys: KeyStore,
    pub metrics: Arc<Metrics>,
    /// API keys and failed-attempt limits (inert when auth is off).
    pub auth: Arc<crate::auth::AuthState>,
    pub started: Instant,
    pub auto_create: bool,
    defaults: DestinationSpec,
    destinations_dir: PathBuf,
    groups_dir: PathBuf,
    env: PartitionEnv,
    destinations: RwLock<HashMap<String, Arc<Destination>>>,
    /// Serialises create and delete so two creates of one name cannot race.
    admin: tokio::sync::Mutex<()>,
    group_count: AtomicU32,
    pub waiting_pulls: AtomicU32,
    /// Longest session an ordered-group member may ask for.
    pub max_session_ms: u64,
    dlq_tx: tokio::sync::mpsc::Sender<DeadLetter>,
    /// Taken once by the node to start the dead-letter mover.
    pub dlq_rx: Mutex<Option<tokio::sync::mpsc::Receiver<DeadLetter>>>,
    /// Connection timeouts and the budgets of log lines caused by bad input.
    pub guard: Guard,
    /// Cluster mode: set once the node has joined; never set for a single node.
    cluster: std::sync::OnceLock<Arc<crate::cluster::ClusterRuntime>>,
}

/// Most bytes a record may take on disk beyond its message on the wire (length and
/// offset varints, a zigzag deliver/expiry time where the wire had an absent option,
/// the 16-byte GCM tag; about 23 at worst, so 32 with room to spare).
const RECORD_SLACK: u64 = 32;

/// The largest record batch a partition accepts: whatever one publish frame can turn
/// into. The frame alone is not enough, since a frame packed with tiny messages makes a
/// batch up to about twice its size. `Config::validate` keeps the frame limit low
/// enough that this stays under the storage format's hard maximum.
pub(crate) fn max_batch_bytes(limits: &Limits) -> u32 {
    let slack =
        u64::from(limits.max_batch_messages) * RECORD_SLACK + swarmmq_storage::HEADER_LEN as u64;
    let most = u64::from(limits.max_frame_bytes).saturating_add(slack);
    u32::try_from(most.min(u64::from(swarmmq_storage::MAX_BATCH_LEN))).unwrap_or(u32::MAX)
}

fn lock_err() -> RequestError {
    RequestError::new(ErrorCode::Internal, "destination registry lock poisoned")
}

impl Broker {
    /// Opens every destination found in the data dir.
    pub async fn open(
        settings: &NodeSettings,
        keys: KeyStore,
        metrics: Arc<Metrics>,
    ) -> Result<Broker, ServerError> {
        let destinations_dir = settings.data_dir.join("destinations");
        let groups_dir = settings.data_dir.join("groups");
        for d in [&destinations_dir, &groups_dir] {
            std::fs::create_dir_all(d).map_err(ServerError::io(d))?;
        }
        let limits = settings.limits.clone();
        let (dlq_tx, dlq_rx) = dlq::channel();
        let broker = Broker {
            node_id: settings.node_id.to_string(),
            cluster_name: settings.cluster_name.clone(),
            client_addr: settings.client_addr,
            keys,
            auth: Arc::new(crate::auth::AuthState::open(
                settings.auth_enabled,
                settings.api_keys_path(),
                &settings.data_dir,
            )),
            started: Instant::now(),
            // In a cluster, destinations are created through the metadata group: a
            // node never invents one locally.
            auto_create: settings.auto_create_destinations && settings.cluster.is_none(),
            defaults: DestinationSpec {
                partitions: settings.default_partitions,
                retention_ms: settings.retention_age.map(|d| d.as_millis() as u64),
                retention_bytes: settings.retention_bytes,
                max_message_bytes: limits.max_message_bytes,
                ack_timeout_ms: settings.ack_timeout.as_millis() as u64,
                max_delivery_attempts: settings.max_delivery_attempts,
                dedup_window_ms: settings.dedup_window.as_millis() as u64,
                dlq_enabled: true,
                default_ttl_ms: None,
                expired_to_dlq: false,
                priority_aging_ms: settings.priority_aging.as_millis() as u64,
            },
            env: PartitionEnv {
                fsync: settings.fsync,
                segment_bytes: settings.segment_bytes,
                segment_age: settings.segment_age,
                max_batch_bytes: max_batch_bytes(&limits),
                budget: DiskBudget::new(settings.max_disk_usage),
                metrics: Arc::clone(&metrics),
                queue_depth: limits.max_partition_queue as usize,
                dedup_max_entries: settings.dedup_max_entries,
                read_cache_bytes: settings.read_cache_bytes,
                open_partitions: std::sync::atomic::AtomicU64::new(0),
            },
            metrics,
            limits,
            destinations_dir,
            groups_dir,
            destinations: RwLock::new(HashMap::new()),
            admin: tokio::sync::Mutex::new(()),
            group_count: AtomicU32::new(0),
            waiting_pulls: AtomicU32::new(0),
            max_session_ms: settings.max_session_timeout.as_millis() as u64,
            dlq_tx,
            dlq_rx: Mutex::new(Some(dlq_rx)),
            guard: Guard::new(settings.frame_timeout, settings.idle_timeout),
            cluster: std::sync::OnceLock::new(),
        };
        broker.load_existing().await?;
        Ok(broker)
    }

    async fn load_existing(&self) -> Result<(), ServerError> {
        let dir = &self.destinations_dir;
        let entries = std::fs::read_dir(dir).map_err(ServerError::io(dir))?;
        for entry in entries {
            let entry = entry.map_err(ServerError::io(dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if DestinationName::new(&name).is_err() {
                // A half-deleted directory (`<name>~deleting`) or something not ours.
                continue;
            }
            let spec_path = entry.path().join(SPEC_FILE);
            let text = match std::fs::read_to_string(&spec_path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ServerError::io(&spec_path)(e)),
            };
            let spec: DestinationSpec =
                serde_json::from_str(&text).map_err(|e| ServerError::DataDir {
                    path: spec_path.clone(),
                    reason: format!("unreadable destination settings: {e}"),
                })?;
            let dest = Destination::open(&name, spec, &entry.path(), &self.env).await?;
            self.open_existing_groups(&dest)?;
            self.destinations
                .write()
                .map_err(|_| ServerError::DataDir {
                    path: dir.clone(),
                    reason: "registry lock poisoned".into(),
                })?
                .insert(name, Arc::new(dest));
        }
        Ok(())
    }

    pub fn disk_used(&self) -> u64 {
        self.env.budget.used()
    }

    pub fn get(&self, name: &str) -> Result<Arc<Destination>, RequestError> {
        self.destinations
            .read()
            .map_err(|_| lock_err())?
            .get(name)
            .cloned()
            .ok_or_else(|| match DestinationName::new(name) {
                Err(e) => RequestError::from(e),
                Ok(_) => RequestError::unknown_destination(name),
            })
    }

    /// The destination for a publish: created with defaults when missing and auto-create is on.
    pub async fn get_or_create(&self, name: &str) -> Result<Arc<Destination>, RequestError> {
        match self.get(name) {
            Ok(d) => Ok(d),
            Err(e) if e.code == ErrorCode::UnknownDestination && self.auto_create => {
                let req = CreateDestinationRequest {
                    name: name.to_string(),
                    partitions: 0,
                    config: DestinationConfig::default(),
                };
                self.create(&req).await
            }
            Err(e) => Err(e),
        }
    }

    pub fn list(&self) -> Result<Vec<Arc<Destination>>, RequestError> {
        let mut all: Vec<Arc<Destination>> = self
            .destinations
            .read()
            .map_err(|_| lock_err())?
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// The cluster side of the node, in cluster mode.
    pub fn cluster(&self) -> Option<Arc<crate::cluster::ClusterRuntime>> {
        self.cluster.get().cloned()
    }

    pub(crate) fn set_cluster(&self, rt: Arc<crate::cluster::ClusterRuntime>) {
        let _ = self.cluster.set(rt);
    }

    /// Appends waiting in every partition's writer queue.
    pub fn queue_depth(&self) -> u64 {
        self.list()
            .map(|all| {
                all.iter()
                    .flat_map(|d| d.partitions.iter())
                    .map(|p| p.queue_len() as u64)
                    .sum()
            })
            .unwrap_or(0)
    }

    pub(crate) fn resolve_spec(
        &self,
        req: &CreateDestinationRequest,
    ) -> Result<DestinationSpec, RequestError> {
        let invalid = |m: String| RequestError::new(ErrorCode::InvalidRequest, m);
        let partitions = if req.partitions == 0 {
            self.defaults.partitions
        } else {
            req.partitions
        };
        if partitions > self.limits.max_partitions {
            return Err(invalid(format!(
                "partitions must be between 1 and {}, got {partitions}",
                self.limits.max_partitions
            )));
        }
        let c = &req.config;
        let max_message_bytes = c
            .max_message_bytes
            .unwrap_or(self.defaults.max_message_bytes);
        if max_message_bytes == 0 || max_message_bytes > self.limits.max_message_bytes {
            return Err(invalid(format!(
                "max_message_bytes must be between 1 and the node's limit {}, got {max_message_bytes}",
                self.limits.max_message_bytes
            )));
        }
        let ack_timeout_ms = c.ack_timeout_ms.unwrap_or(self.defaults.ack_timeout_ms);
        if ack_timeout_ms == 0 {
            return Err(invalid("ack_timeout_ms must be at least 1".into()));
        }
        let max_delivery_attempts = c
            .max_delivery_attempts
            .unwrap_or(self.defaults.max_delivery_attempts);
        if max_delivery_attempts == 0 {
            return Err(invalid("max_delivery_attempts must be at least 1".into()));
        }
        if c.retention_ms == Some(0) || c.retention_bytes == Some(0) {
            return Err(invalid("retention limits must be greater than 0".into()));
        }
        Ok(DestinationSpec {
            partitions,
            retention_ms: c.retention_ms.or(self.defaults.retention_ms),
            retention_bytes: c.retention_bytes.or(self.defaults.retention_bytes),
            max_message_bytes,
            ack_timeout_ms,
            max_delivery_attempts,
            dedup_window_ms: c.dedup_window_ms.unwrap_or(self.defaults.dedup_window_ms),
            dlq_enabled: c.dlq_enabled.unwrap_or(self.defaults.dlq_enabled),
            default_ttl_ms: c.default_ttl_ms.or(self.defaults.default_ttl_ms),
            expired_to_dlq: c.expired_to_dlq.unwrap_or(self.defaults.expired_to_dlq),
            priority_aging_ms: c
                .priority_aging_ms
                .unwrap_or(self.defaults.priority_aging_ms),
        })
    }

    /// Creates a destination; creating one that exists with the same settings returns it
    /// (idempotent), with other settings fails with DESTINATION_EXISTS.
    pub async fn create(
        &self,
        req: &CreateDestinationRequest,
    ) -> Result<Arc<Destination>, RequestError> {
        let name = DestinationName::new(req.name.as_str())?;
        let spec = self.resolve_spec(req)?;
        let _guard = self.admin.lock().await;
        if let Ok(existing) = self.get(name.as_str()) {
            let same_partitions =
                req.partitions == 0 || existing.spec.partitions == spec.partitions;
            let explicit_config = req.config != DestinationConfig::default();
            if same_partitions && (!explicit_config || existing.spec == spec) {
                return Ok(existing);
            }
            return Err(RequestError::new(
                ErrorCode::DestinationExists,
                format!(
                    "destination {:?} already exists with {} partitions and other settings",
                    name.as_str(),
                    existing.spec.partitions
                ),
            ));
        }
        self.install(name.as_str(), spec).await
    }

    /// Creates a destination the cluster committed, with the cluster's settings.
    pub(crate) async fn create_with_spec(
        &self,
        name: &str,
        spec: DestinationSpec,
    ) -> Result<Arc<Destination>, RequestError> {
        let name = DestinationName::new(name)?;
        let _guard = self.admin.lock().await;
        if let Ok(existing) = self.get(name.as_str()) {
            return Ok(existing);
        }
        self.install(name.as_str(), spec).await
    }

    /// Writes a new destination's settings and opens it; the caller holds `admin`.
    async fn install(
        &self,
        name: &str,
        spec: DestinationSpec,
    ) -> Result<Arc<Destination>, RequestError> {
        let name = DestinationName::new(name)?;
        let count = self.destinations.read().map_err(|_| lock_err())?.len();
        if count >= self.limits.max_destinations as usize {
            return Err(RequestError::new(
                ErrorCode::Busy,
                format!("the node already has its maximum of {count} destinations"),
            ));
        }
        let dir = self.destinations_dir.join(name.as_str());
        let spec_json = serde_json::to_vec_pretty(&spec)
            .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))?;
        let write_dir = dir.clone();
        tokio::task::spawn_blocking(move || write_spec(&write_dir, &spec_json))
            .await
            .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))?
            .map_err(|e| {
                RequestError::new(ErrorCode::StorageFailure, format!("{}: {e}", dir.display()))
            })?;
        let dest = Destination::open(name.as_str(), spec, &dir, &self.env)
            .await
            .map_err(|e| RequestError::new(ErrorCode::StorageFailure, e.to_string()))?;
        let dest = Arc::new(dest);
        self.destinations
            .write()
            .map_err(|_| lock_err())?
            .insert(name.to_string(), Arc::clone(&dest));
        tracing::info!(
            destination = name.as_str(),
            partitions = dest.spec.partitions,
            "destination created"
        );
        Ok(dest)
    }

    /// Deletes a destination, its data and its groups' state for it.
    pub async fn delete(&self, name: &str) -> Result<(), RequestError> {
        let _guard = self.admin.lock().await;
        let dest = self
            .destinations
            .write()
            .map_err(|_| lock_err())?
            .remove(name)
            .ok_or_else(|| RequestError::unknown_destination(name))?;
        dest.shutdown().await;
        self.env
            .open_partitions
            .fetch_sub(u64::from(dest.spec.partitions), Ordering::Relaxed);
        if let Ok(groups) = dest.groups.lock() {
            for g in groups.keys() {
                self.metrics.forget_group(g, name, dest.spec.partitions);
            }
        }
        let groups = dest.groups.lock().map(|g| g.len()).unwrap_or(0);
        self.group_count.fetch_sub(groups as u32, Ordering::Relaxed);
        self.metrics.forget_destination(name);
        let dir = dest.dir.clone();
        let groups_dir = self.groups_dir.clone();
        let stem = name.to_string();
        tokio::task::spawn_blocking(move || remove_destination_files(&dir, &groups_dir, &stem))
            .await
            .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))?
            .map_err(|e| RequestError::new(ErrorCode::StorageFailure, e.to_string()))?;
        tracing::info!(destination = name, "destination deleted");
        Ok(())
    }

    fn group_params<'a>(
        &'a self,
        dest: &'a Destination,
        name: &'a str,
        mode: Option<GroupMode>,
    ) -> GroupParams<'a> {
        GroupParams {
            groups_dir: &self.groups_dir,
            name,
            destination: &dest.name,
            log_starts: dest.partitions.iter().map(|p| p.start_offset()).collect(),
            mode,
            shared: SharedSettings {
                ack_timeout_ms: dest.spec.ack_timeout_ms,
                max_leased: u64::from(self.limits.max_leases_per_partition),
                max_delivery_attempts: dest.spec.max_delivery_attempts,
                priority_aging_ms: dest.spec.priority_aging_ms,
                ..SharedSettings::default()
            },
            max_members: self.limits.max_connections as usize,
            max_session_ms: self.max_session_ms,
            fsync_acks: matches!(self.env.fsync, FsyncPolicy::Always),
        }
    }

    /// The group on a destination, opened (state rebuilt from its log) or created on
    /// first use; `mode` chooses the mode of a new group and must match an existing one.
    pub fn group(
        &self,
        dest: &Destination,
        name: &str,
        mode: Option<GroupMode>,
    ) -> Result<Arc<Group>, RequestError> {
        GroupName::new(name)?;
        let mut groups = dest.groups.lock().map_err(|_| lock_err())?;
        if let Some(g) = groups.get(name) {
            if let Some(wanted) = mode
                && wanted != g.mode
            {
                return Err(RequestError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "group {name:?} on {:?} exists in the other mode; modes are fixed at creation",
                        dest.name
                    ),
                ));
            }
            return Ok(Arc::clone(g));
        }
        if self.group_count.load(Ordering::Relaxed) >= self.limits.max_groups {
            return Err(RequestError::new(
                ErrorCode::Busy,
                format!(
                    "the node already tracks its maximum of {} groups",
                    self.limits.max_groups
                ),
            ));
        }
        let group = Group::open(self.group_params(dest, name, mode)).map_err(|e| match e {
            ServerError::DataDir { reason, .. } => {
                RequestError::new(ErrorCode::InvalidRequest, reason)
            }
            other => RequestError::new(ErrorCode::StorageFailure, other.to_string()),
        })?;
        let group = Arc::new(group);
        groups.insert(name.to_string(), Arc::clone(&group));
        self.group_count.fetch_add(1, Ordering::Relaxed);
        Ok(group)
    }

    /// A group that already exists (describe must not create one).
    pub fn existing_group(
        &self,
        dest: &Destination,
        name: &str,
    ) -> Result<Arc<Group>, RequestError> {
        GroupName::new(name)?;
        if let Some(g) = dest.groups.lock().map_err(|_| lock_err())?.get(name) {
            return Ok(Arc::clone(g));
        }
        if group::stored_mode(&self.groups_dir, name, &dest.name).is_some() {
            return self.group(dest, name, None);
        }
        Err(RequestError::new(
            ErrorCode::UnknownGroup,
            format!("there is no group {name:?} on {:?}", dest.name),
        ))
    }

    /// Opens every group that has state on disk for this destination, so list and
    /// describe see them and their dead-letter and expiry work resumes at once.
    fn open_existing_groups(&self, dest: &Destination) -> Result<(), ServerError> {
        let Ok(entries) = std::fs::read_dir(&self.groups_dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let has_state = ["mode", "acks", "snap"]
                .iter()
                .any(|ext| entry.path().join(format!("{}.{ext}", dest.name)).exists());
            if GroupName::new(&name).is_ok() && has_state {
                self.group(dest, &name, None)
                    .map_err(|e| ServerError::DataDir {
                        path: entry.path(),
                        reason: e.message,
                    })?;
            }
        }
        Ok(())
    }

    /// Queues a dead-letter move; when the queue is full the range goes back to its
    /// group and is reported again by a later poll.
    pub fn dead_letter(&self, job: DeadLetter) {
        if let Err(e) = self.dlq_tx.try_send(job) {
            let job = match e {
                tokio::sync::mpsc::error::TrySendError::Full(j)
                | tokio::sync::mpsc::error::TrySendError::Closed(j) => j,
            };
            job.give_back();
        }
    }

    /// Records a finished rebalance (all members learned the new assignment).
    pub fn note_rebalance(&self, group: &Group, duration_s: Option<f64>) {
        if let Some(d) = duration_s {
            self.metrics.rebalance_duration.observe(d);
            self.metrics
                .rebalances
                .get_or_create(&crate::metrics::GroupLabel::new(
                    &group.name,
                    &group.destination,
                ))
                .inc();
        }
    }

    /// Periodic work: member session expiry, dead-letter and expiry sweeps, lag gauges.
    pub fn tick(&self) {
        let Ok(all) = self.list() else { return };
        for dest in all {
            let groups: Vec<Arc<Group>> = match dest.groups.lock() {
                Ok(g) => g.values().cloned().collect(),
                Err(_) => continue,
            };
            for g in groups {
                crate::group_ops::sweep(self, &dest, &g);
                for p in &dest.partitions {
                    let info = match &g.state {
                        group::GroupState::Shared(s) => s.describe_partition(p.id, p.visible_end()),
                        group::GroupState::Ordered(o) => {
                            o.describe_partition(p.id, p.visible_end())
                        }
                    };
                    let label = crate::metrics::GroupPartitionLabel::new(&g.name, &dest.name, p.id);
                    self.metrics
                        .group_lag
                        .get_or_create(&label)
                        .set(info.lag as i64);
                    self.metrics
                        .group_delayed
                        .get_or_create(&label)
                        .set(info.delayed as i64);
                }
            }
        }
    }

    /// Runs retention on every partition (queued behind its appends).
    pub async fn run_retention(&self) {
        let Ok(all) = self.list() else { return };
        for d in all {
            for p in &d.partitions {
                p.command(crate::partition::WriterCommand::Retention).await;
            }
        }
    }

    /// Flushes and stops every destination's writers.
    pub async fn shutdown(&self) {
        let Ok(all) = self.list() else { return };
        for d in all {
            d.shutdown().await;
        }
    }

    /// Partitions that failed (corruption, fsync failure), as "destination/partition: reason".
    pub fn failures(&self) -> Vec<String> {
        let Ok(all) = self.list() else {
            return vec!["destination registry unavailable".into()];
        };
        all.iter()
            .flat_map(|d| {
                d.partitions
                    .iter()
                    .filter_map(|p| p.failure().map(|r| format!("{}/{}: {r}", d.name, p.id)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

fn write_spec(dir: &std::path::Path, json: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir.join("partitions"))?;
    let tmp = dir.join(format!("{SPEC_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(json)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(SPEC_FILE))?;
    std::fs::File::open(dir)?.sync_all()?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn remove_destination_files(
    dir: &std::path::Path,
    groups_dir: &std::path::Path,
    stem: &str,
) -> std::io::Result<()> {
    // Rename first so a crash mid-delete never leaves a half-deleted destination that
    // would be loaded again; `load_existing` skips the `.deleting` name.
    let doomed = dir.with_file_name(format!("{stem}~deleting"));
    std::fs::rename(dir, &doomed)?;
    std::fs::remove_dir_all(&doomed)?;
    if let Ok(groups) = std::fs::read_dir(groups_dir) {
        for g in groups.flatten() {
            for ext in ["acks", "snap", "mode"] {
                let f = g.path().join(format!("{stem}.{ext}"));
                if f.exists() {
                    std::fs::remove_file(&f)?;
                }
            }
        }
    }
    Ok(())
}

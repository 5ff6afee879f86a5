//! The replicated cluster metadata and how one command changes it.
//!
//! Pure and deterministic: every node applies the same commands in the same order and
//! must reach the same state, so nothing here reads clocks, files or the network.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::records::{DestinationMeta, MetaCommand, MetaReply, NodeRecord};

/// Most nodes the metadata will record.
pub const MAX_NODES: usize = 1024;
/// Most destinations the metadata will record.
pub const MAX_DESTINATIONS: usize = 65_536;
/// Most partitions one destination may have.
pub const MAX_PARTITIONS: usize = 4096;
/// Most replicas one partition may list.
pub const MAX_REPLICAS: usize = 16;
/// Most consumer-group coordinator assignments.
pub const MAX_COORDINATORS: usize = 1_048_576;

/// The whole cluster metadata as of one applied log index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub nodes: BTreeMap<String, NodeRecord>,
    pub destinations: BTreeMap<String, DestinationMeta>,
    /// `"dest/group"` -> node id.
    pub group_coordinators: BTreeMap<String, String>,
    /// Raft log index of the last entry applied (0 before any).
    pub last_applied: u64,
}

impl ClusterState {
    /// Applies one command and answers it. A rejected or not-found command changes nothing.
    /// `last_applied` is the caller's to advance (blank and membership entries count too).
    pub fn apply(&mut self, cmd: &MetaCommand) -> MetaReply {
        match cmd {
            MetaCommand::RegisterNode(rec) => {
                if !self.nodes.contains_key(&rec.id) && self.nodes.len() >= MAX_NODES {
                    return MetaReply::Rejected(format!("more than {MAX_NODES} nodes"));
                }
                self.nodes.insert(rec.id.clone(), rec.clone());
                MetaReply::Done
            }
            MetaCommand::CreateDestination(dest) => {
                if let Some(existing) = self.destinations.get(&dest.name) {
                    return MetaReply::AlreadyExists(existing.clone());
                }
                if self.destinations.len() >= MAX_DESTINATIONS {
                    return MetaReply::Rejected(format!(
                        "more than {MAX_DESTINATIONS} destinations"
                    ));
                }
                if let Err(reason) = check_partitions(dest) {
                    return MetaReply::Rejected(reason);
                }
                self.destinations.insert(dest.name.clone(), dest.clone());
                MetaReply::Created(dest.clone())
            }
            MetaCommand::DeleteDestination { name } => {
                if self.destinations.remove(name).is_none() {
                    return MetaReply::NotFound;
                }
                // Coordinators of the destination's groups would otherwise outlive it and
                // resurface if a destination of the same name is created again.
                let prefix = format!("{name}/");
                self.group_coordinators
                    .retain(|key, _| !key.starts_with(&prefix));
                MetaReply::Done
            }
            MetaCommand::UpdateDestinationSpec { name, spec } => {
                match self.destinations.get_mut(name) {
                    Some(dest) => {
                        dest.spec = spec.clone();
                        MetaReply::Done
                    }
                    None => MetaReply::NotFound,
                }
            }
            MetaCommand::SetPlacement {
                name,
                partition,
                replicas,
            } => {
                if replicas.len() > MAX_REPLICAS {
                    return MetaReply::Rejected(format!("more than {MAX_REPLICAS} replicas"));
                }
                let Some(dest) = self.destinations.get_mut(name) else {
                    return MetaReply::NotFound;
                };
                let Some(slot) = usize::try_from(*partition)
                    .ok()
                    .and_then(|p| dest.partitions.get_mut(p))
                else {
                    return MetaReply::NotFound;
                };
                slot.replicas = replicas.clone();
                MetaReply::Done
            }
            MetaCommand::AssignCoordinator { key, node } => {
                if !self.group_coordinators.contains_key(key)
                    && self.group_coordinators.len() >= MAX_COORDINATORS
                {
                    return MetaReply::Rejected(format!(
                        "more than {MAX_COORDINATORS} coordinators"
                    ));
                }
                self.group_coordinators.insert(key.clone(), node.clone());
                MetaReply::Done
            }
        }
    }
}

fn check_partitions(dest: &DestinationMeta) -> Result<(), String> {
    if dest.partitions.len() > MAX_PARTITIONS {
        return Err(format!("more than {MAX_PARTITIONS} partitions"));
    }
    if dest
        .partitions
        .iter()
        .any(|p| p.replicas.len() > MAX_REPLICAS)
    {
        return Err(format!("more than {MAX_REPLICAS} replicas"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::PartitionPlacement;
    use serde_json::json;

    fn node(id: &str, port: u16) -> NodeRecord {
        NodeRecord {
            id: id.to_string(),
            client_addr: ([127, 0, 0, 1], port).into(),
            http_addr: ([127, 0, 0, 1], port + 1).into(),
            internal_addr: ([127, 0, 0, 1], port + 2).into(),
            version: "0.1.0".to_string(),
        }
    }

    fn dest(name: &str, partitions: usize) -> DestinationMeta {
        DestinationMeta {
            name: name.to_string(),
            spec: json!({"kind": "stream", "retention": "1d"}),
            partitions: (0..partitions)
                .map(|i| PartitionPlacement {
                    replicas: vec![format!("node-{i}")],
                })
                .collect(),
        }
    }

    #[test]
    fn register_node_upserts() {
        let mut st = ClusterState::default();
        assert_eq!(
            st.apply(&MetaCommand::RegisterNode(node("n1", 9000))),
            MetaReply::Done
        );
        let mut moved = node("n1", 9100);
        moved.version = "0.2.0".to_string();
        assert_eq!(
            st.apply(&MetaCommand::RegisterNode(moved.clone())),
            MetaReply::Done
        );
        assert_eq!(st.nodes.len(), 1);
        assert_eq!(st.nodes["n1"], moved);
    }

    #[test]
    fn create_destination_then_same_name_is_already_exists_and_unchanged() {
        let mut st = ClusterState::default();
        let d = dest("orders", 3);
        assert_eq!(
            st.apply(&MetaCommand::CreateDestination(d.clone())),
            MetaReply::Created(d.clone())
        );
        let mut other = dest("orders", 1);
        other.spec = json!({"kind": "queue"});
        assert_eq!(
            st.apply(&MetaCommand::CreateDestination(other)),
            MetaReply::AlreadyExists(d.clone())
        );
        assert_eq!(st.destinations["orders"], d);
    }

    #[test]
    fn delete_destination_removes_it_and_its_coordinators() {
        let mut st = ClusterState::default();
        st.apply(&MetaCommand::CreateDestination(dest("orders", 1)));
        st.apply(&MetaCommand::CreateDestination(dest("orders2", 1)));
        for key in ["orders/g1", "orders2/g1"] {
            st.apply(&MetaCommand::AssignCoordinator {
                key: key.to_string(),
                node: "n1".to_string(),
            });
        }
        let del = MetaCommand::DeleteDestination {
            name: "orders".to_string(),
        };
        assert_eq!(st.apply(&del), MetaReply::Done);
        assert!(!st.destinations.contains_key("orders"));
        assert!(st.destinations.contains_key("orders2"));
        assert_eq!(
            st.group_coordinators.keys().collect::<Vec<_>>(),
            vec!["orders2/g1"]
        );
        assert_eq!(st.apply(&del), MetaReply::NotFound);
    }

    #[test]
    fn update_spec_changes_only_the_spec_or_is_not_found() {
        let mut st = ClusterState::default();
        let d = dest("orders", 2);
        st.apply(&MetaCommand::CreateDestination(d.clone()));
        let spec = json!({"kind": "stream", "retention": "7d"});
        assert_eq!(
            st.apply(&MetaCommand::UpdateDestinationSpec {
                name: "orders".to_string(),
                spec: spec.clone()
            }),
            MetaReply::Done
        );
        assert_eq!(st.destinations["orders"].spec, spec);
        assert_eq!(st.destinations["orders"].partitions, d.partitions);
        assert_eq!(
            st.apply(&MetaCommand::UpdateDestinationSpec {
                name: "nope".to_string(),
                spec
            }),
            MetaReply::NotFound
        );
    }

    #[test]
    fn set_placement_replaces_one_partition_or_is_not_found() {
        let mut st = ClusterState::default();
        st.apply(&MetaCommand::CreateDestination(dest("orders", 2)));
        let set = |partition: u32, name: &str| MetaCommand::SetPlacement {
            name: name.to_string(),
            partition,
            replicas: vec!["n3".to_string(), "n1".to_string()],
        };
        assert_eq!(st.apply(&set(1, "orders")), MetaReply::Done);
        assert_eq!(
            st.destinations["orders"].partitions[1].replicas,
            vec!["n3", "n1"]
        );
        assert_eq!(
            st.destinations["orders"].partitions[0].replicas,
            vec!["node-0"]
        );
        assert_eq!(st.apply(&set(2, "orders")), MetaReply::NotFound);
        assert_eq!(st.apply(&set(u32::MAX, "orders")), MetaReply::NotFound);
        assert_eq!(st.apply(&set(0, "nope")), MetaReply::NotFound);
        let too_many = MetaCommand::SetPlacement {
            name: "orders".to_string(),
            partition: 0,
            replicas: (0..=MAX_REPLICAS).map(|i| format!("n{i}")).collect(),
        };
        assert!(matches!(st.apply(&too_many), MetaReply::Rejected(_)));
        assert_eq!(
            st.destinations["orders"].partitions[0].replicas,
            vec!["node-0"]
        );
    }

    #[test]
    fn assign_coordinator_upserts() {
        let mut st = ClusterState::default();
        let assign = |node: &str| MetaCommand::AssignCoordinator {
            key: "orders/g1".to_string(),
            node: node.to_string(),
        };
        assert_eq!(st.apply(&assign("n1")), MetaReply::Done);
        assert_eq!(st.apply(&assign("n2")), MetaReply::Done);
        assert_eq!(st.group_coordinators.len(), 1);
        assert_eq!(st.group_coordinators["orders/g1"], "n2");
    }

    #[test]
    fn limits_reject_without_change() {
        let mut st = ClusterState::default();
        for i in 0..MAX_NODES {
            assert_eq!(
                st.apply(&MetaCommand::RegisterNode(node(&format!("n{i}"), 1000))),
                MetaReply::Done
            );
        }
        assert!(matches!(
            st.apply(&MetaCommand::RegisterNode(node("extra", 1000))),
            MetaReply::Rejected(_)
        ));
        // An existing node may still be updated at the limit.
        assert_eq!(
            st.apply(&MetaCommand::RegisterNode(node("n0", 2000))),
            MetaReply::Done
        );
        assert!(matches!(
            st.apply(&MetaCommand::CreateDestination(dest(
                "wide",
                MAX_PARTITIONS + 1
            ))),
            MetaReply::Rejected(_)
        ));
        assert!(st.destinations.is_empty());
    }

    #[test]
    fn same_commands_give_same_state() {
        let cmds = [
            MetaCommand::RegisterNode(node("n1", 9000)),
            MetaCommand::CreateDestination(dest("a", 2)),
            MetaCommand::AssignCoordinator {
                key: "a/g".to_string(),
                node: "n1".to_string(),
            },
            MetaCommand::DeleteDestination {
                name: "a".to_string(),
            },
            MetaCommand::CreateDestination(dest("a", 1)),
        ];
        let mut x = ClusterState::default();
        let mut y = ClusterState::default();
        let rx: Vec<_> = cmds.iter().map(|c| x.apply(c)).collect();
        let ry: Vec<_> = cmds.iter().map(|c| y.apply(c)).collect();
        assert_eq!(rx, ry);
        assert_eq!(x, y);
        let json = serde_json::to_vec(&x).unwrap();
        assert_eq!(serde_json::from_slice::<ClusterState>(&json).unwrap(), x);
    }
}

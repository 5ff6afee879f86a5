//! Gossip membership and failure detection: which nodes exist, where they listen, how
//! loaded they are, and whether they look alive — built on chitchat (scuttlebutt
//! gossip with a phi-accrual failure detector) over AES-256-GCM-sealed UDP.
//!
//! It is NOT authority: who owns a partition, who is a voter, what the cluster
//! agreed on all come from Raft (`metadata`). Membership gives *hints*: where to route
//! first, what to show in `/v1/admin/cluster`, when to ask Raft for a change. A node
//! shown dead may be alive behind a partition, and vice versa for a few seconds.
//! It also does not write a gossip protocol: chitchat does the gossiping; this module
//! supplies the transport, the published keys and the reading of chitchat's state.
//!
//! Each node publishes (chitchat key/values): `addr.client`, `addr.http`,
//! `addr.internal`, `version` and `load` (JSON [`LoadReport`], refreshed each second).
//! A restarted node is a new chitchat generation (its start time); [`Membership::members`]
//! reports the newest generation of each id, so a restart shows as alive again while the
//! old generation quietly ages out.
//!
//! # States
//! - `dead`: chitchat's failure detector says so (silence longer than
//!   `phi_threshold` x the mean heartbeat interval observed for that node).
//! - `suspect`: still live for the detector, but its heartbeat has not moved for
//!   ~1 s (at least 5 gossip rounds); or it joined so recently that the detector has no
//!   opinion yet. Time-based rather than "phi above half the threshold" because
//!   chitchat does not expose phi, and "no news for 1 s" reads plainly in the admin view.
//! - `alive`: otherwise.
//!
//! # Tuning (defaults)
//! Gossip every 200 ms, phi threshold 16. Measured with `examples/membership_timing.rs`
//! (all nodes in one process, 2 cores): a killed node is dead on every survivor after a
//! median 1.9 s of 5 nodes (worst 2.1 s; 1.8 s with 3 nodes, 2.5 s with 10); a joining
//! node is alive on all of 7 within ~0.55 s and a load change reaches them in 0.1–0.3 s;
//! no suspect or dead sighting in 15 s idle nor in 15 s with both cores spun.
//!
//! # Transport
//! [`SealedTransport`] seals every datagram (AES-256-GCM, the cluster's gossip key) and
//! counts what does not open. chitchat 0.13 keeps its wire encoding private, so the
//! transport reaches it through chitchat's own UDP socket on a private loopback pair
//! (`codec.rs`) instead of re-implementing the format.

mod codec;
mod config;
mod sealed_transport;
mod service;
mod view;

pub use config::{
    DEFAULT_DEAD_GRACE, DEFAULT_GOSSIP_INTERVAL, DEFAULT_PHI_THRESHOLD, MAX_ID_LEN,
    MAX_VERSION_LEN, MembershipConfig, NodeAddrs,
};
pub use sealed_transport::{MAX_DATAGRAM, SEAL_OVERHEAD, SealedTransport};
pub use service::Membership;
pub use view::{LoadReport, MemberState, MemberView};

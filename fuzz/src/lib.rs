//! The checks behind SwarmMQ's fuzz targets, one module per hostile-input surface, and
//! the input formats the targets and the seed generator share.
//!
//! Every check feeds bytes an attacker (or a damaged disk, or a careless operator)
//! controls to the real code and panics only when a documented rule is broken: a panic
//! inside the code under test, an error outside the documented ones, a decoded value
//! that does not survive re-encoding, or an allocation past the documented bound.
//!
//! This crate is NOT part of the workspace and is not built by CI (it needs nightly
//! and cargo-fuzz); the stable proptest suites in each crate cover the same surfaces.

pub mod alloc;
pub mod batch;
pub mod config;
pub mod frames;
pub mod segments;

//! SwarmMQ's binary wire protocol as a pure codec: the frame header, every request and
//! response body, and their encoding and decoding. The byte layout is written down in
//! `docs/protocol.md`.
//!
//! This crate does no I/O and no async; it never panics on input and never allocates
//! past the frame limit it is given. It knows nothing of storage, sessions or sockets.

mod message;

pub use message::*;

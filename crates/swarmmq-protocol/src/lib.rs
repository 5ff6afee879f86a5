//! SwarmMQ's binary wire protocol as a pure codec: the 16-byte frame header, a
//! streaming framer, and every request and response body, encoded and decoded. The byte
//! layout is written down in `docs/protocol.md`; golden byte vectors in the tests pin it.
//!
//! This crate does no I/O and no async. It never panics on input, checks every length
//! and count against [`swarmmq_types::Limits`] before allocating, and never allocates
//! past the frame it is given. Bodies are decoded zero-copy: payloads, keys and header
//! values are slices of the frame's `Bytes`. It is not a session layer: it knows
//! nothing of sockets, pipelining windows, authentication, storage or name rules
//! (destination names are checked by the node, which answers `INVALID_NAME`).

mod error;
mod fields;
mod framer;
mod groups;
mod header;
mod keys;
mod message;
mod pull_encoder;
mod reader;
mod request;
mod response;
mod writer;

pub use error::ProtocolError;
pub use framer::{Frame, FrameDecoder};
pub use header::{Flags, FrameHeader, HEADER_LEN, MAGIC, VERSION, decode_header};
pub use keys::MAX_KEYS;
pub use message::*;
pub use pull_encoder::{DeliveredMessageRef, HeaderRef, PullResponseEncoder};
pub use request::{decode_request, encode_request, encode_request_flags};
pub use response::{decode_response, encode_error, encode_response};

//! Payload cryptography of SwarmMQ: the master key, the key ring that lets keys rotate
//! without rewriting data, the per-batch AEAD used by the storage log (the fast path),
//! and the self-contained per-message envelope used for end-to-end encryption in the SDK.
//!
//! Everything is AES-256-GCM (aws-lc-rs) under data keys derived with HKDF-SHA256
//! (RustCrypto `hkdf`/`sha2`) from a 32-byte master key and a fresh random salt, so no
//! data key is ever used for two encryptions under the same nonce.
//!
//! This crate is pure: no files, no sockets, no async; its only I/O is the OS random
//! number generator. It is NOT a TLS layer, does not store or load keys from disk, and
//! knows nothing about batches or records beyond "bytes with associated data".
//!
//! # Batch cipher
//! `data key = HKDF-SHA256(salt = 16-byte random salt, ikm = master key,
//! info = b"swarmmq/v1/batch" || key_id (u32 big-endian))`, nonce of the record at
//! index `i` = 8 zero bytes || `i` (u32 big-endian). The salt and key id live in the
//! batch header; a batch never holds more than one record per index, so nonces never
//! repeat under one data key.
//!
//! # Envelope format (version 1)
//! ```text
//! offset  size  field
//! 0       1     version = 1
//! 1       16    salt (random)
//! 17      n     ciphertext (same length as the plaintext)
//! 17+n    16    AES-256-GCM tag
//! ```
//! `key = HKDF-SHA256(salt, ikm = master key, info = b"swarmmq/v1/envelope")`, nonce = 12
//! zero bytes (safe because every envelope has its own key), associated data = the
//! caller's `aad` (not stored in the envelope). Overhead: [`ENVELOPE_OVERHEAD`] bytes.

mod batch_cipher;
mod channel_key;
mod envelope;
mod error;
mod kdf;
mod key_ring;
mod master_key;

pub use batch_cipher::{BatchCipher, SALT_LEN, TAG_LEN};
pub use channel_key::{CHANNEL_NONCE_LEN, CHANNEL_TAG_LEN, ChannelKey, random_bytes};
pub use envelope::{ENVELOPE_OVERHEAD, ENVELOPE_VERSION, open_envelope, seal_envelope};
pub use error::CryptoError;
pub use key_ring::KeyRing;
pub use master_key::{MASTER_KEY_LEN, MasterKey};

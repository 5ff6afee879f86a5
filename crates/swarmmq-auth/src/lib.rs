//! API keys for SwarmMQ: the key format, the key store file, permissions with
//! destination patterns, and a per-address limiter for failed attempts.
//!
//! A key reads `smq_<id>_<secret>`: `id` is 12 lowercase hex characters, the lookup
//! handle (not secret: it appears in logs and `swarmmq auth list`); `secret` is 32 bytes
//! from the OS random number generator, base64url without padding (43 characters).
//!
//! Only a salted hash of the secret is stored: per key a random 16-byte salt and
//! `SHA-256(salt || secret)`, compared in constant time (`subtle`). A slow password hash
//! (argon2, scrypt) is deliberately not used: those exist to make guessing a
//! low-entropy, human-chosen password expensive. A 256-bit random secret cannot be
//! guessed however fast the hash is, so a slow hash would only cost the node CPU on
//! every connection (and hand an attacker a cheap way to burn it), with no security
//! gained. The salt keeps equal secrets from having equal hashes and defeats
//! precomputation. See `docs/adr/0006-api-keys.md`.
//!
//! Permissions are `produce:<pattern>`, `consume:<pattern>` and `admin`; a pattern is a
//! destination name in which `*` matches any run of characters (`orders.*` matches
//! `orders.eu` and `orders.eu.dlq`).
//!
//! This crate is pure: no network, no async, no threads. Its only I/O is the key file
//! (read, atomic write, advisory lock) and the OS random number generator. It does not
//! decide which request needs which permission (the node does), and it does not watch
//! the file for changes (the node reloads it).

mod error;
mod file;
mod key;
mod limiter;
mod pattern;
mod permission;
mod principal;
mod record;
mod store;

pub use error::AuthError;
pub use file::{MAX_FILE_BYTES, lock_path};
pub use key::{ID_LEN, KEY_PREFIX, MAX_PRESENTED_KEY_BYTES, NewKey, SECRET_BYTES, key_id_of};
pub use limiter::FailureLimiter;
pub use pattern::{MAX_PATTERN_BYTES, Pattern};
pub use permission::{Action, Permission};
pub use principal::Principal;
pub use record::KeyRecord;
pub use store::{KeyStore, MAX_KEYS, MAX_NAME_BYTES, MAX_PERMISSIONS};

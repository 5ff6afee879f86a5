//! End-to-end encryption: payloads sealed by the producer and opened by the consumer
//! with a key no node ever sees.
//!
//! The envelope is `swarmmq_crypto::seal_envelope` (AES-256-GCM under a key derived by
//! HKDF-SHA256 from the e2e key and a random per-message salt). A sealed message
//! carries the header `swarmmq-e2e: v1;<key fingerprint>` so a consumer can tell an
//! encrypted payload from a plain one and which key it needs, without trying.
//!
//! Associated data binds what stays the same for the life of a message, including a
//! move to the dead-letter queue: the message id and the message key. Destination,
//! partition and offset are not bound because the DLQ mover changes them (the copy
//! must still open), and headers are not bound because nodes add `x-swarmmq-*`
//! headers to dead letters. So a payload cannot be replayed under another message id
//! or key; it can be copied whole (id, key and payload) to another destination by
//! someone with produce rights, which the id lets consumers deduplicate.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use bytes::Bytes;
use swarmmq_crypto::{MasterKey, open_envelope, seal_envelope};
use swarmmq_protocol::{DeliveredMessage, Header, PublishMessage};
use swarmmq_types::MessageId;

use crate::error::ClientError;

/// Name of the header that marks an end-to-end encrypted message.
pub const E2E_HEADER: &str = "swarmmq-e2e";
/// Marker version written before the key fingerprint in [`E2E_HEADER`].
const MARKER_VERSION: &str = "v1";
/// Domain of e2e key fingerprints (distinct from master-key fingerprints).
const FINGERPRINT_DOMAIN: &str = "e2e";
/// Prefix of the associated data, so it can never collide with another use of the key.
const AAD_CONTEXT: &[u8] = b"swarmmq-e2e/v1\0";
/// A key file holds 44 base64 characters and a newline; anything much larger is not one.
const MAX_KEY_FILE_BYTES: u64 = 1024;

/// A 32-byte end-to-end key (the same text format as a node's master key: standard
/// base64 of 32 bytes). `Debug` shows only the fingerprint.
pub struct E2eKey {
    key: MasterKey,
    fingerprint: String,
}

impl E2eKey {
    fn from_master(key: MasterKey) -> Result<Self, ClientError> {
        let fingerprint = key
            .fingerprint_in(FINGERPRINT_DOMAIN)
            .map_err(|e| ClientError::E2eKey(e.to_string()))?;
        Ok(E2eKey { key, fingerprint })
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, ClientError> {
        Self::from_master(MasterKey::generate().map_err(|e| ClientError::E2eKey(e.to_string()))?)
    }

    /// Parses standard base64 of exactly 32 bytes (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, ClientError> {
        Self::from_master(
            MasterKey::from_base64(text).map_err(|e| ClientError::E2eKey(e.to_string()))?,
        )
    }

    /// Loads a key file written by [`E2eKey::create_file`] or `swarmmq keys new-e2e`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let err = |e: String| ClientError::E2eKey(format!("{}: {e}", path.display()));
        let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
        let len = f.metadata().map_err(|e| err(e.to_string()))?.len();
        if len > MAX_KEY_FILE_BYTES {
            return Err(err(format!("{len} bytes is too large for a key file")));
        }
        let mut text = String::new();
        f.take(MAX_KEY_FILE_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| err(e.to_string()))?;
        Self::from_base64(&text).map_err(|e| err(e.to_string()))
    }

    /// Generates a key and writes it to a new file readable only by its owner (0600),
    /// fsynced. Refuses to overwrite an existing file: a replaced key makes every
    /// message sealed with it unreadable.
    pub fn create_file(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let err = |e: String| ClientError::E2eKey(format!("{}: {e}", path.display()));
        let key = Self::generate()?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    err("already exists; refusing to overwrite a key".into())
                }
                _ => err(e.to_string()),
            })?;
        f.write_all(key.key.to_base64().as_bytes())
            .and_then(|_| f.write_all(b"\n"))
            .and_then(|_| f.sync_all())
            .map_err(|e| err(e.to_string()))?;
        Ok(key)
    }

    /// Non-secret fingerprint (32 hex digits) carried in the marker header.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn marker(&self) -> String {
        format!("{MARKER_VERSION};{}", self.fingerprint)
    }
}

impl fmt::Debug for E2eKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E2eKey({})", self.fingerprint)
    }
}

/// Why a delivered message could not be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum E2eError {
    /// The message is end-to-end encrypted and the consumer has no key.
    #[error("end-to-end encrypted with key {fingerprint}, and no e2e key is configured")]
    NoKey { fingerprint: String },
    /// The message was sealed with another key than the consumer's.
    #[error("end-to-end encrypted with key {message}, not with this key ({consumer})")]
    WrongKey { message: String, consumer: String },
    /// Authentication failed: the payload, id or key was changed after sealing.
    #[error("end-to-end decryption failed: the payload, id or key was altered")]
    Tampered,
    /// A consumer with an e2e key refuses plain messages: anyone who may publish could
    /// otherwise pass one off as sealed by a key holder.
    #[error("not end-to-end encrypted, but this consumer requires it")]
    NotEncrypted,
    /// The marker header is not one this SDK understands.
    #[error("unrecognised {E2E_HEADER} header {0:?}")]
    BadMarker(String),
}

/// A delivered message that could not be opened, as the node delivered it (still
/// sealed), with the reason. Nack or ack it by its partition and offset as usual.
#[derive(Clone, Debug)]
pub struct E2eFailure {
    /// Boxed: a message is large and failures are rare.
    pub message: Box<DeliveredMessage>,
    pub error: E2eError,
}

fn aad(id: Option<&MessageId>, key: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(AAD_CONTEXT.len() + 16 + 10 + key.map_or(0, <[u8]>::len));
    out.extend_from_slice(AAD_CONTEXT);
    // Every field is tagged and length-prefixed so no two (id, key) pairs encode alike.
    match id {
        None => out.push(0),
        Some(MessageId::Uuid(b)) => {
            out.push(1);
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        }
        Some(MessageId::Text(t)) => {
            out.push(2);
            out.extend_from_slice(&(t.len() as u32).to_be_bytes());
            out.extend_from_slice(t.as_bytes());
        }
    }
    match key {
        None => out.push(0),
        Some(k) => {
            out.push(1);
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(k);
        }
    }
    out
}

/// Seals a message's payload in place and marks it. The message must have its id
/// already (the producer assigns one when e2e is on).
pub(crate) fn seal_message(key: &E2eKey, m: &mut PublishMessage) -> Result<(), ClientError> {
    if m.headers.iter().any(|h| h.name == E2E_HEADER) {
        return Err(ClientError::InvalidArgument(format!(
            "the message already has a {E2E_HEADER} header"
        )));
    }
    let sealed = seal_envelope(&key.key, &aad(m.id.as_ref(), m.key.as_deref()), &m.payload)
        .map_err(|e| ClientError::E2eKey(e.to_string()))?;
    m.payload = Bytes::from(sealed);
    m.headers.push(Header {
        name: E2E_HEADER.to_string(),
        value: Bytes::from(key.marker()),
    });
    Ok(())
}

/// Opens a delivered message: with a key, a sealed message comes back with its
/// plaintext payload and without the marker header; anything that cannot be opened
/// is a failure, never a payload. Without a key, plain messages pass and sealed ones
/// fail with [`E2eError::NoKey`].
pub(crate) fn open_message(
    key: Option<&E2eKey>,
    mut m: DeliveredMessage,
) -> Result<DeliveredMessage, E2eFailure> {
    let marker_at = m.headers.iter().position(|h| h.name == E2E_HEADER);
    let fail = |m: DeliveredMessage, error: E2eError| {
        Err(E2eFailure {
            message: Box::new(m),
            error,
        })
    };
    let Some(at) = marker_at else {
        return match key {
            Some(_) => fail(m, E2eError::NotEncrypted),
            None => Ok(m),
        };
    };
    let marker = m
        .headers
        .get(at)
        .map(|h| String::from_utf8_lossy(&h.value).into_owned())
        .unwrap_or_default();
    let fingerprint = match marker.split_once(';') {
        Some((MARKER_VERSION, fp)) if !fp.is_empty() => fp.to_string(),
        _ => return fail(m, E2eError::BadMarker(marker)),
    };
    let Some(key) = key else {
        return fail(m, E2eError::NoKey { fingerprint });
    };
    if fingerprint != key.fingerprint {
        return fail(
            m,
            E2eError::WrongKey {
                message: fingerprint,
                consumer: key.fingerprint.clone(),
            },
        );
    }
    match open_envelope(&key.key, &aad(m.id.as_ref(), m.key.as_deref()), &m.payload) {
        Ok(plain) => {
            m.payload = Bytes::from(plain);
            m.headers.remove(at);
            Ok(m)
        }
        Err(_) => fail(m, E2eError::Tampered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(payload: &str, id: Option<MessageId>, key: Option<&str>) -> PublishMessage {
        PublishMessage {
            id,
            key: key.map(|k| Bytes::from(k.to_string())),
            headers: vec![Header {
                name: "app".into(),
                value: Bytes::from_static(b"x"),
            }],
            priority: 5,
            deliver_at_ms: None,
            ttl_ms: None,
            payload: Bytes::from(payload.to_string()),
        }
    }

    fn delivered(m: &PublishMessage) -> DeliveredMessage {
        DeliveredMessage {
            partition: 0,
            offset: 7,
            timestamp_ms: 1,
            priority: m.priority,
            delivery_attempt: 1,
            id: m.id.clone(),
            key: m.key.clone(),
            headers: m.headers.clone(),
            payload: m.payload.clone(),
        }
    }

    #[test]
    fn sealed_messages_open_only_with_their_key_id_and_key() {
        let k = E2eKey::generate().unwrap();
        let id = MessageId::new_v7();
        let mut m = publish("top secret", Some(id.clone()), Some("acct-1"));
        seal_message(&k, &mut m).unwrap();
        assert!(!m.payload.windows(10).any(|w| w == b"top secret"));
        assert_eq!(m.payload.len(), 10 + swarmmq_crypto::ENVELOPE_OVERHEAD);
        let marker = m.headers.iter().find(|h| h.name == E2E_HEADER).unwrap();
        assert_eq!(
            &marker.value[..],
            format!("v1;{}", k.fingerprint()).as_bytes()
        );
        assert!(
            seal_message(&k, &mut m.clone()).is_err(),
            "never sealed twice"
        );

        let opened = open_message(Some(&k), delivered(&m)).unwrap();
        assert_eq!(&opened.payload[..], b"top secret");
        assert_eq!(opened.headers.len(), 1, "marker removed, app header kept");
        assert_eq!(opened.headers[0].name, "app");

        // What the DLQ mover changes (destination, partition, offset, extra headers)
        // does not matter.
        let mut moved = delivered(&m);
        moved.partition = 3;
        moved.offset = 99;
        moved.headers.push(Header {
            name: "x-swarmmq-last-error".into(),
            value: Bytes::from_static(b"boom"),
        });
        assert_eq!(
            &open_message(Some(&k), moved).unwrap().payload[..],
            b"top secret"
        );

        // Another id or message key: refused.
        let mut other_id = delivered(&m);
        other_id.id = Some(MessageId::new_v7());
        assert_eq!(
            open_message(Some(&k), other_id).unwrap_err().error,
            E2eError::Tampered
        );
        let mut other_key = delivered(&m);
        other_key.key = Some(Bytes::from_static(b"acct-2"));
        assert_eq!(
            open_message(Some(&k), other_key).unwrap_err().error,
            E2eError::Tampered
        );
        let mut flipped = delivered(&m);
        let mut p = flipped.payload.to_vec();
        p[20] ^= 1;
        flipped.payload = Bytes::from(p);
        let failure = open_message(Some(&k), flipped.clone()).unwrap_err();
        assert_eq!(failure.error, E2eError::Tampered);
        assert_eq!(failure.message.payload, flipped.payload, "still sealed");
    }

    #[test]
    fn wrong_missing_and_unneeded_keys_are_per_message_errors() {
        let k = E2eKey::generate().unwrap();
        let other = E2eKey::generate().unwrap();
        let mut m = publish("hello", Some(MessageId::new_v7()), None);
        seal_message(&k, &mut m).unwrap();
        assert!(matches!(
            open_message(Some(&other), delivered(&m)).unwrap_err().error,
            E2eError::WrongKey { .. }
        ));
        assert_eq!(
            open_message(None, delivered(&m)).unwrap_err().error,
            E2eError::NoKey {
                fingerprint: k.fingerprint().to_string()
            }
        );
        let plain = publish("plain", None, None);
        assert_eq!(
            open_message(Some(&k), delivered(&plain)).unwrap_err().error,
            E2eError::NotEncrypted
        );
        assert_eq!(
            &open_message(None, delivered(&plain)).unwrap().payload[..],
            b"plain"
        );
        // A forged marker naming this key over an unsealed payload is refused.
        let mut forged = delivered(&plain);
        forged.headers.push(Header {
            name: E2E_HEADER.into(),
            value: Bytes::from(format!("v1;{}", k.fingerprint())),
        });
        assert_eq!(
            open_message(Some(&k), forged).unwrap_err().error,
            E2eError::Tampered
        );
        let mut odd = delivered(&m);
        odd.headers.last_mut().unwrap().value = Bytes::from_static(b"v9;abc");
        assert!(matches!(
            open_message(Some(&k), odd).unwrap_err().error,
            E2eError::BadMarker(_)
        ));
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e2e.key");
        let k = E2eKey::create_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = E2eKey::from_file(&path).unwrap();
        assert_eq!(back.fingerprint(), k.fingerprint());
        assert_eq!(format!("{back:?}"), format!("E2eKey({})", k.fingerprint()));
        let err = E2eKey::create_file(&path).unwrap_err().to_string();
        assert!(err.contains("refusing to overwrite"), "{err}");
        assert_eq!(
            E2eKey::from_file(&path).unwrap().fingerprint(),
            k.fingerprint()
        );
        std::fs::write(&path, "short").unwrap();
        assert!(E2eKey::from_file(&path).is_err());
        // The e2e fingerprint differs from the same bytes' master-key fingerprint.
        let master = MasterKey::from_base64(&k.key.to_base64()).unwrap();
        assert_ne!(master.fingerprint().unwrap(), k.fingerprint());
    }
}

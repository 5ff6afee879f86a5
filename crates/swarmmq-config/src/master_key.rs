use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use crate::ConfigError;

/// The 32-byte master key that every data key is derived from, decoded from base64.
///
/// Its bytes are wiped on drop, and neither `Debug` nor any error text shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

/// Base64 of 32 bytes is 44 characters; anything much longer is refused before decoding.
const MAX_TEXT_LEN: usize = 64;

impl MasterKey {
    /// Decodes standard, padded base64 of exactly 32 bytes (surrounding spaces ignored).
    pub fn from_base64(text: &str) -> Result<Self, ConfigError> {
        let text = text.trim();
        if text.len() > MAX_TEXT_LEN {
            return Err(ConfigError::BadMasterKey(format!(
                "{} characters long; expected 44",
                text.len()
            )));
        }
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text)
                .map_err(|_| ConfigError::BadMasterKey("not valid base64".to_owned()))?,
        );
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
            ConfigError::BadMasterKey(format!("it decodes to {} bytes", decoded.len()))
        })?;
        Ok(MasterKey(Zeroizing::new(bytes)))
    }

    /// Wraps raw key bytes (e.g. a key the node generated itself).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    /// The key bytes, for the crypto layer only.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for MasterKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MasterKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the base64 of 32 bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MasterKey, E> {
                MasterKey::from_base64(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_32_bytes_and_never_shows_them() {
        let text = STANDARD.encode([7u8; 32]);
        let key = MasterKey::from_base64(&text).unwrap();
        assert_eq!(key.as_bytes(), &[7u8; 32]);
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
        assert_eq!(key, MasterKey::from_bytes([7u8; 32]));
    }

    #[test]
    fn refuses_wrong_lengths_and_alphabets_without_echoing() {
        let short = STANDARD.encode([1u8; 16]);
        let err = MasterKey::from_base64(&short).unwrap_err().to_string();
        assert_eq!(err, "not the base64 of 32 bytes (it decodes to 16 bytes)");
        let err = MasterKey::from_base64("secret!!").unwrap_err().to_string();
        assert_eq!(err, "not the base64 of 32 bytes (not valid base64)");
        assert!(!err.contains("secret"));
        let err = MasterKey::from_base64(&"A".repeat(100))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "not the base64 of 32 bytes (100 characters long; expected 44)"
        );
    }
}

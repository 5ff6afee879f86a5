use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;
use crate::kdf::random;

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// A 32-byte master key. Its bytes are wiped when it is dropped, and `Debug` never
/// prints them.
#[derive(Clone)]
pub struct MasterKey {
    // Boxed so moves do not leave stray copies of the key on the stack.
    bytes: Box<[u8; MASTER_KEY_LEN]>,
}

impl MasterKey {
    /// A key from raw bytes (the caller should wipe its own copy).
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        let mut bytes = bytes;
        let key = MasterKey {
            bytes: Box::new(bytes),
        };
        bytes.zeroize();
        key
    }

    /// A fresh random key from the OS random number generator.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Box::new([0u8; MASTER_KEY_LEN]);
        random(bytes.as_mut())?;
        Ok(MasterKey { bytes })
    }

    /// Parses standard (padded) base64 of exactly 32 bytes. Surrounding ASCII whitespace
    /// is ignored so a key file may end with a newline.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim_ascii())
                .map_err(|e| CryptoError::KeyEncoding(e.to_string()))?,
        );
        if decoded.len() != MASTER_KEY_LEN {
            return Err(CryptoError::KeyLength(decoded.len()));
        }
        let mut bytes = Box::new([0u8; MASTER_KEY_LEN]);
        bytes.copy_from_slice(&decoded);
        Ok(MasterKey { bytes })
    }

    /// Standard base64 of the key, wiped when dropped.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes.as_ref()))
    }

    /// A non-secret fingerprint of this key: HKDF-SHA256 with the info
    /// `swarmmq/v1/fingerprint`, first 16 bytes in hex. A node records it to recognise
    /// the key that wrote its data without storing the key itself.
    pub fn fingerprint(&self) -> Result<String, CryptoError> {
        fingerprint_hex(self, &[b"swarmmq/v1/fingerprint"])
    }

    /// A fingerprint in a separate domain (info `swarmmq/v1/fingerprint/<domain>`),
    /// for keys of another purpose such as end-to-end keys: the same 32 bytes used in
    /// two roles do not show the same fingerprint in both.
    pub fn fingerprint_in(&self, domain: &str) -> Result<String, CryptoError> {
        fingerprint_hex(self, &[b"swarmmq/v1/fingerprint/", domain.as_bytes()])
    }

    /// The raw key bytes, for deriving other keys (for example the gossip key).
    pub fn expose_secret(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.bytes
    }
}

fn fingerprint_hex(key: &MasterKey, info: &[&[u8]]) -> Result<String, CryptoError> {
    let okm = crate::kdf::derive_key(key, &[], info)?;
    Ok(okm.iter().take(16).map(|b| format!("{b:02x}")).collect())
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_errors() {
        let key = MasterKey::generate().unwrap();
        let text = key.to_base64();
        let back = MasterKey::from_base64(&format!("{}\n", text.as_str())).unwrap();
        assert_eq!(back.expose_secret(), key.expose_secret());

        assert!(matches!(
            MasterKey::from_base64("not base64!"),
            Err(CryptoError::KeyEncoding(_))
        ));
        assert_eq!(
            MasterKey::from_base64(&STANDARD.encode([7u8; 31])).unwrap_err(),
            CryptoError::KeyLength(31)
        );
        assert_eq!(
            MasterKey::from_base64(&STANDARD.encode([7u8; 33])).unwrap_err(),
            CryptoError::KeyLength(33)
        );
        assert_eq!(
            MasterKey::from_base64("").unwrap_err(),
            CryptoError::KeyLength(0)
        );
    }

    #[test]
    fn fingerprints_are_stable_and_separated_by_domain() {
        let key = MasterKey::from_bytes([7u8; 32]);
        let fp = key.fingerprint().unwrap();
        assert_eq!(fp.len(), 32);
        assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(fp, MasterKey::from_bytes([7u8; 32]).fingerprint().unwrap());
        let e2e = key.fingerprint_in("e2e").unwrap();
        assert_eq!(e2e.len(), 32);
        assert_ne!(e2e, fp);
        assert_ne!(e2e, key.fingerprint_in("other").unwrap());
        assert_ne!(fp, MasterKey::from_bytes([8u8; 32]).fingerprint().unwrap());
    }

    #[test]
    fn debug_is_redacted_and_keys_differ() {
        let a = MasterKey::from_bytes([0xAB; 32]);
        let dbg = format!("{a:?}");
        assert_eq!(dbg, "MasterKey(<redacted>)");
        assert!(!dbg.to_lowercase().contains("ab"));
        let b = MasterKey::generate().unwrap();
        let c = MasterKey::generate().unwrap();
        assert_ne!(b.expose_secret(), c.expose_secret());
    }
}

use aws_lc_rs::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};

use crate::batch_cipher::TAG_LEN;
use crate::kdf::{aead_key, derive_key, random};
use crate::{CryptoError, MasterKey};

/// Bytes of the nonce a [`ChannelKey`] caller supplies per packet.
pub const CHANNEL_NONCE_LEN: usize = NONCE_LEN;
/// Bytes a sealed packet grows by (the GCM tag).
pub const CHANNEL_TAG_LEN: usize = TAG_LEN;

/// An AES-256-GCM key for traffic between nodes (gossip datagrams, internal links),
/// derived from the cluster's shared master key, a salt and a purpose label.
///
/// Nonces are the caller's: random per datagram where volume is low (gossip), or a
/// per-direction counter under a per-connection salt where it is high (links), so no
/// nonce repeats under one key.
pub struct ChannelKey {
    key: LessSafeKey,
}

impl ChannelKey {
    /// `key = HKDF-SHA256(salt, ikm = master key, info = purpose)`.
    pub fn derive(master: &MasterKey, salt: &[u8], purpose: &[u8]) -> Result<Self, CryptoError> {
        Ok(ChannelKey {
            key: aead_key(&derive_key(master, salt, &[purpose])?)?,
        })
    }

    /// Encrypts `buf` in place and appends the tag.
    pub fn seal(
        &self,
        nonce: [u8; CHANNEL_NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                buf.as_mut_slice(),
            )
            .map_err(|_| CryptoError::Backend("seal"))?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Decrypts `buf` (ciphertext followed by tag) in place; returns the plaintext part.
    pub fn open<'a>(
        &self,
        nonce: [u8; CHANNEL_NONCE_LEN],
        aad: &[u8],
        buf: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        if buf.len() < TAG_LEN {
            return Err(CryptoError::Decrypt);
        }
        self.key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| CryptoError::Decrypt)
            .map(|plain| &mut plain[..])
    }
}

/// Fills `dest` from the OS random number generator (salts and random nonces).
pub fn random_bytes(dest: &mut [u8]) -> Result<(), CryptoError> {
    random(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(b: u8) -> MasterKey {
        MasterKey::from_bytes([b; 32])
    }

    #[test]
    fn a_sealed_packet_opens_only_with_the_same_key_nonce_and_aad() {
        let k = ChannelKey::derive(&master(1), b"salt", b"purpose").unwrap();
        let mut buf = b"hello cluster".to_vec();
        k.seal([7; 12], b"aad", &mut buf).unwrap();
        assert_eq!(buf.len(), 13 + CHANNEL_TAG_LEN);
        assert!(!buf.windows(5).any(|w| w == b"hello"));
        assert_eq!(
            k.open([7; 12], b"aad", &mut buf.clone()).unwrap(),
            b"hello cluster"
        );
        assert!(k.open([8; 12], b"aad", &mut buf.clone()).is_err());
        assert!(k.open([7; 12], b"other", &mut buf.clone()).is_err());
        let other = ChannelKey::derive(&master(2), b"salt", b"purpose").unwrap();
        assert!(other.open([7; 12], b"aad", &mut buf.clone()).is_err());
        let purpose = ChannelKey::derive(&master(1), b"salt", b"gossip").unwrap();
        assert!(purpose.open([7; 12], b"aad", &mut buf.clone()).is_err());
        assert!(k.open([7; 12], b"aad", &mut [0u8; 3]).is_err());
    }
}

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};

use crate::kdf::{aead_key, derive_key, random};
use crate::{CryptoError, KeyRing, MasterKey};

/// Length of the per-batch HKDF salt stored in a batch header.
pub const SALT_LEN: usize = 16;
/// Length of an AES-256-GCM tag.
pub const TAG_LEN: usize = 16;

const BATCH_INFO: &[u8] = b"swarmmq/v1/batch";

/// The AEAD of one record batch: one data key per batch (HKDF of the master key and a
/// random salt), the record's index in the batch as the nonce.
///
/// A cipher made with [`BatchCipher::for_write`] refuses to seal an index that is not
/// above every index it sealed before, and one made with [`BatchCipher::for_read`]
/// refuses to seal at all: with a per-batch key and index nonces, sealing twice at one
/// index would reuse a nonce, which breaks GCM.
pub struct BatchCipher {
    key: LessSafeKey,
    key_id: u32,
    salt: [u8; SALT_LEN],
    /// Lowest index a seal may use next; `None` for a read-only cipher.
    next_seal: Option<AtomicU64>,
}

impl BatchCipher {
    /// A cipher for a new batch under the ring's active key, with a fresh random salt.
    pub fn for_write(ring: &KeyRing) -> Result<Self, CryptoError> {
        let (key_id, master) = ring.active()?;
        let mut salt = [0u8; SALT_LEN];
        random(&mut salt)?;
        let key = Self::derive(master, key_id, &salt)?;
        Ok(BatchCipher {
            key,
            key_id,
            salt,
            next_seal: Some(AtomicU64::new(0)),
        })
    }

    /// A cipher to open the records of a batch written under `key_id` and `salt`.
    pub fn for_read(
        ring: &KeyRing,
        key_id: u32,
        salt: &[u8; SALT_LEN],
    ) -> Result<Self, CryptoError> {
        let master = ring.get(key_id)?;
        let key = Self::derive(master, key_id, salt)?;
        Ok(BatchCipher {
            key,
            key_id,
            salt: *salt,
            next_seal: None,
        })
    }

    fn derive(
        master: &MasterKey,
        key_id: u32,
        salt: &[u8; SALT_LEN],
    ) -> Result<LessSafeKey, CryptoError> {
        let data_key = derive_key(master, salt, &[BATCH_INFO, &key_id.to_be_bytes()])?;
        aead_key(&data_key)
    }

    fn nonce(index: u32) -> Nonce {
        let mut n = [0u8; NONCE_LEN];
        n[NONCE_LEN - 4..].copy_from_slice(&index.to_be_bytes());
        Nonce::assume_unique_for_key(n)
    }

    /// Encrypts `in_out` in place as the record at `index`, binding `aad`; returns the tag.
    pub fn seal(
        &self,
        index: u32,
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let Some(next) = &self.next_seal else {
            return Err(CryptoError::NonceReuse("cipher was made for reading"));
        };
        let idx = u64::from(index);
        // Advance the high-water mark first so two racing seals cannot both pass.
        if next.fetch_max(idx + 1, Ordering::AcqRel) > idx {
            return Err(CryptoError::NonceReuse("index already sealed"));
        }
        let tag = self
            .key
            .seal_in_place_separate_tag(Self::nonce(index), Aad::from(aad), in_out)
            .map_err(|_| CryptoError::Backend("seal"))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `in_out` in place as the record at `index`. On [`CryptoError::Decrypt`]
    /// the contents of `in_out` are unspecified.
    pub fn open(
        &self,
        index: u32,
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        self.key
            .open_in_place_separate_tag(Self::nonce(index), Aad::from(aad), tag, in_out)
            .map(|_| ())
            .map_err(|_| CryptoError::Decrypt)
    }

    /// The key id the data key was derived from.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The HKDF salt, stored in the batch header.
    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }
}

impl fmt::Debug for BatchCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchCipher")
            .field("key_id", &self.key_id)
            .field("writable", &self.next_seal.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::single(MasterKey::generate().unwrap())
    }

    fn sealed(ring: &KeyRing) -> (BatchCipher, Vec<u8>, [u8; 16]) {
        let w = BatchCipher::for_write(ring).unwrap();
        let mut data = b"the quick brown fox jumps over the lazy dog".to_vec();
        let tag = w.seal(3, b"meta", &mut data).unwrap();
        (w, data, tag)
    }

    #[test]
    fn round_trip() {
        let ring = ring();
        let (w, ct, tag) = sealed(&ring);
        assert_ne!(&ct[..], b"the quick brown fox jumps over the lazy dog");
        let r = BatchCipher::for_read(&ring, w.key_id(), w.salt()).unwrap();
        let mut buf = ct.clone();
        r.open(3, b"meta", &mut buf, &tag).unwrap();
        assert_eq!(&buf[..], b"the quick brown fox jumps over the lazy dog");
        // Empty plaintext still authenticates.
        let mut empty = [];
        let tag = w.seal(4, b"", &mut empty).unwrap();
        r.open(4, b"", &mut empty, &tag).unwrap();
    }

    #[test]
    fn any_tampering_fails() {
        let ring = ring();
        let (w, ct, tag) = sealed(&ring);
        let r = BatchCipher::for_read(&ring, w.key_id(), w.salt()).unwrap();
        for bit in 0..ct.len() * 8 {
            let mut buf = ct.clone();
            buf[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                r.open(3, b"meta", &mut buf, &tag),
                Err(CryptoError::Decrypt)
            );
        }
        for bit in 0..128 {
            let mut t = tag;
            t[bit / 8] ^= 1 << (bit % 8);
            let mut buf = ct.clone();
            assert_eq!(r.open(3, b"meta", &mut buf, &t), Err(CryptoError::Decrypt));
        }
        for bit in 0..32 {
            let mut aad = *b"meta";
            aad[bit / 8] ^= 1 << (bit % 8);
            let mut buf = ct.clone();
            assert_eq!(r.open(3, &aad, &mut buf, &tag), Err(CryptoError::Decrypt));
        }
        for bit in 0..128 {
            let mut salt = *w.salt();
            salt[bit / 8] ^= 1 << (bit % 8);
            let r2 = BatchCipher::for_read(&ring, w.key_id(), &salt).unwrap();
            let mut buf = ct.clone();
            assert_eq!(
                r2.open(3, b"meta", &mut buf, &tag),
                Err(CryptoError::Decrypt)
            );
        }
        // Wrong index, wrong master key, wrong key id.
        let mut buf = ct.clone();
        assert_eq!(
            r.open(2, b"meta", &mut buf, &tag),
            Err(CryptoError::Decrypt)
        );
        let other = KeyRing::single(MasterKey::generate().unwrap());
        let r3 = BatchCipher::for_read(&other, 1, w.salt()).unwrap();
        let mut buf = ct.clone();
        assert_eq!(
            r3.open(3, b"meta", &mut buf, &tag),
            Err(CryptoError::Decrypt)
        );
        // The same master key under another id derives another data key.
        let mut two = ring.clone();
        two.add(2, ring.get(1).unwrap().clone()).unwrap();
        let r4 = BatchCipher::for_read(&two, 2, w.salt()).unwrap();
        let mut buf = ct.clone();
        assert_eq!(
            r4.open(3, b"meta", &mut buf, &tag),
            Err(CryptoError::Decrypt)
        );
        assert!(matches!(
            BatchCipher::for_read(&ring, 9, w.salt()),
            Err(CryptoError::UnknownKeyId(9))
        ));
    }

    #[test]
    fn indexes_separate_nonces() {
        let ring = ring();
        let w = BatchCipher::for_write(&ring).unwrap();
        let mut a = [0x55u8; 64];
        let mut b = [0x55u8; 64];
        let ta = w.seal(0, b"", &mut a).unwrap();
        let tb = w.seal(1, b"", &mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(ta, tb);
        // Two batches (two salts) give different ciphertexts at the same index.
        let w2 = BatchCipher::for_write(&ring).unwrap();
        assert_ne!(w.salt(), w2.salt());
        let mut c = [0x55u8; 64];
        w2.seal(0, b"", &mut c).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn refuses_nonce_reuse() {
        let ring = ring();
        let w = BatchCipher::for_write(&ring).unwrap();
        let mut buf = [1u8; 8];
        w.seal(5, b"", &mut buf).unwrap();
        assert!(matches!(
            w.seal(5, b"", &mut buf),
            Err(CryptoError::NonceReuse(_))
        ));
        assert!(matches!(
            w.seal(2, b"", &mut buf),
            Err(CryptoError::NonceReuse(_))
        ));
        w.seal(u32::MAX, b"", &mut buf).unwrap();
        assert!(matches!(
            w.seal(u32::MAX, b"", &mut buf),
            Err(CryptoError::NonceReuse(_))
        ));
        let r = BatchCipher::for_read(&ring, 1, w.salt()).unwrap();
        assert!(matches!(
            r.seal(6, b"", &mut buf),
            Err(CryptoError::NonceReuse(_))
        ));
    }
}

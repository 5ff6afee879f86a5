use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};

use crate::batch_cipher::{SALT_LEN, TAG_LEN};
use crate::kdf::{aead_key, derive_key, random};
use crate::{CryptoError, MasterKey};

/// The envelope format version this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;
/// Bytes an envelope adds to its plaintext: version, salt and tag.
pub const ENVELOPE_OVERHEAD: usize = 1 + SALT_LEN + TAG_LEN;

const ENVELOPE_INFO: &[u8] = b"swarmmq/v1/envelope";

/// Seals `plaintext` into a self-contained envelope (format in the crate docs), binding
/// `aad`, under a key derived from `key` and a fresh random salt.
pub fn seal_envelope(
    key: &MasterKey,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + plaintext.len());
    out.push(ENVELOPE_VERSION);
    let mut salt = [0u8; SALT_LEN];
    random(&mut salt)?;
    out.extend_from_slice(&salt);
    out.extend_from_slice(plaintext);
    let aead = aead_key(&derive_key(key, &salt, &[ENVELOPE_INFO])?)?;
    let body = out
        .get_mut(1 + SALT_LEN..)
        .ok_or(CryptoError::Backend("envelope layout"))?;
    // A zero nonce is safe: the data key is unique to this envelope.
    let tag = aead
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key([0u8; NONCE_LEN]),
            Aad::from(aad),
            body,
        )
        .map_err(|_| CryptoError::Backend("seal"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens an envelope made by [`seal_envelope`] with the same key and `aad`.
pub fn open_envelope(key: &MasterKey, aad: &[u8], envelope: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if envelope.len() < ENVELOPE_OVERHEAD {
        return Err(CryptoError::EnvelopeTooShort(envelope.len()));
    }
    let (head, rest) = envelope.split_at(1 + SALT_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let (version, salt) = head.split_at(1);
    if version != [ENVELOPE_VERSION] {
        return Err(CryptoError::UnsupportedVersion(
            version.first().copied().unwrap_or(0),
        ));
    }
    let aead = aead_key(&derive_key(key, salt, &[ENVELOPE_INFO])?)?;
    let mut plain = ciphertext.to_vec();
    aead.open_in_place_separate_tag(
        Nonce::assume_unique_for_key([0u8; NONCE_LEN]),
        Aad::from(aad),
        tag,
        &mut plain,
    )
    .map_err(|_| CryptoError::Decrypt)?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let key = MasterKey::generate().unwrap();
        let env = seal_envelope(&key, b"headers", b"hello").unwrap();
        assert_eq!(env.len(), 5 + ENVELOPE_OVERHEAD);
        assert_eq!(env[0], 1);
        assert_ne!(&env[17..22], b"hello");
        assert_eq!(open_envelope(&key, b"headers", &env).unwrap(), b"hello");
        let empty = seal_envelope(&key, b"", b"").unwrap();
        assert_eq!(open_envelope(&key, b"", &empty).unwrap(), b"");
        // Same plaintext twice: different salts, different envelopes.
        assert_ne!(env, seal_envelope(&key, b"headers", b"hello").unwrap());
    }

    #[test]
    fn any_tampering_fails() {
        let key = MasterKey::generate().unwrap();
        let env = seal_envelope(&key, b"aad", b"payload bytes").unwrap();
        for bit in 8..env.len() * 8 {
            let mut e = env.clone();
            e[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                open_envelope(&key, b"aad", &e),
                Err(CryptoError::Decrypt),
                "bit {bit}"
            );
        }
        for bit in 0..8 {
            let mut e = env.clone();
            e[0] ^= 1 << bit;
            assert!(matches!(
                open_envelope(&key, b"aad", &e),
                Err(CryptoError::UnsupportedVersion(_))
            ));
        }
        assert_eq!(open_envelope(&key, b"aaD", &env), Err(CryptoError::Decrypt));
        let other = MasterKey::generate().unwrap();
        assert_eq!(
            open_envelope(&other, b"aad", &env),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            open_envelope(&key, b"aad", &env[..32]),
            Err(CryptoError::EnvelopeTooShort(32))
        );
    }
}

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::CryptoError;
use crate::master_key::MasterKey;

/// HKDF-SHA256 of the master key into a 32-byte AES key; `info` is given in parts so
/// callers can append a key id without building a buffer.
pub(crate) fn derive_key(
    master: &MasterKey,
    salt: &[u8],
    info: &[&[u8]],
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let hk = Hkdf::<Sha256>::new(Some(salt), master.expose_secret());
    let mut okm = Zeroizing::new([0u8; 32]);
    hk.expand_multi_info(info, okm.as_mut())
        .map_err(|_| CryptoError::Backend("hkdf expand"))?;
    Ok(okm)
}

/// An AES-256-GCM key ready to seal and open.
pub(crate) fn aead_key(
    key: &Zeroizing<[u8; 32]>,
) -> Result<aws_lc_rs::aead::LessSafeKey, CryptoError> {
    let unbound = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, key.as_ref())
        .map_err(|_| CryptoError::Backend("aead key"))?;
    Ok(aws_lc_rs::aead::LessSafeKey::new(unbound))
}

/// Fills `dest` from the OS random number generator.
pub(crate) fn random(dest: &mut [u8]) -> Result<(), CryptoError> {
    aws_lc_rs::rand::fill(dest).map_err(|_| CryptoError::Backend("random number generator"))
}

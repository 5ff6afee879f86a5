/// Every way a cryptographic operation can fail. Texts never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The master key text is not valid standard base64.
    #[error("master key is not valid base64: {0}")]
    KeyEncoding(String),
    /// The master key decoded to the wrong number of bytes.
    #[error("master key must be exactly 32 bytes, got {0}")]
    KeyLength(usize),
    /// Data names a key id the key ring does not hold.
    #[error("unknown key id {0}")]
    UnknownKeyId(u32),
    /// Key id 0 is reserved (it would mark unencrypted data in a later format).
    #[error("key id 0 is reserved")]
    ReservedKeyId,
    /// A key id was added twice; replacing a key would make old data unreadable.
    #[error("key id {0} is already in the key ring")]
    DuplicateKeyId(u32),
    /// The active key cannot be removed: new writes use it.
    #[error("key id {0} is the active key")]
    ActiveKeyId(u32),
    /// The key ring already holds its maximum number of keys.
    #[error("key ring is full ({0} keys)")]
    KeyRingFull(usize),
    /// Authentication failed: wrong key, or ciphertext, tag, salt or associated data altered.
    #[error("decryption failed: wrong key or tampered data")]
    Decrypt,
    /// A seal would reuse a nonce (an index already sealed, or a read-only cipher).
    #[error("refused to seal: {0}")]
    NonceReuse(&'static str),
    /// An envelope is shorter than its fixed overhead.
    #[error("envelope is {0} bytes, shorter than the 33-byte minimum")]
    EnvelopeTooShort(usize),
    /// An envelope carries a version this build does not know.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    /// The OS random number generator or the AEAD implementation failed.
    #[error("crypto backend failure: {0}")]
    Backend(&'static str),
}

//! The key text `smq_<id>_<secret>`: generating, parsing and hashing it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::AuthError;

/// Every key starts with this, so a leaked key is recognisable by secret scanners.
pub const KEY_PREFIX: &str = "smq_";
/// Hex characters of a key id.
pub const ID_LEN: usize = 12;
/// Random bytes of a secret (256 bits).
pub const SECRET_BYTES: usize = 32;
/// A presented key longer than this is refused before any parsing.
pub const MAX_PRESENTED_KEY_BYTES: usize = 256;
/// Characters of the base64url (no padding) text of a secret.
const SECRET_TEXT_LEN: usize = 43;
pub(crate) const SALT_BYTES: usize = 16;
pub(crate) const HASH_BYTES: usize = 32;

/// A freshly created key. [`NewKey::key`] is the only copy of the secret that will ever
/// exist: show it once, never store or log it. `Debug` does not print it.
pub struct NewKey {
    /// The full key text `smq_<id>_<secret>`, wiped from memory on drop.
    pub key: Zeroizing<String>,
    pub id: String,
    pub name: String,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("key", &"<redacted>")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish()
    }
}

/// A presented key split into its id and decoded secret.
pub(crate) struct ParsedKey<'a> {
    pub id: &'a str,
    pub secret: Zeroizing<[u8; SECRET_BYTES]>,
}

pub(crate) fn is_key_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The id part of a presented key, if the text has the key's shape so far: for
/// logging which key failed without touching the secret.
pub fn key_id_of(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(KEY_PREFIX)?;
    let id = rest.get(..ID_LEN)?;
    is_key_id(id).then_some(id)
}

pub(crate) fn parse(presented: &str) -> Result<ParsedKey<'_>, AuthError> {
    if presented.len() > MAX_PRESENTED_KEY_BYTES {
        return Err(AuthError::MalformedKey("longer than 256 bytes"));
    }
    let rest = presented
        .strip_prefix(KEY_PREFIX)
        .ok_or(AuthError::MalformedKey("does not start with smq_"))?;
    // The secret's alphabet includes `_`, so split by position, not by separator.
    let id = rest
        .get(..ID_LEN)
        .filter(|id| is_key_id(id))
        .ok_or(AuthError::MalformedKey("no 12-character hex id after smq_"))?;
    let secret_text = rest
        .get(ID_LEN..)
        .and_then(|s| s.strip_prefix('_'))
        .ok_or(AuthError::MalformedKey("no _ after the id"))?;
    if secret_text.len() != SECRET_TEXT_LEN {
        return Err(AuthError::MalformedKey(
            "the secret is not 43 base64url characters",
        ));
    }
    let decoded = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(secret_text)
            .map_err(|_| AuthError::MalformedKey("the secret is not base64url"))?,
    );
    let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
    if decoded.len() != SECRET_BYTES {
        return Err(AuthError::MalformedKey("the secret is not 32 bytes"));
    }
    secret.copy_from_slice(&decoded);
    Ok(ParsedKey { id, secret })
}

/// A freshly generated key before it is stored: id, raw secret, full key text.
pub(crate) struct Generated {
    pub id: String,
    pub secret: Zeroizing<[u8; SECRET_BYTES]>,
    pub text: Zeroizing<String>,
}

/// A fresh id, secret and key text.
pub(crate) fn generate() -> Result<Generated, AuthError> {
    let id_bytes: [u8; ID_LEN / 2] = random()?;
    let id = hex(&id_bytes);
    let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
    fill_random(secret.as_mut())?;
    let mut text = Zeroizing::new(String::with_capacity(
        KEY_PREFIX.len() + ID_LEN + 1 + SECRET_TEXT_LEN,
    ));
    text.push_str(KEY_PREFIX);
    text.push_str(&id);
    text.push('_');
    URL_SAFE_NO_PAD.encode_string(secret.as_ref(), &mut text);
    Ok(Generated { id, secret, text })
}

/// `SHA-256(salt || secret)`.
pub(crate) fn digest(salt: &[u8; SALT_BYTES], secret: &[u8; SECRET_BYTES]) -> [u8; HASH_BYTES] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret);
    h.finalize().into()
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut out = [0u8; N];
    fill_random(&mut out)?;
    Ok(out)
}

fn fill_random(dest: &mut [u8]) -> Result<(), AuthError> {
    aws_lc_rs::rand::fill(dest).map_err(|_| AuthError::Random)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Exactly `N` bytes of lowercase or uppercase hex.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let (hi, lo) = (pair.first().copied()?, pair.get(1).copied()?);
        *slot = (nibble(hi)? << 4) | nibble(lo)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back() {
        let Generated { id, secret, text } = generate().unwrap();
        assert!(is_key_id(&id));
        assert_eq!(text.len(), 4 + 12 + 1 + 43);
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed.id, id);
        assert_eq!(*parsed.secret, *secret);
        assert_eq!(key_id_of(&text), Some(id.as_str()));
    }

    #[test]
    fn two_keys_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(*a.secret, *b.secret);
        assert_ne!(*a.text, *b.text);
    }

    #[test]
    fn malformed_keys_say_what_is_wrong() {
        let good_secret = "A".repeat(43);
        let cases = [
            ("".to_string(), "smq_"),
            ("xyz_0123456789ab_".to_string() + &good_secret, "smq_"),
            ("smq_0123456789AB_".to_string() + &good_secret, "hex id"),
            ("smq_0123456789a".to_string(), "hex id"),
            ("smq_0123456789ab".to_string(), "no _"),
            ("smq_0123456789abX".to_string() + &good_secret, "no _"),
            ("smq_0123456789ab_short".to_string(), "43"),
            (
                "smq_0123456789ab_".to_string() + &"!".repeat(43),
                "base64url",
            ),
            ("smq_".to_string() + &"a".repeat(300), "256"),
            ("smq_0123456789ab_".to_string() + &"é".repeat(22), "43"),
        ];
        for (text, expected) in cases {
            let err = match parse(&text) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{text:?} parsed"),
            };
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn secrets_may_contain_underscores_and_dashes() {
        let text = format!("smq_0123456789ab_{}", "_-".repeat(21) + "A");
        // 43 base64url characters decode to 32 bytes; the last one's 2 spare bits are 0.
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed.id, "0123456789ab");
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(unhex::<4>("0001abff"), Some(bytes));
        assert_eq!(unhex::<4>("0001abf"), None);
        assert_eq!(unhex::<4>("0001abfg"), None);
        assert_eq!(unhex::<2>("éé"), None);
    }

    #[test]
    fn digest_depends_on_salt_and_secret() {
        let s = [7u8; 32];
        let a = digest(&[1u8; 16], &s);
        let b = digest(&[2u8; 16], &s);
        let c = digest(&[1u8; 16], &[8u8; 32]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, digest(&[1u8; 16], &s));
    }
}

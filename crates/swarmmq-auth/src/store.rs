//! The set of keys in memory: create, revoke, verify.

use std::collections::HashMap;

use subtle::ConstantTimeEq;

use crate::key::{Generated, digest, generate, is_key_id, parse, random};
use crate::record::now_seconds;
use crate::{AuthError, KeyRecord, NewKey, Permission, Principal};

/// Most keys in one store, revoked ones included.
pub const MAX_KEYS: usize = 10_000;
/// Most permissions on one key.
pub const MAX_PERMISSIONS: usize = 64;
/// Longest key name.
pub const MAX_NAME_BYTES: usize = 128;

/// Every key of a node, loaded from (and saved to) its key file; see [`KeyStore::load`].
#[derive(Debug, Default, Clone)]
pub struct KeyStore {
    records: Vec<KeyRecord>,
    /// id -> index in `records`.
    by_id: HashMap<String, usize>,
}

/// 1 to 128 bytes of `a-z A-Z 0-9 . _ - @`, and not shaped like a key id (so that
/// `revoke NAME_OR_ID` is never ambiguous). Names may be client-certificate common
/// names, hence `@` and `.`.
fn check_name(name: &str) -> Result<(), AuthError> {
    let bad = |reason: String| AuthError::InvalidName {
        name: name.chars().take(MAX_NAME_BYTES + 8).collect(),
        reason,
    };
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(bad(format!("must be 1 to {MAX_NAME_BYTES} bytes long")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
    {
        return Err(bad(format!(
            "has the character {c:?}; allowed are a-z A-Z 0-9 . _ - @"
        )));
    }
    if is_key_id(name) {
        return Err(bad(
            "looks like a key id (12 hex characters); pick a name that does not".into(),
        ));
    }
    Ok(())
}

impl KeyStore {
    /// An empty store.
    pub fn new() -> Self {
        KeyStore::default()
    }

    /// Builds a store from records, checking every rule a saved file must keep.
    pub(crate) fn from_records(records: Vec<KeyRecord>) -> Result<Self, AuthError> {
        let mut store = KeyStore::new();
        for r in records {
            store.insert(r)?;
        }
        Ok(store)
    }

    fn insert(&mut self, r: KeyRecord) -> Result<(), AuthError> {
        if self.records.len() >= MAX_KEYS {
            return Err(AuthError::TooMany {
                what: "API keys (revoked ones count too)",
                max: MAX_KEYS,
            });
        }
        check_name(&r.name)?;
        if r.permissions.len() > MAX_PERMISSIONS {
            return Err(AuthError::TooMany {
                what: "permissions on one key",
                max: MAX_PERMISSIONS,
            });
        }
        if self.by_id.contains_key(&r.id) {
            // Only a hand-edited file can get here: ids are 48 random bits.
            return Err(AuthError::InvalidName {
                name: r.id.clone(),
                reason: "two keys have this id".into(),
            });
        }
        if !r.is_revoked() && self.active_by_name(&r.name).is_some() {
            return Err(AuthError::DuplicateName(r.name));
        }
        self.by_id.insert(r.id.clone(), self.records.len());
        self.records.push(r);
        Ok(())
    }

    /// Every key, revoked ones included, oldest first.
    pub fn records(&self) -> &[KeyRecord] {
        &self.records
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Keys not revoked.
    pub fn active_count(&self) -> usize {
        self.records.iter().filter(|r| !r.is_revoked()).count()
    }

    fn active_by_name(&self, name: &str) -> Option<&KeyRecord> {
        self.records
            .iter()
            .find(|r| r.name == name && !r.is_revoked())
    }

    /// Creates a key named `name` (unique among active keys) with `permissions`, each
    /// checked (`produce:<pattern>`, `consume:<pattern>`, `admin`). The returned
    /// [`NewKey`] holds the only copy of the secret; the store keeps a salted hash.
    pub fn create_key<S: AsRef<str>>(
        &mut self,
        name: &str,
        permissions: &[S],
    ) -> Result<NewKey, AuthError> {
        check_name(name)?;
        if permissions.is_empty() {
            return Err(AuthError::InvalidPermission {
                permission: String::new(),
                reason: "a key needs at least one permission (e.g. --allow produce:orders.*)"
                    .into(),
            });
        }
        if permissions.len() > MAX_PERMISSIONS {
            return Err(AuthError::TooMany {
                what: "permissions on one key",
                max: MAX_PERMISSIONS,
            });
        }
        let mut parsed: Vec<Permission> = Vec::with_capacity(permissions.len());
        for p in permissions {
            let p: Permission = p.as_ref().parse()?;
            if !parsed.contains(&p) {
                parsed.push(p);
            }
        }
        if self.active_by_name(name).is_some() {
            return Err(AuthError::DuplicateName(name.to_owned()));
        }
        // 48-bit ids: a clash is astronomically rare, but cheap to rule out.
        let generated = loop {
            let g = generate()?;
            if !self.by_id.contains_key(&g.id) {
                break g;
            }
        };
        let Generated { id, secret, text } = generated;
        let salt = random()?;
        let record = KeyRecord {
            id: id.clone(),
            name: name.to_owned(),
            hash: digest(&salt, &secret),
            salt,
            permissions: parsed,
            created_at: now_seconds(),
            revoked_at: None,
        };
        self.insert(record)?;
        Ok(NewKey {
            key: text,
            id,
            name: name.to_owned(),
        })
    }

    /// Revokes the key with this id, or the active key with this name. The record stays
    /// (with its revocation time) so that `list` shows what happened.
    pub fn revoke(&mut self, name_or_id: &str) -> Result<KeyRecord, AuthError> {
        let index = match self.by_id.get(name_or_id) {
            Some(&i) => i,
            None => {
                let mut by_name = self
                    .records
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.name == name_or_id);
                let first = by_name.next();
                match first {
                    None => {
                        return Err(AuthError::NotFound(name_or_id.chars().take(140).collect()));
                    }
                    Some((i, r)) if r.is_revoked() => {
                        // Prefer an active key of that name over older revoked ones.
                        match by_name.find(|(_, r)| !r.is_revoked()) {
                            Some((j, _)) => j,
                            None => i,
                        }
                    }
                    Some((i, _)) => i,
                }
            }
        };
        let record = self
            .records
            .get_mut(index)
            .ok_or_else(|| AuthError::NotFound(name_or_id.to_owned()))?;
        if record.is_revoked() {
            return Err(AuthError::AlreadyRevoked {
                id: record.id.clone(),
                name: record.name.clone(),
            });
        }
        record.revoked_at = Some(now_seconds());
        Ok(record.clone())
    }

    /// Checks a presented key: shape, id, secret (constant-time compare of the salted
    /// hash), not revoked. The secret is checked before revocation, so only a holder of
    /// the real secret learns that a key was revoked.
    pub fn verify(&self, presented: &str) -> Result<Principal, AuthError> {
        let parsed = parse(presented)?;
        let record = self
            .by_id
            .get(parsed.id)
            .and_then(|&i| self.records.get(i))
            .ok_or_else(|| AuthError::UnknownKey {
                id: parsed.id.to_owned(),
            })?;
        let hash = digest(&record.salt, &parsed.secret);
        if !bool::from(hash.ct_eq(&record.hash)) {
            return Err(AuthError::WrongSecret {
                id: record.id.clone(),
            });
        }
        if record.is_revoked() {
            return Err(AuthError::Revoked {
                id: record.id.clone(),
                name: record.name.clone(),
            });
        }
        Ok(record.principal())
    }

    /// The active key named `name`, as a principal: for a client that proved its
    /// identity another way (a TLS client certificate whose common name is `name`).
    pub fn principal_for_name(&self, name: &str) -> Option<Principal> {
        self.active_by_name(name).map(KeyRecord::principal)
    }

    /// The active key with this id, as a principal (with its current permissions);
    /// `None` once it is revoked or gone. The node re-checks open connections with it.
    pub fn principal_for_id(&self, id: &str) -> Option<Principal> {
        self.by_id
            .get(id)
            .and_then(|&i| self.records.get(i))
            .filter(|r| !r.is_revoked())
            .map(KeyRecord::principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    #[test]
    fn a_created_key_verifies_and_carries_its_permissions() {
        let mut s = KeyStore::new();
        let k = s.create_key("svc", &["produce:a.*", "consume:b"]).unwrap();
        let p = s.verify(&k.key).unwrap();
        assert_eq!(p.key_id, k.id);
        assert_eq!(p.name, "svc");
        assert!(p.allows(Action::Produce, "a.x"));
        assert!(p.allows(Action::Consume, "b"));
        assert!(!p.allows(Action::Admin, "b"));
        assert_eq!(s.principal_for_name("svc"), Some(p.clone()));
        assert_eq!(s.principal_for_id(&k.id), Some(p));
    }

    #[test]
    fn a_wrong_secret_or_unknown_id_is_refused() {
        let mut s = KeyStore::new();
        let k = s.create_key("svc", &["admin"]).unwrap();
        let other = KeyStore::new().create_key("x", &["admin"]).unwrap();
        // Same id, another secret.
        let forged = format!("{}{}", &k.key[..17], &other.key[17..]);
        let err = s.verify(&forged).unwrap_err();
        assert!(
            matches!(err, AuthError::WrongSecret { ref id } if *id == k.id),
            "{err}"
        );
        assert_eq!(err.reason(), "wrong_secret");
        assert_eq!(err.key_id(), Some(k.id.as_str()));
        let err = s.verify(&other.key).unwrap_err();
        assert!(matches!(err, AuthError::UnknownKey { .. }), "{err}");
        let err = s.verify("hello").unwrap_err();
        assert_eq!(err.reason(), "malformed");
        assert_eq!(err.key_id(), None);
    }

    #[test]
    fn revoked_keys_stop_verifying() {
        let mut s = KeyStore::new();
        let k = s.create_key("svc", &["admin"]).unwrap();
        let r = s.revoke("svc").unwrap();
        assert!(r.is_revoked());
        let err = s.verify(&k.key).unwrap_err();
        assert!(matches!(err, AuthError::Revoked { .. }), "{err}");
        assert_eq!(s.principal_for_id(&k.id), None);
        assert_eq!(s.principal_for_name("svc"), None);
        assert!(matches!(
            s.revoke(&k.id).unwrap_err(),
            AuthError::AlreadyRevoked { .. }
        ));
        assert!(matches!(
            s.revoke("nope").unwrap_err(),
            AuthError::NotFound(_)
        ));
    }

    #[test]
    fn names_are_unique_among_active_keys_so_a_key_can_be_rotated() {
        let mut s = KeyStore::new();
        let old = s.create_key("svc", &["admin"]).unwrap();
        assert!(matches!(
            s.create_key("svc", &["admin"]).unwrap_err(),
            AuthError::DuplicateName(_)
        ));
        s.revoke(&old.id).unwrap();
        let new = s.create_key("svc", &["admin"]).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.active_count(), 1);
        // By name, revoke picks the active one.
        assert_eq!(s.revoke("svc").unwrap().id, new.id);
    }

    #[test]
    fn bad_names_and_permissions_are_refused_on_creation() {
        let mut s = KeyStore::new();
        for (name, expected) in [
            ("", "1 to 128"),
            ("a b", "' '"),
            ("0123456789ab", "looks like a key id"),
        ] {
            let err = s.create_key(name, &["admin"]).unwrap_err().to_string();
            assert!(err.contains(expected), "{name:?}: {err}");
        }
        assert!(s.create_key(&"n".repeat(129), &["admin"]).is_err());
        assert!(s.create_key("client@example.com", &["admin"]).is_ok());
        let err = s.create_key("x", &["write:a"]).unwrap_err().to_string();
        assert!(err.contains("invalid permission \"write:a\""), "{err}");
        let none: [&str; 0] = [];
        let err = s.create_key("y", &none).unwrap_err().to_string();
        assert!(err.contains("at least one permission"), "{err}");
        let many: Vec<String> = (0..65).map(|i| format!("produce:t{i}")).collect();
        let err = s.create_key("z", &many).unwrap_err().to_string();
        assert!(err.contains("at most 64"), "{err}");
        let ok: Vec<String> = (0..64).map(|i| format!("produce:t{i}")).collect();
        assert!(s.create_key("z", &ok).is_ok());
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_store_holds_at_most_max_keys() {
        let mut s = KeyStore::new();
        for i in 0..MAX_KEYS {
            let r = KeyRecord {
                id: format!("{i:012x}"),
                name: format!("k{i}"),
                salt: [0; 16],
                hash: [0; 32],
                permissions: vec![Permission::Admin],
                created_at: std::time::SystemTime::UNIX_EPOCH,
                revoked_at: None,
            };
            s.insert(r).unwrap();
        }
        let err = s
            .create_key("one-more", &["admin"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 10000"), "{err}");
    }
}

use std::collections::BTreeMap;
use std::fmt;

use crate::{CryptoError, MasterKey};

/// Master keys by key id, plus the id used for new writes. Old ids stay so data written
/// under them stays readable after a rotation.
#[derive(Clone)]
pub struct KeyRing {
    keys: BTreeMap<u32, MasterKey>,
    active: u32,
}

impl KeyRing {
    /// Bound on the number of keys: rotations are rare, so this is never reached in
    /// practice, and it keeps a hostile config from growing the map without limit.
    pub const MAX_KEYS: usize = 1024;

    /// A ring holding one key under id 1, which is active.
    pub fn single(key: MasterKey) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(1, key);
        KeyRing { keys, active: 1 }
    }

    /// A ring holding one key under `id`, which is active (a node whose key 1 was
    /// retired starts from another id).
    pub fn with_active(id: u32, key: MasterKey) -> Result<Self, CryptoError> {
        if id == 0 {
            return Err(CryptoError::ReservedKeyId);
        }
        let mut keys = BTreeMap::new();
        keys.insert(id, key);
        Ok(KeyRing { keys, active: id })
    }

    /// Adds a key under a new id; it does not become active.
    pub fn add(&mut self, id: u32, key: MasterKey) -> Result<(), CryptoError> {
        if id == 0 {
            return Err(CryptoError::ReservedKeyId);
        }
        if self.keys.contains_key(&id) {
            return Err(CryptoError::DuplicateKeyId(id));
        }
        if self.keys.len() >= Self::MAX_KEYS {
            return Err(CryptoError::KeyRingFull(self.keys.len()));
        }
        self.keys.insert(id, key);
        Ok(())
    }

    /// Takes a key out of the ring (retiring it); data under `id` can no longer be read
    /// afterwards, so the caller must know none is left. The active key cannot go.
    pub fn remove(&mut self, id: u32) -> Result<MasterKey, CryptoError> {
        if id == self.active {
            return Err(CryptoError::ActiveKeyId(id));
        }
        self.keys.remove(&id).ok_or(CryptoError::UnknownKeyId(id))
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true: a ring always holds its active key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Makes `id` the key for new writes.
    pub fn set_active(&mut self, id: u32) -> Result<(), CryptoError> {
        if !self.keys.contains_key(&id) {
            return Err(CryptoError::UnknownKeyId(id));
        }
        self.active = id;
        Ok(())
    }

    /// The id used for new writes.
    pub fn active_id(&self) -> u32 {
        self.active
    }

    /// Whether the ring holds `id`.
    pub fn contains(&self, id: u32) -> bool {
        self.keys.contains_key(&id)
    }

    /// Every key id, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// The key under `id`.
    pub fn get(&self, id: u32) -> Result<&MasterKey, CryptoError> {
        self.keys.get(&id).ok_or(CryptoError::UnknownKeyId(id))
    }

    /// The active id and its key.
    pub fn active(&self) -> Result<(u32, &MasterKey), CryptoError> {
        Ok((self.active, self.get(self.active)?))
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_old_ids() {
        let mut ring = KeyRing::single(MasterKey::generate().unwrap());
        assert_eq!(ring.active_id(), 1);
        assert_eq!(ring.set_active(2), Err(CryptoError::UnknownKeyId(2)));
        ring.add(2, MasterKey::generate().unwrap()).unwrap();
        assert_eq!(ring.active_id(), 1);
        ring.set_active(2).unwrap();
        assert_eq!(ring.active_id(), 2);
        assert!(ring.contains(1) && ring.contains(2) && !ring.contains(3));
        assert_eq!(ring.ids().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(
            ring.add(2, MasterKey::generate().unwrap()),
            Err(CryptoError::DuplicateKeyId(2))
        );
        assert_eq!(
            ring.add(0, MasterKey::generate().unwrap()),
            Err(CryptoError::ReservedKeyId)
        );
        let dbg = format!("{ring:?}");
        assert_eq!(dbg, "KeyRing { ids: [1, 2], active: 2 }");
    }

    #[test]
    fn retiring_removes_only_inactive_keys() {
        let mut ring = KeyRing::single(MasterKey::generate().unwrap());
        ring.add(2, MasterKey::generate().unwrap()).unwrap();
        ring.add(3, MasterKey::generate().unwrap()).unwrap();
        ring.set_active(3).unwrap();
        assert!(matches!(ring.remove(3), Err(CryptoError::ActiveKeyId(3))));
        assert!(matches!(ring.remove(7), Err(CryptoError::UnknownKeyId(7))));
        ring.remove(2).unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(ring.len(), 2);
        assert!(matches!(ring.get(2), Err(CryptoError::UnknownKeyId(2))));
        // A removed id may not come back under another key by accident of the ring:
        // that rule lives with the key store, which remembers retired ids.
        assert_eq!(ring.active_id(), 3);
        let other = KeyRing::with_active(5, MasterKey::generate().unwrap()).unwrap();
        assert_eq!((other.active_id(), other.len()), (5, 1));
        assert!(matches!(
            KeyRing::with_active(0, MasterKey::generate().unwrap()),
            Err(CryptoError::ReservedKeyId)
        ));
    }
}

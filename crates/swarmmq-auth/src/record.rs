//! One stored key: what the file holds about it, and never its secret.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::key::{HASH_BYTES, SALT_BYTES, hex, is_key_id, unhex};
use crate::{Permission, Principal};

/// A key as stored: id, name, salted hash, permissions and dates. `Debug` leaves out the
/// salt and hash; nothing here can be turned back into the key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    pub(crate) salt: [u8; SALT_BYTES],
    pub(crate) hash: [u8; HASH_BYTES],
    pub permissions: Vec<Permission>,
    pub created_at: SystemTime,
    pub revoked_at: Option<SystemTime>,
}

impl KeyRecord {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    pub fn principal(&self) -> Principal {
        Principal {
            key_id: self.id.clone(),
            name: self.name.clone(),
            permissions: self.permissions.clone(),
        }
    }
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("permissions", &self.permissions)
            .field("created_at", &self.created_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// The JSON shape of a record: text fields, so the file reads well and diffs cleanly.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordJson {
    id: String,
    name: String,
    /// Hex of the 16-byte salt.
    salt: String,
    /// Hex of SHA-256(salt || secret).
    hash: String,
    permissions: Vec<String>,
    /// RFC 3339, UTC, seconds.
    created_at: String,
    revoked_at: Option<String>,
}

impl From<&KeyRecord> for RecordJson {
    fn from(r: &KeyRecord) -> Self {
        RecordJson {
            id: r.id.clone(),
            name: r.name.clone(),
            salt: hex(&r.salt),
            hash: hex(&r.hash),
            permissions: r.permissions.iter().map(ToString::to_string).collect(),
            created_at: rfc3339(r.created_at),
            revoked_at: r.revoked_at.map(rfc3339),
        }
    }
}

/// Now, to the second: what the file keeps, so a saved and reloaded record is equal.
pub(crate) fn now_seconds() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl RecordJson {
    /// The record, or why it is not one. Name rules and bounds are the store's checks.
    pub(crate) fn into_record(self) -> Result<KeyRecord, String> {
        let id = self.id;
        if !is_key_id(&id) {
            return Err(format!(
                "key id {:?} is not 12 lowercase hex characters",
                id.chars().take(32).collect::<String>()
            ));
        }
        let salt = unhex::<SALT_BYTES>(&self.salt)
            .ok_or_else(|| format!("key {id}: salt is not {} hex characters", SALT_BYTES * 2))?;
        let hash = unhex::<HASH_BYTES>(&self.hash)
            .ok_or_else(|| format!("key {id}: hash is not {} hex characters", HASH_BYTES * 2))?;
        let permissions = self
            .permissions
            .iter()
            .map(|p| {
                p.parse::<Permission>()
                    .map_err(|e| format!("key {id}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let time = |field: &str, text: &str| {
            humantime::parse_rfc3339(text)
                .map_err(|e| format!("key {id}: {field} {text:?} is not an RFC 3339 time: {e}"))
        };
        let created_at = time("created_at", &self.created_at)?;
        let revoked_at = match &self.revoked_at {
            Some(t) => Some(time("revoked_at", t)?),
            None => None,
        };
        Ok(KeyRecord {
            id,
            name: self.name,
            salt,
            hash,
            permissions,
            created_at,
            revoked_at,
        })
    }
}

//! Bodies of the master-key administration operations: `KeysStatus` (20),
//! `KeysRotate` (21) and `KeysRetire` (22). As everywhere in this crate, each writer
//! refuses exactly what its reader refuses.

use bytes::{BufMut, BytesMut};
use swarmmq_types::Limits;

use crate::reader::Reader;
use crate::writer::{put_bool, put_count, put_str};
use crate::{KeyInfo, KeysStatusResponse, ProtocolError};

/// Most key ids one `KeysStatus` answer lists. A node holds at most 1024 keys and
/// remembers its retired ids; ids found only in damaged data are bounded by the
/// storage layer's own limit of the same size.
pub const MAX_KEYS: u32 = 4096;

/// id + fingerprint length + bytes + batches + retired.
const MIN_KEY_INFO: usize = 4 + 2 + 8 + 8 + 1;

/// active id u32, then `count` (at most [`MAX_KEYS`]) of: id u32, fingerprint string,
/// bytes u64, batches u64, retired bool.
pub(crate) fn put_keys_status(
    out: &mut BytesMut,
    s: &KeysStatusResponse,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    out.put_u32(s.active_id);
    put_count(out, "keys", s.keys.len(), MAX_KEYS)?;
    for k in &s.keys {
        out.put_u32(k.id);
        put_str(
            out,
            "key fingerprint",
            &k.fingerprint,
            limits.max_text_bytes,
        )?;
        out.put_u64(k.bytes);
        out.put_u64(k.batches);
        put_bool(out, k.retired);
    }
    Ok(())
}

pub(crate) fn read_keys_status(
    r: &mut Reader,
    limits: &Limits,
) -> Result<KeysStatusResponse, ProtocolError> {
    let active_id = r.u32("active key id")?;
    let n = r.count("keys", MAX_KEYS, MIN_KEY_INFO)?;
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        keys.push(KeyInfo {
            id: r.u32("key id")?,
            fingerprint: r.string("key fingerprint", limits.max_text_bytes)?,
            bytes: r.u64("key bytes")?,
            batches: r.u64("key batches")?,
            retired: r.bool("key retired")?,
        });
    }
    Ok(KeysStatusResponse { active_id, keys })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn key_lists_are_bounded_both_ways() {
        let many = KeysStatusResponse {
            active_id: 1,
            keys: vec![
                KeyInfo {
                    id: 1,
                    fingerprint: String::new(),
                    bytes: 0,
                    batches: 0,
                    retired: false,
                };
                MAX_KEYS as usize + 1
            ],
        };
        let mut out = BytesMut::new();
        assert_eq!(
            put_keys_status(&mut out, &many, &Limits::DEFAULT),
            Err(ProtocolError::CountOverLimit {
                field: "keys",
                count: u64::from(MAX_KEYS) + 1,
                limit: u64::from(MAX_KEYS),
            })
        );
        // A count past the limit is refused before anything is allocated for it.
        let mut raw = vec![0, 0, 0, 1];
        raw.extend_from_slice(&(MAX_KEYS + 1).to_be_bytes());
        let mut r = Reader::new(Bytes::from(raw));
        assert!(matches!(
            read_keys_status(&mut r, &Limits::DEFAULT),
            Err(ProtocolError::CountOverLimit { field: "keys", .. })
        ));
    }
}

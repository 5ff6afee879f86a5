//! Record batches as read from disk or a replica: split, parsed, their metadata
//! decoded and their payloads decrypted with a real key ring.
//!
//! Rules checked (docs/storage.md): decoding arbitrary bytes returns `Malformed` or a
//! crypto error, never panics; a parsed batch's records carry dense offsets from its
//! base offset, as many as its header says; the decrypted records' metadata equals the
//! metadata read without the key.

use bytes::Bytes;
use swarmmq_crypto::{KeyRing, MasterKey};
use swarmmq_storage::{Batch, HEADER_LEN, StorageError, decode_batches};

/// The key ring the seeds were written with (the storage tests' ring).
pub fn ring() -> KeyRing {
    KeyRing::single(MasterKey::from_bytes([42u8; 32]))
}

/// Rewrites the length-prefixed batches in `bytes` so that each whole one carries a
/// correct CRC: without this almost every mutation dies at the CRC check and the
/// record decoder is never reached.
pub fn fix_crcs(bytes: &mut [u8]) {
    let mut pos = 0usize;
    while let Some(len) = bytes.get(pos..pos + 4) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len < HEADER_LEN || pos + len > bytes.len() {
            return;
        }
        let crc = crc32c::crc32c(&bytes[pos + 8..pos + len]);
        bytes[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        pos += len;
    }
}

fn allowed(e: &StorageError) -> bool {
    matches!(e, StorageError::Malformed(_) | StorageError::Crypto(_))
}

/// Reads every record of one parsed batch, with and without the key.
pub fn check_batch(batch: &Batch, ring: &KeyRing) {
    assert!(batch.record_count() >= 1);
    assert_eq!(
        batch.next_offset() - batch.base_offset(),
        u64::from(batch.record_count())
    );
    let mut metas = Vec::new();
    for m in batch.records_meta() {
        match m {
            Ok(m) => {
                assert_eq!(
                    m.offset,
                    batch.base_offset() + metas.len() as u64,
                    "offsets not dense"
                );
                let _ = m.headers.iter().count();
                metas.push(m);
            }
            Err(e) => {
                assert!(allowed(&e), "unexpected error {e:?}");
                break;
            }
        }
    }
    assert!(metas.len() <= batch.record_count() as usize);
    for (i, r) in batch.decrypt_records(ring).enumerate() {
        match r {
            Ok(r) => {
                assert_eq!(Some(&r.meta), metas.get(i), "decrypted metadata differs");
                assert_eq!(r.payload.len() as u64, u64::from(r.meta.payload_len));
            }
            Err(e) => {
                assert!(allowed(&e), "unexpected error {e:?}");
                break;
            }
        }
    }
}

/// `data[0]` bit 0: fix the CRCs first; the rest: batches back to back.
pub fn check_input(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        fix_crcs(&mut bytes);
    }
    let ring = ring();
    for b in decode_batches(Bytes::from(bytes)) {
        match b {
            Ok(b) => check_batch(&b, &ring),
            Err(e) => assert!(allowed(&e), "unexpected error {e:?}"),
        }
    }
}

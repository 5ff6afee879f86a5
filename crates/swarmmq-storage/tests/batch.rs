//! The record batch format: round trips, metadata without the key, tamper detection,
//! size overhead, and hostile input (proptest).

mod common;

use bytes::Bytes;
use proptest::prelude::*;
use swarmmq_crypto::{KeyRing, MasterKey};
use swarmmq_storage::{
    Batch, BatchBuilder, HEADER_LEN, RecordHeaderRef, RecordInput, StorageError, decode_batches,
};
use swarmmq_types::MessageId;

fn full_batch(ring: &KeyRing) -> Batch {
    let mut b = BatchBuilder::new(ring, 99, 1024).unwrap();
    b.set_producer_seq(1234);
    let text = MessageId::text("order-17").unwrap();
    let uuid = MessageId::Uuid([9; 16]);
    let headers = [
        RecordHeaderRef {
            name: "content-type",
            value: b"text/plain",
        },
        RecordHeaderRef {
            name: "trace",
            value: b"",
        },
    ];
    b.push(RecordInput {
        timestamp_ms: 1_700_000_000_000,
        priority: 10,
        id: Some(&text),
        key: Some(b"customer-1"),
        headers: &headers,
        deliver_at_ms: Some(1_700_000_060_000),
        expires_at_ms: Some(1_700_000_000_000 - 5),
        payload: b"first payload",
    })
    .unwrap();
    b.push(RecordInput {
        timestamp_ms: 1_699_999_999_000,
        priority: 1,
        id: Some(&uuid),
        key: None,
        headers: &[],
        deliver_at_ms: None,
        expires_at_ms: None,
        payload: b"",
    })
    .unwrap();
    b.push(RecordInput {
        timestamp_ms: 1_700_000_000_500,
        priority: 5,
        id: None,
        key: Some(b""),
        headers: &[],
        deliver_at_ms: None,
        expires_at_ms: None,
        payload: &[0xAB; 3000],
    })
    .unwrap();
    assert_eq!(b.count(), 3);
    let len = b.encoded_len();
    let enc = b.finish();
    assert_eq!(enc.len(), len);
    assert_eq!(enc.first_timestamp_ms(), 1_700_000_000_000);
    assert_eq!(enc.max_timestamp_ms(), 1_700_000_000_500);
    enc.into_batch(500, 3).unwrap()
}

#[test]
fn round_trip_with_every_field() {
    let ring = common::ring();
    let batch = full_batch(&ring);
    assert_eq!(batch.base_offset(), 500);
    assert_eq!(batch.last_offset(), 502);
    assert_eq!(batch.next_offset(), 503);
    assert_eq!(batch.term(), 3);
    assert_eq!(batch.record_count(), 3);
    assert_eq!(batch.producer_id(), 99);
    assert_eq!(batch.producer_seq(), 1234);
    assert_eq!(batch.key_id(), 1);
    assert!(batch.verify_crc());

    let metas: Vec<_> = batch.records_meta().map(Result::unwrap).collect();
    assert_eq!(metas.len(), 3);
    let m = &metas[0];
    assert_eq!(m.offset, 500);
    assert_eq!(m.timestamp_ms, 1_700_000_000_000);
    assert_eq!(m.priority.get(), 10);
    assert_eq!(m.id, Some(MessageId::text("order-17").unwrap()));
    assert_eq!(m.key.as_deref(), Some(&b"customer-1"[..]));
    assert_eq!(m.headers.len(), 2);
    assert_eq!(m.headers.get("content-type"), Some(&b"text/plain"[..]));
    assert_eq!(m.headers.get("trace"), Some(&b""[..]));
    assert_eq!(
        m.headers.iter().map(|h| h.name).collect::<Vec<_>>(),
        ["content-type", "trace"]
    );
    assert_eq!(m.deliver_at_ms, Some(1_700_000_060_000));
    assert_eq!(m.expires_at_ms, Some(1_699_999_999_995));
    assert_eq!(m.payload_len, 13);
    assert_eq!(metas[1].timestamp_ms, 1_699_999_999_000);
    assert_eq!(metas[1].id, Some(MessageId::Uuid([9; 16])));
    assert_eq!(metas[1].key, None);
    assert!(metas[1].headers.is_empty());
    assert_eq!(metas[2].id, None);
    assert_eq!(metas[2].key.as_deref(), Some(&b""[..]));
    assert_eq!(metas[2].payload_len, 3000);

    let recs: Vec<_> = batch.decrypt_records(&ring).map(Result::unwrap).collect();
    assert_eq!(recs.len(), 3);
    assert_eq!(&recs[0].payload[..], b"first payload");
    assert_eq!(recs[0].meta, metas[0]);
    assert!(recs[1].payload.is_empty());
    assert_eq!(&recs[2].payload[..], &[0xAB; 3000][..]);
}

#[test]
fn payload_is_not_stored_in_clear() {
    let ring = common::ring();
    let batch = full_batch(&ring);
    let raw = batch.as_bytes();
    assert!(!raw.windows(13).any(|w| w == b"first payload"));
}

#[test]
fn wrong_key_or_tampered_metadata_fails_to_decrypt() {
    let ring = common::ring();
    let batch = full_batch(&ring);
    let other = KeyRing::single(MasterKey::from_bytes([1u8; 32]));
    assert!(matches!(
        batch.decrypt_records(&other).next(),
        Some(Err(StorageError::Crypto(
            swarmmq_crypto::CryptoError::Decrypt
        )))
    ));
    // After a rotation new batches use the new key id; a ring without it cannot read
    // them, a ring with both ids reads old and new batches.
    let mut rotated = common::ring();
    rotated.add(2, MasterKey::from_bytes([2u8; 32])).unwrap();
    rotated.set_active(2).unwrap();
    let new = common::batch(&rotated, 0, 2, 40, 1)
        .into_batch(0, 1)
        .unwrap();
    assert_eq!(new.key_id(), 2);
    assert!(matches!(
        new.decrypt_records(&ring).next(),
        Some(Err(StorageError::Crypto(
            swarmmq_crypto::CryptoError::UnknownKeyId(2)
        )))
    ));
    assert_eq!(common::records(&new, &rotated).len(), 2);
    assert_eq!(common::records(&batch, &rotated).len(), 3);

    // Flip each byte of the first record's metadata, fix the CRC so the batch still
    // parses, and check the record either fails to decode or fails to decrypt: the
    // metadata is bound to the ciphertext as associated data.
    let raw = batch.as_bytes().to_vec();
    for i in HEADER_LEN..HEADER_LEN + 40 {
        let mut t = raw.clone();
        t[i] ^= 0x01;
        let crc = crc32c::crc32c(&t[8..]);
        t[4..8].copy_from_slice(&crc.to_le_bytes());
        let Ok(b) = Batch::parse(Bytes::from(t)) else {
            continue;
        };
        let first = b.decrypt_records(&ring).next().unwrap();
        assert!(first.is_err(), "flip at byte {i} went unnoticed");
    }
}

#[test]
fn crc_catches_any_single_bit_flip() {
    let ring = common::ring();
    let raw = full_batch(&ring).into_bytes();
    for bit in (0..raw.len() * 8).step_by(7) {
        let mut t = raw.to_vec();
        t[bit / 8] ^= 1 << (bit % 8);
        assert!(Batch::parse(Bytes::from(t)).is_err(), "bit {bit}");
    }
}

#[test]
fn decode_batches_splits_concatenated_batches() {
    let ring = common::ring();
    let a = common::batch(&ring, 0, 3, 50, 10).into_batch(0, 1).unwrap();
    let b = common::batch(&ring, 3, 2, 50, 20).into_batch(3, 1).unwrap();
    let mut all = a.as_bytes().to_vec();
    all.extend_from_slice(b.as_bytes());
    let got: Vec<_> = decode_batches(Bytes::from(all.clone()))
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, vec![a, b]);
    all.truncate(all.len() - 1);
    let got: Vec<_> = decode_batches(Bytes::from(all)).collect();
    assert_eq!(got.len(), 2);
    assert!(got[0].is_ok() && got[1].is_err());
}

#[test]
fn builder_rejects_bad_input() {
    let ring = common::ring();
    let mut b = BatchBuilder::new(&ring, 1, 0).unwrap();
    let rec = |priority, key: Option<&'static [u8]>| RecordInput {
        timestamp_ms: 1,
        priority,
        id: None,
        key,
        headers: &[],
        deliver_at_ms: None,
        expires_at_ms: None,
        payload: b"x",
    };
    assert!(b.push(rec(0, None)).is_err());
    assert!(b.push(rec(11, None)).is_err());
    let big_key: &'static [u8] = Box::leak(vec![0u8; 4097].into_boxed_slice());
    assert!(b.push(rec(5, Some(big_key))).is_err());
    let many: Vec<_> = (0..65)
        .map(|_| RecordHeaderRef {
            name: "n",
            value: b"",
        })
        .collect();
    let mut r = rec(5, None);
    r.headers = &many;
    assert!(b.push(r).is_err());
    let mut r = rec(5, None);
    r.deliver_at_ms = Some(i64::MIN);
    assert!(b.push(r).is_err());
    // Failed pushes leave the builder untouched.
    assert_eq!(b.count(), 0);
    assert_eq!(b.encoded_len(), HEADER_LEN);
    b.push(rec(5, None)).unwrap();
    assert_eq!(b.count(), 1);
}

/// The disk overhead target: <= 64 bytes per 100-byte message including the GCM tag,
/// the amortised batch header and index entries (batches of 10, UUID ids).
#[test]
fn overhead_per_small_message_is_within_budget() {
    let ring = common::ring();
    let mut b = BatchBuilder::new(&ring, 1, 2000).unwrap();
    let payload = [7u8; 100];
    for i in 0..10u8 {
        let id = MessageId::Uuid([i; 16]);
        b.push(RecordInput {
            timestamp_ms: 1_700_000_000_000 + i64::from(i),
            priority: 5,
            id: Some(&id),
            key: None,
            headers: &[],
            deliver_at_ms: None,
            expires_at_ms: None,
            payload: &payload,
        })
        .unwrap();
    }
    let len = b.finish().len();
    // Index: one 8-byte entry per 4 KiB; time index: one 12-byte entry per batch.
    let per_message = (len as f64 + len as f64 / 4096.0 * 8.0 + 12.0) / 10.0 - 100.0;
    eprintln!("overhead per 100-byte message in batches of 10: {per_message:.1} bytes");
    assert!(
        per_message <= 64.0,
        "overhead {per_message} bytes per message"
    );
}

fn valid_batch_bytes() -> Vec<u8> {
    let ring = common::ring();
    full_batch(&ring).into_bytes().to_vec()
}

fn exercise(bytes: Vec<u8>) {
    let ring = common::ring();
    for b in decode_batches(Bytes::from(bytes)) {
        let Ok(b) = b else { continue };
        for m in b.records_meta() {
            let _ = m.map(|m| m.headers.iter().count());
        }
        for r in b.decrypt_records(&ring) {
            let _ = r;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(bytes);
    }

    #[test]
    fn bit_flipped_batches_never_panic(flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..6), fix_crc: bool) {
        let mut t = valid_batch_bytes();
        for (at, bit) in flips {
            let i = at % t.len();
            t[i] ^= 1 << bit;
        }
        if fix_crc && t.len() > 8 {
            let crc = crc32c::crc32c(&t[8..]);
            t[4..8].copy_from_slice(&crc.to_le_bytes());
        }
        exercise(t);
    }

    #[test]
    fn records_with_valid_crc_but_random_body_never_panic(body in proptest::collection::vec(any::<u8>(), 21..400), count in 1u32..5) {
        let mut t = valid_batch_bytes()[..HEADER_LEN].to_vec();
        t.extend_from_slice(&body);
        let len = t.len() as u32;
        t[0..4].copy_from_slice(&len.to_le_bytes());
        t[12..16].copy_from_slice(&count.to_le_bytes());
        t[32..36].copy_from_slice(&(count - 1).to_le_bytes());
        let crc = crc32c::crc32c(&t[8..]);
        t[4..8].copy_from_slice(&crc.to_le_bytes());
        exercise(t);
    }
}

/// A batch written by format version 1, kept so later builds prove they still read it.
/// Regenerate (only when deliberately starting a new fixture) with
/// `SWARMMQ_WRITE_FIXTURES=1 cargo test -p swarmmq-storage --test batch fixture`.
#[test]
fn reads_the_format_v1_fixture() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/batch_v1.bin");
    let ring = common::ring();
    if std::env::var_os("SWARMMQ_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, full_batch(&ring).as_bytes()).unwrap();
    }
    let bytes = Bytes::from(std::fs::read(&path).unwrap());
    let batch = Batch::parse(bytes).unwrap();
    assert_eq!(
        (batch.base_offset(), batch.term(), batch.record_count()),
        (500, 3, 3)
    );
    assert_eq!(
        (batch.producer_id(), batch.producer_seq(), batch.key_id()),
        (99, 1234, 1)
    );
    assert_eq!(batch.first_timestamp_ms(), 1_700_000_000_000);
    assert_eq!(batch.max_timestamp_ms(), 1_700_000_000_500);
    let recs: Vec<_> = batch.decrypt_records(&ring).map(Result::unwrap).collect();
    assert_eq!(&recs[0].payload[..], b"first payload");
    assert_eq!(recs[0].meta.id, Some(MessageId::text("order-17").unwrap()));
    assert_eq!(recs[0].meta.key.as_deref(), Some(&b"customer-1"[..]));
    assert_eq!(
        recs[0].meta.headers.get("content-type"),
        Some(&b"text/plain"[..])
    );
    assert_eq!(recs[0].meta.deliver_at_ms, Some(1_700_000_060_000));
    assert_eq!(recs[0].meta.expires_at_ms, Some(1_699_999_999_995));
    assert_eq!(recs[1].meta.id, Some(MessageId::Uuid([9; 16])));
    assert_eq!(recs[1].meta.priority.get(), 1);
    assert_eq!(&recs[2].payload[..], &[0xAB; 3000][..]);
}

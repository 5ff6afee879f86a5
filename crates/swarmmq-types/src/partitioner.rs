use crate::PartitionId;

/// FNV-1a, 64 bit. Chosen because it is tiny, has no dependency, and is trivial to
/// re-implement in another language's SDK; the choice is part of the wire contract
/// (a smart client must route a key exactly where the node would) and never changes.
pub fn key_hash(key: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for &b in key {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

/// The partition a keyed message belongs to: `fnv1a64(key) mod partitions`.
///
/// `partitions` of 0 is a caller bug (a destination always has at least one partition);
/// it maps to partition 0 instead of dividing by zero.
pub fn partition_for_key(key: &[u8], partitions: u32) -> PartitionId {
    if partitions == 0 {
        return 0;
    }
    // The remainder is < partitions, which is a u32, so the narrowing is lossless.
    (key_hash(key) % u64::from(partitions)) as PartitionId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors_never_change() {
        // Published FNV-1a 64 test vectors; SDKs in other languages test against these.
        assert_eq!(key_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(key_hash(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(
            partition_for_key(b"order-42", 6),
            (key_hash(b"order-42") % 6) as u32
        );
    }

    #[test]
    fn zero_partitions_does_not_panic() {
        assert_eq!(partition_for_key(b"k", 0), 0);
    }

    proptest::proptest! {
        #[test]
        fn always_in_range(key: Vec<u8>, parts in 1u32..10_000) {
            proptest::prop_assert!(partition_for_key(&key, parts) < parts);
        }
    }
}

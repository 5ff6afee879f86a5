//! LEB128 varints (unsigned) and zigzag varints (signed) for the record encoding.
//! Readers are bounded by the slice they are given and by the 10-byte maximum, and
//! reject overlong encodings that would overflow 64 bits.

use crate::StorageError;

/// Most bytes a u64 varint takes.
pub(crate) const MAX_VARINT_LEN: usize = 10;

pub(crate) fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub(crate) fn put_ivarint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// Bytes `v` takes as a varint.
pub(crate) fn uvarint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads a varint at `*pos` in `buf`, advancing `*pos`.
pub(crate) fn get_uvarint(buf: &[u8], pos: &mut usize) -> Result<u64, StorageError> {
    let mut value: u64 = 0;
    for i in 0..MAX_VARINT_LEN {
        let Some(&b) = buf.get(*pos + i) else {
            return Err(StorageError::Malformed("varint runs past the end"));
        };
        let part = u64::from(b & 0x7f);
        if i == MAX_VARINT_LEN - 1 && b > 1 {
            return Err(StorageError::Malformed("varint overflows 64 bits"));
        }
        value |= part << (7 * i);
        if b & 0x80 == 0 {
            *pos += i + 1;
            return Ok(value);
        }
    }
    Err(StorageError::Malformed("varint longer than 10 bytes"))
}

pub(crate) fn get_ivarint(buf: &[u8], pos: &mut usize) -> Result<i64, StorageError> {
    let u = get_uvarint(buf, pos)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_lengths() {
        let samples = [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ];
        for &v in &samples {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            assert_eq!(b.len(), uvarint_len(v), "{v}");
            let mut pos = 0;
            assert_eq!(get_uvarint(&b, &mut pos).unwrap(), v);
            assert_eq!(pos, b.len());
        }
        for &v in &[0i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            let mut b = Vec::new();
            put_ivarint(&mut b, v);
            let mut pos = 0;
            assert_eq!(get_ivarint(&b, &mut pos).unwrap(), v);
        }
    }

    #[test]
    fn rejects_truncated_and_overlong() {
        let mut pos = 0;
        assert!(get_uvarint(&[0x80, 0x80], &mut pos).is_err());
        let mut pos = 0;
        assert!(get_uvarint(&[0xff; 11], &mut pos).is_err());
        let mut pos = 0;
        assert!(
            get_uvarint(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                &mut pos
            )
            .is_err()
        );
        let mut pos = 0;
        assert!(get_uvarint(&[], &mut pos).is_err());
    }
}

//! Bounds-checked reading of body primitives. Every read names the field it reads, so
//! an error tells a client which part of its frame was wrong.

use bytes::Bytes;

use crate::ProtocolError;

/// A cursor over one frame body. Byte fields come out as slices of the body (no copy).
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn truncated(&self, field: &'static str, needed: u64) -> ProtocolError {
        ProtocolError::Truncated {
            field,
            needed,
            remaining: self.remaining() as u64,
        }
    }

    fn take(&mut self, field: &'static str, n: usize) -> Result<&[u8], ProtocolError> {
        let remaining = self.remaining() as u64;
        let start = self.pos;
        match self.buf.get(start..start.saturating_add(n)) {
            Some(s) => {
                self.pos = start + n;
                Ok(s)
            }
            None => Err(ProtocolError::Truncated {
                field,
                needed: n as u64,
                remaining,
            }),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProtocolError> {
        let s = self.take(field, N)?;
        // `take` returned exactly N bytes; the error arm is unreachable but panic-free.
        <[u8; N]>::try_from(s).map_err(|_| ProtocolError::Truncated {
            field,
            needed: N as u64,
            remaining: 0,
        })
    }

    pub(crate) fn skip(&mut self, field: &'static str, n: usize) -> Result<(), ProtocolError> {
        self.take(field, n).map(|_| ())
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ProtocolError> {
        self.array(field).map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        self.array(field).map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        self.array(field).map(u64::from_be_bytes)
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, ProtocolError> {
        self.array(field).map(i64::from_be_bytes)
    }

    pub(crate) fn uuid(&mut self, field: &'static str) -> Result<[u8; 16], ProtocolError> {
        self.array(field)
    }

    /// A byte that must be 0 or 1.
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, ProtocolError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(ProtocolError::InvalidTag { field, value }),
        }
    }

    /// An optional value: a presence byte (0 or 1), then the value when present.
    pub(crate) fn opt<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&mut Self) -> Result<T, ProtocolError>,
    ) -> Result<Option<T>, ProtocolError> {
        if self.bool(field)? {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// UTF-8 text of `len` bytes (the length already read and checked).
    pub(crate) fn utf8(
        &mut self,
        field: &'static str,
        len: usize,
    ) -> Result<String, ProtocolError> {
        let raw = self.take(field, len)?;
        let s = std::str::from_utf8(raw).map_err(|_| ProtocolError::InvalidUtf8 { field })?;
        Ok(s.to_owned())
    }

    /// A `u16`-length-prefixed UTF-8 string of at most `limit` bytes.
    pub(crate) fn string(
        &mut self,
        field: &'static str,
        limit: u32,
    ) -> Result<String, ProtocolError> {
        let len = self.u16(field)?;
        if u32::from(len) > limit {
            return Err(ProtocolError::TooLong {
                field,
                len: u64::from(len),
                limit: u64::from(limit),
            });
        }
        self.utf8(field, usize::from(len))
    }

    /// `len` bytes as a slice of the body (the length already read and checked).
    pub(crate) fn slice(&mut self, field: &'static str, len: u32) -> Result<Bytes, ProtocolError> {
        let len = len as usize;
        if len > self.remaining() {
            return Err(self.truncated(field, len as u64));
        }
        let start = self.pos;
        self.pos = start + len;
        // In bounds: checked against `remaining` just above.
        Ok(self.buf.slice(start..self.pos))
    }

    /// A `u32`-length-prefixed byte field of at most `limit` bytes, zero-copy.
    pub(crate) fn bytes(
        &mut self,
        field: &'static str,
        limit: u32,
    ) -> Result<Bytes, ProtocolError> {
        let len = self.u32(field)?;
        if len > limit {
            return Err(ProtocolError::TooLong {
                field,
                len: u64::from(len),
                limit: u64::from(limit),
            });
        }
        self.slice(field, len)
    }

    /// A `u32` element count, checked against `limit` and against what the rest of the
    /// body could hold at `min_size` bytes per element. After this, `Vec::with_capacity`
    /// of the count allocates at most `remaining / min_size` elements: a hostile count
    /// cannot make the decoder allocate past the frame.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        limit: u32,
        min_size: usize,
    ) -> Result<usize, ProtocolError> {
        let count = self.u32(field)?;
        self.check_count(field, u64::from(count), u64::from(limit), min_size)
    }

    pub(crate) fn check_count(
        &self,
        field: &'static str,
        count: u64,
        limit: u64,
        min_size: usize,
    ) -> Result<usize, ProtocolError> {
        if count > limit {
            return Err(ProtocolError::CountOverLimit {
                field,
                count,
                limit,
            });
        }
        let needed = count.saturating_mul(min_size as u64);
        if needed > self.remaining() as u64 {
            return Err(self.truncated(field, needed));
        }
        // count * min_size <= remaining <= usize::MAX, so count fits in usize.
        usize::try_from(count).map_err(|_| self.truncated(field, needed))
    }

    /// Ends the body: anything left over is an error.
    pub(crate) fn finish(self) -> Result<(), ProtocolError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(ProtocolError::TrailingBytes(n as u64)),
        }
    }
}

/// Test helper: runs `f` over `bytes` and requires it to consume them all.
#[cfg(test)]
pub(crate) fn read_all<T>(
    bytes: &[u8],
    f: impl FnOnce(&mut Reader) -> Result<T, ProtocolError>,
) -> Result<T, ProtocolError> {
    let mut r = Reader::new(Bytes::copy_from_slice(bytes));
    let v = f(&mut r)?;
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(b: &'static [u8]) -> Reader {
        Reader::new(Bytes::from_static(b))
    }

    #[test]
    fn integers_are_big_endian() {
        let mut r = reader(&[
            1, 0, 2, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
        ]);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 2);
        assert_eq!(r.u32("c").unwrap(), 3);
        assert_eq!(r.i64("d").unwrap(), -2);
        r.finish().unwrap();
    }

    #[test]
    fn truncated_names_the_field() {
        let mut r = reader(&[0, 0, 1]);
        assert_eq!(
            r.u32("partition"),
            Err(ProtocolError::Truncated {
                field: "partition",
                needed: 4,
                remaining: 3
            })
        );
    }

    #[test]
    fn flag_bytes_accept_only_zero_and_one() {
        let mut r = reader(&[0, 1, 2]);
        assert_eq!(r.bool("f"), Ok(false));
        assert_eq!(r.bool("f"), Ok(true));
        assert_eq!(
            r.bool("f"),
            Err(ProtocolError::InvalidTag {
                field: "f",
                value: 2
            })
        );
    }

    #[test]
    fn strings_check_limit_then_utf8() {
        assert_eq!(reader(b"\x00\x02hi").string("s", 2).unwrap(), "hi");
        assert_eq!(
            reader(b"\x00\x03hey").string("s", 2),
            Err(ProtocolError::TooLong {
                field: "s",
                len: 3,
                limit: 2
            })
        );
        assert_eq!(
            reader(b"\x00\x02\xff\xfe").string("s", 10),
            Err(ProtocolError::InvalidUtf8 { field: "s" })
        );
        assert!(matches!(
            reader(b"\xff\xff").string("s", u32::MAX),
            Err(ProtocolError::Truncated { needed: 65535, .. })
        ));
    }

    #[test]
    fn bytes_are_slices_of_the_body() {
        let body = Bytes::from_static(b"\x00\x00\x00\x03abc");
        let mut r = Reader::new(body.clone());
        let b = r.bytes("v", 10).unwrap();
        assert_eq!(&b[..], b"abc");
        assert_eq!(b.as_ptr(), body[4..].as_ptr());
        assert!(matches!(
            reader(b"\xff\xff\xff\xff").bytes("v", u32::MAX),
            Err(ProtocolError::Truncated { .. })
        ));
    }

    #[test]
    fn counts_are_checked_against_limit_and_room() {
        assert_eq!(
            reader(b"\x00\x00\x00\x05").count("n", 4, 1),
            Err(ProtocolError::CountOverLimit {
                field: "n",
                count: 5,
                limit: 4
            })
        );
        assert_eq!(
            reader(b"\x00\x00\x00\x02abc").count("n", 10, 2),
            Err(ProtocolError::Truncated {
                field: "n",
                needed: 4,
                remaining: 3
            })
        );
        assert_eq!(reader(b"\x00\x00\x00\x02abcd").count("n", 10, 2), Ok(2));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut r = reader(&[0, 1, 9]);
        r.u16("x").unwrap();
        assert_eq!(r.finish(), Err(ProtocolError::TrailingBytes(1)));
    }
}

//! A heap buffer whose usable part starts on a 4 KiB boundary, as `O_DIRECT` wants.
//!
//! It over-allocates a plain `Vec<u8>` by one block and uses the aligned window inside
//! it, which keeps the crate free of `unsafe` (an aligned `std::alloc` allocation would
//! need raw pointers) at the cost of 4 KiB per log. The `Vec` is never resized after
//! construction, so the window never moves.

use std::fmt;

/// Alignment of file positions, lengths and memory for direct I/O. 4096 covers every
/// common logical block size (512 and 4096) and the page size.
pub(crate) const ALIGN: usize = 4096;

pub(crate) struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .finish()
    }
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes (rounded up to a whole block), or `None` if the
    /// allocator gave memory that cannot be aligned (not expected on any platform).
    pub(crate) fn new(len: usize) -> Option<AlignedBuf> {
        let len = len.div_ceil(ALIGN).max(1) * ALIGN;
        let storage = vec![0u8; len + ALIGN];
        let start = storage.as_ptr().align_offset(ALIGN);
        if start >= ALIGN {
            return None;
        }
        Some(AlignedBuf {
            storage,
            start,
            len,
        })
    }

    /// Usable bytes (a multiple of [`ALIGN`]).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.storage
            .get(self.start..self.start + self.len)
            .unwrap_or(&[])
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        self.storage
            .get_mut(self.start..self.start + self.len)
            .unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_aligned_and_block_sized() {
        for want in [1, 4095, 4096, 4097, 1 << 20] {
            let mut b = AlignedBuf::new(want).unwrap();
            assert_eq!(b.len() % ALIGN, 0);
            assert!(b.len() >= want);
            assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
            assert_eq!(b.as_mut_slice().len(), b.len());
            assert!(b.as_slice().iter().all(|&x| x == 0));
        }
    }
}

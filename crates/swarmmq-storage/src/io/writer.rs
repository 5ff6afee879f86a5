//! The writer of the active segment's `.log`, buffered or `O_DIRECT`.
//!
//! Buffered: `writev` appends through the page cache on the segment's `O_APPEND` handle.
//!
//! Direct: appended bytes are copied into an aligned staging buffer after the bytes of
//! the file's partially filled last block, and written with `pwrite` on an `O_DIRECT`
//! handle as whole blocks, from the start of that partial block through the end of the
//! data, zero-padded to the block size. The partial block stays at the start of the
//! buffer and is written again, with more data after it, by the next append. So the
//! file always holds every appended byte (a reader may `pread` it as soon as the write
//! returns), followed by fewer than 4096 zero bytes that the logical length kept here
//! excludes. [`SegmentWriter::trim`] cuts the padding off (roll, close, drop); after a
//! crash, recovery cuts it as a zero-filled torn tail.

use std::fs::File;
use std::io::{self as stdio, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::aligned::{ALIGN, AlignedBuf};
use super::{append_vectored, file_len, open_direct, set_len, sync_data, write_error};
use crate::StorageError;
use crate::config::IoMode;

/// Staging buffer size: the largest single direct write. 1 MiB writes already reach
/// the device's sequential speed (`dd oflag=direct`: 1 MiB and 4 MiB blocks alike).
const STAGING: usize = 1 << 20;

/// Appends to the active segment's log and tracks its logical length.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    path: PathBuf,
    /// Bytes of whole batches in the file; with direct I/O the file may be longer by
    /// the zero padding of its last block.
    len: u64,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// A duplicate of the segment's `O_APPEND` handle.
    Buffered(File),
    Direct(Direct),
}

#[derive(Debug)]
struct Direct {
    file: File,
    buf: AlignedBuf,
    /// Bytes of the partially filled last block (`len % ALIGN`), held at `buf[..tail]`.
    tail: usize,
    /// A write failed half way, so the buffer may not mirror the file: reload the
    /// partial block before the next append, and never trim.
    stale: bool,
}

fn internal(path: &Path, what: &str) -> StorageError {
    StorageError::io("write", path, stdio::Error::other(what.to_string()))
}

impl SegmentWriter {
    /// A writer for the segment log `file` at `path` whose logical length is `len`.
    /// With `want` = [`IoMode::Direct`] it opens a second, `O_DIRECT` handle, or falls
    /// back to buffered writes (logged once) where the file system cannot.
    pub(crate) fn open(
        file: &File,
        path: &Path,
        len: u64,
        want: IoMode,
    ) -> Result<SegmentWriter, StorageError> {
        let direct = match want {
            IoMode::Buffered => None,
            // The buffer is allocated only once the file takes direct I/O.
            IoMode::Direct => {
                match open_direct(path)?.and_then(|f| Some((f, AlignedBuf::new(STAGING)?))) {
                    Some((file, buf)) => Some(Direct {
                        file,
                        buf,
                        tail: 0,
                        stale: true,
                    }),
                    None => {
                        tracing::info!(
                            path = %path.display(),
                            "direct I/O is not supported here; the log is written through the page cache"
                        );
                        None
                    }
                }
            }
        };
        let kind = match direct {
            Some(d) => Kind::Direct(d),
            None => Kind::Buffered(dup(file, path)?),
        };
        let mut w = SegmentWriter {
            path: path.to_path_buf(),
            len,
            kind,
        };
        w.reload()?;
        Ok(w)
    }

    /// The mode in use (direct may have fallen back to buffered).
    pub(crate) fn mode(&self) -> IoMode {
        match self.kind {
            Kind::Buffered(_) => IoMode::Buffered,
            Kind::Direct(_) => IoMode::Direct,
        }
    }

    /// Points the writer at a segment log (after a roll, a truncation or a rollback)
    /// whose logical length is `len`, in the same mode and with the same staging
    /// buffer. The file it wrote before is left as it is: trim it first if it stays.
    pub(crate) fn attach(
        &mut self,
        file: &File,
        path: &Path,
        len: u64,
    ) -> Result<(), StorageError> {
        match &mut self.kind {
            Kind::Buffered(f) => *f = dup(file, path)?,
            Kind::Direct(d) => {
                d.file = open_direct(path)?.ok_or_else(|| {
                    StorageError::io(
                        "open",
                        path,
                        stdio::Error::other("direct I/O is no longer supported"),
                    )
                })?;
                d.stale = true;
            }
        }
        self.path = path.to_path_buf();
        self.len = len;
        self.reload()
    }

    /// Loads the partial last block into the staging buffer (direct I/O only).
    fn reload(&mut self) -> Result<(), StorageError> {
        let Kind::Direct(d) = &mut self.kind else {
            return Ok(());
        };
        d.tail = (self.len % ALIGN as u64) as usize;
        if d.tail > 0 {
            let block_pos = self.len - d.tail as u64;
            let block = d
                .buf
                .as_mut_slice()
                .get_mut(..ALIGN)
                .ok_or_else(|| internal(&self.path, "staging buffer below one block"))?;
            // A direct read: a whole aligned block into aligned memory; it comes back
            // short only at the end of the file.
            let got = loop {
                match d.file.read_at(block, block_pos) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == stdio::ErrorKind::Interrupted => {}
                    Err(e) => return Err(StorageError::io("read", &self.path, e)),
                }
            };
            if got < d.tail {
                return Err(StorageError::corrupt(
                    &self.path,
                    block_pos + got as u64,
                    None,
                    "segment file is shorter than its recorded size",
                ));
            }
        }
        d.stale = false;
        Ok(())
    }

    /// Appends the slices at the logical end. On error the logical length is unchanged
    /// but the file may hold part of the data: the caller cuts it off (`set_len` on the
    /// segment file and [`SegmentWriter::attach`]) or gives the log up.
    pub(crate) fn append(&mut self, slices: &mut [IoSlice<'_>]) -> Result<(), StorageError> {
        let total: u64 = slices.iter().map(|s| s.len() as u64).sum();
        match &mut self.kind {
            Kind::Buffered(f) => append_vectored(f, &self.path, slices)?,
            Kind::Direct(d) => {
                if d.stale {
                    return Err(internal(&self.path, "direct writer needs a reload"));
                }
                d.append(&self.path, self.len, slices)?;
            }
        }
        self.len += total;
        Ok(())
    }

    /// fdatasync of the log. With direct I/O the data is already on the device, but
    /// possibly only in its volatile cache, and the size change is only in the journal:
    /// both need this. The raw error lets the caller poison the log.
    pub(crate) fn sync(&self) -> stdio::Result<()> {
        match &self.kind {
            Kind::Buffered(f) => sync_data(f),
            Kind::Direct(d) => sync_data(&d.file),
        }
    }

    /// Another handle of the log file, for an fsync that runs elsewhere.
    pub(crate) fn dup_file(&self) -> Result<File, StorageError> {
        match &self.kind {
            Kind::Buffered(f) => dup(f, &self.path),
            Kind::Direct(d) => dup(&d.file, &self.path),
        }
    }

    /// Cuts the zero padding after the logical end (direct I/O); returns whether the
    /// file changed. Appending afterwards is fine: the next write restores the block.
    pub(crate) fn trim(&self) -> Result<bool, StorageError> {
        let Kind::Direct(d) = &self.kind else {
            return Ok(false);
        };
        if d.stale || file_len(&d.file, &self.path)? <= self.len {
            return Ok(false);
        }
        set_len(&d.file, &self.path, self.len)?;
        tracing::debug!(path = %self.path.display(), len = self.len, "trimmed direct-I/O padding");
        Ok(true)
    }
}

impl Drop for SegmentWriter {
    /// A log dropped without `close` still leaves no padding behind, so the next open
    /// finds exactly the batches and reports nothing. Best effort: recovery handles
    /// padding anyway.
    fn drop(&mut self) {
        if let Err(e) = self.trim() {
            tracing::debug!(path = %self.path.display(), error = %e, "could not trim padding on drop");
        }
    }
}

impl Direct {
    /// Stages `slices` after the partial block and writes them through, block-aligned.
    fn append(
        &mut self,
        path: &Path,
        len: u64,
        slices: &[IoSlice<'_>],
    ) -> Result<(), StorageError> {
        self.stale = true;
        let cap = self.buf.len();
        let mut block_pos = len - self.tail as u64;
        let mut fill = self.tail;
        for s in slices {
            let mut s: &[u8] = s;
            while !s.is_empty() {
                let n = (cap - fill).min(s.len());
                let (head, rest) = s.split_at(n);
                self.buf
                    .as_mut_slice()
                    .get_mut(fill..fill + n)
                    .ok_or_else(|| internal(path, "staging overflow"))?
                    .copy_from_slice(head);
                fill += n;
                s = rest;
                if fill == cap {
                    write_blocks(&self.file, path, self.buf.as_slice(), block_pos)?;
                    block_pos += cap as u64;
                    fill = 0;
                }
            }
        }
        let keep = fill % ALIGN;
        if fill > 0 {
            let padded = fill.next_multiple_of(ALIGN);
            let buf = self.buf.as_mut_slice();
            buf.get_mut(fill..padded)
                .ok_or_else(|| internal(path, "staging overflow"))?
                .fill(0);
            let out = buf
                .get(..padded)
                .ok_or_else(|| internal(path, "staging overflow"))?;
            write_blocks(&self.file, path, out, block_pos)?;
            // The partial last block moves to the front for the next append.
            buf.copy_within(fill - keep..fill, 0);
        }
        self.tail = keep;
        self.stale = false;
        Ok(())
    }
}

/// `pwrite`s all of `data` (whole blocks) at the block-aligned `pos`. A short write is
/// continued from the last whole block it covered, so every call stays aligned.
fn write_blocks(file: &File, path: &Path, data: &[u8], pos: u64) -> Result<(), StorageError> {
    let mut done = 0;
    let mut stalls = 0;
    while let Some(rest) = data.get(done..).filter(|r| !r.is_empty()) {
        match file.write_at(rest, pos + done as u64) {
            Ok(n) => {
                let whole = n / ALIGN * ALIGN;
                if whole == 0 {
                    stalls += 1;
                    if stalls > 3 {
                        return Err(StorageError::io(
                            "write",
                            path,
                            stdio::Error::new(
                                stdio::ErrorKind::WriteZero,
                                "direct write made no progress",
                            ),
                        ));
                    }
                }
                done += whole;
            }
            Err(e) if e.kind() == stdio::ErrorKind::Interrupted => {}
            Err(e) => return Err(write_error(path, e)),
        }
    }
    Ok(())
}

fn dup(file: &File, path: &Path) -> Result<File, StorageError> {
    file.try_clone()
        .map_err(|e| StorageError::io("dup", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes that differ at every position, so a misplaced block shows.
    fn pattern(from: u64, len: usize) -> Vec<u8> {
        (from..from + len as u64)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
            .collect()
    }

    #[test]
    fn direct_appends_land_byte_exact_with_zero_padding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let file = super::super::create_new_append(&path).unwrap();
        let mut w = SegmentWriter::open(&file, &path, 0, IoMode::Direct).unwrap();
        if w.mode() != IoMode::Direct {
            eprintln!("skipping: no direct I/O on {}", dir.path().display());
            return;
        }
        let mut expected = Vec::new();
        // Small, block-straddling, exactly block-filling, staging-sized and larger.
        let sizes = [
            1,
            100,
            4095 - 101,
            4096,
            5000,
            STAGING - 3,
            STAGING,
            2 * STAGING + 4097,
            7,
            8192 - 12,
        ];
        for (k, &n) in sizes.iter().enumerate() {
            let data = pattern(expected.len() as u64, n);
            // Split over several slices, as a group commit of several batches is.
            let (a, b) = data.split_at(n / 3);
            w.append(&mut [IoSlice::new(a), IoSlice::new(b)]).unwrap();
            expected.extend_from_slice(&data);
            assert_eq!(w.len, expected.len() as u64);
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(
                on_disk.len(),
                expected.len().next_multiple_of(ALIGN),
                "append {k}"
            );
            assert_eq!(&on_disk[..expected.len()], &expected[..], "append {k}");
            assert!(on_disk[expected.len()..].iter().all(|&b| b == 0));
        }
        w.sync().unwrap();
        assert!(w.trim().unwrap());
        assert!(!w.trim().unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        // Appending after a trim restores the block from the buffer.
        let more = pattern(expected.len() as u64, 10);
        w.append(&mut [IoSlice::new(&more)]).unwrap();
        expected.extend_from_slice(&more);
        drop(w);
        // Dropping trims too.
        assert_eq!(std::fs::read(&path).unwrap(), expected);

        // A new writer on an unaligned file picks up its partial block.
        let mut w =
            SegmentWriter::open(&file, &path, expected.len() as u64, IoMode::Direct).unwrap();
        let more = pattern(expected.len() as u64, 3000);
        w.append(&mut [IoSlice::new(&more)]).unwrap();
        expected.extend_from_slice(&more);
        assert_eq!(
            &std::fs::read(&path).unwrap()[..expected.len()],
            &expected[..]
        );

        // Attaching after a cut (rollback, truncation) continues from the cut.
        let cut = expected.len() - 5000;
        set_len(&file, &path, cut as u64).unwrap();
        expected.truncate(cut);
        w.attach(&file, &path, cut as u64).unwrap();
        let more = pattern(cut as u64, 6000);
        w.append(&mut [IoSlice::new(&more)]).unwrap();
        expected.extend_from_slice(&more);
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[test]
    fn buffered_writer_appends_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let file = super::super::create_new_append(&path).unwrap();
        let mut w = SegmentWriter::open(&file, &path, 0, IoMode::Buffered).unwrap();
        assert_eq!(w.mode(), IoMode::Buffered);
        let data = pattern(0, 10_000);
        w.append(&mut [IoSlice::new(&data)]).unwrap();
        w.sync().unwrap();
        assert!(!w.trim().unwrap());
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn opening_on_a_file_shorter_than_its_length_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let file = super::super::create_new_append(&path).unwrap();
        std::fs::write(&path, [1u8; 100]).unwrap();
        match SegmentWriter::open(&file, &path, 5000, IoMode::Direct) {
            Ok(w) if w.mode() == IoMode::Buffered => {} // no direct I/O here: nothing loaded
            Ok(_) => panic!("a writer over missing bytes"),
            Err(e) => assert!(matches!(e, StorageError::Corrupt { .. }), "{e}"),
        }
    }
}

//! Every file-system call of the log goes through here, so an io_uring backend can
//! replace this one module later. Errors come back with the path and operation.
//!
//! `aligned` holds the staging buffer of direct I/O and `writer` the writer of the
//! active segment's `.log` (buffered or `O_DIRECT`); the rest are plain calls.

mod aligned;
mod writer;

pub(crate) use writer::SegmentWriter;

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::StorageError;

fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Maps a write error: disk full gets its own variant (the log stays usable).
pub(crate) fn write_error(path: &Path, e: io::Error) -> StorageError {
    if is_disk_full(&e) {
        StorageError::DiskFull {
            path: path.to_path_buf(),
            source: e,
        }
    } else {
        StorageError::io("write", path, e)
    }
}

/// Opens (creating if missing) for positional reads and appends.
pub(crate) fn open_append(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| write_error(path, e).or_io("open"))
}

/// Creates a new file for positional reads and appends; fails if it exists.
pub(crate) fn create_new_append(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .open(path)
        .map_err(|e| write_error(path, e).or_io("create"))
}

/// Opens an existing file for `O_DIRECT` reads and writes, or `None` where the file
/// system refuses direct I/O (`EINVAL` on open, as older tmpfs does) or reports
/// alignment needs [`aligned::ALIGN`] does not meet. The caller then writes buffered.
#[cfg(target_os = "linux")]
pub(crate) fn open_direct(path: &Path) -> Result<Option<File>, StorageError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
            return Ok(None);
        }
        Err(e) => return Err(StorageError::io("open", path, e)),
    };
    match dio_alignment(&file) {
        Some((mem, offset)) if !alignment_fits(mem, offset) => Ok(None),
        // Not reported (kernels before 6.1, some file systems): the open succeeded and
        // 4 KiB alignment satisfies every common device.
        _ => Ok(Some(file)),
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn open_direct(_path: &Path) -> Result<Option<File>, StorageError> {
    Ok(None)
}

/// Whether memory and file offsets aligned to [`aligned::ALIGN`] satisfy the file's
/// direct-I/O alignment (0 means the file does not support direct I/O).
fn alignment_fits(mem: u32, offset: u32) -> bool {
    let fits = |a: u32| a != 0 && (aligned::ALIGN as u32).is_multiple_of(a);
    fits(mem) && fits(offset)
}

/// The (memory, file offset) alignment `statx` reports for direct I/O on `file`, if the
/// kernel and file system report it.
#[cfg(any(target_env = "gnu", target_env = "musl"))]
#[cfg(target_os = "linux")]
fn dio_alignment(file: &File) -> Option<(u32, u32)> {
    use std::os::fd::AsRawFd;
    let mut st = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: std has no statx. The path is a valid NUL-terminated empty string, which
    // with AT_EMPTY_PATH makes statx describe the open descriptor itself; `st` is a
    // writable statx buffer that outlives the call, and it is only read (zeroed memory
    // is a valid statx, all integers) after the call reported success.
    let st = unsafe {
        let rc = libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            st.as_mut_ptr(),
        );
        if rc != 0 {
            return None;
        }
        st.assume_init()
    };
    (st.stx_mask & libc::STATX_DIOALIGN != 0)
        .then_some((st.stx_dio_mem_align, st.stx_dio_offset_align))
}

#[cfg(target_os = "linux")]
#[cfg(not(any(target_env = "gnu", target_env = "musl")))]
fn dio_alignment(_file: &File) -> Option<(u32, u32)> {
    None
}

trait OrIo {
    fn or_io(self, op: &'static str) -> StorageError;
}

impl OrIo for StorageError {
    fn or_io(self, op: &'static str) -> StorageError {
        match self {
            StorageError::Io { path, source, .. } => StorageError::Io { op, path, source },
            other => other,
        }
    }
}

pub(crate) fn file_len(file: &File, path: &Path) -> Result<u64, StorageError> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| StorageError::io("stat", path, e))
}

/// Reads up to `buf.len()` bytes at `pos`, fewer only at end of file; returns the count.
pub(crate) fn read_at(
    file: &File,
    path: &Path,
    buf: &mut [u8],
    pos: u64,
) -> Result<usize, StorageError> {
    let mut done = 0;
    while done < buf.len() {
        let Some(dst) = buf.get_mut(done..) else {
            break;
        };
        match file.read_at(dst, pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StorageError::io("read", path, e)),
        }
    }
    Ok(done)
}

/// Appends every slice, looping over short writes (one writev per call when possible).
pub(crate) fn append_vectored(
    file: &File,
    path: &Path,
    slices: &mut [IoSlice<'_>],
) -> Result<(), StorageError> {
    let mut slices = slices;
    let mut w = file;
    while !slices.is_empty() {
        match w.write_vectored(slices) {
            Ok(0) => {
                return Err(StorageError::io(
                    "write",
                    path,
                    io::Error::new(io::ErrorKind::WriteZero, "write returned 0"),
                ));
            }
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(write_error(path, e)),
        }
    }
    Ok(())
}

pub(crate) fn append_all(file: &File, path: &Path, buf: &[u8]) -> Result<(), StorageError> {
    let mut w = file;
    w.write_all(buf).map_err(|e| write_error(path, e))
}

pub(crate) fn set_len(file: &File, path: &Path, len: u64) -> Result<(), StorageError> {
    file.set_len(len)
        .map_err(|e| StorageError::io("truncate", path, e))
}

/// fdatasync. The raw error is returned so the caller can poison the log with it.
pub(crate) fn sync_data(file: &File) -> io::Result<()> {
    file.sync_data()
}

/// fsync of a directory, making file creations, renames and deletions durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes a file; a missing file is not an error.
pub(crate) fn remove_file(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove", path, e)),
    }
}

pub(crate) fn create_dir_all(dir: &Path) -> Result<(), StorageError> {
    fs::create_dir_all(dir).map_err(|e| StorageError::io("create dir", dir, e))
}

/// File names in `dir` (not recursive), capped: a partition directory with more
/// entries than this is not one this code wrote.
pub(crate) fn list_dir(dir: &Path, max: usize) -> Result<Vec<String>, StorageError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))? {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        if names.len() >= max {
            return Err(StorageError::InvalidArgument(format!(
                "{} holds more than {max} entries",
                dir.display()
            )));
        }
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// A small file read whole, or why not.
pub(crate) enum SmallFile {
    Missing,
    /// Larger than the caller's bound: treated as invalid, never allocated.
    TooLarge,
    Bytes(Vec<u8>),
}

/// Reads a whole small file (an index), refusing one larger than `max` bytes.
pub(crate) fn read_small(path: &Path, max: u64) -> Result<SmallFile, StorageError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SmallFile::Missing),
        Err(e) => return Err(StorageError::io("open", path, e)),
    };
    let len = file_len(&file, path)?;
    if len > max {
        return Ok(SmallFile::TooLarge);
    }
    let mut buf = vec![0u8; len as usize];
    let n = read_at(&file, path, &mut buf, 0)?;
    buf.truncate(n);
    Ok(SmallFile::Bytes(buf))
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename); the caller syncs
/// the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    let mut f = File::create(&tmp).map_err(|e| write_error(&tmp, e))?;
    f.write_all(bytes).map_err(|e| write_error(&tmp, e))?;
    f.sync_data()
        .map_err(|e| StorageError::io("fsync", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| StorageError::io("rename", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_io_alignment_rules() {
        assert!(alignment_fits(512, 512));
        assert!(alignment_fits(4, 4096));
        assert!(alignment_fits(4096, 4096));
        // Not supported, or a device needing more than we align to.
        assert!(!alignment_fits(0, 0));
        assert!(!alignment_fits(512, 0));
        assert!(!alignment_fits(8192, 512));
        assert!(!alignment_fits(512, 16384));
        assert!(!alignment_fits(3, 512));
    }
}

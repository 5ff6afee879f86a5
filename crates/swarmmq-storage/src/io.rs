//! Every file-system call of the log goes through here, so an io_uring backend can
//! replace this one module later. Errors come back with the path and operation.

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

//! Small files replaced atomically: write a temp file, fsync it, rename, fsync the dir.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// Makes a rename or a file creation in `path`'s directory durable.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        // Opening a directory for fsync works on Unix; elsewhere the rename is the best we get.
        Some(dir) if cfg!(unix) => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Reads a whole file of at most `limit` bytes; `None` if it does not exist.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {len} bytes, limit {limit}", path.display()),
        ));
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(limit).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// Reads a JSON file written by [`write_atomic`]; `None` if it does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    limit: u64,
) -> io::Result<Option<T>> {
    match read_bounded(path, limit)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
    }
}

/// JSON bytes of `v`, as an io::Error on failure.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

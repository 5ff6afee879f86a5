//! Opening a log directory: which segments exist, whether the older ones are whole,
//! and where the last one really ends.
//!
//! Rules (see `docs/storage.md`): the last segment is scanned batch by batch (length,
//! header, CRC, offset continuity). A bad batch with no valid batch anywhere after it
//! is a torn tail from a crash and is cut off; a bad batch followed by a valid one is
//! corruption in the middle and `open` fails with [`StorageError::Corrupt`] without
//! touching the file. Older segments were fsynced whole when the log rolled away from
//! them, so they are only checked cheaply (index sanity, the batches after the last
//! index entry, the offset where the next segment starts); any doubt triggers a full
//! scan, and any damage there is corruption. Bad or missing index files are rebuilt.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use swarmmq_types::now_ms;

use crate::StorageError;
use crate::batch::{BatchHeader, FORMAT_VERSION, HEADER_LEN, MAGIC};
use crate::config::LogConfig;
use crate::index::{
    INDEX_ENTRY_LEN, IndexCursor, TIME_ENTRY_LEN, index_entry, index_is_sane, time_entry,
    time_index_is_sane,
};
use crate::io::{self, SmallFile, read_at};
use crate::segment::{Extent, INDEX_EXT, LOG_EXT, Segment, parse_file_name};

/// Most files a partition directory may hold (three per segment).
const MAX_DIR_ENTRIES: usize = 3 * 1_000_000;
/// Smallest possible batch; bounds index sizes before they are read.
const MIN_BATCH: u64 = (HEADER_LEN + 21) as u64;
/// Read size of the sequential scan.
const SCAN_CHUNK: usize = 1 << 20;

/// What `open` found and did. Also logged through `tracing`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The directory held no segment; an empty log was created.
    pub created: bool,
    pub segments: usize,
    pub start_offset: u64,
    pub next_offset: u64,
    pub last_term: u64,
    /// Batches and bytes validated in the last segment.
    pub batches_scanned: u64,
    pub bytes_scanned: u64,
    /// The torn tail cut off the last segment, if any.
    pub torn_tail: Option<TornTail>,
    /// Index files that were missing or wrong and were rebuilt from the log.
    pub indexes_rebuilt: Vec<PathBuf>,
    /// Leftover files removed (index files without a log, temporary files).
    pub files_removed: Vec<PathBuf>,
}

/// An incomplete batch, or bytes that are no batch, at the end of the last segment,
/// dropped on open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    /// File position where the log now ends.
    pub position: u64,
    pub bytes_dropped: u64,
    /// Offsets `[start, end)` the dropped batch claimed, when its header was readable.
    pub offsets_dropped: Option<(u64, u64)>,
    pub reason: String,
    /// Every dropped byte was zero: the padding of the last block of a direct write,
    /// left by a stop without `close`, or space the file system extended but never
    /// wrote. No stored batch bytes were cut; batches that were appended but never
    /// synced may be gone, as after any crash.
    pub zero_fill: bool,
}

pub(crate) struct Recovered {
    pub segments: Vec<Arc<Segment>>,
    pub cursor: IndexCursor,
    pub active_created_ms: i64,
    pub last_term: u64,
    pub report: RecoveryReport,
}

/// Buffered positional reader for whole-file scans.
struct SeqReader<'a> {
    file: &'a File,
    path: &'a Path,
    size: u64,
    buf: Vec<u8>,
    buf_pos: u64,
}

impl<'a> SeqReader<'a> {
    fn new(file: &'a File, path: &'a Path, size: u64) -> Self {
        SeqReader {
            file,
            path,
            size,
            buf: Vec::new(),
            buf_pos: 0,
        }
    }

    /// `len` bytes at `pos`, or `None` if the file ends first.
    fn get(&mut self, pos: u64, len: usize) -> Result<Option<&[u8]>, StorageError> {
        if pos + len as u64 > self.size {
            return Ok(None);
        }
        let have = pos >= self.buf_pos && pos + len as u64 <= self.buf_pos + self.buf.len() as u64;
        if !have {
            let want = (len.max(SCAN_CHUNK) as u64).min(self.size - pos) as usize;
            self.buf.resize(want, 0);
            let n = read_at(self.file, self.path, &mut self.buf, pos)?;
            self.buf.truncate(n);
            self.buf_pos = pos;
            if n < len {
                return Ok(None);
            }
        }
        let start = (pos - self.buf_pos) as usize;
        Ok(self.buf.get(start..start + len))
    }
}

enum Stop {
    Torn {
        position: u64,
        reason: String,
        offsets: Option<(u64, u64)>,
    },
    Corrupt {
        position: u64,
        offset: Option<u64>,
        reason: String,
    },
}

struct Scan {
    end: u64,
    next_offset: u64,
    last_term: Option<u64>,
    max_ts: i64,
    first_max_ts: Option<i64>,
    batches: u64,
    index: Vec<u8>,
    time: Vec<u8>,
    cursor: IndexCursor,
    stop: Option<Stop>,
}

/// Validates every batch of a segment file from the start.
fn scan_segment(
    file: &File,
    path: &Path,
    size: u64,
    base: u64,
    interval: u32,
) -> Result<Scan, StorageError> {
    let mut r = SeqReader::new(file, path, size);
    let mut s = Scan {
        end: 0,
        next_offset: base,
        last_term: None,
        max_ts: i64::MIN,
        first_max_ts: None,
        batches: 0,
        index: Vec::new(),
        time: Vec::new(),
        cursor: IndexCursor::new(interval),
        stop: None,
    };
    let mut pos = 0u64;
    while pos < size {
        let mut offsets = None;
        let reason = match r.get(pos, HEADER_LEN)? {
            None => "partial batch header at end of file".to_string(),
            Some(hb) => match BatchHeader::parse(hb) {
                Err(e) => e.to_string(),
                Ok(h) => {
                    offsets = Some((h.base_offset, h.next_offset()));
                    let len = u64::from(h.length);
                    match r.get(pos, h.length as usize)? {
                        None => "batch runs past the end of the file".to_string(),
                        Some(b) if crc32c::crc32c(b.get(8..).unwrap_or(&[])) != h.crc => {
                            "CRC mismatch".to_string()
                        }
                        Some(_) if h.base_offset != s.next_offset => {
                            s.stop = Some(Stop::Corrupt {
                                position: pos,
                                offset: Some(h.base_offset),
                                reason: format!("offset discontinuity: expected {}", s.next_offset),
                            });
                            return Ok(s);
                        }
                        Some(_) => {
                            let (Ok(pos32), Ok(rel)) =
                                (u32::try_from(pos), u32::try_from(h.base_offset - base))
                            else {
                                s.stop = Some(Stop::Corrupt {
                                    position: pos,
                                    offset: Some(h.base_offset),
                                    reason: "segment position or relative offset past u32".into(),
                                });
                                return Ok(s);
                            };
                            s.cursor.on_batch(
                                pos32,
                                rel,
                                h.length,
                                h.max_timestamp_ms,
                                &mut s.index,
                                &mut s.time,
                            );
                            s.first_max_ts.get_or_insert(h.max_timestamp_ms);
                            s.max_ts = s.max_ts.max(h.max_timestamp_ms);
                            s.next_offset = h.next_offset();
                            s.last_term = Some(h.term);
                            s.batches += 1;
                            pos += len;
                            s.end = pos;
                            continue;
                        }
                    }
                }
            },
        };
        s.stop = Some(match find_valid_batch(&mut r, pos + 1)? {
            Some(q) => Stop::Corrupt {
                position: pos,
                offset: Some(s.next_offset),
                reason: format!("{reason}, but a valid batch follows at byte {q}"),
            },
            None => Stop::Torn {
                position: pos,
                reason,
                offsets,
            },
        });
        break;
    }
    Ok(s)
}

/// The first position at or after `from` holding a whole batch with a correct CRC.
fn find_valid_batch(r: &mut SeqReader<'_>, from: u64) -> Result<Option<u64>, StorageError> {
    let size = r.size;
    let mut q = from;
    loop {
        if q + MIN_BATCH > size {
            return Ok(None);
        }
        let n = (size - q).min(SCAN_CHUNK as u64) as usize;
        let cand = {
            let w = r.get(q, n)?.unwrap_or(&[]);
            w.get(8..)
                .unwrap_or(&[])
                .windows(2)
                .position(|p| p == [MAGIC, FORMAT_VERSION])
        };
        let Some(j) = cand else {
            if n as u64 <= 10 || q + n as u64 >= size {
                return Ok(None);
            }
            // Overlap so a candidate straddling the window edge is not missed.
            q += n as u64 - 10;
            continue;
        };
        let c = q + j as u64;
        let valid = match r.get(c, HEADER_LEN)?.map(BatchHeader::parse) {
            Some(Ok(h)) => match r.get(c, h.length as usize)? {
                Some(b) => crc32c::crc32c(b.get(8..).unwrap_or(&[])) == h.crc,
                None => false,
            },
            _ => false,
        };
        if valid {
            return Ok(Some(c));
        }
        q = c + 1;
    }
}

/// Whether bytes `[from, size)` of the file are all zero (read in bounded chunks).
fn all_zero(path: &Path, from: u64, size: u64) -> Result<bool, StorageError> {
    let (file, _) = open_read(path)?;
    let mut buf = vec![0u8; SCAN_CHUNK];
    let mut pos = from;
    while pos < size {
        let want = (size - pos).min(SCAN_CHUNK as u64) as usize;
        let chunk = buf.get_mut(..want).unwrap_or(&mut []);
        let n = read_at(&file, path, chunk, pos)?;
        if n == 0 {
            break;
        }
        if chunk.get(..n).unwrap_or(&[]).iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

fn corrupt_from_stop(path: &Path, stop: &Stop) -> StorageError {
    match stop {
        Stop::Corrupt {
            position,
            offset,
            reason,
        } => StorageError::corrupt(path, *position, *offset, reason.clone()),
        Stop::Torn {
            position, reason, ..
        } => StorageError::corrupt(
            path,
            *position,
            None,
            format!("{reason} in a segment that is not the last"),
        ),
    }
}

fn open_read(path: &Path) -> Result<(File, u64), StorageError> {
    let f = File::open(path).map_err(|e| StorageError::io("open", path, e))?;
    let len = io::file_len(&f, path)?;
    Ok((f, len))
}

fn load(path: &Path, max: u64) -> Result<Option<Vec<u8>>, StorageError> {
    Ok(match io::read_small(path, max)? {
        SmallFile::Bytes(b) => Some(b),
        SmallFile::Missing | SmallFile::TooLarge => None,
    })
}

/// Checks a segment that is not the last; returns its extent, rebuilding its indexes
/// if they are missing or wrong.
fn check_older(
    dir: &Path,
    base: u64,
    next_base: u64,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<Extent, StorageError> {
    let (log_path, index_path, time_path) = Segment::paths(dir, base);
    let (file, size) = open_read(&log_path)?;
    if size == 0 {
        return Err(StorageError::corrupt(
            &log_path,
            0,
            Some(base),
            "empty segment before the last",
        ));
    }
    if next_base <= base {
        return Err(StorageError::corrupt(
            &log_path,
            0,
            Some(base),
            "segments out of order",
        ));
    }
    let rel_end = next_base - base;
    let max_entries = size / MIN_BATCH + 1;
    let index = load(&index_path, max_entries * INDEX_ENTRY_LEN)?
        .filter(|b| index_is_sane(b, size, rel_end));
    let time = load(&time_path, max_entries * TIME_ENTRY_LEN)?
        .filter(|b| !b.is_empty() && time_index_is_sane(b, rel_end));

    // Cheap tail check: the batches after the last index entry end exactly at the end
    // of the file, at the offset where the next segment starts.
    let tail = match &index {
        None => None,
        Some(idx) => {
            let n = idx.len() / INDEX_ENTRY_LEN as usize;
            let (rel, p) = n.checked_sub(1).map_or((0, 0), |i| index_entry(idx, i));
            let mut pos = u64::from(p);
            let mut expected = base + u64::from(rel);
            let mut last = None;
            let mut ok = true;
            let mut hb = [0u8; HEADER_LEN];
            while pos < size {
                let h = if read_at(&file, &log_path, &mut hb, pos)? == HEADER_LEN {
                    BatchHeader::parse(&hb).ok()
                } else {
                    None
                };
                match h {
                    Some(h) if h.base_offset == expected && pos + u64::from(h.length) <= size => {
                        expected = h.next_offset();
                        pos += u64::from(h.length);
                        last = Some(h);
                    }
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok && expected == next_base {
                last
            } else {
                None
            }
        }
    };

    if let (Some(idx), Some(time), Some(last)) = (&index, &time, tail) {
        let n_time = time.len() / TIME_ENTRY_LEN as usize;
        let max_ts = time_entry(time, n_time - 1).0;
        if max_ts >= last.max_timestamp_ms {
            return Ok(Extent {
                size,
                next_offset: next_base,
                max_timestamp: max_ts,
                last_term: last.term,
                index_entries: idx.len() as u64 / INDEX_ENTRY_LEN,
                time_entries: n_time as u64,
            });
        }
    }

    // Something is off: validate the whole segment, then rebuild its indexes.
    let scan = scan_segment(&file, &log_path, size, base, config.index_interval_bytes)?;
    if let Some(stop) = &scan.stop {
        return Err(corrupt_from_stop(&log_path, stop));
    }
    if scan.next_offset != next_base {
        return Err(StorageError::corrupt(
            &log_path,
            size,
            Some(scan.next_offset),
            format!(
                "segment ends at offset {} but the next one starts at {next_base}",
                scan.next_offset
            ),
        ));
    }
    io::write_atomic(&index_path, &scan.index)?;
    io::write_atomic(&time_path, &scan.time)?;
    tracing::warn!(path = %log_path.display(), "rebuilt index files of an older segment");
    report.indexes_rebuilt.push(index_path);
    report.indexes_rebuilt.push(time_path);
    Ok(Extent {
        size,
        next_offset: next_base,
        max_timestamp: scan.max_ts,
        last_term: scan.last_term.unwrap_or(0),
        index_entries: scan.index.len() as u64 / INDEX_ENTRY_LEN,
        time_entries: scan.time.len() as u64 / TIME_ENTRY_LEN,
    })
}

/// Opens every segment of `dir` per the module rules.
pub(crate) fn recover(dir: &Path, config: &LogConfig) -> Result<Recovered, StorageError> {
    io::create_dir_all(dir)?;
    let mut report = RecoveryReport::default();
    let names = io::list_dir(dir, MAX_DIR_ENTRIES)?;
    let mut bases: Vec<u64> = Vec::new();
    let mut index_files: Vec<(u64, String)> = Vec::new();
    for name in &names {
        if name.ends_with(".tmp") && parse_file_name(name.trim_end_matches(".tmp")).is_some() {
            let p = dir.join(name);
            io::remove_file(&p)?;
            report.files_removed.push(p);
            continue;
        }
        match parse_file_name(name) {
            Some((base, LOG_EXT)) => bases.push(base),
            Some((base, _)) => index_files.push((base, name.clone())),
            None => {
                tracing::warn!(dir = %dir.display(), file = %name, "ignoring unknown file in partition directory")
            }
        }
    }
    bases.sort_unstable();
    for (base, name) in index_files {
        if bases.binary_search(&base).is_err() {
            let p = dir.join(&name);
            io::remove_file(&p)?;
            report.files_removed.push(p);
        }
    }

    let mut segments = Vec::with_capacity(bases.len().max(1));
    if bases.is_empty() {
        let seg = Segment::create(dir, 0)?;
        io::sync_dir(dir).map_err(|e| StorageError::io("fsync dir", dir, e))?;
        segments.push(Arc::new(seg));
        report.created = true;
        report.segments = 1;
        tracing::info!(dir = %dir.display(), "created empty partition log");
        return Ok(Recovered {
            segments,
            cursor: IndexCursor::new(config.index_interval_bytes),
            active_created_ms: now_ms(),
            last_term: 0,
            report,
        });
    }

    for w in bases.windows(2) {
        let (base, next_base) = (w[0], w[1]);
        let extent = check_older(dir, base, next_base, config, &mut report)?;
        segments.push(Arc::new(Segment::open(dir, base, extent)?));
    }

    // The last (active) segment: full scan.
    let base = *bases.last().unwrap_or(&0);
    let (log_path, index_path, time_path) = Segment::paths(dir, base);
    let (file, size) = open_read(&log_path)?;
    let scan = scan_segment(&file, &log_path, size, base, config.index_interval_bytes)?;
    drop(file);
    report.batches_scanned = scan.batches;
    report.bytes_scanned = scan.end;
    match &scan.stop {
        None => {}
        Some(stop @ Stop::Corrupt { .. }) => return Err(corrupt_from_stop(&log_path, stop)),
        Some(Stop::Torn {
            position,
            reason,
            offsets,
        }) => {
            let zero_fill = all_zero(&log_path, *position, size)?;
            let f = io::open_append(&log_path)?;
            io::set_len(&f, &log_path, *position)?;
            f.sync_data()
                .map_err(|e| StorageError::io("fsync", &log_path, e))?;
            let torn = TornTail {
                path: log_path.clone(),
                position: *position,
                bytes_dropped: size - position,
                offsets_dropped: *offsets,
                reason: reason.clone(),
                zero_fill,
            };
            if zero_fill {
                // What a direct-I/O log looks like after any stop without close.
                tracing::info!(
                    path = %log_path.display(),
                    position = torn.position,
                    bytes_dropped = torn.bytes_dropped,
                    "truncated zero padding after the last batch"
                );
            } else {
                tracing::warn!(
                    path = %log_path.display(),
                    position = torn.position,
                    bytes_dropped = torn.bytes_dropped,
                    offsets_dropped = ?torn.offsets_dropped,
                    reason = %torn.reason,
                    "truncated torn tail of partition log"
                );
            }
            report.torn_tail = Some(torn);
        }
    }
    let mut rebuilt_any = !report.indexes_rebuilt.is_empty();
    for (path, want, ext) in [
        (&index_path, &scan.index, INDEX_EXT),
        (&time_path, &scan.time, "timeindex"),
    ] {
        let have = load(path, want.len() as u64)?;
        if have.as_deref() != Some(&want[..]) {
            io::write_atomic(path, want)?;
            tracing::info!(path = %path.display(), kind = ext, "rebuilt index file of the active segment");
            report.indexes_rebuilt.push(path.clone());
            rebuilt_any = true;
        }
    }
    if rebuilt_any {
        io::sync_dir(dir).map_err(|e| StorageError::io("fsync dir", dir, e))?;
    }
    let prev_term = segments.last().map_or(0, |s: &Arc<Segment>| s.last_term());
    let last_term = scan.last_term.unwrap_or(prev_term);
    let extent = Extent {
        size: scan.end,
        next_offset: scan.next_offset,
        max_timestamp: scan.max_ts,
        last_term,
        index_entries: scan.index.len() as u64 / INDEX_ENTRY_LEN,
        time_entries: scan.time.len() as u64 / TIME_ENTRY_LEN,
    };
    segments.push(Arc::new(Segment::open(dir, base, extent)?));
    let now = now_ms();
    report.segments = segments.len();
    report.start_offset = segments.first().map_or(0, |s| s.base_offset);
    report.next_offset = scan.next_offset;
    report.last_term = last_term;
    tracing::info!(
        dir = %dir.display(),
        segments = report.segments,
        start_offset = report.start_offset,
        next_offset = report.next_offset,
        torn_tail = report.torn_tail.is_some(),
        indexes_rebuilt = report.indexes_rebuilt.len(),
        "opened partition log"
    );
    Ok(Recovered {
        segments,
        cursor: scan.cursor,
        active_created_ms: scan.first_max_ts.map_or(now, |t| t.min(now)),
        last_term,
        report,
    })
}

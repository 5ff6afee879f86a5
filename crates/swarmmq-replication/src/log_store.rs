//! [`PartitionLogStore`]: openraft's log storage over a partition's own segmented log,
//! so each batch's bytes are written once (the Raft log IS the partition log).
//!
//! Files in the Raft directory (next to, not inside, the partition log directory):
//! - `entries.bin`: which Raft index is which batch, plus blank and membership entries
//!   (see [`crate::entry_index`]);
//! - `vote.json`, `committed.json`: replaced atomically (temp, fsync, rename, dir fsync).
//!
//! Durability: a call that contains only data entries costs one fsync (the partition
//! log's); their `entries.bin` frames are written but not synced, because recovery can
//! rebuild them from the batches (every batch after the last surviving frame follows it,
//! in order). A blank or membership entry has no batch to rebuild from, so its frame is
//! fsynced before any later batch is written. The reasoning is in ADR 0009.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use openraft::OptionalSend;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{LogIdOf, VoteOf};
use swarmmq_storage::{Batch, LogReader, PartitionLog};

use crate::ReplicationError;
use crate::durable::{read_bounded, read_json, sync_dir, to_json, write_atomic};
use crate::entry_index::{
    EntryIndex, Frame, Meta, Slot, decode_frames, encode, non_data_frame_after,
};
use crate::types::{BatchData, PartitionEntry, PartitionTypes, log_id};

const ENTRIES_FILE: &str = "entries.bin";
const VOTE_FILE: &str = "vote.json";
const COMMITTED_FILE: &str = "committed.json";
/// Largest `entries.bin` read on open (~40 bytes per entry; purge rewrites it smaller).
const MAX_ENTRIES_FILE_BYTES: u64 = 2 << 30;
const MAX_SMALL_FILE_BYTES: u64 = 64 * 1024;
/// Bytes read from the partition log per step when materialising entries.
const READ_CHUNK: usize = 4 * 1024 * 1024;
/// What one `limited_get_log_entries` call returns at most (at least one entry).
const REPLICATION_READ_LIMIT: usize = 8 * 1024 * 1024;
/// `committed.json` is rewritten at most this often: it only spares a restarted replica
/// re-applying (openraft treats a stale value as a lower bound), and a rewrite costs two
/// fsyncs.
const COMMITTED_WRITE_INTERVAL: Duration = Duration::from_millis(100);

/// openraft's [`RaftLogStorage`] for one partition group replica.
pub struct PartitionLogStore<C: PartitionTypes> {
    shared: Arc<Shared<C>>,
    writer: Arc<Mutex<Writer>>,
}

/// Reads entries for openraft's replication and apply tasks, concurrently with appends.
pub struct PartitionLogReader<C: PartitionTypes> {
    shared: Arc<Shared<C>>,
}

/// State readers share with the writer.
struct Shared<C: PartitionTypes> {
    dir: PathBuf,
    index: RwLock<EntryIndex<C>>,
    vote: Mutex<Option<VoteOf<C>>>,
    committed: Mutex<Option<LogIdOf<C>>>,
    reader: LogReader,
}

/// The single writer: the partition log and the open side file.
struct Writer {
    log: PartitionLog,
    side: File,
    /// Frames in `entries.bin`, to decide when a purge should rewrite it.
    frames: usize,
    committed_written: Option<Instant>,
}

/// What [`PartitionLogStore::open`] found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Bytes of a torn or corrupt `entries.bin` tail that were cut.
    pub side_bytes_cut: u64,
    /// Entries whose batches the partition log no longer holds (its own recovery cut a
    /// torn tail), dropped from the Raft view.
    pub entries_dropped: u64,
    /// Batches that were durable in the partition log but whose `entries.bin` frames
    /// were not, re-indexed after the last surviving frame.
    pub entries_adopted: u64,
    /// The Raft view after opening: last log index (None for an empty log).
    pub last_index: Option<u64>,
}

fn lock<T>(m: &Mutex<T>) -> io::Result<MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| io::Error::other("partition raft store lock poisoned"))
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn storage(e: swarmmq_storage::StorageError) -> io::Error {
    io::Error::other(e.to_string())
}

async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("storage task failed: {e}")))?
}

impl<C: PartitionTypes> PartitionLogStore<C> {
    /// Opens the Raft view of `log`, with its side files in `raft_dir` (created if
    /// needed). Lines the side index up with what the partition log's own recovery kept:
    /// entries whose batches are gone are dropped, durable batches without a frame are
    /// adopted. A partition log that already holds data but has no `entries.bin` is
    /// refused (turning an unreplicated partition into a group is not supported).
    pub fn open(
        log: PartitionLog,
        raft_dir: &Path,
    ) -> Result<(Self, OpenReport), ReplicationError> {
        std::fs::create_dir_all(raft_dir)?;
        let vote: Option<VoteOf<C>> = read_json(&raft_dir.join(VOTE_FILE), MAX_SMALL_FILE_BYTES)?;
        let committed: Option<LogIdOf<C>> =
            read_json(&raft_dir.join(COMMITTED_FILE), MAX_SMALL_FILE_BYTES)?;
        let side_path = raft_dir.join(ENTRIES_FILE);
        let mut report = OpenReport::default();

        let bytes = match read_bounded(&side_path, MAX_ENTRIES_FILE_BYTES)? {
            Some(b) => b,
            None => {
                if log.next_offset() != log.start_offset() {
                    return Err(ReplicationError::Inconsistent(format!(
                        "partition log {} holds offsets {}..{} but {} has no {ENTRIES_FILE}",
                        log.dir().display(),
                        log.start_offset(),
                        log.next_offset(),
                        raft_dir.display()
                    )));
                }
                let mut buf = Vec::new();
                encode::<C>(
                    &mut buf,
                    &Frame::Init {
                        end: log.next_offset(),
                    },
                )?;
                write_atomic(&side_path, &buf)?;
                buf
            }
        };
        let (frames, good_len, bad) = decode_frames::<C>(&bytes);
        let mut index = EntryIndex::<C>::new(log.next_offset());
        let mut replayed = 0usize;
        let mut cut_at = bad.map(|reason| (good_len, reason));
        let mut pos = 0usize;
        for frame in frames {
            let mut one = Vec::new();
            encode(&mut one, &frame)?;
            if let Err(reason) = index.replay(frame) {
                cut_at = Some((pos, reason));
                break;
            }
            pos += one.len();
            replayed += 1;
        }
        let side = OpenOptions::new().append(true).open(&side_path)?;
        if let Some((at, reason)) = cut_at {
            if non_data_frame_after::<C>(&bytes, at) {
                return Err(ReplicationError::Inconsistent(format!(
                    "{}: damage at byte {at} ({reason}) with blank or membership entries after it",
                    side_path.display()
                )));
            }
            tracing::warn!(
                path = %side_path.display(),
                position = at,
                dropped_bytes = bytes.len() - at,
                "partition raft index: cutting a torn or inconsistent tail ({reason})"
            );
            side.set_len(at as u64)?;
            side.sync_all()?;
            report.side_bytes_cut = (bytes.len() - at) as u64;
        }
        let mut writer = Writer {
            log,
            side,
            frames: replayed,
            committed_written: None,
        };
        reconcile(&mut writer, &mut index, &mut report)?;
        report.last_index = index.last_log_id().map(|id| id.index);
        let reader = writer.log.reader();
        Ok((
            PartitionLogStore {
                shared: Arc::new(Shared {
                    dir: raft_dir.to_path_buf(),
                    index: RwLock::new(index),
                    vote: Mutex::new(vote),
                    committed: Mutex::new(committed),
                    reader,
                }),
                writer: Arc::new(Mutex::new(writer)),
            },
            report,
        ))
    }

    /// A read handle on the partition log (for consumers; pass the committed end offset
    /// as `upto`).
    pub fn partition_reader(&self) -> LogReader {
        self.shared.reader.clone()
    }

    /// The partition offset after the last entry of the Raft log (committed or not).
    pub fn end_offset(&self) -> u64 {
        self.shared.index.read().map_or(0, |i| i.end())
    }

    /// The partition offset after entry `index`, if this replica holds it. The state
    /// machine uses it to turn a commit index into a visible end offset.
    pub fn end_offset_of(&self, index: u64) -> Option<u64> {
        self.shared.index.read().ok()?.get(index).map(|m| m.end)
    }

    /// Writes the latest committed log id now if the last write was skipped (the store
    /// rewrites `committed.json` at most every 100 ms); call before a planned shutdown.
    pub async fn flush_committed(&self) -> io::Result<()> {
        let shared = self.shared.clone();
        let writer = self.writer.clone();
        blocking(move || {
            let committed = *lock(&shared.committed)?;
            write_atomic(&shared.dir.join(COMMITTED_FILE), &to_json(&committed)?)?;
            lock(&writer)?.committed_written = Some(Instant::now());
            Ok(())
        })
        .await
    }
}

/// Makes the index agree with the partition log after both were recovered.
fn reconcile<C: PartitionTypes>(
    w: &mut Writer,
    index: &mut EntryIndex<C>,
    report: &mut OpenReport,
) -> Result<(), ReplicationError> {
    let log_next = w.log.next_offset();
    if index.end() > log_next {
        // The partition log lost batches that frames name (a crash before its fsync):
        // nothing from the first such entry on was acknowledged.
        let before = index.len();
        let mut keep: Option<u64> = None;
        let first_idx = index.next_index() - before as u64;
        for i in first_idx..index.next_index() {
            match index.get(i) {
                Some(m) if m.end <= log_next => keep = Some(i),
                _ => break,
            }
        }
        let end = index.truncate_after(keep);
        if end > log_next {
            return Err(ReplicationError::Inconsistent(format!(
                "purged entries end at offset {end}, the partition log at {log_next}"
            )));
        }
        report.entries_dropped = (before - index.len()) as u64;
        append_frames::<C>(w, &[Frame::Truncate { keep, end }], true)?;
        tracing::warn!(
            dir = %w.log.dir().display(),
            dropped = report.entries_dropped,
            "partition raft index: dropped entries the partition log no longer holds"
        );
    }
    // The last data entry must name exactly the batch the log holds there.
    if let Some(last) = index.last_log_id()
        && let Some(m) = index.get(last.index)
        && let Slot::Data { base } = m.slot
    {
        let got = w.log.reader().read(base, 1, m.end)?;
        match got.batches.first() {
            Some(b)
                if b.base_offset() == base && b.next_offset() == m.end && b.term() == m.term => {}
            other => {
                return Err(ReplicationError::Inconsistent(format!(
                    "entry {} names batch {base}..{} term {}, the log holds {:?}",
                    last.index,
                    m.end,
                    m.term,
                    other.map(|b| (b.base_offset(), b.next_offset(), b.term()))
                )));
            }
        }
    }
    // Durable batches whose frames were not: they follow every surviving frame.
    let mut frames = Vec::new();
    let reader = w.log.reader();
    let mut off = index.end();
    while off < log_next {
        let got = reader.read(off, READ_CHUNK, log_next)?;
        if got.batches.is_empty() {
            break;
        }
        for b in got.batches {
            if b.base_offset() != off || b.term() < index.last_term() {
                return Err(ReplicationError::Inconsistent(format!(
                    "cannot adopt batch {}..{} term {} after offset {off}, term {}",
                    b.base_offset(),
                    b.next_offset(),
                    b.term(),
                    index.last_term()
                )));
            }
            let meta = Meta {
                term: b.term(),
                end: b.next_offset(),
                slot: Slot::Data {
                    base: b.base_offset(),
                },
            };
            let at = index.next_index();
            index
                .push(at, meta.clone())
                .map_err(ReplicationError::Inconsistent)?;
            frames.push(Frame::Entry { index: at, meta });
            off = b.next_offset();
            report.entries_adopted += 1;
        }
    }
    if !frames.is_empty() {
        append_frames(w, &frames, true)?;
        tracing::info!(
            dir = %w.log.dir().display(),
            adopted = report.entries_adopted,
            "partition raft index: re-indexed durable batches whose frames were lost"
        );
    }
    Ok(())
}

fn append_frames<C: PartitionTypes>(
    w: &mut Writer,
    frames: &[Frame<C>],
    sync: bool,
) -> io::Result<()> {
    let mut buf = Vec::new();
    for f in frames {
        encode(&mut buf, f)?;
    }
    w.side.write_all(&buf)?;
    w.frames += frames.len();
    if sync {
        w.side.sync_data()?;
    }
    Ok(())
}

/// The bounds of `range` as `[start, end)`.
fn bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl<C: PartitionTypes> Shared<C> {
    /// Entries `[start, end)` as openraft entries, data read from the partition log; stops
    /// early once `byte_limit` bytes of batches are gathered (always at least one entry).
    fn read_entries(&self, start: u64, end: u64, byte_limit: usize) -> io::Result<Vec<C::Entry>> {
        let metas = {
            let index = self
                .index
                .read()
                .map_err(|_| io::Error::other("partition raft index lock poisoned"))?;
            index.range(start, end)
        };
        let mut out = Vec::with_capacity(metas.len());
        let mut pending: VecDeque<Batch> = VecDeque::new();
        let mut bytes = 0usize;
        for (i, m) in metas {
            let id = log_id(m.term, i);
            let entry = match &m.slot {
                Slot::Blank => C::Entry::new_blank(id),
                Slot::Membership(mem) => C::Entry::new_membership(id, (**mem).clone()),
                Slot::Data { base } => {
                    if !out.is_empty() && bytes >= byte_limit {
                        break;
                    }
                    while pending.front().is_some_and(|b| b.base_offset() < *base) {
                        pending.pop_front();
                    }
                    if pending.front().is_none_or(|b| b.base_offset() != *base) {
                        let got = self
                            .reader
                            .read(*base, READ_CHUNK, u64::MAX)
                            .map_err(storage)?;
                        pending = got.batches.into();
                    }
                    let batch = pending
                        .pop_front()
                        .ok_or_else(|| invalid(format!("entry {i}: no batch at offset {base}")))?;
                    if batch.base_offset() != *base
                        || batch.next_offset() != m.end
                        || batch.term() != m.term
                    {
                        // A truncation replaced these offsets while this read ran.
                        return Err(invalid(format!(
                            "entry {i}: expected batch {base}..{} term {}, found {}..{} term {}",
                            m.end,
                            m.term,
                            batch.base_offset(),
                            batch.next_offset(),
                            batch.term()
                        )));
                    }
                    bytes += batch.len();
                    C::Entry::new_normal(id, BatchData::from_bytes(batch.into_bytes()))
                }
            };
            out.push(entry);
        }
        Ok(out)
    }

    fn read_vote(&self) -> io::Result<Option<VoteOf<C>>> {
        Ok(lock(&self.vote)?.clone())
    }
}

impl<C: PartitionTypes> RaftLogReader<C> for PartitionLogReader<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        let (start, end) = bounds(&range);
        let shared = self.shared.clone();
        blocking(move || shared.read_entries(start, end, usize::MAX)).await
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        self.shared.read_vote()
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<C::Entry>, io::Error> {
        let shared = self.shared.clone();
        blocking(move || shared.read_entries(start, end, REPLICATION_READ_LIMIT)).await
    }

    /// Applying a long range (a restart re-applies from the log start) must not load the
    /// whole partition into memory: entries are read in chunks of bounded bytes.
    async fn entries_stream<RB>(
        &mut self,
        range: RB,
    ) -> impl futures_util::Stream<Item = Result<C::Entry, io::Error>> + OptionalSend
    where
        RB: RangeBounds<u64> + Clone + Debug + OptionalSend,
    {
        use futures_util::StreamExt;
        let (start, end) = bounds(&range);
        let shared = self.shared.clone();
        futures_util::stream::unfold(Some(start), move |next| {
            let shared = shared.clone();
            async move {
                let from = next.filter(|n| *n < end)?;
                let chunk =
                    blocking(move || shared.read_entries(from, end, REPLICATION_READ_LIMIT)).await;
                match chunk {
                    Ok(entries) => {
                        // An empty chunk means the log holds nothing more in the range.
                        let after = entries.last().map(|e| e.index() + 1);
                        let items: Vec<Result<C::Entry, io::Error>> =
                            entries.into_iter().map(Ok).collect();
                        Some((futures_util::stream::iter(items), after))
                    }
                    Err(e) => Some((futures_util::stream::iter(vec![Err(e)]), None)),
                }
            }
        })
        .flatten()
    }
}

impl<C: PartitionTypes> RaftLogReader<C> for PartitionLogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        let (start, end) = bounds(&range);
        let shared = self.shared.clone();
        blocking(move || shared.read_entries(start, end, usize::MAX)).await
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        self.shared.read_vote()
    }
}

/// Appends `entries` to the partition log and the index; see the module doc for the
/// order of writes and fsyncs.
fn append_blocking<C: PartitionTypes>(
    shared: &Shared<C>,
    writer: &Mutex<Writer>,
    entries: Vec<C::Entry>,
) -> io::Result<()> {
    let mut w = lock(writer)?;
    let mut frames: Vec<Frame<C>> = Vec::new();
    let mut wrote_data = false;
    for e in entries {
        let id = e.log_id();
        let (index, term) = (id.index, id.leader_id.term);
        let meta = match e.batch() {
            Some(data) => {
                let base = w.log.next_offset();
                let bytes = if data.is_fresh() {
                    data.stamped(base, term)
                } else {
                    data.as_bytes().clone()
                };
                let batch =
                    Batch::parse(bytes).map_err(|err| invalid(format!("entry {index}: {err}")))?;
                if batch.base_offset() != base || batch.term() != term {
                    return Err(invalid(format!(
                        "entry {index} (term {term}) carries batch {}..{} term {}; the log is at offset {base}",
                        batch.base_offset(),
                        batch.next_offset(),
                        batch.term()
                    )));
                }
                w.log.append_raw(&batch).map_err(storage)?;
                wrote_data = true;
                Meta {
                    term,
                    end: batch.next_offset(),
                    slot: Slot::Data { base },
                }
            }
            None => {
                let end = w.log.next_offset();
                let slot = match e.get_membership() {
                    Some(m) => Slot::Membership(Arc::new(m)),
                    None => Slot::Blank,
                };
                Meta { term, end, slot }
            }
        };
        let is_data = matches!(meta.slot, Slot::Data { .. });
        shared
            .index
            .write()
            .map_err(|_| io::Error::other("partition raft index lock poisoned"))?
            .push(index, meta.clone())
            .map_err(invalid)?;
        frames.push(Frame::Entry { index, meta });
        if !is_data {
            // No batch can rebuild this entry: durable before anything after it.
            append_frames(&mut w, &frames, true)?;
            frames.clear();
        }
    }
    if !frames.is_empty() {
        append_frames(&mut w, &frames, false)?;
    }
    if wrote_data {
        w.log.sync().map_err(storage)?;
    }
    Ok(())
}

impl<C: PartitionTypes> RaftLogStorage<C> for PartitionLogStore<C> {
    type LogReader = PartitionLogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let index = self
            .shared
            .index
            .read()
            .map_err(|_| io::Error::other("partition raft index lock poisoned"))?;
        Ok(LogState {
            last_purged_log_id: index.last_purged(),
            last_log_id: index.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        PartitionLogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        let vote = vote.clone();
        blocking(move || {
            write_atomic(&shared.dir.join(VOTE_FILE), &to_json(&vote)?)?;
            *lock(&shared.vote)? = Some(vote);
            Ok(())
        })
        .await
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        let writer = self.writer.clone();
        blocking(move || {
            {
                let mut c = lock(&shared.committed)?;
                if *c == committed {
                    return Ok(());
                }
                *c = committed;
            }
            let mut w = lock(&writer)?;
            if w.committed_written
                .is_some_and(|t| t.elapsed() < COMMITTED_WRITE_INTERVAL)
            {
                return Ok(());
            }
            write_atomic(&shared.dir.join(COMMITTED_FILE), &to_json(&committed)?)?;
            w.committed_written = Some(Instant::now());
            Ok(())
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(*lock(&self.shared.committed)?)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        let shared = self.shared.clone();
        let writer = self.writer.clone();
        let result = blocking(move || append_blocking(&shared, &writer, entries)).await;
        match result {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        let writer = self.writer.clone();
        blocking(move || {
            let mut w = lock(&writer)?;
            let mut index = shared
                .index
                .write()
                .map_err(|_| io::Error::other("partition raft index lock poisoned"))?;
            let keep = last_log_id.map(|id| id.index);
            if keep.is_some_and(|k| k.saturating_add(1) >= index.next_index()) {
                return Ok(());
            }
            // The batches go first, durably: if the frame below is lost, the next open
            // sees frames past the log's end and drops them, leaving a prefix of the old
            // log, never a renumbered one.
            let end = keep
                .and_then(|k| index.get(k))
                .map_or(index.end_before_first(), |m| m.end);
            w.log.truncate_suffix(end).map_err(storage)?;
            let now = index.truncate_after(keep);
            debug_assert_eq!(now, end);
            append_frames::<C>(&mut w, &[Frame::Truncate { keep, end }], true)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        let writer = self.writer.clone();
        blocking(move || {
            let mut w = lock(&writer)?;
            let mut index = shared
                .index
                .write()
                .map_err(|_| io::Error::other("partition raft index lock poisoned"))?;
            if index.last_purged().is_some_and(|p| p >= log_id) {
                return Ok(());
            }
            // The batches stay: deleting partition data is retention's job, which runs on
            // whole segments. Only the Raft view forgets the entries.
            index.purge(log_id.index, log_id.leader_id.term);
            let frame = Frame::Purge {
                index: log_id.index,
                term: log_id.leader_id.term,
                end: index.end_before_first(),
            };
            append_frames::<C>(&mut w, &[frame], true)?;
            // Compact the side file once most of it describes purged entries.
            if w.frames > 2 * index.len() + 1024 {
                let mut buf = Vec::new();
                index.encode_all(&mut buf)?;
                let path = shared.dir.join(ENTRIES_FILE);
                write_atomic(&path, &buf)?;
                w.side = OpenOptions::new().append(true).open(&path)?;
                w.frames = index.len() + 1;
                sync_dir(&path)?;
            }
            Ok(())
        })
        .await
    }
}

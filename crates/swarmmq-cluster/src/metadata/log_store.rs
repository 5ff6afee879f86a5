//! The Raft log, vote and committed id of the metadata group, on disk in one directory.
//!
//! Files:
//! - `log.bin`: append-only frames `[len u32 LE][crc32c u32 LE][payload]`, payload =
//!   `[kind u8][JSON]`, kind 0 = "purged up to this log id", kind 1 = one entry. Appends
//!   are fsynced before openraft hears they are durable. Truncate and purge rewrite the
//!   whole file atomically: the metadata log is small and snapshots bound it.
//! - `vote.json`, `committed.json`: replaced atomically.
//!
//! All entries also live in memory (the log is bounded by the snapshot policy), so reads
//! never touch the disk.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{LogIdOf, VoteOf};
use openraft::{OptionalSend, RaftTypeConfig};

use super::durable::{read_bounded, sync_dir, write_atomic};

/// Largest frame payload (one encoded entry); bigger commands are refused before proposing.
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;
/// Largest log file read on open; the snapshot policy keeps real logs far below this.
const MAX_LOG_FILE_BYTES: u64 = 1024 * 1024 * 1024;
/// Largest vote / committed file.
const MAX_SMALL_FILE_BYTES: u64 = 64 * 1024;
const FRAME_HEADER: usize = 8;
const KIND_PURGED: u8 = 0;
const KIND_ENTRY: u8 = 1;

const LOG_FILE: &str = "log.bin";
const VOTE_FILE: &str = "vote.json";
const COMMITTED_FILE: &str = "committed.json";

/// The metadata group's [`RaftLogStorage`]; generic so openraft's conformance suite can
/// drive it with its own node-id type.
pub struct LogStore<C: RaftTypeConfig> {
    inner: Arc<Mutex<LogInner<C>>>,
}

/// A reader sharing the store's memory (openraft reads from its own tasks).
pub struct LogReader<C: RaftTypeConfig> {
    inner: Arc<Mutex<LogInner<C>>>,
}

struct LogInner<C: RaftTypeConfig> {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, C::Entry>,
    last_purged: Option<LogIdOf<C>>,
    vote: Option<VoteOf<C>>,
    committed: Option<LogIdOf<C>>,
}

/// One decoded frame.
enum Record<C: RaftTypeConfig> {
    Purged(LogIdOf<C>),
    Entry(C::Entry),
}

impl<C: RaftTypeConfig> LogStore<C>
where
    C::Entry: Clone,
{
    /// Opens (or creates) the log in `dir`. A torn or corrupt tail is cut off with one warning.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let vote = read_json(&dir.join(VOTE_FILE))?;
        let committed = read_json(&dir.join(COMMITTED_FILE))?;

        let log_path = dir.join(LOG_FILE);
        let bytes = read_bounded(&log_path, MAX_LOG_FILE_BYTES)?.unwrap_or_default();
        let (records, good_len, bad) = decode_frames::<C>(&bytes);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        if let Some(reason) = bad {
            tracing::warn!(
                path = %log_path.display(),
                offset = good_len,
                dropped_bytes = bytes.len() - good_len,
                "metadata raft log: cutting a torn or corrupt tail ({reason})"
            );
            file.set_len(good_len as u64)?;
            file.sync_all()?;
        } else if bytes.is_empty() {
            // A freshly created file must survive a crash like the vote does.
            sync_dir(&log_path)?;
        }

        let mut entries = BTreeMap::new();
        let mut last_purged: Option<LogIdOf<C>> = None;
        for rec in records {
            match rec {
                Record::Purged(id) => {
                    entries.retain(|idx, _| *idx > id.index());
                    last_purged = Some(id);
                }
                Record::Entry(e) => {
                    let idx = e.index();
                    // Frames are written in index order; a lower index means a rewrite
                    // raced a crash, and the later frame wins, as in the rewrite itself.
                    entries.retain(|i, _| *i < idx);
                    entries.insert(idx, e);
                }
            }
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(LogInner {
                dir: dir.to_path_buf(),
                file,
                entries,
                last_purged,
                vote,
                committed,
            })),
        })
    }
}

fn lock<C: RaftTypeConfig>(m: &Mutex<LogInner<C>>) -> io::Result<MutexGuard<'_, LogInner<C>>> {
    m.lock()
        .map_err(|_| io::Error::other("metadata log lock poisoned"))
}

impl<C: RaftTypeConfig> LogInner<C>
where
    C::Entry: Clone,
{
    fn last_log_id(&self) -> Option<LogIdOf<C>> {
        match self.entries.last_key_value() {
            Some((_, e)) => Some(e.log_id()),
            None => self.last_purged.clone(),
        }
    }

    fn range<RB: RangeBounds<u64>>(&self, range: RB) -> Vec<C::Entry> {
        let start = match range.start_bound() {
            Bound::Included(s) => Bound::Included(*s),
            Bound::Excluded(s) => Bound::Excluded(*s),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(s) => Bound::Included(*s),
            Bound::Excluded(s) => Bound::Excluded(*s),
            Bound::Unbounded => Bound::Unbounded,
        };
        // An inverted range would make BTreeMap::range panic; openraft may ask for empty ones.
        let empty = match (start, end) {
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s), Bound::Excluded(e)) | (Bound::Excluded(s), Bound::Included(e)) => {
                s >= e
            }
            (Bound::Excluded(s), Bound::Excluded(e)) => s >= e || s + 1 >= e,
            _ => false,
        };
        if empty {
            return Vec::new();
        }
        self.entries
            .range((start, end))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Replaces `log.bin` with the purge marker and the entries kept in memory.
    fn rewrite(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        if let Some(p) = &self.last_purged {
            encode_frame(&mut buf, KIND_PURGED, p)?;
        }
        for e in self.entries.values() {
            encode_frame(&mut buf, KIND_ENTRY, e)?;
        }
        let path = self.dir.join(LOG_FILE);
        write_atomic(&path, &buf)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        Ok(())
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogReader<C>
where
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        Ok(lock(&self.inner)?.range(range))
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(lock(&self.inner)?.vote.clone())
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C>
where
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        Ok(lock(&self.inner)?.range(range))
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(lock(&self.inner)?.vote.clone())
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C>
where
    C::Entry: Clone,
{
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let inner = lock(&self.inner)?;
        Ok(LogState {
            last_purged_log_id: inner.last_purged.clone(),
            last_log_id: inner.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            inner: self.inner.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        let mut inner = lock(&self.inner)?;
        write_atomic(&inner.dir.join(VOTE_FILE), &to_json(vote)?)?;
        inner.vote = Some(vote.clone());
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let mut inner = lock(&self.inner)?;
        if inner.committed == committed {
            return Ok(());
        }
        write_atomic(&inner.dir.join(COMMITTED_FILE), &to_json(&committed)?)?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(lock(&self.inner)?.committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let result = (|| {
            let mut inner = lock(&self.inner)?;
            let entries: Vec<C::Entry> = entries.into_iter().collect();
            let mut buf = Vec::new();
            for e in &entries {
                encode_frame(&mut buf, KIND_ENTRY, e)?;
            }
            inner.file.write_all(&buf)?;
            // Durable before openraft may count this node's ack toward a quorum.
            inner.file.sync_data()?;
            for e in entries {
                inner.entries.insert(e.index(), e);
            }
            Ok::<(), io::Error>(())
        })();
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
        let mut inner = lock(&self.inner)?;
        match &last_log_id {
            Some(id) => {
                let keep = id.index();
                inner.entries.retain(|idx, _| *idx <= keep);
            }
            None => inner.entries.clear(),
        }
        inner.rewrite()
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        let mut inner = lock(&self.inner)?;
        if inner.last_purged.as_ref().is_some_and(|p| *p >= log_id) {
            return Ok(());
        }
        let upto = log_id.index();
        inner.entries.retain(|idx, _| *idx > upto);
        inner.last_purged = Some(log_id);
        inner.rewrite()
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match read_bounded(path, MAX_SMALL_FILE_BYTES)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
    }
}

fn encode_frame<T: serde::Serialize>(buf: &mut Vec<u8>, kind: u8, v: &T) -> io::Result<()> {
    let mut payload = vec![kind];
    serde_json::to_writer(&mut payload, v)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if payload.len() > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "log entry of {} bytes exceeds {MAX_FRAME_BYTES}",
                payload.len()
            ),
        ));
    }
    // Checked above: the payload fits in u32.
    let len = payload.len() as u32;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
    Ok(())
}

/// Decodes frames until the end or the first bad one; returns the records, the length of
/// the good prefix and why decoding stopped early, if it did.
fn decode_frames<C: RaftTypeConfig>(bytes: &[u8]) -> (Vec<Record<C>>, usize, Option<String>) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let Some(header) = bytes.get(pos..pos + FRAME_HEADER) else {
            return (out, pos, Some("short frame header".to_string()));
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_FRAME_BYTES {
            return (out, pos, Some(format!("bad frame length {len}")));
        }
        let start = pos + FRAME_HEADER;
        let Some(payload) = bytes.get(start..start + len) else {
            return (out, pos, Some("short frame payload".to_string()));
        };
        if crc32c::crc32c(payload) != crc {
            return (out, pos, Some("crc mismatch".to_string()));
        }
        let body = &payload[1..];
        let rec = match payload[0] {
            KIND_PURGED => serde_json::from_slice(body).map(Record::Purged),
            KIND_ENTRY => serde_json::from_slice(body).map(Record::Entry),
            k => return (out, pos, Some(format!("unknown frame kind {k}"))),
        };
        match rec {
            Ok(r) => out.push(r),
            Err(e) => return (out, pos, Some(format!("undecodable frame: {e}"))),
        }
        pos = start + len;
    }
    (out, pos, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::storage::RaftLogStorageExt;
    use openraft::vote::{RaftLeaderId, RaftVote};

    openraft::declare_raft_types!(
        Cfg: D = String, R = String
    );

    type E = <Cfg as RaftTypeConfig>::Entry;

    fn log_id(term: u64, index: u64) -> LogIdOf<Cfg> {
        openraft::LogId::new(
            openraft::vote::leader_id_adv::CommittedLeaderId::new(term, 1),
            index,
        )
    }

    fn entry(term: u64, index: u64) -> E {
        E::new_normal(log_id(term, index), format!("cmd-{index}"))
    }

    async fn indexes(store: &mut LogStore<Cfg>) -> Vec<u64> {
        store
            .try_get_log_entries(0..u64::MAX)
            .await
            .unwrap()
            .iter()
            .map(|e| e.index())
            .collect()
    }

    #[tokio::test]
    async fn append_read_and_vote_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = LogStore::<Cfg>::open(dir.path()).unwrap();
            s.blocking_append((1..=5).map(|i| entry(1, i)))
                .await
                .unwrap();
            let vote = VoteOf::<Cfg>::from_leader_id(
                openraft::vote::leader_id_adv::LeaderId::new(2, 1),
                true,
            );
            s.save_vote(&vote).await.unwrap();
            s.save_committed(Some(log_id(1, 4))).await.unwrap();
        }
        let mut s = LogStore::<Cfg>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut s).await, vec![1, 2, 3, 4, 5]);
        let got = s.try_get_log_entries(2..4).await.unwrap();
        assert_eq!(got, vec![entry(1, 2), entry(1, 3)]);
        let (hi, lo) = (4u64, 2u64);
        assert!(s.try_get_log_entries(hi..lo).await.unwrap().is_empty());
        let vote = s.read_vote().await.unwrap().unwrap();
        assert_eq!(vote.leader_id().term, 2);
        assert!(vote.is_committed());
        assert_eq!(s.read_committed().await.unwrap(), Some(log_id(1, 4)));
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(log_id(1, 5)));
        assert_eq!(st.last_purged_log_id, None);
    }

    #[tokio::test]
    async fn truncate_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = LogStore::<Cfg>::open(dir.path()).unwrap();
            s.blocking_append((1..=10).map(|i| entry(1, i)))
                .await
                .unwrap();
            s.truncate_after(Some(log_id(1, 7))).await.unwrap();
            // A new leader's entries replace the truncated tail.
            s.blocking_append((8..=9).map(|i| entry(2, i)))
                .await
                .unwrap();
            s.purge(log_id(1, 3)).await.unwrap();
            assert_eq!(indexes(&mut s).await, vec![4, 5, 6, 7, 8, 9]);
        }
        let mut s = LogStore::<Cfg>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut s).await, vec![4, 5, 6, 7, 8, 9]);
        assert_eq!(
            s.try_get_log_entries(8..=8).await.unwrap(),
            vec![entry(2, 8)]
        );
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id(1, 3)));
        assert_eq!(st.last_log_id, Some(log_id(2, 9)));

        // Purging everything keeps the purge point as the last log id.
        s.purge(log_id(2, 9)).await.unwrap();
        drop(s);
        let mut s = LogStore::<Cfg>::open(dir.path()).unwrap();
        assert!(indexes(&mut s).await.is_empty());
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(log_id(2, 9)));
        assert_eq!(st.last_purged_log_id, Some(log_id(2, 9)));

        s.truncate_after(None).await.unwrap();
        s.blocking_append([entry(3, 10)]).await.unwrap();
        drop(s);
        let mut s = LogStore::<Cfg>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut s).await, vec![10]);
    }

    #[tokio::test]
    async fn torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        {
            let mut s = LogStore::<Cfg>::open(dir.path()).unwrap();
            s.blocking_append((1..=3).map(|i| entry(1, i)))
                .await
                .unwrap();
        }
        let full = std::fs::read(&path).unwrap();
        // Half of a fourth frame, as a crash mid-write leaves it.
        let mut frame = Vec::new();
        encode_frame(&mut frame, KIND_ENTRY, &entry(1, 4)).unwrap();
        let mut torn = full.clone();
        torn.extend_from_slice(&frame[..frame.len() / 2]);
        std::fs::write(&path, &torn).unwrap();
        {
            let mut s = LogStore::<Cfg>::open(dir.path()).unwrap();
            assert_eq!(indexes(&mut s).await, vec![1, 2, 3]);
            assert_eq!(std::fs::read(&path).unwrap(), full);
            s.blocking_append([entry(1, 4)]).await.unwrap();
        }
        let mut s = LogStore::<Cfg>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut s).await, vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn corrupt_last_entry_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        {
            let mut s = LogStore::<Cfg>::open(dir.path()).unwrap();
            s.blocking_append((1..=3).map(|i| entry(1, i)))
                .await
                .unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let mut s = LogStore::<Cfg>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut s).await, vec![1, 2]);
        assert_eq!(
            s.get_log_state().await.unwrap().last_log_id,
            Some(log_id(1, 2))
        );
    }

    #[test]
    fn oversized_length_is_a_bad_frame_not_an_allocation() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        let (records, good, bad) = decode_frames::<Cfg>(&bytes);
        assert!(records.is_empty());
        assert_eq!(good, 0);
        assert!(bad.unwrap().contains("length"));
    }

    #[tokio::test]
    async fn entry_over_the_frame_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::<Cfg>::open(dir.path()).unwrap();
        let big = E::new_normal(log_id(1, 1), "x".repeat(MAX_FRAME_BYTES));
        assert!(s.blocking_append([big]).await.is_err());
        assert!(indexes(&mut s).await.is_empty());
    }
}

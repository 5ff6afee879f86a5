//! Throughput and commit latency of the group-commit write pattern: batches of ~1 MiB
//! (1 KiB records) appended and fsynced one commit at a time, as the node's partition
//! writer does under load. A second thread builds and encrypts the batches (the node's
//! network tasks do that), so the commit loop measures the storage path.
//!
//! `cargo run --release -p swarmmq-storage --example group_commit -- DIR direct|buffered [TOTAL_MB] [RECORDS_PER_BATCH]`
//!
//! Writes into a fresh temporary directory under DIR, deleted at the end. Prints the
//! mode actually in use, MB/s (wall clock, and commit time only), commit latency
//! percentiles and the CPU time per GB of the commit thread and of the whole process
//! (kernel writeback threads are in neither).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use swarmmq_crypto::{KeyRing, MasterKey};
use swarmmq_storage::{
    BatchBuilder, EncodedBatch, FsyncPolicy, IoMode, LogConfig, PartitionLog, RecordInput,
};

/// User + system CPU seconds so far of this process (`/proc/self/stat`) or of the
/// calling thread (`/proc/thread-self/stat`); 0 where missing.
fn cpu_seconds(stat_file: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat_file) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields here start at 3 (state), so utime (14) is index 11.
    (ticks(11) + ticks(12)) / 100.0
}

fn build(ring: &KeyRing, records: usize, payload: &[u8]) -> Result<EncodedBatch, String> {
    let mut b = BatchBuilder::new(ring, 1, records * (payload.len() + 40) + 128)
        .map_err(|e| e.to_string())?;
    for _ in 0..records {
        b.push(RecordInput {
            timestamp_ms: swarmmq_types::now_ms(),
            priority: 5,
            id: None,
            key: None,
            headers: &[],
            deliver_at_ms: None,
            expires_at_ms: None,
            payload,
        })
        .map_err(|e| e.to_string())?;
    }
    Ok(b.finish())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let io = match args.next().as_deref() {
        None | Some("direct") => IoMode::Direct,
        Some("buffered") => IoMode::Buffered,
        Some(other) => return Err(format!("mode must be direct or buffered, got {other}").into()),
    };
    let total_mb: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2048);
    let records: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let dir = tempfile::tempdir_in(base)?;
    let config = LogConfig {
        fsync: FsyncPolicy::Always,
        io,
        ..LogConfig::default()
    };
    let (mut log, _) = PartitionLog::open(dir.path(), config)?;

    let (tx, rx) = mpsc::sync_channel::<EncodedBatch>(8);
    let target = total_mb << 20;
    let builder = std::thread::spawn(move || -> Result<(), String> {
        let ring = KeyRing::single(MasterKey::generate().map_err(|e| e.to_string())?);
        let payload = vec![0x42u8; 1024];
        let mut sent = 0u64;
        while sent < target {
            let b = build(&ring, records, &payload)?;
            sent += b.len() as u64;
            if tx.send(b).is_err() {
                break;
            }
        }
        Ok(())
    });

    let cpu0 = cpu_seconds("/proc/self/stat");
    let thread0 = cpu_seconds("/proc/thread-self/stat");
    let start = Instant::now();
    let mut commit = Vec::new();
    let mut busy = Duration::ZERO;
    let mut bytes = 0u64;
    for batch in rx {
        let t = Instant::now();
        let len = batch.len() as u64;
        log.append(&mut [batch], 1)?;
        log.sync()?;
        let d = t.elapsed();
        busy += d;
        commit.push(d.as_micros() as u64);
        bytes += len;
    }
    let wall = start.elapsed();
    let thread_cpu = cpu_seconds("/proc/thread-self/stat") - thread0;
    let cpu = cpu_seconds("/proc/self/stat") - cpu0;
    builder.join().map_err(|_| "builder panicked")??;
    commit.sort_unstable();
    let pct = |p: f64| commit[((commit.len() - 1) as f64 * p) as usize];
    println!(
        "mode {:?}: {} MB in {} commits of {} KiB: {:.0} MB/s wall, {:.0} MB/s commit-only; commit p50 {} us, p99 {} us, max {} us; CPU per GB: commit thread {:.2} s, process {:.2} s",
        log.io_mode(),
        bytes / 1_000_000,
        commit.len(),
        bytes / commit.len() as u64 / 1024,
        bytes as f64 / wall.as_secs_f64() / 1e6,
        bytes as f64 / busy.as_secs_f64() / 1e6,
        pct(0.5),
        pct(0.99),
        pct(1.0),
        thread_cpu / (bytes as f64 / 1e9),
        cpu / (bytes as f64 / 1e9),
    );
    log.close()?;
    Ok(())
}

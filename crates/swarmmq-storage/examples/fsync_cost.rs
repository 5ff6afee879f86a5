//! One-off measurement of the durable write path on this disk: append one 1 MiB batch
//! (1024 records of 1 KiB) and fsync it, repeatedly, with `FsyncPolicy::Always`.
//!
//! `cargo run --release -p swarmmq-storage --example fsync_cost [DIR] [ROUNDS] [direct|buffered]`
//!
//! The mode defaults to `direct` (which falls back to buffered where unsupported; the
//! mode actually in use is printed).

use std::time::Instant;

use swarmmq_crypto::{KeyRing, MasterKey};
use swarmmq_storage::{BatchBuilder, FsyncPolicy, IoMode, LogConfig, PartitionLog, RecordInput};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let rounds: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(200);
    let io = match args.next().as_deref() {
        None | Some("direct") => IoMode::Direct,
        Some("buffered") => IoMode::Buffered,
        Some(other) => return Err(format!("mode must be direct or buffered, got {other}").into()),
    };
    let dir = tempfile::tempdir_in(base)?;
    let ring = KeyRing::single(MasterKey::generate()?);
    let config = LogConfig {
        fsync: FsyncPolicy::Always,
        io,
        ..LogConfig::default()
    };
    let (mut log, _) = PartitionLog::open(dir.path(), config)?;
    println!("io mode: {:?}", log.io_mode());
    let payload = vec![0x42u8; 1024];
    let mut append_us = Vec::with_capacity(rounds);
    let mut sync_us = Vec::with_capacity(rounds);
    let mut bytes = 0u64;
    let start = Instant::now();
    for _ in 0..rounds {
        let mut b = BatchBuilder::new(&ring, 1, 1100 * 1024)?;
        for _ in 0..1024 {
            b.push(RecordInput {
                timestamp_ms: swarmmq_types::now_ms(),
                priority: 5,
                id: None,
                key: None,
                headers: &[],
                deliver_at_ms: None,
                expires_at_ms: None,
                payload: &payload,
            })?;
        }
        let mut batch = [b.finish()];
        bytes += batch[0].len() as u64;
        let t = Instant::now();
        log.append(&mut batch, 1)?;
        let t2 = Instant::now();
        log.sync()?;
        append_us.push(t2.duration_since(t).as_micros() as u64);
        sync_us.push(t2.elapsed().as_micros() as u64);
    }
    let total = start.elapsed();
    append_us.sort_unstable();
    sync_us.sort_unstable();
    let pct = |v: &[u64], p: f64| v[((v.len() - 1) as f64 * p) as usize];
    println!("dir: {}", dir.path().display());
    println!(
        "rounds: {rounds} x {} KiB batches",
        bytes / rounds as u64 / 1024
    );
    println!(
        "append (write only): p50 {} us, p99 {} us",
        pct(&append_us, 0.5),
        pct(&append_us, 0.99)
    );
    println!(
        "fdatasync:           p50 {} us, p99 {} us",
        pct(&sync_us, 0.5),
        pct(&sync_us, 0.99)
    );
    println!(
        "end to end incl. build+encrypt: {:.1} MB/s",
        bytes as f64 / total.as_secs_f64() / 1e6
    );
    Ok(())
}

//! How big and how fast the block index is at scale.
//!
//! `cargo bench --bench db_size [-- N]` (N files, default 1,000,000) builds a temporary
//! index holding N files as the local device's entries and the same files as one peer's
//! index, the way the scanner and the index exchange write them (batches of 1000), then
//! prints the insert throughput, the database bytes per file after a checkpoint (the design
//! goal is at most 400), and the time of the reads that matter at that size: opening
//! (with its integrity check), `scan_state` (a warm rescan), a walk of the whole folder
//! (`shoal ls`) and block lookups.

use shoal::db::{Db, LocalChange};
use shoal::identity::{DeviceId, ShortId};
use shoal::protocol::{BlockHash, BlockInfo, FileInfo, FileType, Vector};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const FOLDER: &str = "bench-folder";
const BATCH: usize = 1000;
/// One file in this many has many blocks (a big file), the others one block (4 KiB).
const BIG_EVERY: usize = 10_000;
const BIG_BLOCKS: u32 = 64;
/// Batches the bench keeps queued before it waits for the oldest: the writer commits all
/// queued batches in one transaction, so this sets the transaction size (measured at 1 M
/// files: 8 in flight 15.8 s for the local entries, 32 in flight 9.9 s).
const IN_FLIGHT: usize = 32;

fn name(i: usize) -> String {
    format!("d{:04}/f{i:07}.dat", i / 1000)
}

fn block(i: usize, n: u32) -> BlockHash {
    let mut seed = [0u8; 12];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    seed[8..].copy_from_slice(&n.to_le_bytes());
    BlockHash::of(&seed)
}

fn file(i: usize) -> FileInfo {
    let blocks: Vec<BlockInfo> = if i.is_multiple_of(BIG_EVERY) {
        (0..BIG_BLOCKS)
            .map(|n| BlockInfo {
                hash: block(i, n),
                size: 64 * 1024 + n,
            })
            .collect()
    } else {
        vec![BlockInfo {
            hash: block(i, 0),
            size: 4096,
        }]
    };
    FileInfo {
        name: name(i),
        file_type: FileType::File,
        size: blocks.iter().map(|b| u64::from(b.size)).sum(),
        permissions: 0o644,
        modified_ns: 1_700_000_000_000_000_000 + i as i64 * 1_000_003,
        modified_by: ShortId(0),
        deleted: false,
        version: Vector::new(),
        sequence: 0,
        blocks,
        symlink_target: String::new(),
    }
}

fn change(i: usize) -> LocalChange {
    LocalChange {
        info: file(i),
        inode: 5_000_000 + i as u64,
        ctime_ns: 1_700_000_000_000_000_000 + i as i64 * 999_983,
    }
}

fn rate(n: usize, d: Duration) -> String {
    format!(
        "{:.2} s ({:.0} files/s)",
        d.as_secs_f64(),
        n as f64 / d.as_secs_f64()
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; the first plain number is N.
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("index.db");
    let local = DeviceId::from_bytes([1; 32]);
    let peer = DeviceId::from_bytes([2; 32]);
    println!("db_size: {n} files, local index + one peer's index, batches of {BATCH}");

    // What one scan of 20,000 small files costs when each batch waits for its commit.
    {
        let dir = tempfile::tempdir()?;
        let db = Db::open(&dir.path().join("index.db"), local)?;
        let t = Instant::now();
        for start in (0..20_000).step_by(BATCH) {
            db.update_local(FOLDER, (start..start + BATCH).map(change).collect())?;
        }
        println!(
            "  20,000 local files, one batch at a time: {}",
            rate(20_000, t.elapsed())
        );
    }

    // The bulk load, with a few batches in flight as a scanner that hashes the next batch
    // meanwhile would have: the writer commits whatever is queued in one transaction.
    let db = Db::open(&path, local)?;
    let t = Instant::now();
    let mut in_flight = VecDeque::new();
    for start in (0..n).step_by(BATCH) {
        let changes: Vec<LocalChange> = (start..(start + BATCH).min(n)).map(change).collect();
        in_flight.push_back(db.submit_local(FOLDER, changes)?);
        if in_flight.len() >= IN_FLIGHT
            && let Some(p) = in_flight.pop_front()
        {
            p.wait()?;
        }
    }
    for p in in_flight.drain(..) {
        p.wait()?;
    }
    println!("  local entries:  {}", rate(n, t.elapsed()));
    let mut in_flight = VecDeque::new();

    // The same files as the peer's index, as its index exchange would deliver them.
    let version = Vector::new().updated(local.short(), 1_700_000_000);
    let t = Instant::now();
    for start in (0..n).step_by(BATCH) {
        let files: Vec<FileInfo> = (start..(start + BATCH).min(n))
            .map(|i| FileInfo {
                version: version.clone(),
                modified_by: local.short(),
                sequence: i as u64 + 1,
                ..file(i)
            })
            .collect();
        in_flight.push_back(db.submit_remote(FOLDER, peer, 0x5eed, files)?);
        if in_flight.len() >= IN_FLIGHT
            && let Some(p) = in_flight.pop_front()
        {
            p.wait()?;
        }
    }
    for p in in_flight.drain(..) {
        p.wait()?;
    }
    println!("  peer entries:   {}", rate(n, t.elapsed()));

    let t = Instant::now();
    db.checkpoint()?;
    println!("  checkpoint:     {:.2} s", t.elapsed().as_secs_f64());
    drop(db);
    let bytes = std::fs::metadata(&path)?.len();
    let wal = std::fs::metadata(dir.path().join("index.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "  database:       {:.1} MiB + {wal} bytes WAL = {:.1} bytes/file (goal <= 400)",
        bytes as f64 / (1024.0 * 1024.0),
        (bytes + wal) as f64 / n as f64
    );

    let t = Instant::now();
    let db = Db::open(&path, local)?;
    println!("  open (quick_check):  {:.2} s", t.elapsed().as_secs_f64());
    let reader = db.reader()?;
    for round in ["first", "second"] {
        let t = Instant::now();
        let state = reader.scan_state(FOLDER)?;
        let d = t.elapsed();
        assert_eq!(state.len(), n);
        println!("  scan_state ({round}): {}", rate(n, d));
    }
    let t = Instant::now();
    let mut walked = 0usize;
    reader.for_each_local::<shoal::db::DbError>(FOLDER, |_| {
        walked += 1;
        Ok(())
    })?;
    assert_eq!(walked, n);
    println!("  for_each_local: {}", rate(n, t.elapsed()));

    let lookups = 10_000.min(n);
    let t = Instant::now();
    let mut found = 0;
    for k in 0..lookups {
        let i = (k * 7919) % n;
        found += reader.find_blocks(&block(i, 0), 4)?.len();
    }
    assert!(found >= lookups);
    println!(
        "  find_blocks:    {:.1} µs per lookup",
        t.elapsed().as_secs_f64() * 1e6 / lookups as f64
    );

    // A rescan where every file was touched but nothing changed: no new versions.
    let t = Instant::now();
    for start in (0..n.min(100_000)).step_by(BATCH) {
        let changes: Vec<LocalChange> = (start..(start + BATCH).min(n))
            .map(|i| LocalChange {
                inode: 1 + i as u64,
                ..change(i)
            })
            .collect();
        let out = db.update_local(FOLDER, changes)?;
        assert!(out.is_empty());
    }
    println!(
        "  unchanged rescan of {} files: {}",
        n.min(100_000),
        rate(n.min(100_000), t.elapsed())
    );
    Ok(())
}

//! The scanner: walks a folder, compares what it finds with what the index last recorded,
//! cuts changed files into content-defined blocks and hashes them, and hands back the
//! changes in batches.
//!
//! It owns the walk, the ignore rules ([`Ignores`]) and the chunker/hasher. It never
//! touches the database: the caller passes the previous state ([`ScanStates`]) and receives the
//! changes through a callback (the `indexer` writes them while hashing goes on). It never
//! writes to the folder and never follows a symlink.
//!
//! What is indexed:
//! - regular files (blocks: FastCDC 2020, 16/32/128 KiB, BLAKE3), directories (no blocks)
//!   and symlinks (the link's target as stored, never followed);
//! - hidden files too: `.gitignore` has no effect; only the root `.shoalignore` counts
//!   (see [`Ignores`]). Shoal's own names are never indexed: the root `.shoalignore`, the
//!   root `.shoal/` marker, any `.shoal-tmp-*` file ([`is_internal`]).
//!
//! Names are indexed in Unicode NFC only (peers compare names byte for byte). On a file
//! system that normalises ([`ScanRequest::caps`]) a name found in NFD is indexed in NFC
//! (the file system reaches it by either). On others it is not indexed but listed in
//! [`ScanSummary::not_nfc`], for the indexer to rename it to NFC (see `sync::names`). On a
//! case-insensitive file system a name is trusted only as a directory listing spells it.
//!
//! What is skipped and reported in [`ScanSummary::errors`] (the scan goes on):
//! - names that are not valid UTF-8. A skipped directory is skipped with everything in
//!   it;
//! - FIFOs, sockets and device files;
//! - files that cannot be opened or read, and directories that cannot be listed. What the
//!   index holds under those names stays as it is: nothing there becomes a deletion.
//!
//! Change detection: an entry is re-read only when its type, size, modification time,
//! permissions, inode or inode change time (ctime) differ from the index, or a symlink's
//! target does. Directories compare type and permissions only: their times change with
//! every entry added or removed, which the entries themselves already record. A file
//! modified less than [`RACY_WINDOW_NS`] before it was read is recorded with `ctime_ns` 0,
//! so that the next scan reads it again (git's "racily clean" problem: a write in the same
//! clock tick as the read leaves size and mtime unchanged). A file that changes while it is
//! read is not emitted but listed in [`ScanSummary::retry`].
//!
//! Deletions: an indexed name the walk did not see becomes a tombstone only when it is
//! certainly gone: `lstat` says it does not exist, or one of its parent directories is now
//! a file or a symlink. It is never one when it is ignored now, when it or a parent could
//! not be read, or for any other error.
//!
//! Work is spread over the rayon global pool: files are hashed in parallel, and the blocks
//! of one file's read buffer too while the next buffer is read and cut, so a single large
//! file uses every core. Memory is two read buffers ([`READ_BUFFER`]) per hashing worker.

mod chunker;
mod hash;
mod ignores;
mod walk;

#[cfg(test)]
mod tests;

/// Deterministic incompressible bytes for the crate's tests.
#[cfg(test)]
pub(crate) use chunker::tests::random_bytes;
pub use chunker::{
    AVG_BLOCK, BlockHasher, HashError, INCREMENTAL_MIN, MAX_BLOCK, MIN_BLOCK, READ_BUFFER,
    blocks_of,
};
pub use ignores::{IgnoreError, Ignores, is_internal};

pub use crate::db::{LocalChange, ScanState, ScanStates};
use crossbeam_channel::RecvTimeoutError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A batch goes to the sink once it holds this many changes...
const BATCH_CHANGES: usize = 1000;
/// ... or this many bytes of hashed files...
const BATCH_BYTES: u64 = 64 << 20;
/// ... or when its first change is this old, so a slow scan still shows up in the index.
const BATCH_AGE: Duration = Duration::from_secs(1);
/// The progress callback is called at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// A file whose mtime is this close to the moment it was read is recorded as "racy"
/// (`ctime_ns` 0) and read again by the next scan. Linux stamps files from a clock that
/// ticks every few milliseconds; FAT stores mtime in 2-second steps: 2 s covers both.
pub const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// What to scan.
#[derive(Clone, Copy, Debug)]
pub struct ScanRequest<'a> {
    /// The folder root (it may itself be a symlink; nothing below it is followed).
    pub root: &'a Path,
    /// The folder's entries as the index last recorded them, by name.
    pub prev: &'a ScanStates,
    /// Rescan just these names (files or directories, recursively), e.g. from the watcher;
    /// deletions are then inferred only within them. `None`, or an empty name among them,
    /// scans the whole folder.
    pub only: Option<&'a [String]>,
    /// How the folder's file system compares names (`sync::names::probe`).
    pub caps: crate::sync::names::FsCaps,
    /// The folder's `ignore_perms` (FAT, CIFS): permission bits on disk are not recorded.
    /// An entry keeps the permissions the index holds for it (those a peer sent), a new
    /// one is recorded as 0644 (0755 for a directory), so a file system that cannot store
    /// modes announces none of its made-up ones and a local chmod is no change.
    pub ignore_perms: bool,
    /// The block list this device's scanner last recorded for a file, by name: a big file
    /// that changed is then re-hashed against it (`BlockHasher::hash_from_previous`:
    /// the same blocks as a full cut, much less work for an edit). Only lists this
    /// scanner made may be given (not a peer's, whose cut points nothing here checks).
    pub previous_blocks: Option<PreviousBlocks<'a>>,
}

/// Looks up the blocks a file had when this device's scanner last read it.
#[derive(Clone, Copy)]
pub struct PreviousBlocks<'a>(
    pub &'a (dyn Fn(&str) -> Option<Vec<crate::protocol::BlockInfo>> + Sync + 'a),
);

impl fmt::Debug for PreviousBlocks<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PreviousBlocks")
    }
}

/// An entry the scan skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanError {
    /// Relative to the folder root; a name that is not UTF-8 is shown with U+FFFD.
    pub path: String,
    pub message: String,
}

/// How a scan went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Files, directories and symlinks walked (ignored ones not counted).
    pub files_seen: u64,
    /// New or changed entries sent to the sink.
    pub changed: u64,
    /// Tombstones sent to the sink.
    pub deleted: u64,
    pub bytes_hashed: u64,
    /// Entries skipped; the index keeps what it had for them. Sorted by path.
    pub errors: Vec<ScanError>,
    /// Files that changed while they were read: scan them again soon. Sorted.
    pub retry: Vec<String>,
    /// Names not in Unicode NFC on a file system that does not normalise (their parents
    /// are NFC), not indexed: the indexer renames them to NFC. Sorted.
    pub not_nfc: Vec<String>,
}

/// Where a scan is, for a progress bar.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Entries walked so far.
    pub files_seen: u64,
    /// Changed files found so far, and their bytes: the work to do.
    pub files_to_hash: u64,
    pub bytes_to_hash: u64,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
    /// Still walking: the totals to hash may grow.
    pub walking: bool,
}

/// Why a scan stopped. Problems with single entries are not failures: they are listed in
/// [`ScanSummary::errors`].
#[derive(Debug, thiserror::Error)]
pub enum ScanFailure {
    #[error("cannot read the folder root {path:?}: {source}")]
    Root { path: PathBuf, source: io::Error },
    #[error("the folder root {path:?} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error(transparent)]
    Ignores(#[from] IgnoreError),
    /// The sink returned an error (its text is kept); changes already delivered stand.
    #[error("scan stopped: {0}")]
    Aborted(String),
}

/// What the scanner records of a regular file's metadata: the fields its change test
/// compares (size, mtime, inode, ctime, permissions).
pub fn file_state(meta: &std::fs::Metadata) -> ScanState {
    walk::state(meta, crate::protocol::FileType::File, String::new())
}

/// Scans `req.root` (or `req.only` within it), comparing with `req.prev`.
///
/// Changes go to `sink` in batches, on the calling thread, while hashing goes on; an error
/// from the sink stops the scan (`ScanFailure::Aborted`). `progress` is called on the
/// calling thread at most every 100 ms. Directories and symlinks come first (in walk
/// order), then deletions, then files as they are hashed.
pub fn scan<E: fmt::Display>(
    req: &ScanRequest<'_>,
    sink: &mut dyn FnMut(Vec<LocalChange>) -> Result<(), E>,
    progress: &dyn Fn(&Progress),
) -> Result<ScanSummary, ScanFailure> {
    let meta = std::fs::metadata(req.root).map_err(|source| ScanFailure::Root {
        path: req.root.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ScanFailure::NotADirectory {
            path: req.root.to_path_buf(),
        });
    }
    let ignores = Ignores::load(req.root)?;
    let shared = Shared::default();
    // Bounded: if the sink is slow, hashing waits rather than piling up results.
    let (tx, rx) = crossbeam_channel::bounded::<Event>(4096);

    std::thread::scope(|s| {
        let shared = &shared;
        let ignores = &ignores;
        s.spawn(move || walk::produce(req, ignores, shared, tx));

        let mut summary = ScanSummary::default();
        let mut batch = Batch::default();
        let mut last_progress = Instant::now();
        let mut failure = None;
        loop {
            let wait = PROGRESS_EVERY.saturating_sub(last_progress.elapsed());
            match rx.recv_timeout(wait) {
                Ok(Event::Change(c)) => {
                    if c.info.deleted {
                        summary.deleted += 1;
                    } else {
                        summary.changed += 1;
                    }
                    batch.push(c);
                }
                Ok(Event::Error(e)) => summary.errors.push(e),
                Ok(Event::Retry(name)) => summary.retry.push(name),
                Ok(Event::NotNfc(name)) => summary.not_nfc.push(name),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if batch.full()
                && let Err(e) = sink(batch.take())
            {
                failure = Some(ScanFailure::Aborted(e.to_string()));
                break;
            }
            if last_progress.elapsed() >= PROGRESS_EVERY {
                progress(&shared.progress());
                last_progress = Instant::now();
            }
        }
        if failure.is_some() {
            // Unblocks the producer (its sends fail) and makes it stop soon.
            shared.stop.store(true, Ordering::Relaxed);
            drop(rx);
        } else if !batch.changes.is_empty()
            && let Err(e) = sink(batch.take())
        {
            failure = Some(ScanFailure::Aborted(e.to_string()));
        }
        if let Some(f) = failure {
            return Err(f);
        }
        summary.files_seen = shared.files_seen.load(Ordering::Relaxed);
        summary.bytes_hashed = shared.bytes_hashed.load(Ordering::Relaxed);
        summary.errors.sort_by(|a, b| a.path.cmp(&b.path));
        summary.retry.sort();
        summary.not_nfc.sort();
        Ok(summary)
    })
}

/// What the walking and hashing threads send to the scanning thread.
enum Event {
    Change(LocalChange),
    Error(ScanError),
    Retry(String),
    NotNfc(String),
}

impl Event {
    fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Event::Error(ScanError {
            path: path.into(),
            message: message.into(),
        })
    }
}

/// Counters the workers bump and the scanning thread reads for progress.
#[derive(Default)]
struct Shared {
    files_seen: AtomicU64,
    files_to_hash: AtomicU64,
    bytes_to_hash: AtomicU64,
    files_hashed: AtomicU64,
    bytes_hashed: AtomicU64,
    walk_done: AtomicBool,
    /// Set when the scan must end early: workers check it between files and reads.
    stop: AtomicBool,
}

impl Shared {
    fn progress(&self) -> Progress {
        Progress {
            files_seen: self.files_seen.load(Ordering::Relaxed),
            files_to_hash: self.files_to_hash.load(Ordering::Relaxed),
            bytes_to_hash: self.bytes_to_hash.load(Ordering::Relaxed),
            files_hashed: self.files_hashed.load(Ordering::Relaxed),
            bytes_hashed: self.bytes_hashed.load(Ordering::Relaxed),
            walking: !self.walk_done.load(Ordering::Relaxed),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Changes waiting for the sink.
#[derive(Default)]
struct Batch {
    changes: Vec<LocalChange>,
    bytes: u64,
    started: Option<Instant>,
}

impl Batch {
    fn push(&mut self, c: LocalChange) {
        self.bytes += c.info.size;
        self.started.get_or_insert_with(Instant::now);
        self.changes.push(c);
    }

    fn full(&self) -> bool {
        self.changes.len() >= BATCH_CHANGES
            || self.bytes >= BATCH_BYTES
            || self.started.is_some_and(|t| t.elapsed() >= BATCH_AGE)
    }

    fn take(&mut self) -> Vec<LocalChange> {
        self.bytes = 0;
        self.started = None;
        std::mem::take(&mut self.changes)
    }
}

//! Hashing the files the walk found changed, in parallel, one read buffer per worker.

use super::chunker::{BlockHasher, HashError, INCREMENTAL_MIN};
use super::walk::{Ctx, change};
use super::{Event, RACY_WINDOW_NS};
use crate::protocol::FileType;
use rayon::prelude::*;
use rustix::fd::OwnedFd;
use rustix::fs::{Advice, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// A file to read: its name, and its size when walked (to order the work and for progress).
pub(super) struct HashJob {
    pub name: String,
    pub size: u64,
}

/// Hashes every job on the rayon pool and sends a change, an error or a retry for each.
pub(super) fn hash_files(ctx: &Ctx<'_>, mut jobs: Vec<HashJob>) {
    if jobs.is_empty() {
        return;
    }
    // Largest first: the pool is not left waiting on one big file at the end.
    jobs.sort_unstable_by_key(|j| std::cmp::Reverse(j.size));
    let root_fd = rustix::fs::open(
        ctx.root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok();
    // Buffers are reused across files: as many exist as files are read at once.
    let hashers = Mutex::new(Vec::<BlockHasher>::new());
    let take = || {
        hashers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    };
    jobs.par_iter().for_each(|job| {
        if ctx.shared.stopped() {
            return;
        }
        let mut hasher = take();
        let event = hash_one(ctx, root_fd.as_ref(), job, &mut hasher);
        hashers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(hasher);
        ctx.shared.files_hashed.fetch_add(1, Ordering::Relaxed);
        if let Some(event) = event {
            ctx.send(event);
        }
    });
}

fn hash_one(
    ctx: &Ctx<'_>,
    root_fd: Option<&OwnedFd>,
    job: &HashJob,
    hasher: &mut BlockHasher,
) -> Option<Event> {
    let name = job.name.as_str();
    let retry = || Some(Event::Retry(name.to_string()));
    let read_start = now_ns();
    let file = match open_file(ctx.root, root_fd, name) {
        Ok(f) => f,
        Err(Opened::Changed) => return retry(),
        Err(Opened::Failed(e)) => return Some(Event::error(name, format!("cannot open: {e}"))),
    };
    let before = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Some(Event::error(name, format!("cannot read: {e}"))),
    };
    if !before.is_file() {
        return retry();
    }
    // Only a hint for the kernel's read-ahead; nothing depends on it.
    let _ = rustix::fs::fadvise(&file, 0, None, Advice::Sequential);
    let shared = ctx.shared;
    let t0 = std::time::Instant::now();
    let mut counted = 0u64;
    let mut count = |n| {
        counted += n;
        shared.bytes_hashed.fetch_add(n, Ordering::Relaxed);
    };
    // A big file this device indexed before: re-hashed against its previous blocks.
    let previous = ctx
        .previous_blocks
        .filter(|_| before.len() >= INCREMENTAL_MIN)
        .and_then(|f| (f.0)(name));
    let had_previous = previous.as_ref().map(Vec::len);
    let incremental = match previous {
        Some(prev) => hasher.hash_from_previous(
            &|buf, off| file.read_exact_at(buf, off),
            before.len(),
            &prev,
            &mut count,
            &|| shared.stopped(),
        ),
        None => Ok(None),
    };
    let mut how = "whole";
    let result = match incremental {
        Ok(Some(blocks)) => {
            how = "against the previous blocks";
            Ok((blocks, before.len()))
        }
        // Shorter than when opened: it is being written.
        Err(HashError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return retry(),
        Err(e) => Err(e),
        Ok(None) => {
            // Read whole instead (the cursor is still at the start: only positioned reads
            // were made); progress counts the bytes once.
            shared.bytes_hashed.fetch_sub(counted, Ordering::Relaxed);
            hasher.hash_reader(
                &file,
                &mut |n| {
                    shared.bytes_hashed.fetch_add(n, Ordering::Relaxed);
                },
                &|| shared.stopped(),
            )
        }
    };
    let (blocks, total) = match result {
        Ok(r) => r,
        Err(HashError::Stopped) => return None,
        Err(HashError::Io(e)) => return Some(Event::error(name, format!("cannot read: {e}"))),
    };
    drop(file);
    tracing::debug!(name, bytes = total, how, previous = ?had_previous, took = ?t0.elapsed(), "hashed");
    match std::fs::symlink_metadata(ctx.root.join(name)) {
        Ok(after) if total == before.len() && same_token(&before, &after) => {}
        _ => return retry(),
    }
    let mut st = ctx.state(name, &before, FileType::File, String::new());
    if st.modified_ns > read_start.saturating_sub(RACY_WINDOW_NS) {
        // A write in the same clock tick as our read would leave size and mtime as they
        // are: have the next scan read this file again.
        st.ctime_ns = 0;
    }
    Some(Event::Change(change(name, st, blocks)))
}

/// The change token of a file: if any part differs, it was written or replaced.
fn same_token(a: &Metadata, b: &Metadata) -> bool {
    b.is_file()
        && a.dev() == b.dev()
        && a.ino() == b.ino()
        && a.len() == b.len()
        && (a.mtime(), a.mtime_nsec()) == (b.mtime(), b.mtime_nsec())
        && (a.ctime(), a.ctime_nsec()) == (b.ctime(), b.ctime_nsec())
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

enum Opened {
    /// Gone, or now reached through a symlink: the folder changed since the walk.
    Changed,
    Failed(io::Error),
}

/// Set once `openat2` turns out to be unavailable (kernels before 5.6, some sandboxes).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens `name` for reading without following any symlink on the way, so a directory
/// swapped for a symlink after the walk cannot make us read (and share) a file outside
/// the folder. Non-blocking, so a file swapped for a FIFO cannot hang the scan.
fn open_file(root: &Path, root_fd: Option<&OwnedFd>, name: &str) -> Result<File, Opened> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let opened = match root_fd {
        Some(dir) if !NO_OPENAT2.load(Ordering::Relaxed) => {
            match rustix::fs::openat2(
                dir,
                name,
                flags,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            ) {
                Err(Errno::NOSYS | Errno::PERM) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    rustix::fs::openat(dir, name, flags, Mode::empty())
                }
                r => r,
            }
        }
        Some(dir) => rustix::fs::openat(dir, name, flags, Mode::empty()),
        None => rustix::fs::open(root.join(name), flags, Mode::empty()),
    };
    match opened {
        Ok(fd) => Ok(File::from(fd)),
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => Err(Opened::Changed),
        Err(e) => Err(Opened::Failed(e.into())),
    }
}

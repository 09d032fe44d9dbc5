//! Watching a folder: inotify events become the relative names the folder task rescans.
//! Bursts coalesce in the folder task, not here.
//!
//! We use inotify directly (the `inotify` crate) rather than a generic watcher because of
//! what we subscribe to and what we can tell apart:
//! - **Only changes.** A generic recursive watcher also asks for `IN_OPEN` and
//!   `IN_CLOSE_NOWRITE`, so every file read (blocks served to peers, our own scans, every
//!   directory handle the puller opens) queued events in the kernel and woke the watcher
//!   thread. We ask for creations, deletions, writes, attribute changes and moves only.
//! - **Our own renames.** The puller builds each file in `.shoal-tmp-NAME` and renames it
//!   into place; the scan that follows such an event finds exactly what the puller just
//!   recorded, so for 20,000 pulled files it was 20,000 names rescanned for nothing. A
//!   rename shows as `IN_MOVED_FROM` (the temp name) and `IN_MOVED_TO` (the final name)
//!   with the same cookie, and the kernel gives every rename its own cookie: a move *to* a
//!   name whose move *from* was one of our temp names is dropped. Nothing else is: a
//!   user's write, truncation, chmod, deletion or rename of that name right after the pull
//!   has events of its own (`IN_MODIFY`, `IN_CLOSE_WRITE`, `IN_ATTRIB`, `IN_DELETE`,
//!   `IN_MOVED_*` with another cookie) and is reported as before.
//!
//! Directories are watched one by one (inotify is not recursive): every directory under
//! the root at start, and each directory created or moved in later, when its event
//! arrives. Entries made in a new directory before its watch exists are found by the scan
//! of the directory's own name, which is always reported. Shoal's `.shoal/` marker
//! directory is not watched. A lost event (queue overflow) asks for a full rescan.

use crate::protocol::name::TEMP_PREFIX;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Keeps the watch alive; dropping it stops the watching thread (within `POLL_WAKE`).
pub struct FolderWatch {
    stop: Arc<AtomicBool>,
}

impl Drop for FolderWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How often the watching thread checks whether it should stop while no event arrives.
const POLL_WAKE: Duration = Duration::from_millis(250);

/// Why a folder is not watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "the inotify watch limit is reached, so changes are found only by periodic scans; raise it with `sysctl fs.inotify.max_user_watches=524288` (and in /etc/sysctl.d/ to keep it)"
    )]
    Limit,
    #[error("cannot watch the folder: {0}")]
    Other(String),
}

fn classify(e: &io::Error) -> WatchError {
    match e.raw_os_error() {
        Some(28) => WatchError::Limit, // ENOSPC: max_user_watches
        _ => WatchError::Other(e.to_string()),
    }
}

/// The events we want on every directory: changes, never mere reads.
fn dir_mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::ATTRIB
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::ONLYDIR
        | WatchMask::DONT_FOLLOW
        | WatchMask::EXCL_UNLINK
}

/// Starts watching `root`; names of changed entries (relative, `/`-separated) arrive on
/// the returned channel; an empty name asks for a whole-folder rescan. Our own `.shoal/`,
/// temp files and renames out of temp files are filtered out.
pub fn watch(root: &Path) -> Result<(FolderWatch, mpsc::UnboundedReceiver<String>), WatchError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let base: PathBuf = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let inotify = Inotify::init().map_err(|e| classify(&e))?;
    let mut w = Watcher {
        inotify,
        base,
        dirs: HashMap::new(),
        wds: HashMap::new(),
        own_cookie: None,
        tx,
    };
    // The root also reports its own deletion or move (the folder task then finds the
    // marker gone).
    w.add_one("", WatchMask::DELETE_SELF | WatchMask::MOVE_SELF)
        .map_err(|e| classify(&e))?;
    w.add_tree("").map_err(|e| classify(&e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::Builder::new()
        .name("shoal-watch".into())
        .spawn(move || w.run(&stop2))
        .map_err(|e| WatchError::Other(e.to_string()))?;
    Ok((FolderWatch { stop }, rx))
}

struct Watcher {
    inotify: Inotify,
    base: PathBuf,
    /// Watch descriptor → the directory's relative name ("" for the root).
    dirs: HashMap<WatchDescriptor, String>,
    /// Relative name → watch descriptor, to drop a subtree's watches when it moves away.
    wds: HashMap<String, WatchDescriptor>,
    /// The cookie of the last rename away from one of our temp names.
    own_cookie: Option<u32>,
    tx: mpsc::UnboundedSender<String>,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl Watcher {
    fn add_one(&mut self, rel: &str, extra: WatchMask) -> io::Result<()> {
        let wd = self
            .inotify
            .watches()
            .add(self.base.join(rel), dir_mask() | extra)?;
        // The same directory watched again (moved back in) keeps its descriptor.
        if let Some(old) = self.dirs.insert(wd.clone(), rel.to_string())
            && old != rel
        {
            self.wds.remove(&old);
        }
        self.wds.insert(rel.to_string(), wd);
        Ok(())
    }

    /// Watches every directory below `rel` (not `rel` itself), never following symlinks
    /// and skipping the root's marker directory.
    fn add_tree(&mut self, rel: &str) -> io::Result<()> {
        let mut stack = vec![rel.to_string()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(self.base.join(&dir)) else {
                continue;
            };
            for e in rd.flatten() {
                let Ok(ft) = e.file_type() else { continue };
                if !ft.is_dir() {
                    continue;
                }
                let Some(name) = e.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if dir.is_empty() && name == crate::config::MARKER_DIR {
                    continue;
                }
                let child = join(&dir, &name);
                match self.add_one(&child, WatchMask::empty()) {
                    Ok(()) => stack.push(child),
                    // Gone or replaced meanwhile: its parent's event covers it.
                    Err(e) if e.raw_os_error() == Some(28) => return Err(e),
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }

    /// A directory that appeared: watch it and everything below it.
    fn add_dir(&mut self, rel: &str) {
        let added = self
            .add_one(rel, WatchMask::empty())
            .and_then(|()| self.add_tree(rel));
        if let Err(e) = added {
            if e.raw_os_error() == Some(28) {
                tracing::warn!("{}", WatchError::Limit);
            }
            // Unwatched parts are covered by the periodic full scan only: ask for one now
            // so nothing made there so far is missed.
            let _ = self.tx.send(String::new());
        }
    }

    /// A directory that moved away: stop watching it and everything below it.
    fn remove_dir(&mut self, rel: &str) {
        let prefix = format!("{rel}/");
        let gone: Vec<String> = self
            .wds
            .keys()
            .filter(|k| k.as_str() == rel || k.starts_with(&prefix))
            .cloned()
            .collect();
        for k in gone {
            if let Some(wd) = self.wds.remove(&k) {
                self.dirs.remove(&wd);
                let _ = self.inotify.watches().remove(wd);
            }
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        let mut buf = vec![0u8; 64 << 10];
        let wake = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: POLL_WAKE.as_nanos() as _,
        };
        while !stop.load(Ordering::Relaxed) && !self.tx.is_closed() {
            let ready = {
                let fd = self.inotify.as_fd();
                let mut fds = [rustix::event::PollFd::new(
                    &fd,
                    rustix::event::PollFlags::IN,
                )];
                rustix::event::poll(&mut fds, Some(&wake))
            };
            match ready {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "watching stopped");
                    let _ = self.tx.send(String::new());
                    return;
                }
            }
            let events: Vec<(WatchDescriptor, EventMask, u32, Option<String>)> =
                match self.inotify.read_events(&mut buf) {
                    Ok(evs) => evs
                        // Our temp files' own events are most of what a pull causes: drop
                        // them before any allocation (a move away from one is kept: its
                        // cookie marks the rename into place as ours).
                        .filter(|e| {
                            e.mask.contains(EventMask::MOVED_FROM)
                                || !e.name.is_some_and(|n| {
                                    n.as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes())
                                })
                        })
                        .map(|e| {
                            // A name that is not UTF-8 is never indexed; its directory is
                            // rescanned so the scan reports it.
                            let name = e.name.map(|n| n.to_str().map(str::to_string));
                            let name = match name {
                                Some(Some(n)) => Some(n),
                                Some(None) => Some(String::new()),
                                None => None,
                            };
                            (e.wd, e.mask, e.cookie, name)
                        })
                        .collect(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read watch events");
                        let _ = self.tx.send(String::new());
                        continue;
                    }
                };
            for (wd, mask, cookie, name) in events {
                self.handle(wd, mask, cookie, name);
            }
        }
    }

    fn handle(&mut self, wd: WatchDescriptor, mask: EventMask, cookie: u32, name: Option<String>) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            let _ = self.tx.send(String::new());
            return;
        }
        if mask.contains(EventMask::IGNORED) {
            if let Some(rel) = self.dirs.remove(&wd)
                && self.wds.get(&rel) == Some(&wd)
            {
                self.wds.remove(&rel);
            }
            return;
        }
        let Some(dir) = self.dirs.get(&wd).cloned() else {
            return;
        };
        let Some(name) = name else {
            // An event on a watched directory itself: only the root's own deletion or
            // move matters (its parent's watch reports the others).
            if dir.is_empty() && mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF) {
                let _ = self.tx.send(String::new());
            }
            return;
        };
        if name.is_empty() {
            // Not UTF-8: rescan the directory holding it.
            let _ = self
                .tx
                .send(if dir.is_empty() { String::new() } else { dir });
            return;
        }
        let rel = join(&dir, &name);
        let is_dir = mask.contains(EventMask::ISDIR);
        if mask.contains(EventMask::MOVED_FROM) {
            if name.starts_with(TEMP_PREFIX) {
                self.own_cookie = Some(cookie);
                return;
            }
            if is_dir {
                self.remove_dir(&rel);
            }
        }
        if mask.contains(EventMask::MOVED_TO) && self.own_cookie.take() == Some(cookie) {
            // One of our temp files renamed into place by the puller, which recorded it.
            return;
        }
        let Some(report) = relative(&rel) else {
            return;
        };
        if is_dir && mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
            self.add_dir(&rel);
        }
        let _ = self.tx.send(report);
    }
}

/// The name to report for a folder-relative path, or None for what we never scan.
fn relative(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let first = name.split('/').next().unwrap_or("");
    let last = name.rsplit('/').next().unwrap_or("");
    if name == crate::protocol::name::IGNORE_FILE {
        // New ignore rules: the whole folder is rescanned under them.
        return Some(String::new());
    }
    if first == crate::config::MARKER_DIR || last.starts_with(TEMP_PREFIX) {
        return None;
    }
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_files_are_not_reported() {
        assert_eq!(relative("a/b.txt"), Some("a/b.txt".into()));
        assert_eq!(relative(".shoal/x"), None);
        assert_eq!(relative("a/.shoal-tmp-b.txt"), None);
        assert_eq!(relative(""), None);
        assert_eq!(relative(".shoalignore"), Some(String::new()));
    }

    fn collect(rx: &mut mpsc::UnboundedReceiver<String>, wait: Duration) -> Vec<String> {
        let until = std::time::Instant::now() + wait;
        let mut out = Vec::new();
        while std::time::Instant::now() < until {
            while let Ok(n) = rx.try_recv() {
                out.push(n);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        out
    }

    #[test]
    fn renames_out_of_temp_files_are_dropped_and_everything_else_reported() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        std::fs::create_dir(root.join("d")).expect("mkdir");
        let (_w, mut rx) = watch(root).expect("watch");
        // What the puller does: write a temp file, rename it into place.
        std::fs::write(root.join("d/.shoal-tmp-f"), b"x").expect("write");
        std::fs::rename(root.join("d/.shoal-tmp-f"), root.join("d/f")).expect("mv");
        let got = collect(&mut rx, Duration::from_millis(300));
        assert!(got.is_empty(), "own rename reported: {got:?}");
        // A user's write right after it is reported.
        std::fs::write(root.join("d/f"), b"user").expect("write");
        let got = collect(&mut rx, Duration::from_millis(300));
        assert!(got.iter().any(|n| n == "d/f"), "user write missed: {got:?}");
        // So is a user's rename onto the name, and a new directory with a file in it.
        std::fs::write(root.join("g"), b"g").expect("write");
        std::fs::rename(root.join("g"), root.join("d/f")).expect("mv");
        std::fs::create_dir(root.join("n")).expect("mkdir");
        std::fs::write(root.join("n/x"), b"x").expect("write");
        let got = collect(&mut rx, Duration::from_millis(300));
        assert!(
            got.iter().any(|n| n == "d/f"),
            "user rename missed: {got:?}"
        );
        assert!(got.iter().any(|n| n == "n"), "new dir missed: {got:?}");
        // The new directory is watched: a later file in it is reported.
        std::fs::write(root.join("n/y"), b"y").expect("write");
        let got = collect(&mut rx, Duration::from_millis(300));
        assert!(
            got.iter().any(|n| n == "n/y"),
            "file in new dir missed: {got:?}"
        );
        // Reads are not changes.
        let _ = std::fs::read(root.join("n/y")).expect("read");
        let got = collect(&mut rx, Duration::from_millis(200));
        assert!(got.is_empty(), "a read was reported: {got:?}");
        // A directory moved away and another moved in.
        std::fs::rename(root.join("n"), root.join("m")).expect("mv");
        let got = collect(&mut rx, Duration::from_millis(300));
        assert!(got.iter().any(|n| n == "n"), "move away missed: {got:?}");
        assert!(got.iter().any(|n| n == "m"), "move in missed: {got:?}");
        std::fs::write(root.join("m/z"), b"z").expect("write");
        let got = collect(&mut rx, Duration::from_millis(300));
        assert_eq!(
            got,
            vec!["m/z".to_string(); got.len().max(1)],
            "moved dir: {got:?}"
        );
    }
}

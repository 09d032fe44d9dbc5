//! The puller: makes the local folder hold what peers have that is newer.
//!
//! Runs on a blocking thread inside the folder's task, one batch of needed names at a
//! time. For each file it takes every block it can from local data (any file in any folder
//! whose block map holds the hash, verified by reading it), then requests the rest from a
//! connected device that has that version, several requests in flight and at most
//! [`super::PULL_WINDOW_BYTES`] outstanding. Every block's BLAKE3 is checked before it is
//! written. The file is assembled in `.shoal-tmp-NAME` beside its place (a restart resumes
//! from the blocks already there), complete files are made durable together with one
//! `syncfs` (or an `fdatasync` each when there are few), then each is renamed into place
//! and recorded in the index with the peer's version.
//!
//! Three threads share a batch: this one decides and prepares groups of files (temp files
//! opened, blocks of the previous version copied, other local blocks looked up), a second
//! one fetches a group's missing blocks while the next group is prepared, and a third one
//! makes every `PLACE_CHUNK` complete files durable and renames them while the rest is
//! fetched. All are joined before the batch returns: a pull never overlaps a scan.
//!
//! Before anything on disk is replaced or deleted, it is compared with the local index
//! entry: a local change not yet scanned is never overwritten (the name is rescanned
//! instead and the two versions meet as a concurrent change).
//!
//! Disk trouble is per file: a file is started only if it fits in the free space less a
//! reserve (`Budget`), a write that fails with `ENOSPC` drops its temp file (it would
//! hold the space others need), and every failure is reported with what to do about it
//! (`explain`); the rest of the batch goes on, and the folder task retries the failures
//! (see `service::folders` for the schedule).

use super::fsops::FolderFs;
use crate::config::FolderConfig;
use crate::db::{LocalChange, Reader};
use crate::identity::DeviceId;
use crate::net::ConnHandle;
use crate::protocol::{
    BlockHash, BlockInfo, FileInfo, FileType, Message, Request, ResponseCode, VectorOrdering,
};
use crate::service::Shared;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::sync::{Arc, Mutex};
use tracing::{debug, warn};

/// What to do about one remote entry, given ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Nothing,
    /// The remote version dominates: apply it.
    Pull,
    /// Concurrent versions with identical content: no data moves, the versions merge.
    Merge,
    /// Concurrent versions with different content.
    Conflict,
}

/// Compares a remote entry with the local one.
pub fn decide(local: Option<&FileInfo>, remote: &FileInfo) -> Need {
    let Some(local) = local else {
        return if remote.deleted {
            Need::Nothing
        } else {
            Need::Pull
        };
    };
    match remote.version.compare(&local.version) {
        VectorOrdering::Greater => {
            if local.same_contents(remote) && local.deleted == remote.deleted {
                Need::Merge
            } else {
                Need::Pull
            }
        }
        VectorOrdering::Concurrent => {
            if same_data(local, remote) {
                Need::Merge
            } else {
                Need::Conflict
            }
        }
        _ => Need::Nothing,
    }
}

/// Same content for sync purposes: two devices that got the same file another way (an
/// rsync copy) need to move no data, whatever the mtimes' last nanoseconds say.
fn same_data(a: &FileInfo, b: &FileInfo) -> bool {
    a.file_type == b.file_type
        && a.deleted == b.deleted
        && a.size == b.size
        && a.blocks == b.blocks
        && a.symlink_target == b.symlink_target
        && (a.file_type != FileType::File || a.permissions & 0o111 == b.permissions & 0o111)
}

/// How a batch went.
#[derive(Debug, Default)]
pub struct PullReport {
    pub applied: Vec<FileInfo>,
    /// Names whose disk state differs from the index: rescan them.
    pub rescan: Vec<String>,
    /// Names that failed this time (no source, I/O error): retried later.
    pub failed: Vec<(String, String)>,
    /// The sizes of the regular files among `failed` (they stay part of the need).
    pub failed_bytes: HashMap<String, u64>,
    pub bad_blocks: u64,
    /// Conflict copies made of our losing versions.
    pub conflicts: Vec<String>,
    /// Names not applied because they clash with a local name on this case-insensitive
    /// or normalising file system: (the peer's name, the local one). See `names`.
    pub clashes: Vec<(String, String)>,
    pub bytes_from_peers: u64,
    pub bytes_reused: u64,
}

/// A file assembled in its temp file, waiting for the batch's durability point.
struct Ready {
    remote: FileInfo,
    temp: String,
    /// Kept open only while the batch is small enough to fsync file by file.
    file: Option<std::fs::File>,
    /// The big file this one replaces, kept open across the rename (`reuse::Reused::old`).
    old: Option<std::fs::File>,
}

/// Up to this many files a batch fsyncs each file; above, one `syncfs` for the batch.
/// `syncfs` flushes every dirty page of the file system, which can take long on a busy
/// disk: a single saved file must not wait for that, while thousands of small files must
/// not pay one fsync each.
const FSYNC_EACH_MAX: usize = 16;

/// Pulls `names` of `folder`. Blocking: runs on a blocking thread.
pub fn pull_batch(
    shared: &Arc<Shared>,
    folder: &FolderConfig,
    mut names: Vec<String>,
) -> PullReport {
    let mut report = PullReport::default();
    // Where a batch's time goes, for `SHOAL_LOG=shoal::sync::pull=debug`.
    let t0 = std::time::Instant::now();
    let fs = match FolderFs::open(&folder.path) {
        Ok(fs) => fs,
        Err(e) => {
            for n in names {
                report
                    .failed
                    .push((n, format!("cannot open the folder: {e}")));
            }
            return report;
        }
    };
    let reader = match shared.db.reader() {
        Ok(r) => r,
        Err(e) => {
            for n in names {
                report.failed.push((n, e.to_string()));
            }
            return report;
        }
    };
    names.sort();
    names.dedup();
    // Ignored names are never pulled, replaced or deleted because of a peer; a
    // `.shoalignore` that cannot be read ignores nothing extra but stops nothing either.
    let ignores = crate::scan::Ignores::load(&folder.path).unwrap_or_else(|e| {
        warn!(folder = %folder.id, error = %e, "cannot read .shoalignore");
        crate::scan::Ignores::empty()
    });
    let config = shared.config();
    let mut work: Vec<(FileInfo, Option<FileInfo>, DeviceId)> = Vec::new();
    // Version merges of identical content: one transaction for the batch (two devices
    // seeded with the same million files merge a million versions).
    let mut merges: Vec<LocalChange> = Vec::new();
    // Earlier failures waiting for a retry are still needed (this batch's own are counted
    // with it).
    let batch: std::collections::HashSet<String> = names.iter().cloned().collect();
    let (other_files, other_bytes) = shared.failed_need(&folder.id, &batch);
    // One read transaction for all the lookups of the batch's names.
    let snapshot = reader.snapshot().ok();
    for name in names {
        let local = match reader.get_local(&folder.id, &name) {
            Ok(l) => l,
            Err(e) => {
                report.failed.push((name, e.to_string()));
                continue;
            }
        };
        // The newest version among the connected devices that share the folder.
        let mut best: Option<(FileInfo, DeviceId)> = None;
        for d in &folder.devices {
            if !shared.is_connected(d) {
                continue;
            }
            if let Ok(Some(r)) = reader.get(&folder.id, *d, &name) {
                let better = match &best {
                    None => true,
                    Some((b, _)) => r.version.compare(&b.version) == VectorOrdering::Greater,
                };
                if better {
                    best = Some((r, *d));
                }
            }
        }
        let Some((remote, dev)) = best else { continue };
        if ignores.is_ignored(&name, remote.file_type == FileType::Dir) {
            continue;
        }
        match decide(local.as_ref(), &remote) {
            Need::Nothing => {}
            Need::Conflict => {
                let Some(l) = local else { continue };
                match super::conflict::resolve(&l, &remote) {
                    super::conflict::Outcome::TakeRemote => work.push((remote, Some(l), dev)),
                    super::conflict::Outcome::KeepLocal => {
                        debug!(%name, "concurrent change: ours wins; the other device keeps its copy");
                    }
                    super::conflict::Outcome::CopyLocalThenTakeRemote => {
                        if !disk_matches(&fs, Some(&l), &name) {
                            report.rescan.push(name);
                            continue;
                        }
                        match super::conflict::make_copy(&fs, &l) {
                            Ok(copy) => {
                                warn!(%name, %copy, "concurrent change: our version lost and is kept as a conflict copy");
                                report.conflicts.push(copy);
                                work.push((remote, Some(l), dev));
                            }
                            Err(e) => {
                                let why = explain(folder, &name, &e);
                                report
                                    .failed
                                    .push((name, format!("cannot make a conflict copy: {why}")));
                            }
                        }
                    }
                }
            }
            Need::Merge => {
                // Same data: adopt a version that includes both histories.
                if let Some(l) = &local {
                    let mut merged = l.clone();
                    merged.version = l.version.merged(&remote.version);
                    merged.modified_by = remote.modified_by;
                    if let Ok(Some(st)) = fs.lstat(&name) {
                        merges.push(LocalChange {
                            info: merged,
                            inode: st.st_ino,
                            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec as i64,
                        });
                    }
                }
            }
            Need::Pull => work.push((remote, local, dev)),
        }
    }
    if !merges.is_empty() {
        match shared.db.apply_pulled(&folder.id, merges) {
            Ok(applied) => report.applied.extend(applied),
            Err(e) => warn!(error = %e, "cannot record merged versions"),
        }
    }
    drop(snapshot);
    let t_decided = t0.elapsed();
    let need_of = |w: &[(FileInfo, Option<FileInfo>, DeviceId)]| {
        w.iter()
            .filter(|(r, _, _)| !r.deleted && r.file_type == FileType::File)
            .fold((0u64, 0u64), |(n, b), (r, _, _)| (n + 1, b + r.size))
    };
    let (nf, nb) = need_of(&work);
    shared.set_need(&folder.id, nf + other_files, nb + other_bytes);
    if folder.mode == crate::config::FolderMode::SendOnly {
        // A send-only folder applies no remote change; what it lacks shows as need.
        return report;
    }
    let sizes: HashMap<String, u64> = work
        .iter()
        .filter(|(r, _, _)| !r.deleted && r.file_type == FileType::File)
        .map(|(r, _, _)| (r.name.clone(), r.size))
        .collect();
    // Parents before children for what appears, children before parents for deletions.
    let (mut deletions, mut updates): (Vec<_>, Vec<_>) =
        work.into_iter().partition(|(r, _, _)| r.deleted);
    deletions.sort_by(|a, b| b.0.name.cmp(&a.0.name));
    updates.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let mut ready = Vec::new();
    let mut done: Vec<LocalChange> = Vec::new();
    let fetched: Arc<Fetched> = Arc::default();
    let mut sources = Sources {
        config: &config,
        reader: &reader,
        folder_fs: HashMap::new(),
        fetched: &fetched,
    };
    let mut group: Vec<Prepared> = Vec::new();
    let mut budget = Budget::new(&fs);
    // Content deleted in this batch, by block-list hash: candidates for a rename.
    let mut renames: HashMap<BlockHash, String> = deletions
        .iter()
        .filter_map(|(r, l, _)| {
            let l = l.as_ref()?;
            (l.file_type == FileType::File && !l.deleted && !l.blocks.is_empty())
                .then(|| (l.blocks_hash(), r.name.clone()))
        })
        .filter(|(_, n)| {
            disk_matches(
                &fs,
                reader.get_local(&folder.id, n).ok().flatten().as_ref(),
                n,
            )
        })
        .collect();
    // Case-insensitive or normalising file systems: never write over another spelling; a
    // case-only rename moves the entry; what cannot be moved waits for the deletions.
    let mut guard = super::names::NameGuard::new(&fs, shared.fs_caps(&folder.id));
    if guard.caps().folds() {
        for (r, l, _) in &deletions {
            if let Some(l) = l
                && disk_matches(&fs, Some(l), &r.name)
            {
                guard.note_deletion(l);
            }
        }
    }
    let (updates, late) = super::names::split_late(
        guard.caps(),
        updates,
        &deletions,
        |w| w.0.name.as_str(),
        |w| guard.case_source(&w.0).is_some(),
    );
    // Groups of files are prepared here (temp files opened, local blocks copied) while the
    // previous group's blocks are fetched on a second thread: the peer serves while we
    // write, instead of each side waiting for the other.
    let (gtx, fetcher) = start_fetcher(shared, folder, &fetched);
    // Lookups of local blocks share a read transaction, renewed per group.
    let mut snapshot = reader.snapshot().ok();
    let late_from = updates.len() + deletions.len();
    for (i, (remote, local, dev)) in updates.into_iter().chain(deletions).chain(late).enumerate() {
        if i == late_from {
            // The deletions are done: their files are no rename sources any more.
            renames.clear();
            guard.deletions_done();
        }
        let name = remote.name.clone();
        let rename_from = guard.caps().folds().then(|| {
            guard
                .case_source(&remote)
                .or_else(|| rename_source(&renames, &remote))
        });
        let rename_from = rename_from.flatten();
        let (same_file, local) = match guard.check(&name, remote.deleted, rename_from.as_deref()) {
            super::names::Verdict::Go => (false, local),
            super::names::Verdict::SameFile => (true, local),
            super::names::Verdict::Replaces(old) => (false, Some(*old)),
            super::names::Verdict::Clash(other) => {
                report.clashes.push((name, other));
                continue;
            }
            super::names::Verdict::NotHere => {
                done.push(LocalChange {
                    info: remote.clone(),
                    inode: 0,
                    ctime_ns: 0,
                });
                continue;
            }
        };
        if !same_file && !disk_matches(&fs, local.as_ref(), &name) {
            report.rescan.push(name);
            continue;
        }
        let result = match (remote.deleted, remote.file_type) {
            (true, _) => delete(&fs, folder, &remote, local.as_ref()).map(|gone| {
                if gone {
                    done.push(LocalChange {
                        info: remote.clone(),
                        inode: 0,
                        ctime_ns: 0,
                    });
                }
            }),
            (false, FileType::Dir) => {
                let mode = perms(&fs, folder, &remote, 0o755);
                match (same_file, rename_from.as_deref()) {
                    // A case-only rename: the directory moves with everything in it.
                    (true, Some(from)) => guard.rename(&fs, from, &name),
                    _ => Ok(()),
                }
                .and_then(|()| fs.mkdir(&name, mode))
                .and_then(|()| {
                    if folder.ignore_perms {
                        Ok(())
                    } else {
                        fs.chmod_dir(&name, mode)
                    }
                })
                .and_then(|()| stat_change(&fs, &remote))
                .map(|c| done.push(c))
            }
            (false, FileType::Symlink) => fs
                .symlink(&name, &remote.symlink_target)
                .and_then(|()| stat_change(&fs, &remote))
                .map(|c| done.push(c)),
            (false, FileType::File) => {
                let moved_from = match (same_file, &rename_from) {
                    (true, Some(from)) => {
                        renames.retain(|_, n| n != from);
                        Some(from.clone())
                    }
                    _ => renames
                        .remove(&remote.blocks_hash())
                        .filter(|_| !remote.blocks.is_empty()),
                };
                if let Some(old) = moved_from {
                    // The same content was deleted under another name in this batch: a
                    // rename on the other side. Move it instead of copying it.
                    guard
                        .rename(&fs, &old, &name)
                        .and_then(|()| finish_in_place(&fs, folder, &remote))
                        .map(|c| done.push(c))
                } else if let Err(why) = budget.take(&fs, &remote) {
                    report.failed.push((name, why));
                    continue;
                } else {
                    prepare(
                        &fs,
                        &mut sources,
                        (&remote, local.as_ref()),
                        dev,
                        &mut report,
                    )
                    .map(|p| {
                        group.push(p);
                        if group.len() >= GROUP_FILES {
                            drop(snapshot.take());
                            hand_over(&gtx, std::mem::take(&mut group), &mut report);
                            snapshot = reader.snapshot().ok();
                        }
                    })
                }
            }
        };
        if let Err(e) = result {
            let why = explain(folder, &name, &e);
            debug!(folder = %folder.id, %name, error = %why, "cannot apply");
            report.failed.push((name, why));
        }
    }
    drop(snapshot);
    hand_over(&gtx, std::mem::take(&mut group), &mut report);
    drop(gtx);
    match fetcher.join() {
        Ok((r, f)) => {
            ready.extend(r);
            report.failed.extend(f.failed);
            report.applied.extend(f.applied);
            report.bad_blocks += f.bad_blocks;
            report.bytes_from_peers += f.bytes_from_peers;
            report.bytes_reused += f.bytes_reused;
        }
        // Not expected (nothing there panics): what it held is pulled again next time.
        Err(_) => warn!(folder = %folder.id, "the fetching thread stopped"),
    }
    let t_fetched = t0.elapsed();
    let mut t_synced = t_fetched;
    // One durability point for the whole batch, then the renames (invariant 1: a file in
    // place is always complete and durable).
    if !ready.is_empty() {
        t_synced = put_in_place(&fs, folder, ready, &mut done, &mut report)
            .map_or(t_synced, |()| t0.elapsed());
    }
    let left = report
        .failed
        .iter()
        .map(|(n, _)| n)
        .chain(report.rescan.iter())
        .filter_map(|n| sizes.get(n))
        .fold((0u64, 0u64), |(n, b), s| (n + 1, b + s));
    shared.set_need(&folder.id, left.0 + other_files, left.1 + other_bytes);
    report.failed_bytes = report
        .failed
        .iter()
        .filter_map(|(n, _)| sizes.get(n).map(|s| (n.clone(), *s)))
        .collect();
    let t_renamed = t0.elapsed();
    if !done.is_empty() {
        match shared.db.apply_pulled(&folder.id, done) {
            Ok(applied) => report.applied.extend(applied),
            Err(e) => warn!(error = %e, "cannot record pulled files"),
        }
    }
    debug!(
        folder = %folder.id,
        files = report.applied.len(),
        decided = ?t_decided,
        fetched = ?t_fetched,
        synced = ?t_synced,
        renamed = ?t_renamed,
        recorded = ?t0.elapsed(),
        "pull batch timings (cumulative)"
    );
    report
}

/// The name whose file a rename in this batch would move to `remote`'s name.
fn rename_source(renames: &HashMap<BlockHash, String>, remote: &FileInfo) -> Option<String> {
    (!remote.deleted && remote.file_type == FileType::File && !remote.blocks.is_empty())
        .then(|| renames.get(&remote.blocks_hash()).cloned())
        .flatten()
}

/// Space the puller leaves free on a folder's file system: 1 % of its size, at most
/// 256 MiB (Syncthing keeps 1 % by default). A pull never takes the last bytes that the
/// index, the user's programs or the next small file need.
fn reserve(total: u64) -> u64 {
    (total / 100).min(256 << 20)
}

/// What a batch may still write on the folder's file system: the free space less the
/// reserve, less what the files already started in this batch will take. A file that does
/// not fit is not started (and its partial temp file from an earlier try goes, freeing its
/// space), so the files that fit still arrive; it is retried later.
struct Budget {
    /// `None` when the file system does not say (then writes just go, and a full disk
    /// shows up as `ENOSPC`, handled the same way).
    left: Option<u64>,
    free: u64,
    reserve: u64,
    /// A file takes whole units of this size (a one-byte file takes one).
    unit: u64,
}

impl Budget {
    fn new(fs: &FolderFs) -> Self {
        match fs.space() {
            Ok((free, total, unit)) => Budget {
                left: Some(free.saturating_sub(reserve(total))),
                free,
                reserve: reserve(total),
                unit,
            },
            Err(_) => Budget {
                left: None,
                free: 0,
                reserve: 0,
                unit: 1,
            },
        }
    }

    /// Claims the bytes `remote` still needs beyond its temp file; a message saying what
    /// to do when they are not there.
    fn take(&mut self, fs: &FolderFs, remote: &FileInfo) -> Result<(), String> {
        let Some(left) = self.left else {
            return Ok(());
        };
        let temp = FolderFs::temp_name(&remote.name);
        let have = match fs.lstat(&temp) {
            Ok(Some(st)) => (st.st_blocks as u64).saturating_mul(512),
            _ => 0,
        };
        let need = remote
            .size
            .div_ceil(self.unit)
            .saturating_mul(self.unit)
            .saturating_sub(have);
        if need <= left {
            self.left = Some(left - need);
            return Ok(());
        }
        if have > 0 {
            let _ = fs.remove_file(&temp);
        }
        Err(format!(
            "not enough free space: it needs {}, {} has {} free and Shoal leaves {} of that \
             unused; free some space on that disk (the pull resumes by itself)",
            super::human_bytes(remote.size),
            fs.path.display(),
            super::human_bytes(self.free),
            super::human_bytes(self.reserve),
        ))
    }
}

fn is_disk_full(e: &io::Error) -> bool {
    use rustix::io::Errno;
    e.raw_os_error()
        .is_some_and(|c| c == Errno::NOSPC.raw_os_error() || c == Errno::DQUOT.raw_os_error())
}

/// An I/O failure while applying `name`, in words that say what to do about it.
fn explain(folder: &FolderConfig, name: &str, e: &io::Error) -> String {
    use rustix::io::Errno;
    let path = folder.path.join(name);
    let dir = path.parent().unwrap_or(&folder.path).to_path_buf();
    match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::NOSPC | Errno::DQUOT) => format!(
            "{e}: the disk (or quota) holding {} is full; free some space (the pull resumes \
             by itself)",
            folder.path.display()
        ),
        Some(Errno::ACCESS | Errno::PERM) => format!(
            "{e}: the user running Shoal (uid {}) may not write {} in {}; fix the owner or \
             permissions (the pull resumes by itself)",
            rustix::process::geteuid().as_raw(),
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            dir.display()
        ),
        Some(Errno::NOENT) => format!(
            "{e}: {} is missing (its directory could not be made, or was removed meanwhile); \
             the pull resumes by itself",
            dir.display()
        ),
        Some(Errno::ROFS) => format!(
            "{e}: {} is on a read-only file system; remount it read-write (the pull resumes \
             by itself)",
            folder.path.display()
        ),
        _ => e.to_string(),
    }
}

/// Permission bits to apply: never setuid, setgid or sticky. With `ignore_perms` the
/// local ones stay as they are: those of what is at the name now (of the same kind), else
/// `default`.
fn perms(fs: &FolderFs, folder: &FolderConfig, remote: &FileInfo, default: u32) -> u32 {
    if !folder.ignore_perms {
        return remote.permissions & 0o777;
    }
    let want = match remote.file_type {
        FileType::Dir => rustix::fs::FileType::Directory,
        _ => rustix::fs::FileType::RegularFile,
    };
    match fs.lstat(&remote.name) {
        Ok(Some(st)) if rustix::fs::FileType::from_raw_mode(st.st_mode) == want => {
            st.st_mode & 0o777
        }
        _ => default,
    }
}

fn stat_change(fs: &FolderFs, remote: &FileInfo) -> io::Result<LocalChange> {
    let st = fs
        .lstat(&remote.name)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "vanished after writing"))?;
    let mut info = remote.clone();
    if remote.file_type == FileType::Dir {
        info.modified_ns = st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64;
    }
    Ok(LocalChange {
        info,
        inode: st.st_ino,
        ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec as i64,
    })
}

/// Whether the disk still holds what the local index says (nothing, for no entry).
fn disk_matches(fs: &FolderFs, local: Option<&FileInfo>, name: &str) -> bool {
    let st = match fs.lstat(name) {
        Ok(st) => st,
        // A path through a file or a symlink (never followed: invariant 3), or unreadable.
        Err(e) => {
            warn!(%name, error = %e, "refused: the path goes through a symlink or a file inside the folder, or cannot be read");
            return false;
        }
    };
    let Some(st) = st else {
        // Nothing on disk: fine when the index agrees (no entry, or a tombstone), and
        // also when it does not (a local deletion not yet scanned: the remote version
        // then recreates it, which loses nothing).
        return true;
    };
    let Some(local) = local.filter(|l| !l.deleted) else {
        // Something on disk the index does not know: an unscanned local file.
        return false;
    };
    let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
    match local.file_type {
        FileType::Dir => ft == rustix::fs::FileType::Directory,
        FileType::Symlink => ft == rustix::fs::FileType::Symlink,
        FileType::File => {
            ft == rustix::fs::FileType::RegularFile
                && st.st_size as u64 == local.size
                && st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64 == local.modified_ns
        }
    }
}

/// Deletes what the remote tombstone names. Ok(false) when a directory still holds
/// something (ignored or unsynced files): it stays, with them.
fn delete(
    fs: &FolderFs,
    folder: &FolderConfig,
    remote: &FileInfo,
    local: Option<&FileInfo>,
) -> io::Result<bool> {
    let Some(_) = fs.lstat(&remote.name)? else {
        return Ok(true);
    };
    if super::versions::keep(fs, folder.versioning, &remote.name)? {
        return Ok(true);
    }
    match local.map(|l| l.file_type).unwrap_or(remote.file_type) {
        FileType::Dir => fs.remove_dir(&remote.name),
        _ => fs.remove_file(&remote.name).map(|()| true),
    }
}

/// Files assembled together: their missing blocks are requested in one pipeline, so many
/// small files cost one round trip per window, not one each.
const GROUP_FILES: usize = 128;

/// Where blocks can come from locally while a batch is pulled.
struct Sources<'a> {
    config: &'a crate::config::Config,
    reader: &'a Reader,
    /// Other folders' roots, opened when one of their files holds a block we need.
    folder_fs: HashMap<String, Option<FolderFs>>,
    /// Blocks received from peers in this batch: the temp file (of this folder) holding
    /// each and where. Files pulled together often share blocks (copies of one file in
    /// several places); each is then requested once, later files read it from the earlier
    /// one's temp file (verified, as every local block).
    fetched: &'a Fetched,
}

/// Blocks fetched in this batch: hash → (temp file, offset).
type Fetched = Mutex<HashMap<BlockHash, (String, u64)>>;

impl Sources<'_> {
    fn fetched_block(&self, fs: &FolderFs, b: &BlockInfo) -> Option<Vec<u8>> {
        let (temp, off) = self
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&b.hash)
            .cloned()?;
        let f = fs.open_read(&temp).ok()?;
        let mut data = vec![0u8; b.size as usize];
        (f.read_exact_at(&mut data, off).is_ok() && BlockHash::of(&data) == b.hash).then_some(data)
    }
}

type FetcherResult = (Vec<Ready>, PullReport);

/// Complete files the fetching thread has gathered that are made durable and put in place
/// while later groups are still fetched (on a third thread), so that the `syncfs` and the
/// renames of a big batch overlap with its transfer. The rest of a batch waits for its end.
const PLACE_CHUNK: usize = 512;

/// Makes `ready` durable (one `fdatasync` each when few, else one `syncfs`), then renames
/// each into place (invariant 1) and lists what to record in `done`. Returns Err when the
/// sync failed (every file then failed).
fn put_in_place(
    fs: &FolderFs,
    folder: &FolderConfig,
    mut ready: Vec<Ready>,
    done: &mut Vec<LocalChange>,
    report: &mut PullReport,
) -> Result<(), ()> {
    let synced = if ready.len() <= FSYNC_EACH_MAX && ready.iter().all(|r| r.file.is_some()) {
        ready
            .iter()
            .filter_map(|r| r.file.as_ref())
            .try_for_each(std::fs::File::sync_data)
    } else {
        fs.syncfs()
    };
    if let Err(e) = synced {
        // Nothing of the chunk goes in place. A full disk can show up only here (some file
        // systems allocate at writeback): the temp files go, they would hold the space
        // that others need.
        for r in ready.drain(..) {
            if is_disk_full(&e) {
                let _ = fs.remove_file(&r.temp);
            }
            let why = explain(folder, &r.remote.name, &e);
            report
                .failed
                .push((r.remote.name, format!("cannot make it durable: {why}")));
        }
        return Err(());
    }
    let mut replaced = Vec::new();
    for r in ready {
        let name = r.remote.name.clone();
        // The file being replaced goes to .shoal/versions/ when versioning is on.
        let res = super::versions::keep(fs, folder.versioning, &name)
            .and_then(|_| fs.rename(&r.temp, &name))
            .and_then(|()| stat_change(fs, &r.remote));
        replaced.extend(r.old);
        match res {
            Ok(c) => done.push(c),
            Err(e) => {
                let why = explain(folder, &name, &e);
                report.failed.push((name, why));
            }
        }
    }
    if !replaced.is_empty() {
        // The last descriptor of a replaced big file: closing it frees its blocks, which
        // can take tens of milliseconds; nobody needs to wait for that. Should the thread
        // not start, they are closed here.
        let _ = std::thread::Builder::new()
            .name("shoal-close".into())
            .spawn(move || drop(replaced));
    }
    Ok(())
}

/// The thread that puts chunks of complete files in place and records them.
fn start_placer(
    shared: &Arc<Shared>,
    folder: &FolderConfig,
) -> (
    crossbeam_channel::Sender<Vec<Ready>>,
    std::thread::JoinHandle<PullReport>,
) {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<Ready>>(1);
    let (shared, folder) = (shared.clone(), folder.clone());
    let handle = std::thread::spawn(move || {
        let mut report = PullReport::default();
        let fs = FolderFs::open(&folder.path);
        for chunk in rx {
            let fs = match &fs {
                Ok(fs) => fs,
                Err(e) => {
                    for r in chunk {
                        report
                            .failed
                            .push((r.remote.name, format!("cannot open the folder: {e}")));
                    }
                    continue;
                }
            };
            let mut done = Vec::new();
            let _ = put_in_place(fs, &folder, chunk, &mut done, &mut report);
            if !done.is_empty() {
                match shared.db.apply_pulled(&folder.id, done) {
                    Ok(applied) => report.applied.extend(applied),
                    Err(e) => warn!(error = %e, "cannot record pulled files"),
                }
            }
        }
        report
    });
    (tx, handle)
}

/// The thread that fetches the groups handed to it, one after the other; it ends when the
/// sender is dropped and returns the files made complete and its part of the report.
fn start_fetcher(
    shared: &Arc<Shared>,
    folder: &FolderConfig,
    fetched: &Arc<Fetched>,
) -> (
    crossbeam_channel::Sender<Vec<Prepared>>,
    std::thread::JoinHandle<FetcherResult>,
) {
    // Rendezvous: at most one group waits while another is fetched (open files bounded).
    let (tx, rx) = crossbeam_channel::bounded::<Vec<Prepared>>(0);
    let (shared, folder, fetched) = (shared.clone(), folder.clone(), fetched.clone());
    let handle = std::thread::spawn(move || {
        let mut ready = Vec::new();
        let mut report = PullReport::default();
        let (place, placer) = start_placer(&shared, &folder);
        for mut g in rx {
            fetch_group(&shared, &folder, &mut g, &mut ready, &fetched, &mut report);
            if ready.len() >= PLACE_CHUNK
                && let Err(e) = place.send(std::mem::take(&mut ready))
            {
                // The placer is gone (not expected): this thread's caller places them.
                ready = e.into_inner();
            }
        }
        drop(place);
        match placer.join() {
            Ok(p) => {
                report.applied.extend(p.applied);
                report.failed.extend(p.failed);
            }
            Err(_) => warn!(folder = %folder.id, "the placing thread stopped"),
        }
        (ready, report)
    });
    (tx, handle)
}

/// Gives a prepared group to the fetching thread (waiting until it takes it).
fn hand_over(
    tx: &crossbeam_channel::Sender<Vec<Prepared>>,
    group: Vec<Prepared>,
    report: &mut PullReport,
) {
    if group.is_empty() {
        return;
    }
    if let Err(e) = tx.send(group) {
        for p in e.into_inner() {
            report
                .failed
                .push((p.remote.name, "the fetching thread stopped".into()));
        }
    }
}

/// A file whose temp file is open, with the blocks still to fetch from a peer.
struct Prepared {
    remote: FileInfo,
    temp: String,
    file: std::fs::File,
    missing: Vec<(u64, BlockInfo)>,
    device: DeviceId,
    /// The previous version, when big (`reuse::Reused::old`).
    old: Option<std::fs::File>,
}

/// Opens the temp file for `remote` and fills in what is already there (a resumed pull),
/// what its `previous` local version holds (the caller checked it against the disk) and
/// what other local files hold; lists the rest.
fn prepare(
    fs: &FolderFs,
    sources: &mut Sources<'_>,
    (remote, previous): (&FileInfo, Option<&FileInfo>),
    device: DeviceId,
    report: &mut PullReport,
) -> io::Result<Prepared> {
    let (file, temp) = fs.open_temp(&remote.name)?;
    let existing = file.metadata()?.len();
    let mut buf = Vec::new();
    let mut todo: Vec<(u64, BlockInfo)> = Vec::new();
    let mut offset = 0u64;
    for b in &remote.blocks {
        let here = offset;
        offset += u64::from(b.size);
        // Resume: the temp file may hold this block already.
        if here + u64::from(b.size) <= existing {
            buf.resize(b.size as usize, 0);
            if file.read_exact_at(&mut buf, here).is_ok() && BlockHash::of(&buf) == b.hash {
                continue;
            }
        }
        todo.push((here, *b));
    }
    // The file's own previous version first: copied in the kernel, verified in the temp.
    let reused = super::reuse::from_previous(fs, previous, &file, todo);
    report.bytes_reused += reused.bytes;
    let todo = reused.rest;
    let mut missing: Vec<(u64, BlockInfo)> = Vec::new();
    for (here, b) in todo {
        let data = sources.fetched_block(fs, &b).or_else(|| {
            local_block(
                sources.config,
                sources.reader,
                &mut sources.folder_fs,
                &b.hash,
                b.size,
            )
        });
        if let Some(data) = data {
            file.write_all_at(&data, here)?;
            report.bytes_reused += u64::from(b.size);
            continue;
        }
        missing.push((here, b));
    }
    Ok(Prepared {
        remote: remote.clone(),
        temp,
        file,
        missing,
        device,
        old: reused.old,
    })
}

/// Sets size, permissions and mtime of a complete temp file.
fn finish_temp(fs: &FolderFs, folder: &FolderConfig, p: &Prepared) -> io::Result<()> {
    p.file.set_len(p.remote.size)?;
    p.file
        .set_permissions(std::fs::Permissions::from_mode(perms(
            fs, folder, &p.remote, 0o644,
        )))?;
    fs.set_mtime(&p.temp, p.remote.modified_ns)
}

/// Metadata of a file moved into place by a rename.
fn finish_in_place(
    fs: &FolderFs,
    folder: &FolderConfig,
    remote: &FileInfo,
) -> io::Result<LocalChange> {
    let f = fs.open_read(&remote.name)?;
    f.set_permissions(std::fs::Permissions::from_mode(perms(
        fs, folder, remote, 0o644,
    )))?;
    drop(f);
    fs.set_mtime(&remote.name, remote.modified_ns)?;
    stat_change(fs, remote)
}

/// Fetches every missing block of the group, keeping up to the window in flight per
/// device; complete files go to `ready`, failed ones to the report.
fn fetch_group(
    shared: &Arc<Shared>,
    folder: &FolderConfig,
    group: &mut Vec<Prepared>,
    ready: &mut Vec<Ready>,
    fetched: &Fetched,
    report: &mut PullReport,
) {
    let Ok(fs) = FolderFs::open(&folder.path) else {
        for p in group.drain(..) {
            report
                .failed
                .push((p.remote.name, "cannot open the folder".into()));
        }
        return;
    };
    let mut failed: HashMap<usize, String> = HashMap::new();
    let mut queue: VecDeque<(usize, u64, BlockInfo, u32)> = VecDeque::new();
    // A block needed at several places is requested once; the other places wait for it.
    let mut also: HashMap<BlockHash, Vec<(usize, u64)>> = HashMap::new();
    for (i, p) in group.iter().enumerate() {
        for (off, b) in &p.missing {
            match also.entry(b.hash) {
                std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().push((i, *off)),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Vec::new());
                    queue.push_back((i, *off, *b, 0));
                }
            }
        }
    }
    type Waiting = (
        usize,
        u64,
        BlockInfo,
        u32,
        tokio::sync::oneshot::Receiver<crate::protocol::Response>,
    );
    let mut inflight: VecDeque<Waiting> = VecDeque::new();
    let mut bytes_out = 0u64;
    let mut conns: HashMap<DeviceId, Option<ConnHandle>> = HashMap::new();
    let mut drop_temp: Vec<usize> = Vec::new();
    while !queue.is_empty() || !inflight.is_empty() {
        while let Some((i, off, b, tries)) = queue.front().copied() {
            if !inflight.is_empty()
                && (bytes_out + u64::from(b.size) > super::PULL_WINDOW_BYTES
                    || inflight.len() >= crate::protocol::MAX_REQUESTS_IN_FLIGHT)
            {
                break;
            }
            queue.pop_front();
            if failed.contains_key(&i) {
                continue;
            }
            let p = &group[i];
            let conn = conns
                .entry(p.device)
                .or_insert_with(|| shared.connection(&p.device))
                .clone();
            let Some(conn) = conn else {
                failed.insert(
                    i,
                    "the device that has this version is not connected".into(),
                );
                continue;
            };
            let id = conn.sync.next_id();
            let rx = conn.sync.expect_block(id);
            let req = Message::Request(Request {
                id,
                folder: folder.id.clone(),
                name: p.remote.name.clone(),
                offset: off,
                size: b.size,
                hash: b.hash,
            });
            if conn.tx.blocking_send(req).is_err() {
                failed.insert(i, "the connection to the device closed".into());
                continue;
            }
            bytes_out += u64::from(b.size);
            inflight.push_back((i, off, b, tries, rx));
        }
        let Some((i, off, b, tries, rx)) = inflight.pop_front() else {
            break;
        };
        bytes_out -= u64::from(b.size);
        let Ok(resp) = rx.blocking_recv() else {
            failed.insert(i, "the connection to the device closed".into());
            continue;
        };
        let p = &group[i];
        let good = resp.code == ResponseCode::Ok
            && resp.data.len() == b.size as usize
            && BlockHash::of(&resp.data) == b.hash;
        if good {
            report.bytes_from_peers += u64::from(b.size);
            let waiting = also.remove(&b.hash).unwrap_or_default();
            for (j, o) in std::iter::once((i, off)).chain(waiting) {
                if let Err(e) = group[j].file.write_all_at(&resp.data, o) {
                    if is_disk_full(&e) {
                        // A partial temp file would hold the space forever: it goes now.
                        drop_temp.push(j);
                    }
                    failed.insert(j, explain(folder, &group[j].remote.name, &e));
                } else if j != i {
                    report.bytes_reused += u64::from(b.size);
                }
            }
            fetched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(b.hash, (p.temp.clone(), off));
            continue;
        }
        if resp.code == ResponseCode::Ok {
            // Invariant 2: a block whose hash does not match is never written.
            report.bad_blocks += 1;
            warn!(name = %p.remote.name, offset = off, "received a block with a wrong hash; discarded");
        }
        let retry = tries < 2 && matches!(resp.code, ResponseCode::Ok | ResponseCode::Generic);
        if retry {
            queue.push_back((i, off, b, tries + 1));
        } else {
            // The next place waiting for the same block asks for it under its own name
            // (the peer may have it there): sharing a request never costs a file its own.
            match also.get_mut(&b.hash).and_then(Vec::pop) {
                Some((j, o)) => queue.push_back((j, o, b, 0)),
                None => {
                    also.remove(&b.hash);
                }
            }
            failed.insert(
                i,
                format!(
                    "the device could not supply the block at offset {off} ({:?})",
                    resp.code
                ),
            );
        }
    }
    // Places still waiting for a block whose request failed or was never made: their
    // files are incomplete.
    for (_, waiting) in also {
        for (j, _) in waiting {
            failed
                .entry(j)
                .or_insert_with(|| "a block could not be fetched".into());
        }
    }
    for (i, p) in group.drain(..).enumerate() {
        if let Some(e) = failed.remove(&i) {
            if drop_temp.contains(&i) {
                drop(p.file);
                let _ = fs.remove_file(&p.temp);
            }
            report.failed.push((p.remote.name, e));
            continue;
        }
        match finish_temp(&fs, folder, &p) {
            Ok(()) => {
                ready.push(Ready {
                    remote: p.remote,
                    temp: p.temp,
                    file: Some(p.file),
                    old: p.old,
                });
                if ready.len() > FSYNC_EACH_MAX {
                    // syncfs will do: don't hold thousands of descriptors open.
                    ready
                        .iter_mut()
                        .for_each(|r| (r.file, r.old) = (None, None));
                }
            }
            Err(e) => {
                if is_disk_full(&e) {
                    drop(p.file);
                    let _ = fs.remove_file(&p.temp);
                }
                let why = explain(folder, &p.remote.name, &e);
                report.failed.push((p.remote.name, why));
            }
        }
    }
}

/// A block from any local file that holds it, verified.
fn local_block(
    config: &crate::config::Config,
    reader: &Reader,
    folder_fs: &mut HashMap<String, Option<FolderFs>>,
    hash: &BlockHash,
    size: u32,
) -> Option<Vec<u8>> {
    let locations = reader.find_blocks(hash, 4).ok()?;
    for loc in locations {
        if loc.size != size {
            continue;
        }
        let fs = folder_fs.entry(loc.folder.clone()).or_insert_with(|| {
            config
                .folder(&loc.folder)
                .and_then(|f| FolderFs::open(&f.path).ok())
        });
        let Some(fs) = fs.as_ref() else { continue };
        let Ok(f) = fs.open_read(&loc.name) else {
            continue;
        };
        let mut data = vec![0u8; size as usize];
        if f.read_exact_at(&mut data, loc.offset).is_ok() && BlockHash::of(&data) == *hash {
            return Some(data);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ShortId;
    use crate::protocol::Vector;

    fn entry(v: Vector, size: u64) -> FileInfo {
        FileInfo {
            name: "a".into(),
            file_type: FileType::File,
            size,
            permissions: 0o644,
            modified_ns: 1,
            modified_by: ShortId(1),
            deleted: false,
            version: v,
            sequence: 1,
            blocks: vec![],
            symlink_target: String::new(),
        }
    }

    #[test]
    fn dominating_versions_are_pulled_and_concurrent_ones_compared() {
        let base = Vector::new().updated(ShortId(1), 10);
        let newer = base.updated(ShortId(2), 20);
        let other = base.updated(ShortId(1), 30);
        let local = entry(base.clone(), 1);
        assert_eq!(decide(Some(&local), &entry(newer.clone(), 2)), Need::Pull);
        assert_eq!(
            decide(Some(&entry(newer.clone(), 2)), &local),
            Need::Nothing
        );
        assert_eq!(
            decide(Some(&entry(other.clone(), 3)), &entry(newer.clone(), 2)),
            Need::Conflict
        );
        assert_eq!(
            decide(Some(&entry(other, 2)), &entry(newer, 2)),
            Need::Merge
        );
        assert_eq!(decide(None, &entry(base, 1)), Need::Pull);
    }
}

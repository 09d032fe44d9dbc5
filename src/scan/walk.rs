//! Walking: which entries exist, which changed since the index last looked, and which
//! indexed names are gone.

use super::hash::{self, HashJob};
use super::{Event, Ignores, LocalChange, ScanRequest, ScanState, ScanStates, Shared};
use crate::identity::ShortId;
use crate::protocol::name::to_nfc;
use crate::protocol::{FileInfo, FileType, Vector};
use crate::sync::fsops::FolderFs;
use crate::sync::names::{FsCaps, OnDisk, Spellings};
use crossbeam_channel::Sender;
use ignore::{DirEntry, ParallelVisitor, ParallelVisitorBuilder, WalkBuilder, WalkState};
use std::collections::{HashMap, HashSet};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use unicode_normalization::is_nfc;

const NOT_UTF8: &str = "name is not valid UTF-8; rename it";

/// What every part of one scan shares.
pub(super) struct Ctx<'a> {
    pub root: &'a Path,
    pub prev: &'a ScanStates,
    /// Which entries of `prev` the walk met.
    seen: &'a Seen,
    pub ignores: &'a Ignores,
    pub shared: &'a Shared,
    /// How the file system compares names (see `sync::names`).
    pub caps: FsCaps,
    pub ignore_perms: bool,
    /// See [`super::ScanRequest::previous_blocks`].
    pub previous_blocks: Option<super::PreviousBlocks<'a>>,
    tx: &'a Sender<Event>,
}

impl Ctx<'_> {
    /// The scan state of `name` from its `lstat`, with `ignore_perms` applied.
    pub fn state(
        &self,
        name: &str,
        meta: &Metadata,
        file_type: FileType,
        symlink_target: String,
    ) -> ScanState {
        let mut st = state(meta, file_type, symlink_target);
        if self.ignore_perms {
            st.permissions = self
                .prev
                .get(name)
                .filter(|p| !p.deleted && p.file_type == file_type)
                .map(|p| p.permissions)
                .unwrap_or(match file_type {
                    FileType::Dir => 0o755,
                    FileType::File => 0o644,
                    FileType::Symlink => st.permissions,
                });
        }
        st
    }

    pub fn send(&self, event: Event) {
        // The scanning thread is gone only when the scan stops: stop the work too.
        if self.tx.send(event).is_err() {
            self.shared.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// The producing side of a scan: walk, then infer deletions, then hash what changed.
pub(super) fn produce(
    req: &ScanRequest<'_>,
    ignores: &Ignores,
    shared: &Shared,
    tx: Sender<Event>,
) {
    let seen = Seen::new(req.prev.len());
    let ctx = Ctx {
        root: req.root,
        prev: req.prev,
        seen: &seen,
        ignores,
        shared,
        caps: req.caps,
        ignore_perms: req.ignore_perms,
        previous_blocks: req.previous_blocks,
        tx: &tx,
    };
    // Where names fold, spellings come from directory listings only.
    let folder_fs = if req.caps.folds() {
        FolderFs::open(req.root).ok()
    } else {
        None
    };
    let mut spellings = folder_fs.as_ref().map(|f| Spellings::new(f, req.caps));
    let scopes = req.only.and_then(|only| Scopes::new(only, &ctx));
    let results = Mutex::new(Vec::new());
    let mut roots = Vec::new();
    {
        let mut here = Visitor::new(&ctx, &results);
        match &scopes {
            None => roots.push(req.root.to_path_buf()),
            Some(scopes) => {
                let mut parents_done = HashSet::new();
                let mut respelled = Vec::new();
                for name in &scopes.names {
                    here.scope_root(
                        name,
                        &mut parents_done,
                        &mut roots,
                        spellings.as_mut(),
                        &mut respelled,
                    );
                }
                // A name reported in a spelling the disk does not hold: scan the disk's.
                for name in respelled {
                    if !scopes.covers(&name) {
                        here.scope_root(
                            &name,
                            &mut parents_done,
                            &mut roots,
                            spellings.as_mut(),
                            &mut Vec::new(),
                        );
                    }
                }
            }
        }
    }
    if let Some((first, rest)) = roots.split_first() {
        let mut builder = WalkBuilder::new(first);
        for r in rest {
            builder.add(r);
        }
        let root = req.root.to_path_buf();
        let filter_ignores = ignores.clone();
        builder
            .standard_filters(false)
            .follow_links(false)
            .threads(0)
            .filter_entry(move |d| keep(&root, &filter_ignores, d));
        builder.build_parallel().visit(&mut Builder {
            ctx: &ctx,
            results: &results,
        });
    }
    shared.walk_done.store(true, Ordering::Relaxed);
    if shared.stopped() {
        return;
    }
    let walked = Walked::merge(results.into_inner().unwrap_or_else(PoisonError::into_inner));
    deletions(&ctx, scopes.as_ref(), &walked, spellings.as_mut());
    if shared.stopped() {
        return;
    }
    hash::hash_files(&ctx, walked.to_hash);
}

/// The walker's filter: ignored and internal entries are neither visited nor, for
/// directories, read. Names it cannot judge pass, for the visitor to report.
fn keep(root: &Path, ignores: &Ignores, d: &DirEntry) -> bool {
    let Some(name) = relative(root, d.path()).and_then(Path::to_str) else {
        return true;
    };
    let is_dir = d.file_type().is_some_and(|t| t.is_dir());
    !ignores.is_ignored_entry(name, is_dir)
}

/// `path` relative to `root`, as `Path::strip_prefix` says, without its walk over the
/// components in the usual case (the walker's paths are the root's bytes, a slash, the
/// rest): that walk was 6 % of a warm rescan.
pub(super) fn relative<'p>(root: &Path, path: &'p Path) -> Option<&'p Path> {
    use std::os::unix::ffi::OsStrExt;
    let rest = path
        .as_os_str()
        .as_bytes()
        .strip_prefix(root.as_os_str().as_bytes());
    match rest {
        Some([]) => Some(Path::new("")),
        Some([b'/', rest @ ..]) if rest.first() != Some(&b'/') && !rest.ends_with(b"/") => {
            Some(Path::new(std::ffi::OsStr::from_bytes(rest)))
        }
        _ => path.strip_prefix(root).ok(),
    }
}

/// The names of a scoped scan (`ScanRequest::only`), none inside another.
pub(super) struct Scopes {
    names: Vec<String>,
    set: HashSet<String>,
}

impl Scopes {
    /// `None` when the whole folder is to be scanned. Invalid names are reported and left
    /// out.
    fn new(only: &[String], ctx: &Ctx<'_>) -> Option<Self> {
        let mut names = Vec::new();
        for raw in only {
            let name = raw.trim_end_matches('/');
            let normalised;
            let name = if ctx.caps.normalising && !is_nfc(name) {
                normalised = to_nfc(name);
                normalised.as_str()
            } else {
                name
            };
            if name.is_empty() || name == "." {
                return None;
            }
            let valid = !name.contains('\0')
                && name
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != "..");
            if valid {
                names.push(name.to_string());
            } else {
                ctx.send(Event::error(
                    raw.as_str(),
                    "not a relative name inside the folder",
                ));
            }
        }
        let all: HashSet<String> = names.iter().cloned().collect();
        names.sort();
        names.dedup();
        names.retain(|n| !ancestors(n).any(|a| all.contains(a)));
        let set = names.iter().cloned().collect();
        Some(Self { names, set })
    }

    /// Whether `name` is one of the scopes or inside one.
    pub fn covers(&self, name: &str) -> bool {
        self.set.contains(name) || ancestors(name).any(|a| self.set.contains(a))
    }
}

/// The proper ancestors of a relative name, outermost first: `a/b/c` gives `a`, `a/b`.
pub(super) fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('/').map(move |(i, _)| &name[..i])
}

/// Names whose index entries a scan must leave alone, with everything under them, because
/// the walk could not read them.
#[derive(Default)]
pub(super) struct Protected {
    /// The walk failed somewhere it cannot name: protect everything.
    all: bool,
    names: HashSet<String>,
}

impl Protected {
    pub fn add(&mut self, name: String) {
        if name.is_empty() {
            self.all = true;
        } else {
            self.names.insert(name);
        }
    }

    pub fn covers(&self, name: &str) -> bool {
        self.all || self.names.contains(name) || ancestors(name).any(|a| self.names.contains(a))
    }
}

/// One bit per entry of the previous state (by its position in name order): whether the
/// walk met it. 125 KiB for a million entries, shared by the walking threads.
pub(super) struct Seen(Vec<AtomicU64>);

impl Seen {
    fn new(entries: usize) -> Self {
        Self(
            (0..entries.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        )
    }

    fn mark(&self, i: usize) {
        if let Some(word) = self.0.get(i / 64) {
            word.fetch_or(1 << (i % 64), Ordering::Relaxed);
        }
    }

    fn contains(&self, i: usize) -> bool {
        self.0
            .get(i / 64)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (i % 64)) != 0)
    }
}

/// What the walk found, per walking thread and then merged.
#[derive(Default)]
struct Walked {
    protected: Protected,
    to_hash: Vec<HashJob>,
}

impl Walked {
    fn merge(parts: Vec<Walked>) -> Self {
        let mut all = Walked::default();
        for p in parts {
            all.protected.all |= p.protected.all;
            all.protected.names.extend(p.protected.names);
            all.to_hash.extend(p.to_hash);
        }
        all
    }
}

struct Builder<'c, 'a> {
    ctx: &'c Ctx<'a>,
    results: &'c Mutex<Vec<Walked>>,
}

impl<'s, 'c: 's, 'a: 's> ParallelVisitorBuilder<'s> for Builder<'c, 'a> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Visitor::new(self.ctx, self.results))
    }
}

/// One walking thread's view; hands its findings over when dropped.
struct Visitor<'c, 'a> {
    ctx: &'c Ctx<'a>,
    out: Walked,
    results: &'c Mutex<Vec<Walked>>,
}

impl Drop for Visitor<'_, '_> {
    fn drop(&mut self) {
        let out = std::mem::take(&mut self.out);
        self.results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(out);
    }
}

impl ParallelVisitor for Visitor<'_, '_> {
    fn visit(&mut self, entry: Result<DirEntry, ignore::Error>) -> WalkState {
        if self.ctx.shared.stopped() {
            return WalkState::Quit;
        }
        let dent = match entry {
            Ok(d) => d,
            Err(e) => {
                self.walk_error(e);
                return WalkState::Continue;
            }
        };
        let path = dent.path();
        // Every walked path starts with the root, which the walk was given.
        let Some(rel) = relative(self.ctx.root, path) else {
            return WalkState::Continue;
        };
        if rel.as_os_str().is_empty() {
            return WalkState::Continue; // the root itself
        }
        let Some(name) = rel.to_str() else {
            self.error(rel.to_string_lossy(), NOT_UTF8);
            return WalkState::Skip;
        };
        // A normalising file system reaches the entry by its NFC name too: index that.
        let normalised;
        let name = if self.ctx.caps.normalising && !is_nfc(name) {
            normalised = to_nfc(name);
            normalised.as_str()
        } else {
            name
        };
        // The parents passed on the way down; the root of a scoped walk is checked whole.
        let own = if dent.depth() == 0 {
            name
        } else {
            name.rsplit('/').next().unwrap_or(name)
        };
        if !is_nfc(own) {
            // Renamed to NFC by the indexer, then scanned under that name.
            self.ctx.send(Event::NotNfc(name.to_string()));
            return WalkState::Skip;
        }
        match fs::symlink_metadata(path) {
            Ok(meta) => self.entry(name, path, &meta),
            // Gone since the directory was listed: the deletion pass looks again.
            Err(e) if is_gone(&e) => WalkState::Skip,
            Err(e) => {
                self.out.protected.add(name.to_string());
                self.error(name, format!("cannot read: {e}"));
                WalkState::Skip
            }
        }
    }
}

impl<'c, 'a> Visitor<'c, 'a> {
    fn new(ctx: &'c Ctx<'a>, results: &'c Mutex<Vec<Walked>>) -> Self {
        Self {
            ctx,
            out: Walked::default(),
            results,
        }
    }

    fn error(&self, path: impl Into<String>, message: impl Into<String>) {
        self.ctx.send(Event::error(path, message));
    }

    /// An entry that exists: index it if it changed. `Skip` for what must not be descended.
    fn entry(&mut self, name: &str, path: &Path, meta: &Metadata) -> WalkState {
        let ctx = self.ctx;
        ctx.shared.files_seen.fetch_add(1, Ordering::Relaxed);
        let prev = ctx.prev.position(name).map(|i| {
            ctx.seen.mark(i);
            ctx.prev.state_at(i)
        });
        let changed = |now: &ScanState| !prev.as_ref().is_some_and(|p| unchanged(p, now));
        let ft = meta.file_type();
        if ft.is_dir() {
            let now = ctx.state(name, meta, FileType::Dir, String::new());
            if changed(&now) {
                ctx.send(Event::Change(change(name, now, Vec::new())));
            }
            WalkState::Continue
        } else if ft.is_symlink() {
            let target = match fs::read_link(path) {
                Ok(t) => t,
                Err(e) if is_gone(&e) => {
                    ctx.send(Event::Retry(name.to_string()));
                    return WalkState::Skip;
                }
                Err(e) => {
                    self.error(name, format!("cannot read the symlink: {e}"));
                    return WalkState::Skip;
                }
            };
            let Some(target) = target.to_str() else {
                self.error(name, "symlink target is not valid UTF-8");
                return WalkState::Skip;
            };
            let now = ctx.state(name, meta, FileType::Symlink, target.to_string());
            if changed(&now) {
                ctx.send(Event::Change(change(name, now, Vec::new())));
            }
            WalkState::Skip
        } else if ft.is_file() {
            let now = ctx.state(name, meta, FileType::File, String::new());
            if changed(&now) {
                ctx.shared.files_to_hash.fetch_add(1, Ordering::Relaxed);
                ctx.shared
                    .bytes_to_hash
                    .fetch_add(now.size, Ordering::Relaxed);
                self.out.to_hash.push(HashJob {
                    name: name.to_string(),
                    size: now.size,
                });
            }
            WalkState::Skip
        } else {
            let kind = if ft.is_fifo() {
                "a FIFO"
            } else if ft.is_socket() {
                "a socket"
            } else if ft.is_block_device() || ft.is_char_device() {
                "a device file"
            } else {
                "of an unknown type"
            };
            self.error(
                name,
                format!("is {kind}: only regular files, directories and symlinks are synced"),
            );
            WalkState::Skip
        }
    }

    /// An error the walker met: nothing under its path may be inferred deleted.
    fn walk_error(&mut self, err: ignore::Error) {
        let (path, message) = unwrap_walk_error(err);
        let rel = path
            .as_deref()
            .and_then(|p| p.strip_prefix(self.ctx.root).ok())
            .map(|p| p.to_string_lossy().into_owned());
        match rel {
            Some(rel) => {
                self.out.protected.add(rel.clone());
                self.error(rel, format!("cannot read: {message}"));
            }
            None => {
                self.out.protected.all = true;
                self.error("", format!("walking the folder: {message}"));
            }
        }
    }

    /// One name of a scoped scan: its parent directories are indexed if they changed (a new
    /// file in a new directory), then the name itself, walked if it is a directory.
    fn scope_root(
        &mut self,
        name: &str,
        parents_done: &mut HashSet<String>,
        roots: &mut Vec<PathBuf>,
        spellings: Option<&mut Spellings<'_>>,
        respelled: &mut Vec<String>,
    ) {
        let ctx = self.ctx;
        if let Some(sp) = spellings {
            match sp.lookup(name) {
                Ok(OnDisk::Exact) => {}
                // Gone, or only there in another spelling: deletions decide about this
                // one, and the disk's spelling is scanned.
                Ok(OnDisk::Absent) => return,
                Ok(OnDisk::Other(disk)) => {
                    respelled.push(disk);
                    return;
                }
                Err(e) => {
                    self.out.protected.add(name.to_string());
                    self.error(name, format!("cannot list its directory: {e}"));
                    return;
                }
            }
        }
        for parent in ancestors(name) {
            if ctx.ignores.is_ignored_entry(parent, true) {
                return;
            }
            let path = ctx.root.join(parent);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    if !is_nfc(parent) {
                        self.ctx.send(Event::NotNfc(parent.to_string()));
                        return;
                    }
                    if parents_done.insert(parent.to_string()) {
                        self.entry(parent, &path, &meta);
                    }
                }
                // Not a directory (or gone): the name cannot exist; deletions decide.
                Ok(_) => return,
                Err(e) if is_gone(&e) => return,
                Err(e) => {
                    self.out.protected.add(parent.to_string());
                    self.error(parent, format!("cannot read: {e}"));
                    return;
                }
            }
        }
        let path = ctx.root.join(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) => {
                if ctx.ignores.is_ignored_entry(name, meta.is_dir()) {
                    // Ignored: nothing to index, and ignored names are never deleted.
                } else if !is_nfc(name) {
                    self.ctx.send(Event::NotNfc(name.to_string()));
                } else if meta.is_dir() {
                    roots.push(path);
                } else {
                    self.entry(name, &path, &meta);
                }
            }
            Err(e) if is_gone(&e) => {}
            Err(e) => {
                self.out.protected.add(name.to_string());
                self.error(name, format!("cannot read: {e}"));
            }
        }
    }
}

/// The path an error of the walker is about, and what went wrong.
fn unwrap_walk_error(mut err: ignore::Error) -> (Option<PathBuf>, String) {
    let mut path = None;
    loop {
        err = match err {
            ignore::Error::WithDepth { err, .. } => *err,
            ignore::Error::WithPath { path: p, err } => {
                path.get_or_insert(p);
                *err
            }
            other => return (path, other.to_string()),
        }
    }
}

/// Whether an error says the name does not exist: `ENOENT`, or `ENOTDIR` when a parent
/// directory became a file.
pub(super) fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Whether a name is on disk, as far as deletions are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Presence {
    /// Certainly gone: it, or a parent directory, does not exist, or a parent is now a
    /// file or a symlink (a path through a symlink leads out of the folder).
    Gone,
    Present,
    /// Could not tell (an error other than "not found").
    Unknown,
}

/// `lstat`s the parents of `name` (through `cache`) and then `name`, following nothing.
/// Where names fold, a name that is there only in another spelling is gone.
fn presence<'a>(
    root: &Path,
    name: &'a str,
    cache: &mut HashMap<&'a str, Presence>,
    spellings: Option<&mut Spellings<'_>>,
) -> Presence {
    let look = |rel: &str, need_dir: bool| match fs::symlink_metadata(root.join(rel)) {
        Ok(m) if !need_dir || m.is_dir() => Presence::Present,
        Ok(_) => Presence::Gone,
        Err(e) if is_gone(&e) => Presence::Gone,
        Err(_) => Presence::Unknown,
    };
    for parent in ancestors(name) {
        match *cache.entry(parent).or_insert_with(|| look(parent, true)) {
            Presence::Present => {}
            other => return other,
        }
    }
    match (look(name, false), spellings) {
        (Presence::Present, Some(sp)) => match sp.lookup(name) {
            Ok(OnDisk::Exact) => Presence::Present,
            Ok(_) => Presence::Gone,
            Err(_) => Presence::Unknown,
        },
        (p, _) => p,
    }
}

/// The deletion rule: a name indexed as live becomes a tombstone only when it is not
/// ignored now, the walk could read where it lives, and it is certainly gone from disk.
/// `on_disk` is asked last, and only when the rest allows a deletion.
pub(super) fn should_delete(
    name: &str,
    prev: &ScanState,
    ignores: &Ignores,
    protected: &Protected,
    on_disk: impl FnOnce() -> Presence,
) -> bool {
    !prev.deleted
        && !ignores.is_ignored(name, prev.file_type == FileType::Dir)
        && !protected.covers(name)
        && on_disk() == Presence::Gone
}

/// Sends a tombstone for each live name of `prev` in scope that the walk did not see and
/// that is gone.
fn deletions(
    ctx: &Ctx<'_>,
    scopes: Option<&Scopes>,
    walked: &Walked,
    mut spellings: Option<&mut Spellings<'_>>,
) {
    // In name order: siblings come together, so the parents' lstat results are reused.
    let mut cache = HashMap::new();
    for i in 0..ctx.prev.len() {
        if ctx.prev.deleted_at(i) || ctx.seen.contains(i) {
            continue;
        }
        let name = ctx.prev.name_at(i);
        if scopes.is_some_and(|s| !s.covers(name)) {
            continue;
        }
        if ctx.shared.stopped() {
            return;
        }
        let st = ctx.prev.state_at(i);
        if should_delete(name, &st, ctx.ignores, &walked.protected, || {
            presence(ctx.root, name, &mut cache, spellings.as_deref_mut())
        }) {
            ctx.send(Event::Change(tombstone(name, &st)));
        }
    }
}

/// The scan state of an entry from its `lstat`.
pub(super) fn state(meta: &Metadata, file_type: FileType, symlink_target: String) -> ScanState {
    ScanState {
        file_type,
        deleted: false,
        size: if file_type == FileType::File {
            meta.len()
        } else {
            0
        },
        permissions: meta.mode() & 0o7777,
        modified_ns: nanos(meta.mtime(), meta.mtime_nsec()),
        inode: meta.ino(),
        ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
        symlink_target,
    }
}

fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// Whether an entry can be skipped without reading it.
pub(super) fn unchanged(prev: &ScanState, now: &ScanState) -> bool {
    if prev.deleted || prev.file_type != now.file_type || prev.permissions != now.permissions {
        return false;
    }
    match now.file_type {
        // A directory's times change with its entries, which are compared on their own.
        FileType::Dir => true,
        FileType::File | FileType::Symlink => {
            prev.size == now.size
                && prev.modified_ns == now.modified_ns
                && prev.inode == now.inode
                && prev.ctime_ns == now.ctime_ns
                && prev.symlink_target == now.symlink_target
        }
    }
}

/// A live entry as it is now.
pub(super) fn change(
    name: &str,
    st: ScanState,
    blocks: Vec<crate::protocol::BlockInfo>,
) -> LocalChange {
    LocalChange {
        info: FileInfo {
            name: name.to_string(),
            file_type: st.file_type,
            size: st.size,
            permissions: st.permissions,
            modified_ns: st.modified_ns,
            modified_by: ShortId::default(),
            deleted: false,
            version: Vector::new(),
            sequence: 0,
            blocks,
            symlink_target: st.symlink_target,
        },
        inode: st.inode,
        ctime_ns: st.ctime_ns,
    }
}

fn tombstone(name: &str, prev: &ScanState) -> LocalChange {
    LocalChange {
        info: FileInfo {
            name: name.to_string(),
            file_type: prev.file_type,
            size: 0,
            permissions: prev.permissions,
            modified_ns: prev.modified_ns,
            modified_by: ShortId::default(),
            deleted: true,
            version: Vector::new(),
            sequence: 0,
            blocks: Vec::new(),
            symlink_target: String::new(),
        },
        inode: 0,
        ctime_ns: 0,
    }
}

//! Names across file systems: case-insensitive and normalising file systems.
//!
//! Names travel, and are indexed, in Unicode NFC only (see `protocol::name`). A Linux
//! file system stores names as bytes: `README.md` and `readme.md` are two files, and so
//! are `café` in NFC and in NFD. macOS (APFS, HFS+) and Windows (NTFS, FAT) fold case by
//! default, and macOS also folds normalisation: there, two names from a peer can be one
//! file. What Shoal does about it:
//!
//! - **Probe.** When a folder starts, [`probe`] creates a mixed-case file under `.shoal/`
//!   and `lstat`s its other-case spelling (and an NFC name in NFD): if it finds the same
//!   inode, the file system folds case (or normalisation). The result is cached for the
//!   folder's run (a restart after the marker comes back probes again), logged, and shown
//!   in `status --json` as the folder's `file_system` field. A probe that cannot run (a
//!   read-only file system) assumes the worst, that both fold: that costs some directory
//!   listings and can only refuse, never overwrite.
//! - **Clashes.** On a folding file system, before a remote entry is written, every
//!   component of its name is looked up in its directory's listing ([`Spellings`]): a
//!   component that exists only under another spelling (`README.md` when `readme.md` is
//!   there, or a directory `docs/` when `Docs/` is there) is a clash, and so is a second
//!   name of the same pull batch that folds to a name already taken by the batch. A clash
//!   is never written, replaced or deleted: it is listed in the folder's `name_clashes`
//!   and its error (status --json), logged, and retried with the failed pulls (it goes
//!   away when a user renames one of the two). Everything else in the folder syncs. This
//!   is Syncthing's case-conflict check (its `caseSensitiveFS` option off).
//! - **Deletions.** A remote deletion of `README.md` is applied only when that exact
//!   spelling is on disk; when the disk holds only `readme.md`, nothing is removed (the
//!   name is recorded as deleted: it was not there).
//! - **Case-only renames.** `foo` renamed `Foo` on one device arrives as a deletion of
//!   `foo` and a new `Foo` with the same content; the puller moves the file with rename(2)
//!   (same inode, no data copied) instead of copying and deleting. On a folding file
//!   system, `Foo` "exists" already as `foo` itself: the same file is not a clash. There a
//!   directory (`Docs` → `docs`) is moved the same way, with everything in it, and so is
//!   an empty file ([`NameGuard::case_source`]); entries inside a moved directory are
//!   compared with their old spelling's index entry (an edit made together with the
//!   rename is then applied as usual), and the old spellings' deletions remove nothing.
//!   An entry that cannot be moved (a symlink, or a file changed at the same time) waits
//!   until the batch's deletions have removed its old spelling, then is written anew
//!   ([`split_late`]). Linux's own case-insensitive file systems (ext4 casefold) ignore a
//!   rename between two spellings of one entry; when the spelling did not change, the
//!   rename goes through an intermediate name (`.shoal-case-…` beside it; a crash between
//!   the two leaves the entry under that name, where the next scan finds it: nothing is
//!   lost). On a case-sensitive file system a directory's case-only rename arrives as a
//!   new directory whose files are moved into it (same inodes), the old one removed.
//! - **What folds.** Names are compared by [`crate::protocol::name::fold`]: NFC, upper-
//!   then lower-cased, NFC. It folds a little more than some file systems do (`ß`/`ss`):
//!   such an over-eager match is reported as a clash, never written over.
//! - **Scanning.** On a folding file system the scanner trusts only directory listings
//!   for spellings: a name the watcher reports in a spelling the disk does not hold is
//!   not indexed under that spelling, and an indexed name whose spelling changed on disk
//!   (a local case-only rename) becomes a deletion plus the new name.
//! - **NFD on disk.** A name the scanner finds in another normalisation (macOS apps write
//!   NFD; a copy from a Mac to Linux keeps it) is indexed under its NFC form. On a
//!   normalising file system both spellings reach the same file and nothing changes on
//!   disk. On others, the file is renamed to its NFC name (as Syncthing does on Linux and
//!   Windows) without replacing anything; when the NFC name exists as well, the NFD one is
//!   left alone and reported as a scan error ("rename or remove one of them").

use super::fsops::FolderFs;
use crate::protocol::name::{fold, to_nfc};
use crate::protocol::{FileInfo, FileType};
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use tracing::{info, warn};

/// How a folder's file system compares names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsCaps {
    /// `A` and `a` are one entry (macOS and Windows by default).
    pub case_insensitive: bool,
    /// A name in NFC and in NFD is one entry (macOS).
    pub normalising: bool,
}

impl FsCaps {
    /// A plain Linux file system: names are bytes.
    pub const PLAIN: FsCaps = FsCaps {
        case_insensitive: false,
        normalising: false,
    };
    /// What to assume when the probe cannot run: both fold (the safe side).
    pub const ASSUMED: FsCaps = FsCaps {
        case_insensitive: true,
        normalising: true,
    };

    /// Whether two different names can be one entry here.
    pub fn folds(&self) -> bool {
        self.case_insensitive || self.normalising
    }

    /// The key under which this file system compares `name`.
    pub fn key(&self, name: &str) -> String {
        if self.case_insensitive {
            fold(name)
        } else if self.normalising {
            to_nfc(name)
        } else {
            name.to_string()
        }
    }

    /// Whether `disk` (a listed name) is `name` (an NFC name) as Shoal spells it: byte for
    /// byte, or, on a normalising file system, in another normalisation.
    pub fn same_spelling(&self, disk: &str, name: &str) -> bool {
        disk == name || (self.normalising && to_nfc(disk) == name)
    }

    pub fn describe(&self) -> &'static str {
        match (self.case_insensitive, self.normalising) {
            (false, false) => "case-sensitive",
            (true, false) => "case-insensitive",
            (false, true) => "case-sensitive, normalising Unicode",
            (true, true) => "case-insensitive, normalising Unicode",
        }
    }

    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "case_insensitive": self.case_insensitive,
            "normalising": self.normalising,
        })
    }
}

/// Finds out how the file system of the folder at `root` compares names, with two probe
/// files under its `.shoal/` marker (removed again).
pub fn probe(root: &Path) -> io::Result<FsCaps> {
    let dir = root.join(crate::config::MARKER_DIR);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tag = format!("{}-{nanos}", std::process::id());
    let same = |created: &str, other: &str| -> io::Result<bool> {
        let a = dir.join(created);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&a)?;
        let ino = f.metadata()?.ino();
        drop(f);
        let found = std::fs::symlink_metadata(dir.join(other)).map(|m| m.ino() == ino);
        let _ = std::fs::remove_file(&a);
        match found {
            Ok(same) => Ok(same),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    };
    let case_insensitive = same(
        &format!("probe-case-{tag}-aB"),
        &format!("PROBE-CASE-{tag}-Ab"),
    )?;
    let normalising = same(
        &format!("probe-nfc-{tag}-\u{e9}"),
        &format!("probe-nfc-{tag}-e\u{301}"),
    )?;
    Ok(FsCaps {
        case_insensitive,
        normalising,
    })
}

/// [`probe`], logged; [`FsCaps::ASSUMED`] when it cannot run.
pub fn probe_logged(folder: &str, root: &Path) -> FsCaps {
    match probe(root) {
        Ok(caps) => {
            info!(%folder, file_system = caps.describe(), "probed how the folder's file system compares names");
            caps
        }
        Err(e) => {
            warn!(%folder, error = %e, "cannot probe the folder's file system; assuming it is case-insensitive and normalising");
            FsCaps::ASSUMED
        }
    }
}

/// Where a name stands on disk, spelling included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnDisk {
    /// Every component is there, spelled as in the name.
    Exact,
    /// A component is missing (nothing under any spelling).
    Absent,
    /// A component exists only under another spelling: the name up to that component as
    /// the disk spells it.
    Other(String),
}

/// Directory listings of one folder, cached for a batch of look-ups, keyed by how the file
/// system compares names.
pub struct Spellings<'a> {
    fs: &'a FolderFs,
    caps: FsCaps,
    /// Directory (as Shoal spells it; "" for the root) → key → spellings on disk.
    dirs: HashMap<String, Option<HashMap<String, Vec<String>>>>,
}

fn join(dir: &str, base: &str) -> String {
    if dir.is_empty() {
        base.to_string()
    } else {
        format!("{dir}/{base}")
    }
}

fn split(name: &str) -> (&str, &str) {
    name.rsplit_once('/').unwrap_or(("", name))
}

impl<'a> Spellings<'a> {
    pub fn new(fs: &'a FolderFs, caps: FsCaps) -> Self {
        Self {
            fs,
            caps,
            dirs: HashMap::new(),
        }
    }

    /// The listing of `dir`, keyed; `None` when it is not a readable directory.
    fn listing(&mut self, dir: &str) -> io::Result<Option<&mut HashMap<String, Vec<String>>>> {
        if !self.dirs.contains_key(dir) {
            let listed = match self.fs.list_dir(dir) {
                Ok(names) => {
                    let mut map: HashMap<String, Vec<String>> = HashMap::new();
                    for n in names {
                        map.entry(self.caps.key(&n)).or_default().push(n);
                    }
                    Some(map)
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    None
                }
                Err(e) => return Err(e),
            };
            self.dirs.insert(dir.to_string(), listed);
        }
        Ok(self.dirs.get_mut(dir).and_then(Option::as_mut))
    }

    /// Where `name` stands on disk, component by component.
    pub fn lookup(&mut self, name: &str) -> io::Result<OnDisk> {
        let caps = self.caps;
        let mut dir = String::new();
        for comp in name.split('/') {
            let Some(listing) = self.listing(&dir)? else {
                return Ok(OnDisk::Absent);
            };
            let Some(found) = listing.get(&caps.key(comp)) else {
                return Ok(OnDisk::Absent);
            };
            if !found.iter().any(|d| caps.same_spelling(d, comp)) {
                let disk = found.first().map(String::as_str).unwrap_or(comp);
                return Ok(OnDisk::Other(join(&dir, disk)));
            }
            dir = join(&dir, comp);
        }
        Ok(OnDisk::Exact)
    }

    /// Keeps the cache in step with an entry created (or renamed to) `name`.
    pub fn added(&mut self, name: &str) {
        let (dir, base) = split(name);
        let key = self.caps.key(base);
        if let Some(Some(listing)) = self.dirs.get_mut(dir) {
            let v = listing.entry(key).or_default();
            if !v.iter().any(|d| d == base) {
                v.push(base.to_string());
            }
        }
    }

    /// Keeps the cache in step with an entry removed (or renamed away from) `name`.
    pub fn removed(&mut self, name: &str) {
        let (dir, base) = split(name);
        let key = self.caps.key(base);
        if let Some(Some(listing)) = self.dirs.get_mut(dir)
            && let Some(v) = listing.get_mut(&key)
        {
            v.retain(|d| d != base);
            if v.is_empty() {
                listing.remove(&key);
            }
        }
        self.dirs.remove(name);
    }
}

/// Splits a batch's `updates` into those applied before its `deletions` and those that
/// must wait until the deletions are done: on a folding file system, updates whose name,
/// or a parent's, is another spelling of a name the batch deletes, unless that entry is
/// moved to its new spelling ([`NameGuard::case_source`]). What waits is written once the
/// old spelling is gone (an entry whose old spelling could not be moved: a symlink, or a
/// file or directory changed at the same time).
pub fn split_late<T>(
    caps: FsCaps,
    updates: Vec<T>,
    deletions: &[T],
    name: impl Fn(&T) -> &str,
    moved: impl Fn(&T) -> bool,
) -> (Vec<T>, Vec<T>) {
    if !caps.folds() || deletions.is_empty() {
        return (updates, Vec::new());
    }
    let mut deleted: HashMap<String, Vec<&str>> = HashMap::new();
    for d in deletions {
        deleted.entry(caps.key(name(d))).or_default().push(name(d));
    }
    let respelled = |prefix: &str| {
        deleted
            .get(&caps.key(prefix))
            .is_some_and(|spellings| !spellings.contains(&prefix))
    };
    // Directories moved to their new spelling take their content along.
    let moved_dirs: std::collections::HashSet<&str> =
        updates.iter().filter(|u| moved(u)).map(&name).collect();
    let late: Vec<bool> = updates
        .iter()
        .map(|u| {
            let n = name(u);
            let mut parents = n.match_indices('/').map(|(j, _)| &n[..j]);
            // Inside a moved directory everything has its new spelling already.
            if parents.clone().any(|p| moved_dirs.contains(p)) {
                return false;
            }
            parents.any(respelled) || (respelled(n) && !moved(u))
        })
        .collect();
    let mut late = late.into_iter();
    updates
        .into_iter()
        .partition(|_| !late.next().unwrap_or(false))
}

/// What the puller may do with one remote entry, as far as names go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Go,
    /// `rename_from` is this very entry under another spelling (a case-only rename).
    SameFile,
    /// The entry is on disk under this name already, moved along with its directory: it
    /// is the old spelling's local entry, to compare the disk with.
    Replaces(Box<FileInfo>),
    /// It clashes with this name (on disk, or earlier in the batch): leave both alone.
    Clash(String),
    /// A deletion whose name is on disk only under another spelling: nothing to remove.
    NotHere,
}

/// The puller's name check for one batch. Free on a file system that does not fold.
pub struct NameGuard<'a> {
    caps: FsCaps,
    spellings: Spellings<'a>,
    /// Key → the name of this batch that took it.
    claimed: HashMap<String, String>,
    /// Key → a live local entry this batch deletes, whose disk state matches the index:
    /// the old spelling of a case-only rename, when an update has its key.
    deleted: HashMap<String, FileInfo>,
}

impl<'a> NameGuard<'a> {
    pub fn new(fs: &'a FolderFs, caps: FsCaps) -> Self {
        Self {
            caps,
            spellings: Spellings::new(fs, caps),
            claimed: HashMap::new(),
            deleted: HashMap::new(),
        }
    }

    /// Notes a live local entry that this batch deletes and that is on disk as the index
    /// says: it may be the old spelling of an update's name.
    pub fn note_deletion(&mut self, local: &FileInfo) {
        if self.caps.folds() && !local.deleted {
            self.deleted
                .insert(self.caps.key(&local.name), local.clone());
        }
    }

    /// The batch's deletions are applied: their entries are no rename sources any more.
    pub fn deletions_done(&mut self) {
        self.deleted.clear();
    }

    /// The old spelling of `remote`, deleted in this batch, when `remote` is that same
    /// entry renamed only in case or normalisation: a directory, or a file with the same
    /// content. Moving it keeps the inode and, for a directory, everything inside.
    pub fn case_source(&self, remote: &FileInfo) -> Option<String> {
        if !self.caps.folds() || remote.deleted {
            return None;
        }
        let old = self.deleted.get(&self.caps.key(&remote.name))?;
        let same = old.name != remote.name
            && old.file_type == remote.file_type
            && match remote.file_type {
                FileType::Dir => true,
                FileType::File => old.blocks == remote.blocks,
                FileType::Symlink => false,
            };
        same.then(|| old.name.clone())
    }

    pub fn caps(&self) -> FsCaps {
        self.caps
    }

    /// Checks `name` before it is written (`deleted` false) or removed. `rename_from` is
    /// the name whose file is to be moved to `name` (a rename in this batch): the same
    /// file under another spelling is no clash.
    pub fn check(&mut self, name: &str, deleted: bool, rename_from: Option<&str>) -> Verdict {
        if !self.caps.folds() {
            return Verdict::Go;
        }
        let on_disk = match self.spellings.lookup(name) {
            Ok(d) => d,
            // Cannot tell: write nothing (the entry is retried with the failed ones).
            Err(e) => return Verdict::Clash(format!("(cannot list its directory: {e})")),
        };
        if deleted {
            return match on_disk {
                OnDisk::Other(_) => Verdict::NotHere,
                _ => Verdict::Go,
            };
        }
        // The name and each parent directory: another spelling taken earlier in the batch
        // (`Docs/a` then `docs/b`) is a clash too.
        let prefixes: Vec<&str> = name
            .match_indices('/')
            .map(|(i, _)| &name[..i])
            .chain(std::iter::once(name))
            .collect();
        for p in &prefixes {
            if let Some(other) = self.claimed.get(&self.caps.key(p))
                && other != p
            {
                return Verdict::Clash(other.clone());
            }
        }
        let respelled_from = rename_from
            .filter(|f| *f != name && self.caps.key(f) == self.caps.key(name))
            .is_some();
        let verdict = match on_disk {
            OnDisk::Other(disk) if rename_from == Some(disk.as_str()) => Verdict::SameFile,
            OnDisk::Other(disk) => return Verdict::Clash(disk),
            // Already under its new spelling: moved along with its renamed directory.
            OnDisk::Exact if respelled_from => Verdict::SameFile,
            OnDisk::Exact => match self.deleted.get(&self.caps.key(name)) {
                Some(old) if old.name != name => Verdict::Replaces(Box::new(old.clone())),
                _ => Verdict::Go,
            },
            OnDisk::Absent => Verdict::Go,
        };
        for p in prefixes {
            self.claimed
                .entry(self.caps.key(p))
                .or_insert_with(|| p.to_string());
        }
        verdict
    }

    /// Records that `name` now exists on disk as spelled.
    pub fn added(&mut self, name: &str) {
        if self.caps.folds() {
            self.spellings.added(name);
        }
    }

    /// Records that `name` is gone from disk.
    pub fn removed(&mut self, name: &str) {
        if self.caps.folds() {
            self.spellings.removed(name);
        }
    }

    /// Moves the file at `from` to `to`, in one rename(2) where the file system allows;
    /// a case-only (or normalisation-only) rename on a folding file system that left the
    /// spelling unchanged goes through an intermediate name.
    pub fn rename(&mut self, fs: &FolderFs, from: &str, to: &str) -> io::Result<()> {
        let same_entry = self.caps.folds() && self.caps.key(from) == self.caps.key(to);
        fs.rename(from, to)?;
        if same_entry && !self.spelled(fs, to)? {
            let (dir, base) = split(to);
            let h = blake3::hash(base.as_bytes()).to_hex();
            let via = join(dir, &format!(".shoal-case-{}", &h[..16]));
            fs.rename_noreplace(from, &via)?;
            fs.rename_noreplace(&via, to)?;
        }
        self.removed(from);
        self.added(to);
        Ok(())
    }

    /// Whether the last component of `name` is listed spelled as in `name`.
    fn spelled(&self, fs: &FolderFs, name: &str) -> io::Result<bool> {
        let (dir, base) = split(name);
        Ok(fs
            .list_dir(dir)?
            .iter()
            .any(|d| self.caps.same_spelling(d, base)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> (tempfile::TempDir, FolderFs) {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(dir.path().join(".shoal")).expect("marker");
        let fs = FolderFs::open(dir.path()).expect("open");
        (dir, fs)
    }

    #[test]
    fn a_plain_file_system_probes_as_plain() {
        let (dir, _) = folder();
        assert_eq!(probe(dir.path()).expect("probe"), FsCaps::PLAIN);
        // The probe leaves nothing behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join(".shoal"))
                .expect("ls")
                .count(),
            0
        );
    }

    #[test]
    fn keys_follow_what_the_file_system_folds() {
        let ci = FsCaps {
            case_insensitive: true,
            normalising: false,
        };
        assert_eq!(ci.key("README.md"), ci.key("readme.md"));
        assert_ne!(
            FsCaps::PLAIN.key("README.md"),
            FsCaps::PLAIN.key("readme.md")
        );
        let nf = FsCaps {
            case_insensitive: false,
            normalising: true,
        };
        assert_eq!(nf.key("caf\u{e9}"), nf.key("cafe\u{301}"));
        assert_ne!(nf.key("Caf\u{e9}"), nf.key("caf\u{e9}"));
        assert!(nf.same_spelling("cafe\u{301}", "caf\u{e9}"));
        assert!(!ci.same_spelling("Readme", "readme"));
    }

    /// The guard's logic on a plain directory, told that it folds case: the listing is
    /// what counts, and plain Linux lists what it holds.
    #[test]
    fn the_guard_finds_clashes_by_listing() {
        let (dir, fs) = folder();
        std::fs::write(dir.path().join("readme.md"), "local").expect("write");
        std::fs::create_dir(dir.path().join("Docs")).expect("mkdir");
        std::fs::write(dir.path().join("Docs/a"), "a").expect("write");
        let mut g = NameGuard::new(&fs, FsCaps::ASSUMED);
        assert_eq!(
            g.check("README.md", false, None),
            Verdict::Clash("readme.md".into())
        );
        assert_eq!(g.check("readme.md", false, None), Verdict::Go);
        assert_eq!(
            g.check("docs/b", false, None),
            Verdict::Clash("Docs".into())
        );
        assert_eq!(g.check("Docs/a", false, None), Verdict::Go);
        assert_eq!(g.check("new/x", false, None), Verdict::Go);
        // Two names of one batch that fold together: the first takes it.
        assert_eq!(g.check("Other.txt", false, None), Verdict::Go);
        assert_eq!(
            g.check("other.TXT", false, None),
            Verdict::Clash("Other.txt".into())
        );
        // Directories too: the second spelling would land inside the first.
        assert_eq!(g.check("Pics/a", false, None), Verdict::Go);
        assert_eq!(g.check("Pics/b", false, None), Verdict::Go);
        assert_eq!(
            g.check("pics/c", false, None),
            Verdict::Clash("Pics".into())
        );
        // A rename between two spellings of one file is not a clash.
        let mut g2 = NameGuard::new(&fs, FsCaps::ASSUMED);
        assert_eq!(
            g2.check("ReadMe.md", false, Some("readme.md")),
            Verdict::SameFile
        );
        // Deletions: only the exact spelling is removed.
        assert_eq!(g.check("README.md", true, None), Verdict::NotHere);
        assert_eq!(g.check("readme.md", true, None), Verdict::Go);
        assert_eq!(g.check("gone", true, None), Verdict::Go);
        // Nothing is checked where names do not fold.
        let mut plain = NameGuard::new(&fs, FsCaps::PLAIN);
        assert_eq!(plain.check("README.md", false, None), Verdict::Go);
    }

    #[test]
    fn updates_under_a_deleted_spelling_wait_for_the_deletions() {
        let updates = vec!["Docs", "Docs/a", "Foo", "Link", "Pics", "Pics/b", "bar"];
        let deletions = ["docs/a", "docs", "foo", "link", "pics/b", "pics"];
        // "Foo" and "Pics" are moved from their old spellings; "Link" (a symlink) and
        // "Docs" (say, changed meanwhile) are not.
        let moved = |n: &&str| matches!(*n, "Foo" | "Pics");
        let split = |caps| split_late(caps, updates.clone(), &deletions, |n| n, moved);
        assert_eq!(
            split(FsCaps::ASSUMED),
            (
                vec!["Foo", "Pics", "Pics/b", "bar"],
                vec!["Docs", "Docs/a", "Link"]
            )
        );
        assert_eq!(split(FsCaps::PLAIN), (updates.clone(), vec![]));
    }

    fn entry(name: &str, file_type: FileType, content: &[u8]) -> FileInfo {
        let blocks = if content.is_empty() {
            vec![]
        } else {
            vec![crate::protocol::BlockInfo {
                hash: crate::protocol::BlockHash::of(content),
                size: content.len() as u32,
            }]
        };
        FileInfo {
            name: name.into(),
            file_type,
            size: content.len() as u64,
            permissions: 0o644,
            modified_ns: 1,
            modified_by: crate::identity::ShortId(1),
            deleted: false,
            version: crate::protocol::Vector::new(),
            sequence: 1,
            blocks,
            symlink_target: String::new(),
        }
    }

    #[test]
    fn case_only_renames_are_recognised_by_key_type_and_content() {
        let (dir, fs) = folder();
        // The directory was moved to its new spelling already; its file went along.
        std::fs::create_dir(dir.path().join("Pics")).expect("mkdir");
        std::fs::write(dir.path().join("Pics/b"), "old").expect("write");
        let mut g = NameGuard::new(&fs, FsCaps::ASSUMED);
        g.note_deletion(&entry("pics", FileType::Dir, b""));
        g.note_deletion(&entry("pics/b", FileType::File, b"old"));
        g.note_deletion(&entry("link", FileType::Symlink, b""));
        g.note_deletion(&entry("e", FileType::File, b""));
        let pics = entry("Pics", FileType::Dir, b"");
        assert_eq!(g.case_source(&pics).as_deref(), Some("pics"));
        assert_eq!(g.check("Pics", false, Some("pics")), Verdict::SameFile);
        // Same content: the same file; new content: replaces what moved along.
        let same = entry("Pics/b", FileType::File, b"old");
        assert_eq!(g.case_source(&same).as_deref(), Some("pics/b"));
        let edited = entry("Pics/b", FileType::File, b"new");
        assert_eq!(g.case_source(&edited), None);
        match g.check("Pics/b", false, None) {
            Verdict::Replaces(old) => assert_eq!(old.name, "pics/b"),
            other => panic!("{other:?}"),
        }
        // Symlinks are written anew; empty files move like any file.
        assert_eq!(g.case_source(&entry("LINK", FileType::Symlink, b"")), None);
        assert_eq!(
            g.case_source(&entry("E", FileType::File, b"")).as_deref(),
            Some("e")
        );
        // Another type is no rename.
        assert_eq!(g.case_source(&entry("E", FileType::Dir, b"")), None);
        // The old spellings' deletions remove nothing.
        assert_eq!(g.check("pics/b", true, None), Verdict::NotHere);
        assert_eq!(g.check("pics", true, None), Verdict::NotHere);
        g.deletions_done();
        assert_eq!(g.case_source(&pics), None);
        // Nothing of this where names do not fold.
        let mut plain = NameGuard::new(&fs, FsCaps::PLAIN);
        plain.note_deletion(&entry("pics", FileType::Dir, b""));
        assert_eq!(plain.case_source(&pics), None);
    }

    #[test]
    fn the_cache_follows_renames() {
        let (dir, fs) = folder();
        std::fs::write(dir.path().join("foo"), "x").expect("write");
        let mut g = NameGuard::new(&fs, FsCaps::ASSUMED);
        assert_eq!(g.check("Foo", false, Some("foo")), Verdict::SameFile);
        g.rename(&fs, "foo", "Foo").expect("rename");
        assert!(dir.path().join("Foo").exists() && !dir.path().join("foo").exists());
        assert_eq!(g.check("foo", true, None), Verdict::NotHere);
        assert_eq!(g.check("FOO", false, None), Verdict::Clash("Foo".into()));
    }
}

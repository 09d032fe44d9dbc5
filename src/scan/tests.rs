//! Scans of real temporary folders.

use super::chunker::tests::random_bytes;
use super::walk::{Presence, Protected, should_delete};
use super::*;
use crate::protocol::FileType;
use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

/// A folder in a temporary directory, with the index a database would keep of it.
struct Folder {
    dir: tempfile::TempDir,
    index: HashMap<String, ScanState>,
}

impl Folder {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join(".shoal")).expect("marker");
        Self {
            dir,
            index: HashMap::new(),
        }
    }

    /// The index as the database hands it to the scanner.
    fn prev(&self) -> ScanStates {
        self.index
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect()
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Writes a file (and its parents) dated in the past, so it is not "racy".
    fn write(&self, rel: &str, content: &[u8]) {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&p, content).expect("write");
        set_old_mtime(&p);
    }

    fn mkdir(&self, rel: &str) {
        fs::create_dir_all(self.path(rel)).expect("mkdir");
    }

    fn scan(&self, only: Option<&[String]>) -> (Vec<LocalChange>, ScanSummary) {
        collect(&ScanRequest {
            root: self.root(),
            prev: &self.prev(),
            only,
            caps: crate::sync::names::FsCaps::PLAIN,
            ignore_perms: false,
            previous_blocks: None,
        })
    }

    /// Scans and records the changes in the index, as the indexer does.
    fn sync(&mut self, only: Option<&[String]>) -> (Vec<LocalChange>, ScanSummary) {
        let (changes, summary) = self.scan(only);
        for c in &changes {
            self.index.insert(c.info.name.clone(), state_of(c));
        }
        (changes, summary)
    }
}

/// Runs a scan, collecting every change it hands out.
fn collect(req: &ScanRequest<'_>) -> (Vec<LocalChange>, ScanSummary) {
    let mut changes = Vec::new();
    let summary = scan(
        req,
        &mut |batch: Vec<LocalChange>| -> Result<(), String> {
            changes.extend(batch);
            Ok(())
        },
        &|_| {},
    )
    .expect("scan");
    (changes, summary)
}

fn state_of(c: &LocalChange) -> ScanState {
    ScanState {
        file_type: c.info.file_type,
        deleted: c.info.deleted,
        size: c.info.size,
        permissions: c.info.permissions,
        modified_ns: c.info.modified_ns,
        inode: c.inode,
        ctime_ns: c.ctime_ns,
        symlink_target: c.info.symlink_target.clone(),
    }
}

fn set_old_mtime(p: &Path) {
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    File::options()
        .write(true)
        .open(p)
        .expect("open")
        .set_modified(old)
        .expect("set mtime");
}

fn names(changes: &[LocalChange]) -> Vec<&str> {
    let mut v: Vec<&str> = changes.iter().map(|c| c.info.name.as_str()).collect();
    v.sort_unstable();
    v
}

fn find<'a>(changes: &'a [LocalChange], name: &str) -> &'a LocalChange {
    changes
        .iter()
        .find(|c| c.info.name == name)
        .unwrap_or_else(|| panic!("{name} not in {:?}", names(changes)))
}

fn error_paths(s: &ScanSummary) -> Vec<&str> {
    s.errors.iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn indexes_files_dirs_and_symlinks_with_their_metadata() {
    let f = Folder::new();
    let big = random_bytes(3 << 20, 10);
    f.write("a/b/big.bin", &big);
    f.write("small", b"hello");
    f.write("empty", b"");
    fs::set_permissions(f.path("small"), fs::Permissions::from_mode(0o4751)).expect("chmod");
    symlink("a/b/big.bin", f.path("link")).expect("symlink");
    let (changes, summary) = f.scan(None);
    assert_eq!(
        names(&changes),
        ["a", "a/b", "a/b/big.bin", "empty", "link", "small"]
    );
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.files_seen, 6);
    assert_eq!(summary.changed, 6);
    assert_eq!(summary.bytes_hashed, big.len() as u64 + 5);

    let b = find(&changes, "a/b/big.bin");
    assert_eq!(b.info.file_type, FileType::File);
    assert_eq!(b.info.size, big.len() as u64);
    assert_eq!(
        b.info.blocks,
        blocks_of(&big),
        "same blocks as chunking in memory"
    );
    assert_eq!(b.info.modified_ns, 1_600_000_000 * 1_000_000_000);
    let meta = fs::symlink_metadata(f.path("a/b/big.bin")).expect("stat");
    assert_eq!(b.inode, std::os::unix::fs::MetadataExt::ino(&meta));
    assert_ne!(b.ctime_ns, 0);
    assert!(b.info.version.is_empty() && b.info.sequence == 0 && !b.info.deleted);

    let s = find(&changes, "small");
    assert_eq!(s.info.permissions, 0o4751);
    assert_eq!(s.info.blocks.len(), 1);
    assert_eq!(
        s.info.blocks[0].hash,
        crate::protocol::BlockHash::of(b"hello")
    );
    assert!(find(&changes, "empty").info.blocks.is_empty());

    let d = find(&changes, "a");
    assert_eq!((d.info.file_type, d.info.size), (FileType::Dir, 0));
    assert!(d.info.blocks.is_empty());
    let l = find(&changes, "link");
    assert_eq!(l.info.file_type, FileType::Symlink);
    assert_eq!(
        (l.info.symlink_target.as_str(), l.info.size),
        ("a/b/big.bin", 0)
    );
}

#[test]
fn hidden_files_are_synced_gitignore_has_no_effect_and_own_names_never_are() {
    let f = Folder::new();
    f.write(".hidden", b"x");
    f.write(".config/app.toml", b"x");
    f.write(".gitignore", b"*\n");
    f.write("sub/.gitignore", b"*\n");
    f.write("sub/.ignore", b"*\n");
    f.write("sub/kept.txt", b"x");
    f.write(".shoal/state", b"x");
    f.write(".shoal-tmp-x", b"x");
    f.write("sub/.shoal-tmp-y", b"x");
    f.write("sub/.shoal/z", b"x");
    f.write(".shoalignore", b"# nothing\n");
    let (changes, summary) = f.scan(None);
    assert_eq!(
        names(&changes),
        [
            ".config",
            ".config/app.toml",
            ".gitignore",
            ".hidden",
            "sub",
            "sub/.gitignore",
            "sub/.ignore",
            "sub/.shoal",
            "sub/.shoal/z",
            "sub/kept.txt"
        ]
    );
    assert!(summary.errors.is_empty());
}

#[test]
fn shoalignore_patterns_with_negation_and_directories() {
    let f = Folder::new();
    f.write(".shoalignore", b"*.log\n!keep.log\nbuild/\n/top\n");
    f.write("a.log", b"x");
    f.write("sub/b.log", b"x");
    f.write("keep.log", b"x");
    f.write("build/out.o", b"x");
    f.write("src/build/out.o", b"x");
    f.write("src/build2", b"x");
    f.write("other/build", b"a file named build is not a directory");
    f.write("top", b"x");
    f.write("sub/top", b"x");
    // Only the root .shoalignore counts: a nested one is an ordinary, synced file.
    f.write("sub/.shoalignore", b"*\n");
    f.write("sub/c.txt", b"x");
    let (changes, _) = f.scan(None);
    assert_eq!(
        names(&changes),
        [
            "keep.log",
            "other",
            "other/build",
            "src",
            "src/build2",
            "sub",
            "sub/.shoalignore",
            "sub/c.txt",
            "sub/top"
        ]
    );
}

#[test]
fn a_bad_shoalignore_stops_the_scan() {
    let f = Folder::new();
    f.write(".shoalignore", b"ok\n[z-a]\n");
    let req = ScanRequest {
        root: f.root(),
        prev: &f.prev(),
        only: None,
        caps: crate::sync::names::FsCaps::PLAIN,
        ignore_perms: false,
        previous_blocks: None,
    };
    let err = scan(&req, &mut |_| Ok::<(), String>(()), &|_| {}).expect_err("bad pattern");
    assert!(matches!(err, ScanFailure::Ignores(_)));
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn unchanged_entries_are_skipped_and_each_kind_of_change_is_seen() {
    let mut f = Folder::new();
    f.write("d/a", b"one");
    f.write("d/b", b"two");
    f.write("c", b"three");
    symlink("d/a", f.path("l")).expect("symlink");
    f.sync(None);
    let (changes, summary) = f.sync(None);
    assert!(changes.is_empty(), "{:?}", names(&changes));
    assert_eq!(summary.bytes_hashed, 0, "nothing read");
    assert_eq!(summary.files_seen, 5);

    // Content and size.
    f.write("d/a", b"one, longer");
    // Permissions only.
    fs::set_permissions(f.path("d/b"), fs::Permissions::from_mode(0o600)).expect("chmod");
    // Modification time only.
    File::options()
        .write(true)
        .open(f.path("c"))
        .expect("open")
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000))
        .expect("mtime");
    // A new file in an existing directory changes the directory's times, not its entry.
    f.write("d/new", b"n");
    // A symlink pointing elsewhere.
    fs::remove_file(f.path("l")).expect("rm");
    symlink("d/b", f.path("l")).expect("symlink");
    let (changes, _) = f.sync(None);
    assert_eq!(names(&changes), ["c", "d/a", "d/b", "d/new", "l"]);
    assert_eq!(find(&changes, "d/b").info.permissions, 0o600);
    assert_eq!(find(&changes, "l").info.symlink_target, "d/b");

    // Directory permissions are compared.
    fs::set_permissions(f.path("d"), fs::Permissions::from_mode(0o700)).expect("chmod");
    let (changes, _) = f.sync(None);
    assert_eq!(names(&changes), ["d"]);

    // Same size and mtime but a new inode (replaced by a rename): read again.
    f.write("tmp", b"two");
    fs::set_permissions(f.path("tmp"), fs::Permissions::from_mode(0o600)).expect("chmod");
    let mtime = fs::metadata(f.path("d/b"))
        .expect("stat")
        .modified()
        .expect("mtime");
    File::options()
        .write(true)
        .open(f.path("tmp"))
        .expect("open")
        .set_modified(mtime)
        .expect("mtime");
    fs::rename(f.path("tmp"), f.path("d/b")).expect("rename");
    let (changes, _) = f.sync(None);
    assert_eq!(names(&changes), ["d/b"]);
}

#[test]
fn a_file_written_just_before_the_scan_is_read_again_next_time() {
    let mut f = Folder::new();
    fs::write(f.path("fresh"), b"now").expect("write");
    let (changes, _) = f.sync(None);
    assert_eq!(find(&changes, "fresh").ctime_ns, 0, "recorded as racy");
    let (changes, summary) = f.sync(None);
    assert_eq!(names(&changes), ["fresh"], "read again");
    assert_eq!(summary.bytes_hashed, 3);
    set_old_mtime(&f.path("fresh"));
    let (changes, _) = f.sync(None);
    assert_ne!(find(&changes, "fresh").ctime_ns, 0);
    assert!(f.sync(None).0.is_empty(), "settled");
}

#[test]
fn a_type_change_emits_the_new_entry() {
    let mut f = Folder::new();
    f.write("x", b"file");
    f.mkdir("y");
    f.sync(None);
    fs::remove_file(f.path("x")).expect("rm");
    f.mkdir("x");
    fs::remove_dir(f.path("y")).expect("rmdir");
    f.write("y", b"now a file");
    let (changes, summary) = f.sync(None);
    assert_eq!(names(&changes), ["x", "y"]);
    assert_eq!(find(&changes, "x").info.file_type, FileType::Dir);
    assert_eq!(find(&changes, "y").info.file_type, FileType::File);
    assert_eq!(summary.deleted, 0);
}

#[test]
fn deletions_are_inferred_only_for_names_certainly_gone() {
    let mut f = Folder::new();
    f.write("gone.txt", b"x");
    f.write("dir/sub/x", b"x");
    f.write("through/link/x", b"x");
    f.write("stays", b"x");
    f.sync(None);
    let old = f.index["gone.txt"].modified_ns;
    fs::remove_file(f.path("gone.txt")).expect("rm");
    // A parent directory became a file (ENOTDIR) ...
    fs::remove_dir_all(f.path("dir")).expect("rm");
    f.write("dir", b"a file now");
    // ... or a symlink to a directory that holds the same names: not followed.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(elsewhere.path().join("link")).expect("mkdir");
    fs::write(elsewhere.path().join("link/x"), b"x").expect("write");
    fs::remove_dir_all(f.path("through")).expect("rm");
    symlink(elsewhere.path(), f.path("through")).expect("symlink");
    // An index entry already deleted stays as it is.
    f.index.insert(
        "long-gone".into(),
        ScanState {
            deleted: true,
            ..f.index["stays"].clone()
        },
    );

    let (changes, summary) = f.sync(None);
    let tombstones: Vec<&str> = {
        let mut v: Vec<&str> = changes
            .iter()
            .filter(|c| c.info.deleted)
            .map(|c| c.info.name.as_str())
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(
        tombstones,
        [
            "dir/sub",
            "dir/sub/x",
            "gone.txt",
            "through/link",
            "through/link/x"
        ]
    );
    assert_eq!(summary.deleted, 5);
    let t = find(&changes, "gone.txt");
    assert_eq!(t.info.file_type, FileType::File);
    assert_eq!((t.info.size, t.info.modified_ns), (0, old));
    assert!(t.info.blocks.is_empty());
    assert_eq!(find(&changes, "dir/sub").info.file_type, FileType::Dir);
    assert_eq!(find(&changes, "dir").info.file_type, FileType::File);
    assert_eq!(find(&changes, "through").info.file_type, FileType::Symlink);
    assert!(f.sync(None).0.is_empty(), "tombstones are not repeated");
}

#[test]
fn a_file_that_became_ignored_is_not_deleted() {
    let mut f = Folder::new();
    f.write("x.log", b"x");
    f.write("build/a", b"x");
    f.write("kept", b"x");
    f.sync(None);
    f.write(".shoalignore", b"*.log\nbuild/\n");
    fs::remove_file(f.path("x.log")).expect("rm");
    fs::remove_dir_all(f.path("build")).expect("rm");
    fs::remove_file(f.path("kept")).expect("rm");
    let (changes, _) = f.sync(None);
    assert_eq!(
        names(&changes),
        ["kept"],
        "only the unignored name is deleted"
    );
    assert!(changes[0].info.deleted);
}

#[test]
fn the_deletion_rule() {
    let live = ScanState {
        file_type: FileType::File,
        deleted: false,
        size: 1,
        permissions: 0o644,
        modified_ns: 1,
        inode: 1,
        ctime_ns: 1,
        symlink_target: String::new(),
    };
    let ignores = Ignores::parse("*.log\n", Path::new(".shoalignore")).expect("rules");
    let mut protected = Protected::default();
    protected.add("unreadable".to_string());
    let rule = |name: &str, st: &ScanState, on_disk: Presence| {
        should_delete(name, st, &ignores, &protected, || on_disk)
    };
    assert!(rule("a", &live, Presence::Gone));
    assert!(!rule("a", &live, Presence::Present));
    assert!(
        !rule("a", &live, Presence::Unknown),
        "an error is not a deletion"
    );
    assert!(!rule("a.log", &live, Presence::Gone), "ignored now");
    assert!(!rule(".shoal-tmp-1", &live, Presence::Gone), "internal");
    assert!(
        !rule("unreadable/x/y", &live, Presence::Gone),
        "under a directory the walk could not read"
    );
    assert!(!rule("unreadable", &live, Presence::Gone));
    assert!(rule("unreadable2", &live, Presence::Gone));
    let dead = ScanState {
        deleted: true,
        ..live.clone()
    };
    assert!(!rule("a", &dead, Presence::Gone));
    protected.add(String::new());
    assert!(!should_delete("a", &live, &ignores, &protected, || {
        Presence::Gone
    }));
}

#[test]
fn contents_of_an_unreadable_directory_are_not_deleted() {
    // Root reads any directory whatever its mode: this needs an ordinary user (the rule
    // itself is tested in `the_deletion_rule`, which runs everywhere).
    if rustix::process::geteuid().is_root() {
        return;
    }
    let mut f = Folder::new();
    f.write("locked/a", b"x");
    f.write("locked/sub/b", b"x");
    f.sync(None);
    fs::set_permissions(f.path("locked"), fs::Permissions::from_mode(0o000)).expect("chmod");
    let (changes, summary) = f.sync(None);
    fs::set_permissions(f.path("locked"), fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(
        changes.iter().all(|c| !c.info.deleted),
        "{:?}",
        names(&changes)
    );
    assert_eq!(error_paths(&summary), ["locked"]);
}

#[test]
fn symlinks_are_indexed_and_never_followed() {
    let f = Folder::new();
    let outside = tempfile::tempdir().expect("tempdir");
    fs::write(outside.path().join("secret"), b"s").expect("write");
    symlink(outside.path(), f.path("out")).expect("symlink");
    symlink(outside.path().join("secret"), f.path("file-link")).expect("symlink");
    symlink("nowhere", f.path("dangling")).expect("symlink");
    symlink(".", f.path("loop")).expect("symlink");
    let (changes, summary) = f.scan(None);
    assert_eq!(names(&changes), ["dangling", "file-link", "loop", "out"]);
    assert!(
        changes
            .iter()
            .all(|c| c.info.file_type == FileType::Symlink)
    );
    assert_eq!(
        find(&changes, "out").info.symlink_target,
        outside.path().to_str().expect("utf-8")
    );
    assert_eq!(summary.bytes_hashed, 0);
    // Nor through `only`.
    let only = ["out/secret".to_string(), "out".to_string()];
    let (changes, _) = f.scan(Some(&only));
    assert_eq!(names(&changes), ["out"]);
}

#[test]
fn fifos_are_skipped_as_errors() {
    let f = Folder::new();
    f.write("ok", b"x");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        f.path("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
    let (changes, summary) = f.scan(None);
    assert_eq!(names(&changes), ["ok"]);
    assert_eq!(error_paths(&summary), ["pipe"]);
    assert!(summary.errors[0].message.contains("FIFO"));
}

#[test]
fn names_not_utf8_are_skipped_as_errors_and_nfd_ones_listed_for_renaming() {
    let f = Folder::new();
    f.write("ok", b"x");
    let bad = f.root().join(std::ffi::OsStr::from_bytes(b"bad-\xff-name"));
    fs::write(&bad, b"x").expect("write");
    // "café" spelt with a combining accent (NFD), as a directory with a file inside.
    f.write("cafe\u{301}/inside", b"x");
    f.write("caf\u{e9}.txt", b"NFC is fine");
    f.write("sub/na\u{303}o", b"x");
    let (changes, summary) = f.scan(None);
    assert_eq!(names(&changes), ["caf\u{e9}.txt", "ok", "sub"]);
    assert_eq!(error_paths(&summary), ["bad-\u{fffd}-name"]);
    assert!(summary.errors[0].message.contains("UTF-8"));
    // Not indexed under either spelling: the indexer renames them, then scans them.
    assert_eq!(summary.not_nfc, ["cafe\u{301}", "sub/na\u{303}o"]);
}

#[test]
fn a_normalising_file_system_indexes_nfd_names_in_nfc() {
    let f = Folder::new();
    // A plain directory stands in for the file system: what is checked is the name the
    // entries are indexed under (files, hashed by that name, need a real one: see the
    // integration tests on the FUSE fixture).
    f.mkdir("cafe\u{301}/inner");
    let req = ScanRequest {
        root: f.root(),
        prev: &f.prev(),
        only: None,
        caps: crate::sync::names::FsCaps {
            case_insensitive: false,
            normalising: true,
        },
        ignore_perms: false,
        previous_blocks: None,
    };
    let (changes, summary) = collect(&req);
    assert_eq!(names(&changes), ["caf\u{e9}", "caf\u{e9}/inner"]);
    assert!(summary.not_nfc.is_empty() && summary.errors.is_empty());
}

#[test]
fn only_scopes_the_scan_and_the_deletions() {
    let mut f = Folder::new();
    f.write("a/1", b"x");
    f.write("a/2", b"x");
    f.write("b/1", b"x");
    f.sync(None);
    fs::remove_file(f.path("a/1")).expect("rm");
    fs::remove_file(f.path("b/1")).expect("rm");
    f.write("a/3", b"x");
    f.write("c/new/f", b"x");
    f.write("d/g", b"x");

    let only = ["a".to_string()];
    let (changes, summary) = f.sync(Some(&only));
    assert_eq!(names(&changes), ["a/1", "a/3"]);
    assert!(find(&changes, "a/1").info.deleted);
    assert_eq!(summary.files_seen, 3, "a, a/2, a/3");

    // A file in new directories brings its parents along; nothing else is walked.
    let only = ["c/new/f".to_string(), "c/new/f".to_string()];
    let (changes, _) = f.sync(Some(&only));
    assert_eq!(names(&changes), ["c", "c/new", "c/new/f"]);

    let only = ["b/1".to_string(), "d/g/".to_string(), "../x".to_string()];
    let (changes, summary) = f.sync(Some(&only));
    assert_eq!(names(&changes), ["b/1", "d", "d/g"]);
    assert!(find(&changes, "b/1").info.deleted);
    assert_eq!(error_paths(&summary), ["../x"]);

    // Ignored names are not scanned through `only` either, nor deleted.
    f.write(".shoalignore", b"*.tmp\n");
    f.write("a/x.tmp", b"x");
    let only = ["a/x.tmp".to_string(), "a/2.tmp".to_string()];
    assert!(f.sync(Some(&only)).0.is_empty());

    // An empty name means the whole folder.
    fs::remove_file(f.path("a/2")).expect("rm");
    let (changes, _) = f.sync(Some(&[String::new()]));
    assert_eq!(names(&changes), ["a/2"]);
}

#[test]
fn a_file_growing_while_it_is_read_is_retried_not_emitted() {
    let f = Folder::new();
    f.write("growing", &random_bytes(32 << 20, 11));
    f.write("still", b"x");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let path = f.path("growing");
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = File::options().append(true).open(path).expect("open");
            while !stop.load(Ordering::Relaxed) {
                file.write_all(&[1; 4096]).expect("append");
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let (changes, summary) = f.scan(None);
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    assert_eq!(names(&changes), ["still"]);
    assert_eq!(summary.retry, ["growing"]);
}

#[test]
fn changes_arrive_in_batches_and_a_sink_error_stops_the_scan() {
    let f = Folder::new();
    for i in 0..2500 {
        f.write(&format!("d{}/f{i}", i % 10), b"x");
    }
    let req = ScanRequest {
        root: f.root(),
        prev: &f.prev(),
        only: None,
        caps: crate::sync::names::FsCaps::PLAIN,
        ignore_perms: false,
        previous_blocks: None,
    };
    let mut sizes = Vec::new();
    let summary = scan(
        &req,
        &mut |b: Vec<LocalChange>| -> Result<(), String> {
            sizes.push(b.len());
            Ok(())
        },
        &|_| {},
    )
    .expect("scan");
    assert_eq!(sizes.iter().sum::<usize>(), 2510);
    assert!(
        sizes.len() >= 3 && sizes.iter().all(|&n| n <= 1000),
        "{sizes:?}"
    );
    assert_eq!(summary.changed, 2510);

    let mut calls = 0;
    let err = scan(
        &req,
        &mut |_| {
            calls += 1;
            Err("disk full")
        },
        &|_| {},
    )
    .expect_err("sink failed");
    assert_eq!(calls, 1, "no batch after a failed one");
    assert!(
        matches!(&err, ScanFailure::Aborted(m) if m == "disk full"),
        "{err}"
    );
}

#[test]
fn progress_is_throttled_and_adds_up() {
    let f = Folder::new();
    for i in 0..8 {
        f.write(&format!("f{i}"), &random_bytes(8 << 20, i));
    }
    let req = ScanRequest {
        root: f.root(),
        prev: &f.prev(),
        only: None,
        caps: crate::sync::names::FsCaps::PLAIN,
        ignore_perms: false,
        previous_blocks: None,
    };
    let calls = std::sync::Mutex::new(Vec::new());
    let summary = scan(&req, &mut |_| Ok::<(), String>(()), &|p| {
        calls
            .lock()
            .expect("lock")
            .push((std::time::Instant::now(), p.clone()))
    })
    .expect("scan");
    let calls = calls.into_inner().expect("lock");
    for pair in calls.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= Duration::from_millis(95));
        assert!(pair[1].1.bytes_hashed >= pair[0].1.bytes_hashed);
    }
    for (_, p) in &calls {
        assert!(p.bytes_hashed <= 64 << 20);
        assert!(p.walking || p.bytes_to_hash == 64 << 20);
    }
    assert_eq!(summary.bytes_hashed, 64 << 20);
}

#[test]
fn a_missing_root_is_a_failure() {
    let f = Folder::new();
    let req = ScanRequest {
        root: &f.path("nope"),
        prev: &f.prev(),
        only: None,
        caps: crate::sync::names::FsCaps::PLAIN,
        ignore_perms: false,
        previous_blocks: None,
    };
    let err = scan(&req, &mut |_| Ok::<(), String>(()), &|_| {}).expect_err("no root");
    assert!(matches!(err, ScanFailure::Root { .. }), "{err}");
    f.write("file", b"x");
    let req = ScanRequest {
        root: &f.path("file"),
        ..req
    };
    let err = scan(&req, &mut |_| Ok::<(), String>(()), &|_| {}).expect_err("a file");
    assert!(matches!(err, ScanFailure::NotADirectory { .. }), "{err}");
}

#[test]
fn a_folder_root_that_is_a_symlink_is_scanned_through() {
    let f = Folder::new();
    f.write("d/x", b"x");
    let links = tempfile::tempdir().expect("tempdir");
    let root = links.path().join("root");
    symlink(f.root(), &root).expect("symlink");
    let req = ScanRequest {
        root: &root,
        prev: &f.prev(),
        only: None,
        caps: crate::sync::names::FsCaps::PLAIN,
        ignore_perms: false,
        previous_blocks: None,
    };
    let (changes, _) = collect(&req);
    assert_eq!(names(&changes), ["d", "d/x"]);
    assert_eq!(find(&changes, "d/x").info.blocks.len(), 1);
}

#[test]
fn walked_paths_are_made_relative_as_strip_prefix_does() {
    use super::walk::relative;
    for (root, path) in [
        ("/f", "/f/a/b"),
        ("/f", "/f"),
        ("/f/", "/f/a"),
        ("/f", "/fx/a"),
        ("/f", "/f//a"),
        ("/f", "/f/a/"),
        ("/f/./g", "/f/g/a"),
        ("/", "/a"),
    ] {
        let (root, path) = (Path::new(root), Path::new(path));
        assert_eq!(
            relative(root, path),
            path.strip_prefix(root).ok(),
            "{path:?}"
        );
    }
}

#[test]
fn a_big_file_edited_is_rehashed_against_its_previous_blocks_to_the_same_list() {
    let mut f = Folder::new();
    let old = random_bytes(12 << 20, 41);
    f.write("big", &old);
    let (changes, _) = f.sync(None);
    let before = find(&changes, "big").info.blocks.clone();
    assert_eq!(before, blocks_of(&old));
    // One byte inserted at the start and 1 MiB overwritten in the middle.
    let mut new = old.clone();
    new[6 << 20..7 << 20].copy_from_slice(&random_bytes(1 << 20, 42));
    new.insert(0, 0x5a);
    fs::write(f.path("big"), &new).expect("write");
    let asked = AtomicBool::new(false);
    let lookup = |name: &str| {
        asked.store(true, Ordering::Relaxed);
        (name == "big").then(|| before.clone())
    };
    let req = ScanRequest {
        root: f.root(),
        prev: &f.prev(),
        only: None,
        caps: crate::sync::names::FsCaps::PLAIN,
        ignore_perms: false,
        previous_blocks: Some(PreviousBlocks(&lookup)),
    };
    let (changes, summary) = collect(&req);
    assert!(
        asked.load(Ordering::Relaxed),
        "the previous blocks were not asked for"
    );
    let c = find(&changes, "big");
    assert_eq!(c.info.size, new.len() as u64);
    assert_eq!(c.info.blocks, blocks_of(&new));
    assert_eq!(
        summary.bytes_hashed,
        new.len() as u64,
        "progress counts each byte once"
    );
}

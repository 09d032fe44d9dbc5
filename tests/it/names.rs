//! Names across file systems (issue 6, point 7): NFC on the wire, clashes on a
//! case-insensitive file system, case-only renames.
//!
//! The case-insensitive side is a real file system: `tests/fixtures/cifs.py`, a
//! case-insensitive, case-preserving, normalisation-insensitive FUSE passthrough (like
//! macOS), mounted over a temp directory for the test and unmounted after it (by its PID,
//! then `umount` if it is still there). A test that cannot mount it fails: `.ci/run`
//! installs python3-fusepy.

use crate::harness::{Device, Service, trusted_pair, wait_until};
use crate::sync::tree;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cifs.py");

/// A mounted case-insensitive fixture; unmounted when dropped.
struct CiMount {
    child: Child,
    mount: PathBuf,
    _backing: tempfile::TempDir,
}

fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = path.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_ref()))
}

/// A Python that has fusepy (Debian's module `fusepy`, pip's `fuse`).
fn python() -> String {
    for py in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(py)
            .args([
                "-c",
                "try:\n import fusepy\nexcept ImportError:\n import fuse",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return py.to_string();
        }
    }
    panic!(
        "no python3 with fusepy: the case-insensitive file system fixture cannot run (apt-get install python3-fusepy; .ci/run does)"
    );
}

impl CiMount {
    /// Mounts the fixture at `mount` (created), backed by a fresh temp directory.
    fn at(mount: &Path, args: &[&str]) -> Self {
        std::fs::create_dir_all(mount).expect("mount point");
        let backing = tempfile::tempdir().expect("backing dir");
        let log = backing.path().with_extension("log");
        let child = Command::new(python())
            .arg(FIXTURE)
            .args(args)
            .arg(backing.path())
            .arg(mount)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("fixture log"))
            .spawn()
            .expect("start the FUSE fixture");
        let mut m = Self {
            child,
            mount: mount.to_path_buf(),
            _backing: backing,
        };
        let up = wait_until(Duration::from_secs(15), || {
            is_mounted(mount) || matches!(m.child.try_wait(), Ok(Some(_)))
        });
        assert!(
            up && is_mounted(mount),
            "cannot mount the case-insensitive FUSE fixture at {mount:?} (needs /dev/fuse, root and python3-fusepy): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        // It really folds case and normalisation.
        std::fs::write(mount.join("Probe-Case"), "x").expect("write on the mount");
        assert!(mount.join("PROBE-case").exists(), "the fixture folds case");
        std::fs::remove_file(mount.join("probe-CASE")).expect("rm on the mount");
        let _ = std::fs::remove_file(&log);
        m.mount = mount.to_path_buf();
        m
    }
}

impl Drop for CiMount {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let gone = wait_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if is_mounted(&self.mount) {
            let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        }
        if !gone {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Two running devices sharing folder "f"; B's folder on the case-insensitive fixture
/// when asked. Fields drop in order: services, then the mount, then the homes.
struct Pair {
    sa: Service,
    sb: Service,
    _mount: Option<CiMount>,
    a: Device,
    b: Device,
}

impl Pair {
    /// `seed(a_folder, b_folder)` runs after the folders exist, before the services start.
    fn new(b_case_insensitive: bool, seed: impl FnOnce(&Path, &Path)) -> Self {
        Self::with_mount(b_case_insensitive.then_some(&[][..]), seed)
    }

    /// B's folder on the fixture started with `args`, when given.
    fn with_mount(b_mount: Option<&[&str]>, seed: impl FnOnce(&Path, &Path)) -> Self {
        let (a, b, ida, idb) = trusted_pair();
        let mount = b_mount.map(|args| CiMount::at(&b.path("f"), args));
        a.add_folder("f", &["--id", "f", "--share", &idb]);
        b.add_folder("f", &["--id", "f", "--share", &ida]);
        seed(&a.path("f"), &b.path("f"));
        let sa = a.serve();
        let sb = b.serve();
        assert!(wait_until(Duration::from_secs(10), || a.connected_to(&idb)
            && b.connected_to(&ida)));
        Self {
            sa,
            sb,
            _mount: mount,
            a,
            b,
        }
    }

    fn logs(&self) -> String {
        format!("A log:\n{}\nB log:\n{}", self.sa.log(), self.sb.log())
    }
}

/// The names in `dir` as its listing spells them (no `.shoal`), sorted.
fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".shoal")
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn folder_status(d: &Device) -> serde_json::Value {
    d.status()["folders"][0].clone()
}

#[test]
fn a_name_differing_only_by_case_is_a_clash_and_never_overwrites_the_local_file() {
    let p = Pair::new(true, |fa, fb| {
        std::fs::write(fa.join("README.md"), "A's readme").expect("write");
        std::fs::write(fa.join("other.txt"), "syncs").expect("write");
        std::fs::create_dir(fa.join("Docs")).expect("mkdir");
        std::fs::write(fa.join("Docs/guide.txt"), "A's guide").expect("write");
        std::fs::write(fa.join("Docs/new.txt"), "new").expect("write");
        // Two names of A that are one name on B: the first (in name order) arrives.
        std::fs::write(fa.join("Photo.jpg"), "A's first photo").expect("write");
        std::fs::write(fa.join("photo.jpg"), "A's second photo").expect("write");
        std::fs::write(fb.join("readme.md"), "B's own readme").expect("write");
        // A directory in another case: every component is checked.
        std::fs::create_dir(fb.join("docs")).expect("mkdir");
        std::fs::write(fb.join("docs/guide.txt"), "B's guide").expect("write");
    });
    let fb = p.b.path("f");
    // The file system was probed, and the status says so.
    let st = folder_status(&p.b);
    assert_eq!(st["file_system"]["case_insensitive"], true, "{st}");
    assert_eq!(st["file_system"]["normalising"], true, "{st}");
    let sa = folder_status(&p.a);
    assert_eq!(sa["file_system"]["case_insensitive"], false, "{sa}");
    assert_eq!(sa["file_system"]["normalising"], false, "{sa}");
    // The rest of the folder syncs.
    assert!(
        wait_until(Duration::from_secs(20), || {
            std::fs::read_to_string(fb.join("other.txt")).is_ok_and(|s| s == "syncs")
        }),
        "other files still sync\n{}",
        p.logs()
    );
    // The clashes are reported in the folder's errors.
    let reported = wait_until(Duration::from_secs(20), || {
        let st = folder_status(&p.b);
        let clashes = st["name_clashes"].as_array().cloned().unwrap_or_default();
        let has = |name: &str, local: &str| {
            clashes
                .iter()
                .any(|c| c["name"] == name && c["local"] == local)
        };
        has("README.md", "readme.md")
            && has("Docs", "docs")
            && has("Docs/new.txt", "docs")
            && has("photo.jpg", "Photo.jpg")
            && st["error"].as_str().is_some_and(|e| e.contains("clash"))
    });
    assert!(
        reported,
        "clashes reported: {}\n{}",
        folder_status(&p.b),
        p.logs()
    );
    assert!(p.sb.log().contains("name clash"), "logged\n{}", p.sb.log());
    let human = p.b.run(&["status"]);
    assert!(
        human
            .ok()
            .contains("name clash: \"README.md\" from a peer is \"readme.md\" here"),
        "{}",
        human.stdout
    );
    // Nothing local was overwritten, renamed or deleted, and no second spelling appeared.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        std::fs::read_to_string(fb.join("readme.md")).expect("read"),
        "B's own readme"
    );
    assert_eq!(
        std::fs::read_to_string(fb.join("docs/guide.txt")).expect("read"),
        "B's guide"
    );
    assert_eq!(ls(&fb), ["Photo.jpg", "docs", "other.txt", "readme.md"]);
    assert_eq!(
        std::fs::read_to_string(fb.join("Photo.jpg")).expect("read"),
        "A's first photo"
    );
    assert_eq!(ls(&fb.join("docs")), ["guide.txt"]);
    // A (case-sensitive) holds both spellings: B's local files travel as usual.
    let fa = p.a.path("f");
    assert!(
        wait_until(Duration::from_secs(20), || fa.join("readme.md").exists()
            && fa.join("docs/guide.txt").exists()),
        "{}",
        p.logs()
    );
    assert_eq!(
        std::fs::read_to_string(fa.join("README.md")).expect("read"),
        "A's readme"
    );
    // Renaming B's file away resolves the clash: A's file arrives.
    std::fs::rename(fb.join("readme.md"), fb.join("readme-b.md")).expect("rename");
    assert!(
        wait_until(Duration::from_secs(90), || {
            std::fs::read_to_string(fb.join("README.md")).is_ok_and(|s| s == "A's readme")
        }),
        "resolved clash syncs\n{}",
        p.logs()
    );
    assert_eq!(
        std::fs::read_to_string(fb.join("readme-b.md")).expect("read"),
        "B's own readme"
    );
}

/// `from` renamed to `to` on `src` arrives on `dst` as a rename: the same inode, the new
/// spelling only.
#[track_caller]
fn rename_arrives(p: &Pair, src: &Device, dst: &Device, from: &str, to: &str) {
    let (fs_, fd) = (src.path("f"), dst.path("f"));
    let before = std::fs::symlink_metadata(fd.join(from))
        .expect("stat before")
        .ino();
    std::fs::rename(fs_.join(from), fs_.join(to)).expect("rename");
    let (dir, base) = to.rsplit_once('/').unwrap_or(("", to));
    let old_base = from.rsplit('/').next().unwrap_or(from);
    let arrived = wait_until(Duration::from_secs(20), || {
        let names = ls(&fd.join(dir));
        names.iter().any(|n| n == base) && !names.iter().any(|n| n == old_base)
    });
    assert!(
        arrived,
        "{from} -> {to} arrived: {:?}\n{}",
        ls(&fd.join(dir)),
        p.logs()
    );
    let after = std::fs::symlink_metadata(fd.join(to))
        .expect("stat after")
        .ino();
    assert_eq!(before, after, "{from} -> {to} was a rename (same inode)");
}

#[test]
fn a_case_only_rename_arrives_as_a_rename_on_both_kinds_of_file_system() {
    let content = crate::sync::noise(300_000, 7);
    let p = Pair::new(true, |fa, _| {
        std::fs::write(fa.join("foo.txt"), &content).expect("write");
        std::fs::create_dir(fa.join("Dir")).expect("mkdir");
        std::fs::write(fa.join("Dir/inner.txt"), "inner").expect("write");
        std::fs::write(fa.join("empty"), "").expect("write");
    });
    let (fa, fb) = (p.a.path("f"), p.b.path("f"));
    assert!(
        wait_until(Duration::from_secs(20), || tree(&fa) == tree(&fb)),
        "baseline\n{}",
        p.logs()
    );
    // Case-sensitive A to case-insensitive B.
    rename_arrives(&p, &p.a, &p.b, "foo.txt", "Foo.txt");
    // Case-insensitive B to case-sensitive A.
    rename_arrives(&p, &p.b, &p.a, "Foo.txt", "FOO.txt");
    assert_eq!(std::fs::read(fb.join("FOO.txt")).expect("read"), content);
    // A directory (with what is inside) and an empty file change case too: on the
    // case-insensitive side they are moved, not recreated.
    let ino = |p: &Path| std::fs::symlink_metadata(p).expect("stat").ino();
    let before = [
        ino(&fb.join("Dir")),
        ino(&fb.join("Dir/inner.txt")),
        ino(&fb.join("empty")),
    ];
    std::fs::rename(fa.join("Dir"), fa.join("dir")).expect("rename");
    std::fs::rename(fa.join("empty"), fa.join("Empty")).expect("rename");
    let done = wait_until(Duration::from_secs(30), || {
        ls(&fb) == ["Empty", "FOO.txt", "dir"] && tree(&fa) == tree(&fb)
    });
    assert!(done, "{:?} vs {:?}\n{}", ls(&fa), ls(&fb), p.logs());
    let after = [
        ino(&fb.join("dir")),
        ino(&fb.join("dir/inner.txt")),
        ino(&fb.join("Empty")),
    ];
    assert_eq!(before, after, "moved with rename(2), not recreated");
    assert!(
        !p.sb.log().contains("pull failed"),
        "no failed step on the way\n{}",
        p.sb.log()
    );
    // A case-only rename of a directory with an edit inside, at once.
    let dir_ino = ino(&fb.join("dir"));
    std::fs::rename(fa.join("dir"), fa.join("DIR")).expect("rename");
    std::fs::write(fa.join("DIR/inner.txt"), "edited inside").expect("write");
    let done = wait_until(Duration::from_secs(30), || {
        ls(&fb) == ["DIR", "Empty", "FOO.txt"]
            && std::fs::read_to_string(fb.join("DIR/inner.txt")).is_ok_and(|s| s == "edited inside")
            && tree(&fa) == tree(&fb)
    });
    assert!(
        done,
        "{:?} vs {:?}\n{}",
        tree(&fa).keys(),
        tree(&fb).keys(),
        p.logs()
    );
    assert_eq!(ino(&fb.join("DIR")), dir_ino, "the directory was moved");
    // And back from the case-insensitive side: the file inside is moved on A.
    let inner_ino = ino(&fa.join("DIR/inner.txt"));
    std::fs::rename(fb.join("DIR"), fb.join("Dir")).expect("rename");
    let done = wait_until(Duration::from_secs(30), || {
        ls(&fa) == ["Dir", "Empty", "FOO.txt"] && tree(&fa) == tree(&fb)
    });
    assert!(
        done,
        "{:?} vs {:?}\n{}",
        tree(&fa).keys(),
        tree(&fb).keys(),
        p.logs()
    );
    assert_eq!(ino(&fa.join("Dir/inner.txt")), inner_ino, "moved on A");
    // No clash, no conflict copy, no leftover on either side.
    for d in [&p.a, &p.b] {
        let st = folder_status(d);
        assert_eq!(st["name_clashes"], serde_json::json!([]), "{st}");
    }
    assert_eq!(ls(&fa), ["Dir", "Empty", "FOO.txt"]);
    assert_eq!(ls(&fa.join("Dir")), ["inner.txt"]);
    assert_eq!(ls(&fb.join("Dir")), ["inner.txt"]);
}

#[test]
fn a_case_only_rename_goes_through_another_name_where_the_file_system_ignores_it() {
    // Linux's own case-insensitive file systems treat a rename between two spellings of
    // one entry as a no-op: the puller notices and renames through an intermediate name.
    let content = crate::sync::noise(100_000, 11);
    let p = Pair::with_mount(Some(&["--same-entry-rename-noop"]), |fa, _| {
        std::fs::write(fa.join("report.pdf"), &content).expect("write");
    });
    let (fa, fb) = (p.a.path("f"), p.b.path("f"));
    assert!(wait_until(Duration::from_secs(20), || tree(&fa) == tree(&fb)));
    // The fixture really ignores such a rename.
    std::fs::write(fb.join("probe"), "x").expect("write");
    std::fs::rename(fb.join("probe"), fb.join("PROBE")).expect("rename");
    assert!(ls(&fb).contains(&"probe".to_string()), "{:?}", ls(&fb));
    std::fs::remove_file(fb.join("probe")).expect("rm");
    assert!(wait_until(Duration::from_secs(20), || tree(&fa) == tree(&fb)));
    rename_arrives(&p, &p.a, &p.b, "report.pdf", "Report.pdf");
    assert_eq!(ls(&fb), ["Report.pdf"]);
    assert_eq!(std::fs::read(fb.join("Report.pdf")).expect("read"), content);
}

#[test]
fn a_case_only_rename_arrives_as_a_rename_between_case_sensitive_devices() {
    let content = crate::sync::noise(200_000, 9);
    let p = Pair::new(false, |fa, _| {
        std::fs::write(fa.join("notes.md"), &content).expect("write");
    });
    let (fa, fb) = (p.a.path("f"), p.b.path("f"));
    assert!(wait_until(Duration::from_secs(20), || tree(&fa) == tree(&fb)));
    rename_arrives(&p, &p.a, &p.b, "notes.md", "Notes.md");
    rename_arrives(&p, &p.b, &p.a, "Notes.md", "NOTES.md");
    assert_eq!(ls(&fa), ["NOTES.md"]);
    assert_eq!(ls(&fb), ["NOTES.md"]);
}

#[test]
fn an_nfd_name_on_disk_travels_in_nfc() {
    let nfd = "cafe\u{301}.txt";
    let nfc = "caf\u{e9}.txt";
    let twin_nfd = "nai\u{308}ve";
    let twin_nfc = "na\u{ef}ve";
    let p = Pair::new(true, |fa, fb| {
        std::fs::write(fa.join(nfd), "written by a Mac app").expect("write");
        // A directory too, with what is inside it.
        std::fs::create_dir(fa.join("Re\u{301}sume\u{301}")).expect("mkdir");
        std::fs::write(fa.join("Re\u{301}sume\u{301}/cv.txt"), "cv").expect("write");
        // Both spellings on a case-sensitive disk: the NFD one is left alone and reported.
        std::fs::write(fa.join(twin_nfd), "nfd twin").expect("write");
        std::fs::write(fa.join(twin_nfc), "nfc twin").expect("write");
        // On the normalising side the NFD spelling stays on disk, indexed in NFC.
        std::fs::write(fb.join("s\u{327}a.txt"), "from the normalising side").expect("write");
    });
    let (fa, fb) = (p.a.path("f"), p.b.path("f"));
    let arrived = wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(fb.join(nfc)).is_ok_and(|s| s == "written by a Mac app")
            && std::fs::read_to_string(fb.join(twin_nfc)).is_ok_and(|s| s == "nfc twin")
            && std::fs::read_to_string(fa.join("\u{15f}a.txt"))
                .is_ok_and(|s| s == "from the normalising side")
            && std::fs::read_to_string(fb.join("R\u{e9}sum\u{e9}/cv.txt")).is_ok_and(|s| s == "cv")
    });
    assert!(arrived, "{:?} {:?}\n{}", ls(&fa), ls(&fb), p.logs());
    // A renamed its NFD file to NFC; the twin stays as it was.
    let mut want = vec![nfc, twin_nfd, twin_nfc, "\u{15f}a.txt", "R\u{e9}sum\u{e9}"];
    want.sort();
    assert_eq!(ls(&fa), want);
    assert!(
        p.sa.log().contains("NFC"),
        "the twin is reported\n{}",
        p.sa.log()
    );
    // Only NFC names reached B (its listing keeps the spelling each was written with).
    let b_names = ls(&fb);
    assert!(b_names.contains(&nfc.to_string()), "{b_names:?}");
    assert!(!b_names.contains(&nfd.to_string()), "{b_names:?}");
    assert!(!b_names.contains(&twin_nfd.to_string()), "{b_names:?}");
    assert!(
        b_names.contains(&"R\u{e9}sum\u{e9}".to_string()),
        "{b_names:?}"
    );
    assert_eq!(
        std::fs::read_to_string(fb.join(twin_nfc)).expect("read"),
        "nfc twin"
    );
    // A name written while the service runs (found by the watcher) goes the same way.
    std::fs::write(fa.join("Zo\u{308}e.txt"), "live").expect("write");
    assert!(
        wait_until(Duration::from_secs(20), || {
            std::fs::read_to_string(fb.join("Z\u{f6}e.txt")).is_ok_and(|s| s == "live")
                && ls(&fa).contains(&"Z\u{f6}e.txt".to_string())
                && !ls(&fa).contains(&"Zo\u{308}e.txt".to_string())
        }),
        "{:?} {:?}\n{}",
        ls(&fa),
        ls(&fb),
        p.logs()
    );
    // The index holds NFC names only, on both sides.
    for d in [&p.a, &p.b] {
        let out = d.run(&["ls", "f", "--json"]);
        let listed = out.ok();
        assert!(listed.contains(nfc), "{listed}");
        assert!(
            !listed.contains('\u{301}') && !listed.contains('\u{327}'),
            "{listed}"
        );
    }
}

//! Two real services converge: files, directories, symlinks, edits, deletions.

use crate::harness::{Device, Service, trusted_pair, wait_until};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Two devices that trust each other and share folder "f" (at `f` in each), both running.
pub struct SyncPair {
    pub a: Device,
    pub b: Device,
    pub sa: Service,
    pub sb: Service,
}

pub fn sync_pair() -> SyncPair {
    let (a, b, ida, idb) = trusted_pair();
    a.add_folder("f", &["--id", "f", "--share", &idb]);
    b.add_folder("f", &["--id", "f", "--share", &ida]);
    let sa = a.serve();
    let sb = b.serve();
    assert!(wait_until(Duration::from_secs(10), || a.connected_to(&idb)
        && b.connected_to(&ida)));
    SyncPair { a, b, sa, sb }
}

/// What a tree holds, from the file system itself: name → (kind, mode, content or target).
pub fn tree(root: &Path) -> BTreeMap<String, (String, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (String, u32, Vec<u8>)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = p
                .strip_prefix(root)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            if name == ".shoal" || name.ends_with("/.shoal") {
                continue;
            }
            // A running service may rename or remove an entry between the listing and
            // this look (a temp file put in place): such an entry is simply not there.
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let mode = md.permissions().mode() & 0o7777;
            if md.file_type().is_symlink() {
                let Ok(t) = std::fs::read_link(&p) else {
                    continue;
                };
                out.insert(
                    name,
                    ("link".into(), 0, t.to_string_lossy().as_bytes().to_vec()),
                );
            } else if md.is_dir() {
                out.insert(name, ("dir".into(), mode, Vec::new()));
                walk(root, &p, out);
            } else {
                let Ok(data) = std::fs::read(&p) else {
                    continue;
                };
                out.insert(name, ("file".into(), mode, data));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

pub fn converged(p: &SyncPair) -> bool {
    tree(&p.a.path("f")) == tree(&p.b.path("f"))
}

#[track_caller]
pub fn assert_converges(p: &SyncPair, what: &str) {
    let ok = wait_until(Duration::from_secs(20), || converged(p));
    if !ok {
        let (ta, tb) = (tree(&p.a.path("f")), tree(&p.b.path("f")));
        let ka: Vec<_> = ta.keys().collect();
        let kb: Vec<_> = tb.keys().collect();
        panic!(
            "{what}: trees differ\nA: {ka:?}\nB: {kb:?}\nA log:\n{}\nB log:\n{}",
            p.sa.log(),
            p.sb.log()
        );
    }
}

#[test]
fn a_tree_converges_both_ways_with_edits_and_deletions() {
    let p = sync_pair();
    let fa = p.a.path("f");
    std::fs::create_dir_all(fa.join("deep/er/still")).expect("mkdir");
    std::fs::create_dir_all(fa.join("empty-dir")).expect("mkdir");
    std::fs::write(fa.join("deep/er/still/file.txt"), "nested").expect("write");
    std::fs::write(fa.join("empty"), "").expect("write");
    std::fs::write(fa.join("ünïcødé ✓.txt"), "unicode").expect("write");
    std::fs::write(fa.join("run.sh"), "#!/bin/sh\necho hi\n").expect("write");
    std::fs::set_permissions(fa.join("run.sh"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::os::unix::fs::symlink("deep/er", fa.join("link")).expect("symlink");
    let big: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(fa.join("big.bin"), &big).expect("write");
    assert_converges(&p, "A's new tree reaches B");
    // B edits and deletes; A follows.
    let fb = p.b.path("f");
    std::fs::write(fb.join("deep/er/still/file.txt"), "edited on B").expect("write");
    std::fs::remove_file(fb.join("empty")).expect("rm");
    std::fs::remove_dir(fb.join("empty-dir")).expect("rmdir");
    std::fs::write(fb.join("from-b"), "hello A").expect("write");
    assert_converges(&p, "B's changes reach A");
    assert_eq!(
        std::fs::read_to_string(fa.join("deep/er/still/file.txt")).expect("read"),
        "edited on B"
    );
    assert!(!fa.join("empty").exists());
    // A deletes a whole directory tree.
    std::fs::remove_dir_all(fa.join("deep")).expect("rm -r");
    assert_converges(&p, "a removed tree is removed");
    assert!(!fb.join("deep").exists());
    assert!(wait_until(
        Duration::from_secs(10),
        || p.b.status()["folders"][0]["state"] == "idle"
    ));
}

/// Pseudo-random bytes (xorshift), fast enough for tens of MiB in a test.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Bytes B has received from A since the service started.
fn b_in(p: &SyncPair) -> u64 {
    let ida = p.a.id();
    p.b.status()["devices"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["id"] == ida.as_str()))
        .and_then(|d| d["in_bytes_total"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_renamed_file_costs_almost_nothing_on_the_wire() {
    let p = sync_pair();
    let fa = p.a.path("f");
    std::fs::create_dir_all(fa.join("from")).expect("mkdir");
    std::fs::create_dir_all(fa.join("to")).expect("mkdir");
    std::fs::write(fa.join("from/movie.bin"), noise(24 << 20, 7)).expect("write");
    assert_converges(&p, "24 MiB file synced");
    let ino_before = std::fs::metadata(p.b.path("f/from/movie.bin"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("ino");
    let before = b_in(&p);
    std::fs::rename(fa.join("from/movie.bin"), fa.join("to/movie.bin")).expect("mv");
    assert_converges(&p, "rename arrives");
    let cost = b_in(&p) - before;
    assert!(cost < 64 << 10, "a rename cost {cost} bytes on the wire");
    let ino_after = std::fs::metadata(p.b.path("f/to/movie.bin"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("ino");
    assert_eq!(ino_before, ino_after, "moved with rename(2), not copied");
}

#[test]
fn an_insertion_in_a_big_file_costs_only_the_changed_blocks() {
    let p = sync_pair();
    let fa = p.a.path("f");
    let mut data = noise(64 << 20, 11);
    std::fs::write(fa.join("disk.img"), &data).expect("write");
    assert_converges(&p, "64 MiB file synced");
    let before = b_in(&p);
    data.insert(1000, b'!');
    data.insert(32 << 20, b'?');
    std::fs::write(fa.join("disk.img"), &data).expect("write");
    assert_converges(&p, "edited file arrives");
    let cost = b_in(&p) - before;
    assert!(
        cost < 512 << 10,
        "two one-byte insertions cost {cost} bytes on the wire"
    );
}

fn temp_files(root: &Path) -> Vec<String> {
    tree(root)
        .into_keys()
        .filter(|n| {
            n.rsplit('/')
                .next()
                .unwrap_or("")
                .starts_with(".shoal-tmp-")
        })
        .collect()
}

#[test]
fn a_pull_killed_midway_resumes_and_leaves_no_temp_file() {
    let mut p = sync_pair();
    // B stops; A gets a big file; B starts pulling it and is killed halfway.
    p.sb.kill();
    let fa = p.a.path("f");
    std::fs::write(fa.join("big.bin"), noise(256 << 20, 3)).expect("write");
    p.a.run(&["rescan", "f"]).ok();
    p.sb = p.b.serve();
    let temp = p.b.path("f/.shoal-tmp-big.bin");
    let started = wait_until(Duration::from_secs(60), || {
        std::fs::metadata(&temp)
            .map(|m| m.len() > 64 << 20)
            .unwrap_or(false)
            || p.b.path("f/big.bin").exists()
    });
    assert!(started, "pull began: {}", p.sb.log());
    p.sb.kill();
    // On a loaded machine the pull may have finished just before the kill: then the file
    // in place must be the complete one. Otherwise nothing is in place yet.
    let finished_first = p.b.path("f/big.bin").exists();
    if finished_first {
        assert_eq!(
            std::fs::read(p.b.path("f/big.bin")).expect("read"),
            std::fs::read(fa.join("big.bin")).expect("read"),
            "a file in place is always complete"
        );
    }
    p.sb = p.b.serve();
    let ok = wait_until(Duration::from_secs(120), || converged(&p));
    assert!(ok, "converged after restart: {}", p.sb.log());
    if !finished_first {
        let second_run = b_in(&p);
        assert!(
            second_run < (256 << 20) - (32 << 20),
            "the restarted pull fetched {second_run} bytes: it did not resume from the temp file"
        );
    }
    assert_eq!(temp_files(&p.b.path("f")), Vec::<String>::new());
}

#[test]
fn folder_modes_send_only_and_receive_only_hold() {
    let p = sync_pair();
    std::fs::write(p.a.path("f/first"), "1").expect("write");
    assert_converges(&p, "baseline");
    // B becomes send-only, live: A's changes are not applied there, and show as need.
    p.b.run(&["folder", "mode", "f", "send-only"]).ok();
    std::fs::write(p.a.path("f/from-a"), "a").expect("write");
    p.a.run(&["rescan", "f"]).ok();
    assert!(wait_until(
        Duration::from_secs(10),
        || p.b.status()["folders"][0]["need_files"] == 1
    ));
    assert!(
        !p.b.path("f/from-a").exists(),
        "send-only applied a remote change"
    );
    // B's own changes still go out.
    std::fs::write(p.b.path("f/from-b"), "b").expect("write");
    assert!(wait_until(Duration::from_secs(10), || p
        .a
        .path("f/from-b")
        .exists()));
    // B becomes receive-only: it takes A's changes, its own stay local.
    p.b.run(&["folder", "mode", "f", "receive-only"]).ok();
    assert!(wait_until(Duration::from_secs(10), || p
        .b
        .path("f/from-a")
        .exists()));
    std::fs::write(p.b.path("f/local-only"), "mine").expect("write");
    p.b.run(&["rescan", "f"]).ok();
    std::fs::write(p.a.path("f/later"), "x").expect("write");
    assert!(wait_until(Duration::from_secs(10), || p
        .b
        .path("f/later")
        .exists()));
    assert!(
        !p.a.path("f/local-only").exists(),
        "receive-only sent a local change"
    );
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    let t = std::time::SystemTime::now() - Duration::from_secs(secs_ago);
    f.set_modified(t).expect("set mtime");
}

fn conflict_copies(root: &Path) -> Vec<String> {
    tree(root)
        .into_keys()
        .filter(|n| n.contains(".sync-conflict-"))
        .collect()
}

#[test]
fn concurrent_edits_keep_both_versions_with_one_conflict_copy() {
    let mut p = sync_pair();
    std::fs::write(p.a.path("f/doc.txt"), "base").expect("write");
    assert_converges(&p, "baseline");
    p.sb.kill();
    // Both edit while apart: A's edit is newer, so B's loses.
    std::fs::write(p.a.path("f/doc.txt"), "from A, newer").expect("write");
    set_mtime(&p.a.path("f/doc.txt"), 10);
    p.a.run(&["rescan", "f"]).ok();
    std::fs::write(p.b.path("f/doc.txt"), "from B, older").expect("write");
    set_mtime(&p.b.path("f/doc.txt"), 100);
    p.sb = p.b.serve();
    assert_converges(&p, "both versions on both devices");
    let copies = conflict_copies(&p.a.path("f"));
    assert_eq!(copies.len(), 1, "exactly one conflict copy: {copies:?}");
    let copy = &copies[0];
    assert!(
        copy.starts_with("doc.sync-conflict-") && copy.ends_with(".txt"),
        "{copy}"
    );
    let b_short = &p.b.id()[..7];
    assert!(
        copy.contains(b_short),
        "named after the device whose version lost: {copy}"
    );
    assert_eq!(
        std::fs::read_to_string(p.a.path("f/doc.txt")).expect("read"),
        "from A, newer"
    );
    assert_eq!(
        std::fs::read_to_string(p.a.path("f").join(copy)).expect("read"),
        "from B, older"
    );
    let listed = p.a.run(&["conflicts", "--json"]).json();
    assert_eq!(listed[0]["original"], "doc.txt");
    assert_eq!(listed[0]["device"], b_short);
    assert_eq!(listed[0]["folder"], "f");
}

#[test]
fn an_edit_against_a_delete_keeps_the_edit() {
    let mut p = sync_pair();
    std::fs::write(p.a.path("f/keep.txt"), "v1").expect("write");
    assert_converges(&p, "baseline");
    p.sb.kill();
    std::fs::remove_file(p.a.path("f/keep.txt")).expect("rm");
    p.a.run(&["rescan", "f"]).ok();
    std::fs::write(p.b.path("f/keep.txt"), "v2 edited while A deleted it").expect("write");
    p.sb = p.b.serve();
    assert_converges(&p, "the edit survives on both");
    assert_eq!(
        std::fs::read_to_string(p.a.path("f/keep.txt")).expect("read"),
        "v2 edited while A deleted it"
    );
    assert!(conflict_copies(&p.a.path("f")).is_empty());
}

/// B's watcher drops the events of its own puller's renames (src/sync/watch.rs); a user's
/// edit of a file right after the pull put it in place must still reach A. The edits keep
/// the size and happen the moment the pulled content shows, so only the watcher (not a
/// periodic scan: the default interval is an hour) can find them in time.
#[test]
fn an_edit_right_after_a_pull_is_not_mistaken_for_the_pull() {
    let p = sync_pair();
    let (fa, fb) = (p.a.path("f"), p.b.path("f"));
    std::fs::create_dir_all(fa.join("d")).expect("mkdir");
    for i in 0..5 {
        let name = format!("d/f{i}");
        std::fs::write(fa.join(&name), format!("from A {i}")).expect("write");
        let pulled = wait_until(Duration::from_secs(20), || {
            std::fs::read(fb.join(&name)).is_ok_and(|d| d == format!("from A {i}").as_bytes())
        });
        assert!(pulled, "{name} not pulled:\n{}", p.sb.log());
        // At once, same size: a user saving over the file that just arrived.
        std::fs::write(fb.join(&name), format!("from B {i}")).expect("write");
        let back = wait_until(Duration::from_secs(20), || {
            std::fs::read(fa.join(&name)).is_ok_and(|d| d == format!("from B {i}").as_bytes())
        });
        assert!(
            back,
            "B's edit of {name} never reached A:\nB log:\n{}",
            p.sb.log()
        );
    }
    assert_converges(&p, "both hold B's edits");
}

/// Files pulled together that share blocks (copies of one file in several directories)
/// cost the shared blocks once on the wire.
#[test]
fn copies_pulled_together_are_fetched_once() {
    let p = sync_pair();
    let fa = p.a.path("f");
    let data = noise(4 << 20, 21);
    // Written beside the folder, then moved in at once: one scan, one batch on B.
    let stage = p.a.path("stage");
    for d in ["a", "b", "c"] {
        std::fs::create_dir_all(stage.join(d)).expect("mkdir");
        std::fs::write(stage.join(d).join("copy.bin"), &data).expect("write");
    }
    let before = b_in(&p);
    for d in ["a", "b", "c"] {
        std::fs::rename(stage.join(d), fa.join(d)).expect("mv");
    }
    assert_converges(&p, "three copies arrive");
    let cost = b_in(&p) - before;
    assert!(
        cost < 6 << 20,
        "three copies of 4 MiB cost {cost} bytes on the wire"
    );
}

/// A batch big enough that parts of it are put in place while the rest is still fetched
/// (src/sync/pull.rs `PLACE_CHUNK`): every file arrives whole, is recorded once, and the
/// folder ends idle with nothing needed; an edit of one of them afterwards travels back.
#[test]
fn a_big_batch_placed_in_chunks_converges_and_is_recorded() {
    let p = sync_pair();
    let fa = p.a.path("f");
    let stage = p.a.path("stage");
    for d in 0..3 {
        let dir = stage.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for i in 0..600 {
            std::fs::write(
                dir.join(format!("f{i}")),
                noise(3000, (d * 1000 + i) as u64 + 1),
            )
            .expect("write");
        }
    }
    for d in 0..3 {
        std::fs::rename(stage.join(format!("d{d}")), fa.join(format!("d{d}"))).expect("mv");
    }
    assert_converges(&p, "1,800 files arrive");
    let settled = wait_until(Duration::from_secs(20), || {
        let st = p.b.status();
        let f = &st["folders"][0];
        f["state"] == "idle" && f["local_files"] == 1800 && f["need_files"] == 0
    });
    assert!(settled, "B's index: {}", p.b.status()["folders"][0]);
    std::fs::write(p.b.path("f/d1/f599"), b"edited on B").expect("write");
    let back = wait_until(Duration::from_secs(20), || {
        std::fs::read(fa.join("d1/f599")).is_ok_and(|d| d == b"edited on B")
    });
    assert!(back, "B's edit did not reach A:\n{}", p.sb.log());
}

/// Files `pid` holds open that are no longer linked anywhere.
fn deleted_files_open(pid: i32) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.display().to_string())
        .filter(|t| t.ends_with(" (deleted)"))
        .collect()
}

#[test]
fn big_files_edited_in_place_and_replaced_arrive_and_nothing_stays_open() {
    let p = sync_pair();
    let fa = p.a.path("f");
    // Big enough for the scanner to re-hash against the previous blocks and for the
    // puller to keep the replaced file open across the rename.
    let mut data = noise(24 << 20, 21);
    std::fs::write(fa.join("big.bin"), &data).expect("write");
    assert_converges(&p, "24 MiB file synced");
    // 1 MiB overwritten in the middle, in place.
    let patch = noise(1 << 20, 22);
    data[12 << 20..13 << 20].copy_from_slice(&patch);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(fa.join("big.bin"))
            .expect("open");
        f.write_all_at(&patch, 12 << 20).expect("write");
    }
    assert_converges(&p, "overwrite arrives");
    // One byte inserted at the start, written elsewhere and renamed over.
    data.insert(0, b'#');
    let stage = p.a.path("stage.bin");
    std::fs::write(&stage, &data).expect("write");
    std::fs::rename(&stage, fa.join("big.bin")).expect("rename");
    assert_converges(&p, "insertion arrives");
    assert_eq!(
        std::fs::read(p.b.path("f/big.bin")).expect("read"),
        data,
        "B holds the last version"
    );
    assert!(temp_files(&p.b.path("f")).is_empty(), "temp files left");
    // The replaced versions' descriptors are closed once they are no longer needed.
    let pid = p.sb.pid();
    assert!(
        wait_until(Duration::from_secs(10), || deleted_files_open(pid)
            .is_empty()),
        "B still holds replaced files open: {:?}",
        deleted_files_open(pid)
    );
}

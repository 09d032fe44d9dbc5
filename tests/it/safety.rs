//! Sync that never loses a file: the marker, meshes, ignores, seeded folders.

use crate::harness::{Device, free_port, wait_until};
use crate::sync::{assert_converges, sync_pair, tree};
use std::time::Duration;

#[test]
fn a_vanished_marker_stops_the_folder_and_no_deletion_reaches_the_peer() {
    let p = sync_pair();
    for i in 0..20 {
        std::fs::write(p.a.path(&format!("f/file{i}")), format!("data {i}")).expect("write");
    }
    assert_converges(&p, "baseline");
    // A's disk "unmounts": everything is gone, the marker too.
    let fa = p.a.path("f");
    let aside = p.a.path("f-unmounted");
    std::fs::rename(&fa, &aside).expect("unmount");
    assert!(wait_until(
        Duration::from_secs(10),
        || p.a.status()["folders"][0]["state"] == "error"
    ));
    let err = p.a.status()["folders"][0]["error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(err.contains("missing"), "{err}");
    // Give a wrong deletion every chance to travel, then check B still has everything.
    p.a.run(&["rescan", "f"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(tree(&p.b.path("f")).len(), 20, "no deletion reached B");
    assert!(
        !fa.exists(),
        "Shoal does not recreate a vanished folder path"
    );
    // The disk comes back: the folder resumes and syncs again.
    std::fs::rename(&aside, &fa).expect("mount");
    assert!(wait_until(
        Duration::from_secs(10),
        || p.a.status()["folders"][0]["state"] == "idle"
    ));
    std::fs::write(fa.join("after"), "back").expect("write");
    assert_converges(&p, "syncing resumes when the marker is back");
}

#[test]
fn a_change_travels_through_a_device_both_ends_share_with() {
    // A – M – B: A and B do not know each other.
    let (devs, ports): (Vec<Device>, Vec<u16>) =
        ["a", "m", "b"].iter().map(|n| Device::listening(n)).unzip();
    let ids: Vec<String> = devs.iter().map(Device::id).collect();
    let (a, m, b) = (&devs[0], &devs[1], &devs[2]);
    a.trust(&ids[1], ports[1]);
    b.trust(&ids[1], ports[1]);
    m.trust(&ids[0], ports[0]);
    m.trust(&ids[2], ports[2]);
    a.add_folder("f", &["--id", "f", "--share", &ids[1]]);
    b.add_folder("f", &["--id", "f", "--share", &ids[1]]);
    m.add_folder("f", &["--id", "f", "--share", &ids[0], "--share", &ids[2]]);
    let _s: Vec<_> = devs.iter().map(Device::serve).collect();
    std::fs::write(a.path("f/from-a.txt"), "hello B, via M").expect("write");
    assert!(
        wait_until(Duration::from_secs(20), || {
            std::fs::read_to_string(b.path("f/from-a.txt"))
                .map(|s| s == "hello B, via M")
                .unwrap_or(false)
        }),
        "A's change reached B through M"
    );
    std::fs::write(b.path("f/from-b.txt"), "and back").expect("write");
    assert!(wait_until(Duration::from_secs(20), || a
        .path("f/from-b.txt")
        .exists()));
    assert_eq!(tree(&a.path("f")), tree(&b.path("f")));
    assert_eq!(tree(&a.path("f")), tree(&m.path("f")));
}

#[test]
fn ignored_files_are_never_sent_pulled_or_deleted() {
    let p = sync_pair();
    std::fs::write(p.b.path("f/.shoalignore"), "*.log\nbuild/\n").expect("write");
    std::fs::write(p.b.path("f/mine.log"), "B's own log").expect("write");
    std::fs::write(p.a.path("f/.shoalignore"), "build/\n").expect("write");
    std::fs::create_dir_all(p.a.path("f/build")).expect("mkdir");
    std::fs::write(p.a.path("f/build/out.o"), "object").expect("write");
    std::fs::write(p.a.path("f/mine.log"), "A's log").expect("write");
    std::fs::write(p.a.path("f/note.txt"), "synced").expect("write");
    assert!(wait_until(Duration::from_secs(10), || p
        .b
        .path("f/note.txt")
        .exists()));
    p.a.run(&["rescan", "f"]).ok();
    p.b.run(&["rescan", "f"]).ok();
    std::fs::write(p.a.path("f/later.txt"), "after").expect("write");
    assert!(wait_until(Duration::from_secs(10), || p
        .b
        .path("f/later.txt")
        .exists()));
    assert_eq!(
        std::fs::read_to_string(p.b.path("f/mine.log")).expect("read"),
        "B's own log",
        "an ignored file is not overwritten"
    );
    assert!(
        !p.b.path("f/build").exists(),
        "ignored on the sender: never sent"
    );
    // A deletes its log: B's ignored log stays.
    std::fs::remove_file(p.a.path("f/mine.log")).expect("rm");
    std::fs::write(p.a.path("f/last.txt"), "x").expect("write");
    assert!(wait_until(Duration::from_secs(10), || p
        .b
        .path("f/last.txt")
        .exists()));
    assert!(
        p.b.path("f/mine.log").exists(),
        "an ignored file is not deleted because of a peer"
    );
    // `.shoalignore` itself is not synced: each device keeps its own.
    assert_eq!(
        std::fs::read_to_string(p.b.path("f/.shoalignore")).expect("read"),
        "*.log\nbuild/\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.a.path("f/.shoalignore")).expect("read"),
        "build/\n"
    );
    // A change to it takes effect at once, without a restart: B now ignores *.tmp too.
    std::fs::write(p.b.path("f/.shoalignore"), "*.log\nbuild/\n*.tmp\n").expect("write");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(p.a.path("f/scratch.tmp"), "not for B").expect("write");
    std::fs::write(p.a.path("f/after-change.txt"), "for B").expect("write");
    assert!(wait_until(Duration::from_secs(10), || p
        .b
        .path("f/after-change.txt")
        .exists()));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !p.b.path("f/scratch.tmp").exists(),
        "a pattern added while running is obeyed"
    );
}

#[test]
fn a_folder_missing_when_the_service_starts_stays_stopped_and_deletes_nothing() {
    let mut p = sync_pair();
    for i in 0..5 {
        std::fs::write(p.a.path(&format!("f/file{i}")), format!("data {i}")).expect("write");
    }
    assert_converges(&p, "baseline");
    // A's disk is not mounted when its service starts.
    p.sa.kill();
    let (fa, aside) = (p.a.path("f"), p.a.path("f-unmounted"));
    std::fs::rename(&fa, &aside).expect("unmount");
    p.sa = p.a.serve();
    assert!(wait_until(Duration::from_secs(10), || {
        let st = p.a.status()["folders"][0].clone();
        st["state"] == "error" && st["error"].as_str().is_some_and(|e| e.contains("missing"))
    }));
    let idb = p.b.id();
    assert!(wait_until(Duration::from_secs(10), || p
        .a
        .connected_to(&idb)));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(tree(&p.b.path("f")).len(), 5, "no deletion reached B");
    assert!(!fa.exists(), "Shoal does not recreate the folder's path");
    // B's changes wait; the disk returns and everything syncs.
    std::fs::write(p.b.path("f/from-b"), "while A's disk was away").expect("write");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!fa.exists(), "a pull does not recreate the path either");
    std::fs::rename(&aside, &fa).expect("mount");
    assert_converges(&p, "syncing resumes when the disk is back");
}

#[test]
fn folders_seeded_with_the_same_files_transfer_nothing_and_make_no_conflict() {
    let (pa, pb) = (free_port(), free_port());
    let a = Device::new();
    a.run(&["init", "--listen", &format!("127.0.0.1:{pa}")])
        .ok();
    let b = Device::new();
    b.run(&["init", "--listen", &format!("127.0.0.1:{pb}")])
        .ok();
    let fa = a.path("f");
    std::fs::create_dir_all(fa.join("sub")).expect("mkdir");
    let data = crate::sync::noise(8 << 20, 5);
    std::fs::write(fa.join("sub/big.bin"), &data).expect("write");
    for i in 0..50 {
        std::fs::write(fa.join(format!("sub/small{i}")), format!("{i}")).expect("write");
    }
    // The copy an rsync -a would make: same bytes, same mtimes and modes.
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&fa)
        .arg(b.path("f"))
        .status()
        .expect("cp");
    assert!(st.success());
    let (ida, idb) = (a.id(), b.id());
    a.run(&["device", "add", &idb, "--addr", &format!("127.0.0.1:{pb}")])
        .ok();
    b.run(&["device", "add", &ida, "--addr", &format!("127.0.0.1:{pa}")])
        .ok();
    a.add_folder("f", &["--id", "f", "--share", &idb]);
    b.add_folder("f", &["--id", "f", "--share", &ida]);
    let _sa = a.serve();
    let _sb = b.serve();
    assert!(wait_until(Duration::from_secs(10), || a.connected_to(&idb)));
    // Both sides settle: every entry's version merged, nothing needed.
    assert!(wait_until(Duration::from_secs(20), || {
        let (x, y) = (
            a.run(&["ls", "f", "--json"]).json(),
            b.run(&["ls", "f", "--json"]).json(),
        );
        let vx: Vec<_> = x
            .as_array()
            .map(|v| v.iter().map(|e| e["version"].clone()).collect())
            .unwrap_or_default();
        let vy: Vec<_> = y
            .as_array()
            .map(|v| v.iter().map(|e| e["version"].clone()).collect())
            .unwrap_or_default();
        !vx.is_empty() && vx == vy
    }));
    let received: u64 = b.status()["devices"][0]["in_bytes_total"]
        .as_u64()
        .unwrap_or(0);
    assert!(received < 256 << 10, "seeded sync moved {received} bytes");
    assert!(
        tree(&b.path("f"))
            .keys()
            .all(|n| !n.contains("sync-conflict"))
    );
    assert_eq!(tree(&fa), tree(&b.path("f")));
}

#[test]
fn versioning_keeps_what_a_peer_replaces_or_deletes() {
    let p = sync_pair();
    p.b.run(&["folder", "versioning", "f", "trash", "30"]).ok();
    p.b.run(&["folder", "versioning", "f", "sometimes"])
        .fails_with("versioning is");
    std::fs::write(p.a.path("f/doc.txt"), "first").expect("write");
    std::fs::write(p.a.path("f/gone.txt"), "to be deleted").expect("write");
    assert_converges(&p, "baseline");
    std::fs::write(p.a.path("f/doc.txt"), "second").expect("write");
    std::fs::remove_file(p.a.path("f/gone.txt")).expect("rm");
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(p.b.path("f/doc.txt"))
            .map(|s| s == "second")
            .unwrap_or(false)
            && !p.b.path("f/gone.txt").exists()
    }));
    let mut kept: Vec<String> = Vec::new();
    for e in walkdir(&p.b.path("f/.shoal/versions")) {
        kept.push(std::fs::read_to_string(e).expect("read"));
    }
    kept.sort();
    assert_eq!(kept, vec!["first".to_string(), "to be deleted".to_string()]);
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(walkdir(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn a_receiver_killed_at_random_moments_never_shows_a_partial_file() {
    let mut p = sync_pair();
    p.sb.kill();
    let fa = p.a.path("f");
    for d in 0..10 {
        std::fs::create_dir_all(fa.join(format!("d{d}"))).expect("mkdir");
        for i in 0..40 {
            std::fs::write(
                fa.join(format!("d{d}/s{i}")),
                crate::sync::noise(3000 + i * 17, (d * 100 + i) as u64),
            )
            .expect("write");
        }
    }
    for i in 0..3 {
        std::fs::write(
            fa.join(format!("large{i}.bin")),
            crate::sync::noise((12 + 4 * i) << 20, 99 + i as u64),
        )
        .expect("write");
    }
    p.a.run(&["rescan", "f"]).ok();
    let want = tree(&fa);
    let check_in_place = |stage: &str| {
        for (name, entry) in tree(&p.b.path("f")) {
            if name
                .rsplit('/')
                .next()
                .unwrap_or("")
                .starts_with(".shoal-tmp-")
            {
                continue;
            }
            let expected = want
                .get(&name)
                .unwrap_or_else(|| panic!("{stage}: unexpected {name}"));
            assert_eq!(
                &entry, expected,
                "{stage}: {name} in place is not the complete file"
            );
        }
    };
    // A deterministic spread of kill moments between 30 ms and 600 ms after start.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(30 + x % 570);
        let mut s = p.b.serve();
        std::thread::sleep(delay);
        s.kill();
        check_in_place(&format!("after kill {round}"));
    }
    p.sb = p.b.serve();
    assert_converges(&p, "converged after 20 kills");
    check_in_place("at the end");
    let temps: Vec<String> = tree(&p.b.path("f"))
        .into_keys()
        .filter(|n| {
            n.rsplit('/')
                .next()
                .unwrap_or("")
                .starts_with(".shoal-tmp-")
        })
        .collect();
    assert!(temps.is_empty(), "stale temp files: {temps:?}");
}

#[test]
fn a_receive_only_folder_lists_its_local_changes_and_revert_restores_the_peers_version() {
    let mut p = sync_pair();
    let (fa, fb) = (p.a.path("f"), p.b.path("f"));
    std::fs::write(fa.join("edit.txt"), "from A").expect("write");
    std::fs::write(fa.join("del.txt"), "A's file, deleted on B").expect("write");
    std::fs::write(fa.join("same.txt"), "untouched").expect("write");
    assert_converges(&p, "baseline");
    p.b.run(&["folder", "mode", "f", "receive-only"]).ok();
    // B changes things: an edit, a deletion, a new file and a new directory with a file.
    std::fs::write(fb.join("edit.txt"), "edited on B").expect("write");
    std::fs::remove_file(fb.join("del.txt")).expect("rm");
    std::fs::write(fb.join("new.txt"), "new on B").expect("write");
    std::fs::create_dir(fb.join("newdir")).expect("mkdir");
    std::fs::write(fb.join("newdir/x.txt"), "new in a new dir").expect("write");
    p.b.run(&["rescan", "f"]).ok();
    // None of it reaches A (a later change of A's reaching B shows the exchange runs).
    std::fs::write(fa.join("later.txt"), "from A, later").expect("write");
    assert!(wait_until(Duration::from_secs(10), || p
        .b
        .path("f/later.txt")
        .exists()));
    assert_eq!(
        std::fs::read_to_string(fa.join("edit.txt")).expect("read"),
        "from A"
    );
    assert!(fa.join("del.txt").exists() && !fa.join("new.txt").exists());
    // B lists them: the count in status, the entries with their kind in ls.
    let want: Vec<(String, String)> = [
        ("del.txt", "deleted"),
        ("edit.txt", "changed"),
        ("new.txt", "added"),
        ("newdir", "added"),
        ("newdir/x.txt", "added"),
    ]
    .iter()
    .map(|(n, k)| (n.to_string(), k.to_string()))
    .collect();
    let listed = || -> Vec<(String, String)> {
        p.b.run(&["ls", "f", "--local-changes", "--json"])
            .json()
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["name"].as_str().unwrap_or("").to_string(),
                            e["change"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(listed(), want);
    assert_eq!(p.b.status()["folders"][0]["local_changes"], 5);
    assert_eq!(p.a.status()["folders"][0]["local_changes"], 0);
    p.a.run(&["ls", "f", "--local-changes"])
        .fails_with("only a receive-only folder");
    p.a.run(&["folder", "revert", "f"])
        .fails_with("only a receive-only folder");
    // Revert: B becomes what A has; what B made is kept in .shoal/versions/.
    let done = p.b.run(&["folder", "revert", "f", "--json"]).json();
    assert_eq!(done["reverted"].as_array().map(Vec::len), Some(5), "{done}");
    assert_converges(&p, "B is A's copy again after the revert");
    assert_eq!(
        std::fs::read_to_string(fb.join("edit.txt")).expect("read"),
        "from A"
    );
    assert!(fb.join("del.txt").exists() && !fb.join("newdir").exists());
    let mut kept: Vec<String> = walkdir(&fb.join(".shoal/versions"))
        .into_iter()
        .map(|e| std::fs::read_to_string(e).expect("read"))
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        vec![
            "edited on B".to_string(),
            "new in a new dir".to_string(),
            "new on B".to_string()
        ],
        "every local change is kept, none lost"
    );
    assert!(
        wait_until(
            Duration::from_secs(10),
            || p.b.status()["folders"][0]["local_changes"] == 0 && listed().is_empty()
        ),
        "{}",
        p.b.run(&["ls", "f", "--local-changes"]).stdout
    );
    // A never saw any of it.
    assert!(!fa.join("new.txt").exists() && !fa.join("newdir").exists());
    // The same without a running service: the revert is done on the home, and the
    // peers' version comes back when the service runs again.
    std::fs::write(fb.join("edit.txt"), "edited on B again").expect("write");
    p.b.run(&["rescan", "f"]).ok();
    assert!(wait_until(
        Duration::from_secs(10),
        || p.b.status()["folders"][0]["local_changes"] == 1
    ));
    p.sb.kill();
    let out = p.b.run(&["folder", "revert", "f"]);
    assert!(
        out.ok().contains("1 local change(s) reverted"),
        "{}",
        out.stdout
    );
    assert!(!fb.join("edit.txt").exists(), "moved aside at once");
    p.sb = p.b.serve();
    assert_converges(&p, "the peers' version is back after an offline revert");
    assert_eq!(
        std::fs::read_to_string(fb.join("edit.txt")).expect("read"),
        "from A"
    );
    assert_eq!(
        walkdir(&fb.join(".shoal/versions")).len(),
        4,
        "kept as well"
    );
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn ignore_perms_keeps_local_permissions_and_announces_none_of_them() {
    let mut p = sync_pair();
    let (fa, fb) = (p.a.path("f"), p.b.path("f"));
    std::fs::write(fa.join("run.sh"), "#!/bin/sh\n").expect("write");
    chmod(&fa.join("run.sh"), 0o755);
    std::fs::write(fa.join("data.txt"), "v1").expect("write");
    assert_converges(&p, "baseline");
    // B's folder gets ignore_perms (a FAT or CIFS disk): a config option set by hand.
    p.sb.kill();
    let cfg = p.b.home().join("config.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    assert!(text.contains("ignore_perms = false"), "{text}");
    std::fs::write(
        &cfg,
        text.replace("ignore_perms = false", "ignore_perms = true"),
    )
    .expect("write config");
    chmod(&fb.join("data.txt"), 0o600);
    chmod(&fb.join("run.sh"), 0o700);
    std::fs::write(fb.join("from-b.txt"), "made on a disk that says 0777").expect("write");
    chmod(&fb.join("from-b.txt"), 0o777);
    p.sb = p.b.serve();
    // What B has arrives at A without B's made-up modes; B's chmods are no change.
    assert!(wait_until(Duration::from_secs(15), || fa
        .join("from-b.txt")
        .exists()));
    assert_eq!(
        mode(&fa.join("from-b.txt")),
        0o644,
        "a new file is announced 0644"
    );
    // A's changes arrive at B, and B's local permissions stay as they are.
    std::fs::write(fa.join("data.txt"), "v2 from A").expect("write");
    std::fs::write(fa.join("new.sh"), "#!/bin/sh\necho new\n").expect("write");
    chmod(&fa.join("new.sh"), 0o755);
    assert!(wait_until(Duration::from_secs(15), || {
        std::fs::read_to_string(fb.join("data.txt")).is_ok_and(|s| s == "v2 from A")
            && fb.join("new.sh").exists()
    }));
    assert_eq!(
        mode(&fb.join("data.txt")),
        0o600,
        "a replaced file keeps its mode"
    );
    assert_eq!(
        mode(&fb.join("new.sh")),
        0o644,
        "a new file gets the default mode"
    );
    assert_eq!(
        mode(&fb.join("run.sh")),
        0o700,
        "an untouched file keeps its mode"
    );
    // And nothing of B's modes went to A.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(mode(&fa.join("run.sh")), 0o755);
    assert_eq!(mode(&fa.join("data.txt")), 0o644);
}

#[test]
fn local_changes_of_a_receive_only_folder_are_sent_once_it_becomes_send_receive() {
    let mut p = sync_pair();
    p.b.run(&["folder", "mode", "f", "receive-only"]).ok();
    std::fs::write(p.b.path("f/kept-back.txt"), "made while receive-only").expect("write");
    p.b.run(&["rescan", "f"]).ok();
    std::fs::write(p.a.path("f/sync-point.txt"), "x").expect("write");
    assert!(wait_until(Duration::from_secs(10), || p
        .b
        .path("f/sync-point.txt")
        .exists()));
    assert!(!p.a.path("f/kept-back.txt").exists());
    assert_eq!(p.b.status()["folders"][0]["local_changes"], 1);
    // Back to send-receive, live: what was kept back goes out now.
    p.b.run(&["folder", "mode", "f", "send-receive"]).ok();
    assert_converges(&p, "the local change is sent after the mode change");
    assert_eq!(
        std::fs::read_to_string(p.a.path("f/kept-back.txt")).expect("read"),
        "made while receive-only"
    );
    // The same with the mode changed while no service runs.
    p.b.run(&["folder", "mode", "f", "receive-only"]).ok();
    std::fs::write(p.b.path("f/kept-back-2.txt"), "second").expect("write");
    p.b.run(&["rescan", "f"]).ok();
    // B pulls something after it: A then holds B's index past the held-back change.
    std::fs::write(p.a.path("f/sync-point-2.txt"), "y").expect("write");
    assert!(wait_until(Duration::from_secs(10), || p
        .b
        .path("f/sync-point-2.txt")
        .exists()));
    std::thread::sleep(Duration::from_millis(300));
    p.sb.kill();
    p.b.run(&["folder", "mode", "f", "send-receive"]).ok();
    p.sb = p.b.serve();
    assert_converges(&p, "sent after a mode change made without the service");
}

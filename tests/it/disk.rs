//! Disk trouble while pulling: a full disk and a permission error. The folder shows the
//! error, no partial file is ever put in place, the rest of the folder keeps syncing, and
//! the pull resumes by itself once the cause is gone.
//!
//! A full disk is a size-limited tmpfs mounted inside a private mount namespace
//! (`unshare -m`) that only the receiving service sees; the test reaches its files through
//! `/proc/PID/root`. A permission error is the receiving service running as `nobody`
//! (`setpriv`) with one directory of its folder owned by root.

use crate::harness::{Device, Service, trusted_pair, wait_until};
use crate::sync::{noise, tree};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

type Tree = BTreeMap<String, (String, u32, Vec<u8>)>;

/// Two devices that trust each other: A shares `f`, B shares the folder at `b_rel`,
/// both with folder ID `f`. Nothing runs yet.
fn two_devices(b_rel: &str) -> (Device, Device) {
    assert!(
        rustix::process::geteuid().is_root(),
        "the disk-trouble tests run as root (they mount a tmpfs and switch users)"
    );
    let (a, b, ida, idb) = trusted_pair();
    a.add_folder("f", &["--id", "f", "--share", &idb]);
    b.add_folder(b_rel, &["--id", "f", "--share", &ida]);
    (a, b)
}

fn is_temp(name: &str) -> bool {
    name.rsplit('/')
        .next()
        .unwrap_or("")
        .starts_with(".shoal-tmp-")
}

/// Every file in place on the receiver is the complete file the sender has.
#[track_caller]
fn nothing_partial_in_place(got: &Tree, want: &Tree, stage: &str) {
    for (name, entry) in got {
        if is_temp(name) {
            continue;
        }
        let expected = want
            .get(name)
            .unwrap_or_else(|| panic!("{stage}: unexpected {name}"));
        assert_eq!(
            entry.2, expected.2,
            "{stage}: {name} in place is not the complete file"
        );
    }
}

fn folder_status(d: &Device) -> serde_json::Value {
    d.status()["folders"][0].clone()
}

fn failed_names(d: &Device) -> Vec<String> {
    folder_status(d)["pull_errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[track_caller]
fn wait_for(what: &str, s: &Service, secs: u64, cond: impl FnMut() -> bool) {
    assert!(
        wait_until(Duration::from_secs(secs), cond),
        "{what}\nservice log:\n{}",
        s.log()
    );
}

#[test]
fn a_full_disk_fails_only_what_does_not_fit_and_the_pull_resumes_when_space_returns() {
    let (a, b) = two_devices("mnt/f");
    let fa = a.path("f");
    // The big file sorts first: it must not take the space the small ones need.
    std::fs::write(fa.join("a-big.bin"), noise(12 << 20, 1)).expect("write");
    std::fs::write(fa.join("medium.bin"), noise(1 << 20, 2)).expect("write");
    std::fs::create_dir_all(fa.join("small")).expect("mkdir");
    for i in 0..30 {
        std::fs::write(fa.join(format!("small/s{i}")), noise(4096, 10 + i)).expect("write");
    }
    let _sa = a.serve();
    // B's folder lives on a 24 MiB tmpfs of which a filler outside the folder takes
    // 18 MiB: the small files and the medium one fit, the big one does not.
    let mnt = b.path("mnt");
    let script = format!(
        "mount -t tmpfs -o size=24m tmpfs '{m}' && mkdir -p '{m}/f/.shoal' && \
         head -c 18M /dev/zero > '{m}/filler' && exec \"$@\"",
        m = mnt.display()
    );
    let sb = b.serve_with(&["unshare", "-m", "sh", "-c", &script, "sh"]);
    let inside = PathBuf::from(format!("/proc/{}/root{}", sb.pid(), mnt.display()));
    let fb = inside.join("f");
    assert!(fb.join(".shoal").is_dir(), "the tmpfs is not visible");
    let want = tree(&fa);

    // What fits arrives; the big file shows as failed with a reason that says what to do.
    wait_for("the files that fit arrived", &sb, 30, || {
        let got = tree(&fb);
        (0..30).all(|i| got.get(&format!("small/s{i}")) == want.get(&format!("small/s{i}")))
            && got.get("medium.bin") == want.get("medium.bin")
    });
    wait_for("the big file is listed as failed", &sb, 20, || {
        failed_names(&b).contains(&"a-big.bin".to_string())
    });
    let st = folder_status(&b);
    let err = st["error"].as_str().unwrap_or_default().to_string();
    assert!(
        err.contains("a-big.bin") && err.contains("free space") && err.contains("resumes"),
        "the folder's error names the file, the cause and what happens: {st}"
    );
    nothing_partial_in_place(&tree(&fb), &want, "while the disk is full");
    assert!(!fb.join("a-big.bin").exists());
    // No temp file holds space that others need.
    let temps: Vec<String> = tree(&fb).into_keys().filter(|n| is_temp(n)).collect();
    assert!(temps.is_empty(), "temp files on a full disk: {temps:?}");

    // The rest of the folder keeps syncing while the big file waits.
    std::fs::write(fa.join("later.txt"), "written while B's disk is full").expect("write");
    wait_for("a new small file still arrives", &sb, 20, || {
        std::fs::read(fb.join("later.txt")).is_ok_and(|d| d == b"written while B's disk is full")
    });
    assert!(failed_names(&b).contains(&"a-big.bin".to_string()));
    nothing_partial_in_place(&tree(&fb), &tree(&fa), "after the later file");
    // The waiting file is still part of what B needs, whatever ran in between.
    let st = folder_status(&b);
    assert_eq!(
        (st["need_files"].as_u64(), st["need_bytes"].as_u64()),
        (Some(1), Some(12 << 20)),
        "{st}"
    );

    // Space returns: the pull resumes by itself (no rescan asked) and ends identical.
    std::fs::remove_file(inside.join("filler")).expect("free space");
    wait_for(
        "the trees are identical once space returned",
        &sb,
        30,
        || tree(&fb) == tree(&fa),
    );
    wait_for("the error is gone", &sb, 10, || {
        let st = folder_status(&b);
        st["error"].is_null() && failed_names(&b).is_empty() && st["need_files"] == 0
    });
    assert!(!sb.log().contains("panicked"), "{}", sb.log());
}

/// `chown -R` without following symlinks.
fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).expect("chown");
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        for e in std::fs::read_dir(path).expect("ls").flatten() {
            chown_tree(&e.path(), uid);
        }
    }
}

const NOBODY: u32 = 65534;

#[test]
fn a_permission_error_fails_only_that_directory_and_the_pull_completes_once_fixed() {
    let (a, b) = two_devices("f");
    let fa = a.path("f");
    std::fs::create_dir_all(fa.join("blocked")).expect("mkdir");
    std::fs::create_dir_all(fa.join("ok")).expect("mkdir");
    std::fs::write(fa.join("blocked/x.txt"), "x").expect("write");
    std::fs::write(fa.join("blocked/y.bin"), noise(300 << 10, 7)).expect("write");
    for i in 0..10 {
        std::fs::write(fa.join(format!("ok/f{i}")), format!("file {i}")).expect("write");
    }
    std::fs::write(fa.join("top.txt"), "top").expect("write");
    std::fs::set_permissions(fa.join("blocked"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let _sa = a.serve();
    // B runs as nobody: its home and folder are nobody's, but `blocked` is root's (0755),
    // so nothing can be created in it.
    std::fs::set_permissions(b.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let fb = b.path("f");
    std::fs::create_dir(fb.join("blocked")).expect("mkdir");
    std::fs::set_permissions(fb.join("blocked"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    // The index is made now (a command run by root would otherwise make it root's while
    // the service starts), then everything goes to nobody.
    b.run(&["status", "--json"]).ok();
    chown_tree(&b.home(), NOBODY);
    chown_tree(&fb, NOBODY);
    std::os::unix::fs::lchown(fb.join("blocked"), Some(0), Some(0)).expect("chown");
    let sb = b.serve_with(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ]);
    let want = tree(&fa);

    wait_for(
        "everything outside the blocked directory arrived",
        &sb,
        30,
        || {
            let got = tree(&fb);
            got.get("top.txt") == want.get("top.txt")
                && (0..10).all(|i| got.get(&format!("ok/f{i}")) == want.get(&format!("ok/f{i}")))
        },
    );
    wait_for("both blocked files are listed as failed", &sb, 20, || {
        let f = failed_names(&b);
        f.contains(&"blocked/x.txt".to_string()) && f.contains(&"blocked/y.bin".to_string())
    });
    let st = folder_status(&b);
    let err = st["error"].as_str().unwrap_or_default().to_string();
    assert!(
        err.contains("ermission denied")
            && err.contains(&fb.join("blocked").display().to_string())
            && err.contains("owner or permissions"),
        "the folder's error names the cause, the directory and what to do: {st}"
    );
    nothing_partial_in_place(&tree(&fb), &want, "while blocked");
    assert_eq!(
        std::fs::read_dir(fb.join("blocked")).expect("ls").count(),
        0,
        "nothing was written into the blocked directory"
    );

    // The owner is fixed: the pull completes by itself.
    std::os::unix::fs::lchown(fb.join("blocked"), Some(NOBODY), Some(NOBODY)).expect("chown");
    wait_for("the trees are identical once fixed", &sb, 60, || {
        tree(&fb) == tree(&fa)
    });
    wait_for("the error is gone", &sb, 10, || {
        let st = folder_status(&b);
        st["error"].is_null() && failed_names(&b).is_empty()
    });
    assert!(!sb.log().contains("panicked"), "{}", sb.log());
}

/// Writes zeros to `path` until the file system is full.
fn fill_up(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 << 10];
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = f.sync_all();
}

#[test]
fn a_disk_that_fills_up_in_the_middle_of_a_pull_keeps_no_temp_file_and_the_pull_resumes() {
    use crate::hostile::{Content, TestPeer, device_sharing_at, file_entry, index, join};
    use shoal::protocol::ResponseCode;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    assert!(rustix::process::geteuid().is_root(), "needs root");
    let peer = TestPeer::new("filler");
    let d = device_sharing_at(&[&peer], "mnt/f");
    let mnt = d.path("mnt");
    let script = format!(
        "mount -t tmpfs -o size=16m tmpfs '{m}' && mkdir -p '{m}/f/.shoal' && exec \"$@\"",
        m = mnt.display()
    );
    let s = d.serve_with(&["unshare", "-m", "sh", "-c", &script, "sh"]);
    let inside = PathBuf::from(format!("/proc/{}/root{}", s.pid(), mnt.display()));
    let fb = inside.join("f");
    let conn = join(&d, &peer, &["f"]);
    // A 4 MiB file fits when the pull starts; the peer holds its answers back until the
    // disk has been filled behind the puller's back.
    let big = Content::new(noise(4 << 20, 9), 128 << 10);
    let small = Content::new(b"small and already there".to_vec(), 1024);
    let (asked, go) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    {
        let (big, small, asked, go) = (big.clone(), small.clone(), asked.clone(), go.clone());
        conn.answer_with(move |r| {
            if let Some(b) = small.block(r) {
                return (ResponseCode::Ok, b.to_vec());
            }
            let Some(b) = big.block(r) else {
                return (ResponseCode::NoSuchFile, Vec::new());
            };
            asked.store(true, Ordering::SeqCst);
            let end = std::time::Instant::now() + Duration::from_secs(20);
            while !go.load(Ordering::SeqCst) && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
            (ResponseCode::Ok, b.to_vec())
        });
    }
    conn.send(&index(
        "f",
        vec![file_entry(&peer, "small.txt", 1, &small, 0o644)],
    ));
    wait_for("small.txt arrived", &s, 20, || {
        std::fs::read(fb.join("small.txt")).is_ok_and(|d| d == small.data)
    });
    conn.send(&index(
        "f",
        vec![file_entry(&peer, "big.bin", 2, &big, 0o644)],
    ));
    wait_for("the pull of big.bin started", &s, 20, || {
        asked.load(Ordering::SeqCst) && fb.join(".shoal-tmp-big.bin").exists()
    });
    fill_up(&inside.join("filler"));
    go.store(true, Ordering::SeqCst);
    wait_for("the failed pull is shown", &s, 20, || {
        failed_names(&d).contains(&"big.bin".to_string())
    });
    let st = folder_status(&d);
    let err = st["error"].as_str().unwrap_or_default().to_string();
    assert!(
        err.contains("big.bin") && err.contains("full") && err.contains("resumes"),
        "{st}"
    );
    assert!(!fb.join("big.bin").exists(), "nothing partial in place");
    assert!(
        !fb.join(".shoal-tmp-big.bin").exists(),
        "the partial temp file was removed (it would hold the space)"
    );
    assert_eq!(
        std::fs::read(fb.join("small.txt")).ok(),
        Some(small.data.clone()),
        "what was there stays whole"
    );
    // Space returns: the pull resumes by itself.
    std::fs::remove_file(inside.join("filler")).expect("free space");
    wait_for("big.bin arrived once space returned", &s, 30, || {
        std::fs::read(fb.join("big.bin")).is_ok_and(|d| d == big.data)
    });
    wait_for("the error is gone", &s, 10, || {
        folder_status(&d)["error"].is_null() && failed_names(&d).is_empty()
    });
    let temps: Vec<String> = tree(&fb).into_keys().filter(|n| is_temp(n)).collect();
    assert!(temps.is_empty(), "{temps:?}");
}

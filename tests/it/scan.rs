//! `shoal rescan` and `shoal ls` on real folders.

use crate::harness::Device;
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

fn entries(d: &Device, folder: &str) -> BTreeMap<String, Value> {
    let v = d.run(&["ls", folder, "--json"]).json();
    v.as_array()
        .expect("array")
        .iter()
        .map(|e| (e["name"].as_str().expect("name").to_string(), e.clone()))
        .collect()
}

#[test]
fn rescan_indexes_files_dirs_symlinks_and_skips_own_files() {
    let d = Device::init();
    let id = d.add_folder("f", &[]);
    let root = d.path("f");
    std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
    std::fs::create_dir_all(root.join("empty")).expect("mkdir");
    std::fs::write(root.join("a/b/hello.txt"), "hello").expect("write");
    std::fs::write(root.join("zero"), "").expect("write");
    std::fs::write(root.join(".hidden"), "dot").expect("write");
    std::fs::write(root.join(".gitignore"), "*.txt\n").expect("write");
    std::fs::write(root.join("ünïcödé.md"), "x").expect("write");
    std::fs::write(root.join(".shoal-tmp-abc"), "partial").expect("write");
    std::fs::write(root.join(".shoal/state"), "own").expect("write");
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("big.bin"), &big).expect("write");
    std::fs::set_permissions(root.join("zero"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::os::unix::fs::symlink("/etc/passwd", root.join("link")).expect("symlink");
    d.run(&["rescan", &id]).ok();
    let e = entries(&d, &id);
    let names: Vec<&str> = e.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec![
            ".gitignore",
            ".hidden",
            "a",
            "a/b",
            "a/b/hello.txt",
            "big.bin",
            "empty",
            "link",
            "zero",
            "ünïcödé.md"
        ],
        ".gitignore has no effect; own files and temp files are never indexed"
    );
    assert_eq!(e["a"]["type"], "dir");
    assert_eq!(e["link"]["type"], "symlink");
    assert_eq!(e["a/b/hello.txt"]["size"], 5);
    assert_eq!(e["a/b/hello.txt"]["blocks"], 1);
    assert_eq!(e["zero"]["blocks"], 0);
    assert_eq!(e["zero"]["permissions"], "0755");
    let blocks = e["big.bin"]["blocks"].as_u64().expect("blocks");
    assert!(
        (12..=366).contains(&blocks),
        "3 MB in 8-128 KiB chunks: {blocks}"
    );
    assert_eq!(e["big.bin"]["deleted"], false);
    assert!(
        e["big.bin"]["modified"]
            .as_str()
            .expect("time")
            .ends_with('Z')
    );
}

#[test]
fn unchanged_files_keep_their_version_and_changes_get_new_ones() {
    let d = Device::init();
    let id = d.add_folder("f", &[]);
    let root = d.path("f");
    std::fs::write(root.join("a"), "one").expect("write");
    std::fs::write(root.join("b"), "two").expect("write");
    d.run(&["rescan", &id]).ok();
    let first = entries(&d, &id);
    d.run(&["rescan", &id]).ok();
    assert_eq!(
        entries(&d, &id),
        first,
        "a rescan of nothing changed changes nothing"
    );
    std::fs::write(root.join("a"), "one, longer").expect("write");
    std::fs::remove_file(root.join("b")).expect("rm");
    d.run(&["rescan"]).ok();
    let second = entries(&d, &id);
    assert_ne!(second["a"]["version"], first["a"]["version"]);
    assert!(second["a"]["sequence"].as_u64() > first["b"]["sequence"].as_u64());
    assert_eq!(second["a"]["size"], 11);
    assert_eq!(second["b"]["deleted"], true);
    assert_eq!(second["b"]["size"], 0);
}

#[test]
fn a_folder_without_its_marker_is_not_scanned_and_nothing_is_deleted() {
    let d = Device::init();
    let id = d.add_folder("f", &[]);
    let root = d.path("f");
    std::fs::write(root.join("precious"), "data").expect("write");
    d.run(&["rescan", &id]).ok();
    // The disk "unmounts": the folder is empty, marker and all.
    std::fs::remove_file(root.join("precious")).expect("rm");
    std::fs::remove_dir(root.join(".shoal")).expect("rm marker");
    d.run(&["rescan", &id]).fails_with("marker");
    assert_eq!(entries(&d, &id)["precious"]["deleted"], false);
    std::fs::remove_dir(&root).expect("rm root");
    d.run(&["rescan", &id]).fails_with("missing");
    assert!(
        !root.exists(),
        "Shoal does not recreate a vanished folder path"
    );
    assert_eq!(entries(&d, &id)["precious"]["deleted"], false);
}

#[test]
fn shoalignore_is_honoured_and_ignored_files_are_not_deleted() {
    let d = Device::init();
    let id = d.add_folder("f", &[]);
    let root = d.path("f");
    std::fs::write(root.join("keep.log"), "k").expect("write");
    std::fs::write(root.join("a.txt"), "a").expect("write");
    d.run(&["rescan", &id]).ok();
    std::fs::write(root.join(".shoalignore"), "*.log\n").expect("write");
    std::fs::write(root.join("new.log"), "n").expect("write");
    d.run(&["rescan", &id]).ok();
    let e = entries(&d, &id);
    assert!(!e.contains_key("new.log"), "ignored file indexed");
    assert!(
        !e.contains_key(".shoalignore"),
        ".shoalignore is not synced"
    );
    assert_eq!(
        e["keep.log"]["deleted"], false,
        "a file that became ignored is not a deletion"
    );
}

#[test]
fn unknown_folder_and_corrupt_database_are_clear_errors() {
    let d = Device::init();
    d.run(&["rescan", "nope"]).fails_with("unknown folder ID");
    d.run(&["ls", "nope"]).fails_with("unknown folder ID");
    let id = d.add_folder("f", &[]);
    d.run(&["rescan", &id]).ok();
    std::fs::write(d.home().join("index.db"), vec![7u8; 8192]).expect("write");
    for ext in ["index.db-wal", "index.db-shm"] {
        let _ = std::fs::remove_file(d.home().join(ext));
    }
    d.run(&["ls", &id]).fails_with("index");
    d.run(&["rescan", &id]).fails_with("index");
}
